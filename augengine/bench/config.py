"""The bench configuration: a typed (pydantic, ``extra="forbid"``) model read from TOML.

A bench compares *arms* — a generator (+config), optionally with a filter — against the
baseline (real images only, always present) and against its resampling control (``controls``:
the arm's class counts added as copies of real training images), over a grid of amounts ×
generator seeds × classifier seeds, with one classifier (+config) and a set of evaluators. Example
(``bench.toml``)::

    data = "demo"
    image_size = 32
    amounts = [0.25, 0.5]            # int = a count of images, float = a ratio of the real train set
    classifier_seeds = [0, 1]
    generator_seeds = [0]

    [classifier]
    name = "resnet"
    config = { arch = "resnet18", epochs = 4 }

    [[arms]]
    name = "acgan"
    generator = "acgan"
    config = { iterations = 300 }

    [[arms]]
    name = "cyclegan-pr"
    generator = "cyclegan"
    config = { x_class = "NV", y_class = "MEL", iterations = 200 }
    source_class = "NV"
    filter = { name = "path-rank", config = { alpha = 0.5 }, apply_to = "target", target_class = "MEL" }
    sweep = { "filter.config.alpha" = [0.25, 0.5] }   # an axis: one arm per value

Presets (:data:`PRESETS`) are complete configs; ``-o key=value`` overrides any field with
dotted keys (``-o amounts=[500,1000]``, ``-o classifier.config.epochs=2``).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from augengine.config import format_validation_error, load_toml, merge, parse_overrides
from augengine.errors import ConfigError

__all__ = [
    "BenchConfig",
    "ArmSpec",
    "FilterSpec",
    "PluginSpec",
    "EvaluatorSpec",
    "SplitSpec",
    "ResourceSpec",
    "EXECUTION_FIELDS",
    "PRESETS",
    "load_bench_config",
    "validate_bench_config",
    "expand_arms",
    "amount_label",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class SplitSpec(_Model):
    """How the real data is split (ignored parts when ``file`` is given)."""

    fractions: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train/val/test fractions")
    group_by: Literal["auto", "lesion", "none"] = Field("auto", description="keep a lesion's images together")
    seed: int = Field(0, description="split seed")
    file: str | None = Field(None, description="a split file from 'augengine data split' (overrides the rest)")


class PluginSpec(_Model):
    """A plugin by name with its config (validated against the plugin's Config at plan time)."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class FilterSpec(PluginSpec):
    """A filter in an arm.

    ``apply_to = "output"`` filters the generated set (``oversample`` × the amount is generated,
    the filter keeps its best); ``apply_to = "target"`` is the paper's Path-Rank-Filter: the filter
    ranks the *real* training images of ``target_class`` with the baseline classifier (first
    classifier seed), and the selection file is handed to the generator as its config key ``feeds``
    (CycleGAN's domain Y).
    """

    apply_to: Literal["output", "target"] = "output"
    target_class: str | None = None
    feeds: str = Field("selection", description="target mode: generator config key receiving the selection file")
    oversample: float = Field(2.0, ge=1.0, description="output mode: generate oversample × amount before filtering")

    @model_validator(mode="after")
    def _check(self) -> "FilterSpec":
        alpha = self.config.get("alpha")
        if alpha is not None and not (isinstance(alpha, (int, float)) and 0 < float(alpha) <= 1):
            raise ValueError(f"filter {self.name!r}: alpha must lie in (0, 1], got {alpha!r}")
        if self.apply_to == "target" and not self.target_class:
            raise ValueError(f"filter {self.name!r}: apply_to='target' needs target_class (e.g. 'MEL')")
        return self


class ArmSpec(_Model):
    """One arm: a generator (+config), optionally followed by a filter."""

    name: str = Field(description="arm name used in tables (unique)")
    generator: str
    config: dict[str, Any] = Field(default_factory=dict, description="generator config")
    source_class: str | None = Field(None, description="translators: translate training images of this class")
    class_distribution: Literal["train", "uniform"] = Field("train", description="noise generators: label mix")
    filter: FilterSpec | None = None
    amounts: list[int | float] | None = Field(None, description="this arm's amounts (default: the bench's)")
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="axes: dotted arm field → values (e.g. filter.config.alpha)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or v == "baseline" or any(c in v for c in "/\\\n"):
            raise ValueError(f"arm name must be non-empty, not 'baseline', without slashes; got {v!r}")
        return v

    @field_validator("amounts")
    @classmethod
    def _amounts(cls, v):
        if v is not None:
            _check_amounts(v)
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, v):
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"sweep {k!r}: the list of values is empty")
            if k.split(".")[0] in ("name", "sweep"):
                raise ValueError(f"sweep {k!r}: cannot sweep the arm's {k.split('.')[0]}")
        return v


class ResourceSpec(_Model):
    """What one unit of a kind asks of a Ray cluster (the local executor ignores it)."""

    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per unit")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per unit (default: 1 for generator and classifier fits when the bench runs "
                                "on CUDA — device 'cuda', or 'auto' on a cluster with GPUs — else 0)")


class EvaluatorSpec(PluginSpec):
    """An evaluator and what it looks at: trained classifiers (``classifier``) or synthetic sets (``synthetic``)."""

    on: Literal["classifier", "synthetic"] = "classifier"


def _check_amounts(v: list) -> None:
    if not v:
        raise ValueError("amounts: the list is empty; give counts (500) or ratios of the real set (0.25)")
    for a in v:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or a <= 0:
            raise ValueError(f"amounts: every amount must be > 0 (a count or a ratio), got {a!r}")
    if len(set(map(repr, v))) != len(v):
        raise ValueError(f"amounts: duplicates in {v}")


def _dataset_value(v: str | dict[str, Any], where: str) -> str | dict[str, Any]:
    """A dataset as the config records it: a path string as given, or a table of
    :class:`~augengine.data.spec.DatasetSpec` keys, validated, with its defaults left out (so equal
    specs are equal records); a table that names only a path is that path."""
    if isinstance(v, str):
        return v
    from augengine.data.spec import spec_from

    try:
        spec = spec_from(v, owner=where)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    d = spec.model_dump(mode="json", exclude_defaults=True)
    return d.get("path", "demo") if set(d) <= {"path"} else d


class BenchConfig(_Model):
    """A whole bench: data, arms, amounts, classifier, evaluators, seeds."""

    data: str | dict[str, Any] = Field(
        "demo", description="dataset path or 'demo', or a table of dataset spec keys (format, csv, image_col, "
                            "label_col, group_col, root, options, name: augengine.data.spec.DatasetSpec)")
    test_data: list[str | dict[str, Any]] = Field(
        default_factory=list, description="external test sets (reported apart): paths or dataset spec tables")
    split: SplitSpec = Field(default_factory=SplitSpec)
    image_size: int = Field(32, ge=8, description="image size handed to plugins that have an image_size field")
    device: str = Field("auto", description="handed to plugins with a device field (auto|cpu|cuda)")
    amounts: list[int | float] = Field([0.25, 0.5], description="synthetic images to add: counts or ratios")
    arms: list[ArmSpec] = Field(default_factory=list)
    classifier: PluginSpec = Field(default_factory=lambda: PluginSpec(name="resnet"))
    evaluators: list[EvaluatorSpec] = Field(default_factory=lambda: [EvaluatorSpec(name="benefit")])
    set_quality: Literal["auto", "on", "off"] = Field(
        "auto", description="evaluate each synthetic set with 'set-quality' (auto: when installed)")
    classifier_seeds: list[int] = Field([0, 1])
    generator_seeds: list[int] = Field([0])
    focus_class: str = Field("MEL", description="the class of the Table 3 columns and the MEL plots")
    controls: list[Literal["resample"]] = Field(
        ["resample"], description="control arms beside every synthetic arm: 'resample' adds the arm's class counts "
        "as real training images drawn with replacement ([] = off)")
    resume_fits: bool = Field(True, description="continue interrupted generator and classifier fits from their checkpoints")
    resources: dict[str, ResourceSpec] = Field(
        default_factory=dict, description="unit kind (split, genfit, clffit, …) → Ray resources per unit")
    keep_resume_state: bool = Field(
        False, description="keep the files only a resumed fit reads (e.g. ResNet train_state.pt) once a unit is done")
    plugin_modules: list[str] = Field(default_factory=list,
                                      description="extra modules registered as plugins (no entry point needed)")

    @field_validator("amounts")
    @classmethod
    def _amounts(cls, v):
        _check_amounts(v)
        return v

    @field_validator("data")
    @classmethod
    def _data(cls, v):
        return _dataset_value(v, "dataset spec")

    @field_validator("test_data")
    @classmethod
    def _test_data(cls, v):
        return [_dataset_value(x, f"item {i} (dataset spec)") for i, x in enumerate(v)]

    @field_validator("controls")
    @classmethod
    def _controls(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"controls: duplicates in {v}")
        return v

    @field_validator("resources")
    @classmethod
    def _resources(cls, v):
        from augengine.bench.units import UNIT_KINDS  # the table of kinds (it imports this module)

        for k in v:
            if k not in UNIT_KINDS:
                raise ValueError(f"resources.{k}: unknown unit kind; known: {', '.join(UNIT_KINDS)}")
        return v

    @field_validator("classifier_seeds", "generator_seeds")
    @classmethod
    def _seeds(cls, v, info):
        if not v:
            raise ValueError(f"{info.field_name}: the list is empty; give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"{info.field_name}: duplicate seeds in {v}")
        return v

    @model_validator(mode="after")
    def _unique_arms(self) -> "BenchConfig":
        names = [a.name for a in self.arms]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"arms: names must be unique, repeated: {sorted(dup)}")
        return self

    def canonical(self) -> dict[str, Any]:
        """JSON-able dict (the record stored in the output directory)."""
        return json.loads(self.model_dump_json())

    def differs_from(self, old: dict[str, Any]) -> list[str]:
        """Top-level keys whose value differs from the record ``old`` in what the bench computes.

        :data:`EXECUTION_FIELDS` (how and where units run) never count, and a key the record
        lacks (written by an older version) counts only when this config changes its default.
        """
        mine = self.canonical()
        fields = type(self).model_fields
        out = []
        for k in sorted(set(mine) | set(old)):
            if k in EXECUTION_FIELDS:
                continue
            default = json.loads(type(self).model_validate({}).model_dump_json()).get(k) if k in fields else None
            if old.get(k, default) != mine.get(k):
                out.append(k)
        return out


#: config fields that change how or where units run, never what they compute
EXECUTION_FIELDS = frozenset({"keep_resume_state", "resources"})


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------
#: Tiny plugin configs of the ``quick`` preset (chosen so that the whole bench, GAN training
#: included, fits in ≤ 10 minutes on 2 CPU cores): ACGAN 400 iterations of batch 32 with narrow
#: networks; CycleGAN 300 iterations with 2 residual blocks and 16 filters; ResNet-18 for 3 epochs
#: with a fixed learning rate (no LR range test) at 32 px.
_QUICK = {
    "data": "demo",
    "image_size": 32,
    "amounts": [0.25, 0.5],
    "classifier_seeds": [0, 1],
    "generator_seeds": [0],
    "classifier": {"name": "resnet", "config": {"arch": "resnet18", "epochs": 3, "batch_size": 64, "lr": 2e-3,
                                                "early_stopping_patience": None}},
    "evaluators": [{"name": "benefit"}],
    "arms": [
        {"name": "acgan", "generator": "acgan",
         "config": {"iterations": 400, "batch_size": 32, "g_channels": [128, 64, 32], "d_channels": [16, 32, 64, 128],
                    "d_strides": [2, 1, 2, 1], "checkpoint_every": 100, "sample_every": 200}},
        {"name": "cyclegan-nv2mel-pr", "generator": "cyclegan", "source_class": "NV",
         "config": {"x_class": "NV", "y_class": "MEL", "iterations": 300, "n_blocks": 2, "ngf": 16, "ndf": 16,
                    "n_epochs": 1, "n_epochs_decay": 1, "pool_size": 50, "checkpoint_every": 100,
                    "sample_every": 0},
         "filter": {"name": "path-rank", "config": {"alpha": 0.5}, "apply_to": "target", "target_class": "MEL"}},
    ],
}

_EXP1 = {
    "data": "demo",
    "image_size": 128,
    "amounts": [2000, 4000, 8000, 16000, 24000],
    "classifier_seeds": [0, 1, 2],
    "generator_seeds": [0],
    "classifier": {"name": "resnet", "config": {"arch": "resnet50", "image_size": 224}},
    "evaluators": [{"name": "benefit"}],
    "arms": [
        {"name": "acgan", "generator": "acgan", "config": {"image_size": 128}},
        # the composition makes its source ACGAN at the translators' 256 px (the paper: ACGAN at 128 px,
        # CycleGAN at 256 px): one more generator stage than ACGAN's default widths (8 → 128 px) hold
        {"name": "acgan+cyclegan", "generator": "acgan+cyclegan",
         "config": {"image_size": 256, "source_config": {"g_channels": [768, 384, 256, 192, 96]}}},
    ],
}

_EXP2 = {
    "data": "demo",
    "image_size": 256,
    "amounts": [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000],
    "classifier_seeds": [0, 1, 2],
    "generator_seeds": [0],
    "classifier": {"name": "resnet", "config": {"arch": "resnet50", "image_size": 224}},
    "evaluators": [{"name": "benefit"}],
    "arms": [
        {"name": "cyclegan-nv2mel", "generator": "cyclegan", "source_class": "NV",
         "config": {"x_class": "NV", "y_class": "MEL"},
         "filter": {"name": "path-rank", "config": {"alpha": 1.0}, "apply_to": "target", "target_class": "MEL"},
         "sweep": {"filter.config.alpha": [0.125, 0.25, 0.5, 1.0]}},
    ],
}

PRESETS: dict[str, dict[str, Any]] = {"quick": _QUICK, "paper-exp1": _EXP1, "paper-exp2": _EXP2}


def validate_bench_config(data: dict[str, Any], owner: str = "bench config") -> BenchConfig:
    """Validate a dict into a :class:`BenchConfig`; ConfigError (one line naming the key) on failure."""
    from pydantic import ValidationError

    try:
        return BenchConfig.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])  # a typo explains the rest
        if err["type"] == "extra_forbidden" and len(err["loc"]) > 1:
            # name the nested model's known keys, not BenchConfig's
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{owner}: unknown config key {loc!r}") from None
        raise ConfigError(format_validation_error(owner, BenchConfig, e)) from None


def load_bench_config(path: str | Path | None = None, *, preset: str | None = None,
                      overrides: tuple[str, ...] | list[str] = (), data: str | dict[str, Any] | None = None,
                      test_data: tuple[str, ...] | list[str] = (),
                      dataset_args: dict[str, Any] | None = None) -> BenchConfig:
    """Build a :class:`BenchConfig`: preset (default ``quick`` when no file) < TOML file < ``--data`` < ``-o``.

    Args:
        data: the dataset (a path, or a table of dataset spec keys), replacing the config's.
        dataset_args: how to read it (keyword arguments of :func:`augengine.load_dataset`: format,
            csv, image_col, label_col, group_col, root, options), applied to ``data`` or, without it,
            to the config's data; together they make a dataset spec table.

    Raises:
        ConfigError: unknown preset, unknown key, bad value (one line naming the key).
    """
    base: dict[str, Any] = {}
    owner = "bench config"
    if preset is not None or path is None:
        name = preset or "quick"
        if name not in PRESETS:
            raise ConfigError(f"--preset {name!r}: unknown; known presets: {', '.join(PRESETS)}")
        base = copy.deepcopy(PRESETS[name])
        owner = f"bench preset {name!r}"
    if path is not None:
        base = merge(base, load_toml(path))
        owner = f"bench config {path}"
    if data is not None:
        base["data"] = data
    given = {k: v for k, v in (dataset_args or {}).items() if v is not None and not (k == "format" and v == "auto")}
    if given:  # how to read the data (format, csv, image_col, …): applied to data or the config's data
        cur = base.get("data", "demo")
        cur = dict(cur) if isinstance(cur, dict) else {"path": cur}
        options = {**(cur.get("options") or {}), **(given.pop("options", None) or {})}
        cur.update(given)
        if options:
            cur["options"] = options
        base["data"] = cur
    if test_data:
        base["test_data"] = list(test_data)
    try:
        ov = parse_overrides(overrides)
    except ConfigError as e:
        raise ConfigError(f"bench: {e}") from None
    base = merge(base, ov)
    return validate_bench_config(base, owner)


# ---------------------------------------------------------------------------------------------
# axes
# ---------------------------------------------------------------------------------------------
def _set_dotted(d: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = d
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        node = node[p]
        if not isinstance(node, dict):
            raise ConfigError(f"sweep {path!r}: {p!r} is not a table")
    node[parts[-1]] = value


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def expand_arms(cfg: BenchConfig) -> list[ArmSpec]:
    """Arms with their sweeps expanded into a grid (one arm per combination, named ``arm[k=v,…]``)."""
    out: list[ArmSpec] = []
    for arm in cfg.arms:
        if not arm.sweep:
            out.append(arm)
            continue
        keys = list(arm.sweep)
        for combo in itertools.product(*(arm.sweep[k] for k in keys)):
            d = arm.model_dump()
            d["sweep"] = {}
            for k, v in zip(keys, combo):
                _set_dotted(d, k, v)
            label = ",".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in zip(keys, combo))
            d["name"] = f"{arm.name}[{label}]"
            try:
                out.append(ArmSpec.model_validate(d))
            except Exception as e:  # noqa: BLE001 - pydantic → one line
                msg = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)
                raise ConfigError(f"arm {arm.name!r} sweep {label}: {msg}") from None
    return out


def amount_label(a: int | float) -> str:
    """``500`` → ``"500"``; ``0.25`` → ``"x0.25"`` (a ratio of the real training set)."""
    return f"x{a:g}" if isinstance(a, float) else str(a)
