"""The outside example plugin is discovered through its entry point and passes the contract kit."""

import json
import subprocess
import sys

from augengine.testing import FilterContract, GeneratorContract


class TestExampleNoise(GeneratorContract):
    plugin_name = "example-noise"
    config = {"image_size": 16}


class TestExampleBrightness(FilterContract):
    plugin_name = "example-brightness"
    config = {"keep": 0.5}
    bad_value = ("keep", "lots")


def test_discovered_through_entry_point():
    out = subprocess.run([sys.executable, "-m", "augengine.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    row = rows[("generator", "example-noise")]
    assert row["package"] == "augengine-example-plugin" and row["entry_point"] == "example"
    assert any(f["name"] == "image_size" for f in row["config"])
