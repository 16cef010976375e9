"""Options and helpers shared by every command (name resolution, config building, data loading)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from augengine.config import load_toml, merge, parse_overrides, validate_config
from augengine.errors import ConfigError, DataError

EXAMPLE_PREFIX = "\b\nExample:\n  "


def verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_verbose, help="Show tracebacks on errors.")(f)


VERBOSE = {"on": False}


def _set_verbose(ctx: click.Context, _param, value: bool):
    if value:
        VERBOSE["on"] = True


def common_options(f):
    """--seed, --device and -v, on every command."""
    f = click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same result).")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="Where to compute (auto: CUDA when available, else CPU).")(f)
    return verbose_option(f)


def config_options(f):
    """--config F.toml and -o key=value (repeatable)."""
    f = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML file with the plugin's config (a [NAME] table or top-level keys).")(f)
    f = click.option("-o", "--option", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Set a config field (TOML literal; dotted keys for nested fields). Repeatable.")(f)
    return f


def data_options(f):
    f = click.option("--data", default="demo", show_default=True,
                     help="Dataset path (HAM10000, ISIC 2019, class folders, .npz) or 'demo'.")(f)
    f = click.option("--split", "split_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Split file from 'augengine data split' (default: the data's default split).")(f)
    f = click.option("--split-seed", type=int, default=0, show_default=True,
                     help="Seed of the default split (used without --split). Independent of --seed, so runs "
                          "with different seeds share one split and no test image leaks into training.")(f)
    return f


def build_plugin_config(cls, config_file: Path | None, overrides: tuple[str, ...], device: str | None = None) -> Any:
    """defaults < TOML file < -o overrides, validated into ``cls.Config`` (one-line ConfigError)."""
    owner = f"{cls.kind} {cls.name!r}"
    data: dict[str, Any] = {}
    if config_file is not None:
        data = load_toml(config_file, table=cls.name)
    try:
        data = merge(data, parse_overrides(overrides))
    except ConfigError as e:
        raise ConfigError(f"{owner}: {e}") from None
    if device is not None and device != "auto" and "device" in cls.Config.model_fields and "device" not in data:
        data["device"] = device
    return validate_config(cls.Config, data, owner=owner, strict=True)


def load_data_split(data: str, split_path: Path | None, split_seed: int = 0):
    """(table, split) for --data/--split; the default split (from ``split_seed``) without a split file."""
    import augengine.data as D

    table = D.load_dataset(data)
    if split_path is not None:
        return table, D.load_split(split_path, table)
    return table, D.default_split(table, seed=split_seed)


def pick_subset(split, subset: str):
    if subset not in ("train", "val", "test"):
        raise DataError(f"--subset {subset!r}: expected train, val or test")
    return getattr(split, subset)


def parse_amount(text: str | None) -> int | float | None:
    """'500' → 500 images; '0.25' → a ratio of the real training set."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"--amount {text!r}: expected a count (e.g. 500) or a ratio (e.g. 0.25)") from None
    if v <= 0:
        raise ConfigError(f"--amount {text!r}: must be > 0")
    return int(v) if v >= 1 and float(v).is_integer() and "." not in text else v


def parse_per_class(text: str | None) -> dict[str, int] | None:
    """'MEL=500,NV=200' → {'MEL': 500, 'NV': 200}."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not v.strip().isdigit():
            raise ConfigError(f"--per-class {text!r}: expected CLASS=COUNT[,CLASS=COUNT…], e.g. MEL=500,NV=200")
        out[k.strip()] = int(v)
    return out


def with_example(example: str):
    """Append an example to a command's help text."""
    def deco(f):
        f.__doc__ = (f.__doc__ or "").rstrip() + "\n\n" + EXAMPLE_PREFIX + example.strip().replace("\n", "\n  ")
        return f
    return deco
