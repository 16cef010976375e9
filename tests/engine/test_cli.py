"""Command-line behaviour: one-line errors, plugin listing, help examples."""

import json

import pytest
from click.testing import CliRunner

import augengine as ae
from augengine.cli import main


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and ae.__version__ in r.output


def test_plugins_json_lists_kind_name_config():
    r = run("plugins", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    gen = next(x for x in rows if x["name"] == "example-noise")
    assert gen["kind"] == "generator" and gen["status"] == "ok" and gen["config"][0]["name"] == "image_size"


def test_plugins_hidden_by_env(monkeypatch):
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "")
    ae.reset_plugins()
    r = run("plugins", "--json")
    assert r.exit_code == 0 and json.loads(r.output) == []


def test_unknown_generator_is_one_line_error(tmp_path):
    r = run("generate", "no-such-plugin", "--run", str(tmp_path), "--n", "3", "--out", str(tmp_path / "x.h5"))
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown generator 'no-such-plugin'")
    assert "example-noise" in lines[0] and "Traceback" not in r.output


@pytest.mark.parametrize("override,key", [("no_such_key=1", "no_such_key"), ("image_size=abc", "image_size")])
def test_bad_override_is_one_line_error(tmp_path, override, key):
    r = run("fit", "example-noise", "--out", str(tmp_path / "run"), "-o", override)
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and key in lines[0] and "example-noise" in lines[0], r.output


def test_verbose_shows_traceback(tmp_path):
    r = run("-v", "fit", "example-noise", "--out", str(tmp_path / "run"), "-o", "no_such_key=1")
    assert r.exit_code == 2 and "Traceback" in r.output


def test_every_command_help_has_an_example():
    for name, cmd in main.commands.items():
        sub = getattr(cmd, "commands", None)
        for c in (sub.values() if sub else [cmd]):
            r = CliRunner().invoke(main, [name] + ([c.name] if sub else []) + ["--help"])
            assert r.exit_code == 0, (name, r.output)
            assert "Example" in r.output, f"'{name} {c.name if sub else ''} --help' shows no example"
