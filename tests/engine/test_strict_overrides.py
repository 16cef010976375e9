"""Values typed on the command line or in TOML are not coerced between types (issue 15)."""

import pytest
from click.testing import CliRunner

import augengine as ae
from augengine.cli import main
from augengine.cli.common import build_plugin_config
from augengine.config import validate_config
from augengine.errors import ConfigError


def _acgan():
    return ae.get_plugin_class("generator", "acgan")


@pytest.mark.parametrize("item, key, expected", [
    ('iterations="300"', "iterations", "integer"),
    ('spectral_norm="yes"', "spectral_norm", "boolean"),
    ("spectral_norm=1", "spectral_norm", "boolean"),
    ("iterations=3.0", "iterations", "integer"),
    ('lr="2e-4"', "lr", "number"),
])
def test_quoted_or_wrong_typed_override_is_one_line_error(item, key, expected):
    with pytest.raises(ConfigError) as e:
        build_plugin_config(_acgan(), None, (item,))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("generator 'acgan': config key") and repr(key) in msg and expected in msg
    assert "got " in msg and item.split("=", 1)[1].strip('"') in msg


def test_typed_values_are_accepted_and_an_int_is_a_float():
    cfg = build_plugin_config(_acgan(), None, ("iterations=300", "spectral_norm=true", "lr=1", "betas=[0.5, 0.9]",
                                               "precision=fp32"))
    assert cfg.iterations == 300 and cfg.spectral_norm is True and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.betas == (0.5, 0.9)


def test_union_of_bool_and_literal_names_the_field_and_both_choices():
    cls = ae.get_plugin_class("classifier", "resnet")
    with pytest.raises(ConfigError) as e:
        build_plugin_config(cls, None, ('channels_last="yes"',))
    msg = str(e.value)
    assert "config key 'channels_last':" in msg and "boolean" in msg and "'auto'" in msg and "'yes'" in msg


def test_toml_file_values_are_strict_too(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[acgan]\niterations = "300"\n')
    with pytest.raises(ConfigError, match="'iterations'.*integer.*got '300'"):
        build_plugin_config(_acgan(), f, ())
    f.write_text('[acgan]\niterations = 300\nbetas = [0.5, 0.999]\n')
    assert build_plugin_config(_acgan(), f, ()).iterations == 300


def test_toml_dates_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="config key 'iterations'.*date"):
        build_plugin_config(_acgan(), None, ("iterations=1979-05-27",))


def test_python_api_stays_lenient():
    # create_generator("acgan", image_size=...) from Python keeps pydantic's default (lax) mode
    gen = ae.create_generator("acgan", image_size=32, iterations="5")
    assert gen.config.iterations == 5
    model = validate_config(_acgan().Config, {"iterations": "5"}, owner="x")
    assert model.iterations == 5


def test_cli_fit_refuses_a_quoted_integer(tmp_path):
    r = CliRunner().invoke(main, ["fit", "acgan", "--out", str(tmp_path / "run"), "-o", 'iterations="300"'])
    assert r.exit_code != 0
    assert "generator 'acgan': config key 'iterations': input should be a valid integer, got '300'" in r.output
    assert not (tmp_path / "run").exists()
