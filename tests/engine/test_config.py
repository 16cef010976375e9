"""Config layering: defaults < TOML < -o, TOML literals, dotted keys, one-line errors."""

import pytest

from augengine.cli.common import build_plugin_config, parse_amount, parse_per_class
from augengine.config import PluginConfig, parse_overrides
from augengine.errors import ConfigError
from augengine.plugin import Plugin


class Inner(PluginConfig):
    lr: float = 1e-3


class Cfg(PluginConfig):
    image_size: int = 64
    name: str = "x"
    betas: tuple[float, float] = (0.5, 0.999)
    optim: Inner = Inner()


class P(Plugin):
    """Test plugin."""

    kind = "generator"
    name = "p"
    Config = Cfg


def test_parse_overrides_toml_literals_and_dots():
    assert parse_overrides(["a=1", "b=2e-4", "c=[1, 2]", "d=word", 'e="q"', "f.g=true"]) == {
        "a": 1, "b": 2e-4, "c": [1, 2], "d": "word", "e": "q", "f": {"g": True}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_layering(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[p]\nimage_size = 32\nname = "file"\n[p.optim]\nlr = 0.1\n')
    cfg = build_plugin_config(P, f, ("name=cli", "optim.lr=0.5"))
    assert cfg.image_size == 32 and cfg.name == "cli" and cfg.optim.lr == 0.5 and cfg.betas == (0.5, 0.999)


def test_errors_are_one_line():
    for bad, key in ((("image_size=abc",), "image_size"), (("nope=1",), "nope"), (("optim.lrr=1",), "lrr")):
        with pytest.raises(ConfigError) as e:
            build_plugin_config(P, None, bad)
        assert key in str(e.value) and "generator 'p'" in str(e.value) and "\n" not in str(e.value)


def test_bad_toml_file_names_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("image_size = [")
    with pytest.raises(ConfigError, match="bad.toml"):
        build_plugin_config(P, f, ())


def test_amount_and_per_class():
    assert parse_amount("500") == 500 and parse_amount("0.25") == 0.25
    for bad in ("0", "-3", "lots"):
        with pytest.raises(ConfigError):
            parse_amount(bad)
    assert parse_per_class("MEL=500,NV=200") == {"MEL": 500, "NV": 200}
    with pytest.raises(ConfigError):
        parse_per_class("MEL:5")
