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


DATA_FORMATS = ("auto", "ham10000", "isic2019", "isic2018", "isic2020", "ph2", "csv", "folder", "medmnist", "demo")
_DATASET_KEY = "augengine.dataset"


def _store_dataset_arg(ctx: click.Context, param: click.Parameter, value):
    ctx.meta.setdefault(_DATASET_KEY, {})[param.name] = value
    return value


def dataset_options(f=None, *, short_option: bool = False):
    """How to read the dataset: --format, --csv, --image-col, --label-col, --group-col, --root, --data-option.

    The values are read back with :func:`dataset_args` (the keyword arguments of ``load_dataset``).
    ``short_option`` adds ``-o`` as an alias of ``--data-option`` (commands without plugin configs).
    """
    def deco(f):
        opts = [
            click.option("--format", "format", type=click.Choice(DATA_FORMATS), default="auto", show_default=True,
                         expose_value=False, callback=_store_dataset_arg,
                         help="Dataset layout (auto: detected from what the path holds)."),
            click.option("--csv", "csv", expose_value=False, callback=_store_dataset_arg,
                         help="Any spreadsheet (implies --format csv): the CSV file with one row per image."),
            click.option("--image-col", "image_col", expose_value=False, callback=_store_dataset_arg,
                         help="--format csv: column of image paths (relative to --root) or names."),
            click.option("--label-col", "label_col", expose_value=False, callback=_store_dataset_arg,
                         help="--format csv: column of class names (or one-hot columns A,B,C)."),
            click.option("--group-col", "group_col", expose_value=False, callback=_store_dataset_arg,
                         help="--format csv: column of lesion/patient ids (each kept whole in one split)."),
            click.option("--root", "root", expose_value=False, callback=_store_dataset_arg,
                         help="--format csv: folder the image paths are relative to (default: the data folder, "
                              "else the CSV's folder)."),
            click.option(*(("-o", "--data-option") if short_option else ("--data-option",)), "data_option",
                         multiple=True, metavar="KEY=VALUE", expose_value=False, callback=_store_dataset_arg,
                         help="Format option, repeatable: labels=binary|diagnosis, unknown=drop (isic2020); "
                              "part=Test (isic2018); labels=as-written (csv)."),
        ]
        for o in reversed(opts):
            f = o(f)
        return f
    return deco(f) if f is not None else deco


def dataset_args() -> dict[str, Any]:
    """The keyword arguments of ``load_dataset`` given on the current command line (see :func:`dataset_options`)."""
    ctx = click.get_current_context(silent=True)
    got = dict(ctx.meta.get(_DATASET_KEY, {})) if ctx is not None else {}
    options = {}
    for item in got.pop("data_option", ()) or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--data-option {item!r}: expected KEY=VALUE, e.g. labels=binary")
        options[key.strip()] = value.strip()
    out = {k: v for k, v in got.items() if v is not None}
    out.setdefault("format", "auto")
    if options:
        out["options"] = options
    return out


def data_options(f):
    f = dataset_options(f)
    f = click.option("--data", default="demo", show_default=True,
                     help="Dataset path (HAM10000, ISIC 2019/2018/2020, PH2, class folders, .npz, a dataset .toml), "
                          "or 'demo'; any spreadsheet with --csv.")(f)
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

    table = D.load_dataset(data, **dataset_args())
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


#: library argument → command-line flag, in messages raised by library code
_FLAG_OF_ARGUMENT = (("resume=True", "--resume"), ("force=True", "--force"), ("(source=)", "(--source)"),
                     ("(classifier=RUN_DIR or a fitted Classifier)", "(--classifier RUN_DIR)"),
                     ("(classifier=RUN_DIR)", "(--classifier RUN_DIR)"), ("(synthetic=SET.h5)", "(--set SET.h5)"),
                     ("(target_class='MEL')", "(--class MEL)"), ("(expected 'cpu' or 'auto')", "(use --device cpu or auto)"))
#: messages that start with a library argument's name
_FLAG_OF_PREFIX = (("per_class: ", "--per-class: "), ("n: ", "--n: "), ("source_class ", "--source-class "), ("device=", "--device "))


def cli_message(error: BaseException) -> str:
    """A library error as the command line shows it: the library names its arguments
    (``resume=True``, ``force=True``), the command line its flags (``--resume``, ``--force``)."""
    text = str(error)
    for arg, flag in _FLAG_OF_ARGUMENT:
        text = text.replace(arg, flag)
    for arg, flag in _FLAG_OF_PREFIX:
        if text.startswith(arg):
            return flag + text[len(arg):]
    return text


def with_example(example: str):
    """Append an example to a command's help text."""
    def deco(f):
        f.__doc__ = (f.__doc__ or "").rstrip() + "\n\n" + EXAMPLE_PREFIX + example.strip().replace("\n", "\n  ")
        return f
    return deco
