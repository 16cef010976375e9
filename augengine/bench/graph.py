"""The bench as a graph of cached units.

split → generator fits (per generator config × seed) → synthetic sets → filtered sets →
classifier fits (arm × amount × seed) → evaluations. A target filter (the paper's
Path-Rank-Filter) sits between the baseline classifier and the generator fit it feeds.

A unit's key is the SHA-256 of its kind, its spec (resolved plugin configs with every default,
seeds, amounts) and the keys of its inputs, so equal work has equal keys (shared between
arms) and changing one amount changes only the keys downstream of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from augengine.bench.config import ArmSpec, BenchConfig, amount_label, expand_arms
from augengine.config import validate_config
from augengine.errors import ConfigError

__all__ = ["Unit", "Plan", "build_plan", "unit_key", "resolve_plugin_config", "KIND_ORDER"]

SCHEMA = 1
KIND_ORDER = ("split", "clffit", "select", "genfit", "synth", "filtered", "resample", "quality", "eval")

#: the arm name of resampling-control units (their rows name the synthetic arm they control for)
CONTROL_ARM = "resampled real"


#: the first word of a unit label that only repeats its kind, where it is not the kind itself
_KIND_WORDS = {"clffit": "clf", "genfit": "gen", "synth": "set"}


@dataclasses.dataclass
class Unit:
    """One cached step.

    Attributes:
        kind: split | genfit | select | synth | filtered | clffit | eval | quality.
        spec: what defines the work (hashed).
        deps: input unit keys, in a meaningful order.
        meta: descriptive fields for tables (arm, amount, seeds, test set); not hashed.
    """

    kind: str
    label: str
    spec: dict[str, Any]
    deps: list[str]
    meta: dict[str, Any]
    key: str = ""

    def __post_init__(self):
        if not self.key:
            self.key = unit_key(self.kind, self.spec, self.deps)

    @property
    def dirname(self) -> str:
        """``<kind>-<label without its kind word>-<key[:12]>``: ``clffit-baseline-s0-…``, ``split-…``."""
        first, _, rest = self.label.partition("-")
        label = rest if first in (self.kind, _KIND_WORDS.get(self.kind)) else self.label
        slug = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", label)[:48].strip("_")
        return f"{self.kind}-{slug}-{self.key[:12]}" if slug else f"{self.kind}-{self.key[:12]}"

    @property
    def legacy_dirname(self) -> str:
        """The folder name of versions that repeated the kind (``clffit-clf-baseline-s0-…``)."""
        slug = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", self.label)[:48].strip("_")
        return f"{self.kind}-{slug}-{self.key[:12]}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Unit":
        return cls(**d)


def unit_key(kind: str, spec: dict[str, Any], deps: list[str]) -> str:
    blob = json.dumps({"schema": SCHEMA, "kind": kind, "spec": spec, "deps": list(deps)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclasses.dataclass
class Plan:
    """The units of a bench.

    Attributes:
        units: the units, inputs before the units that read them.
        arms: the arms (sweeps expanded).
        pending_controls: one entry per synthetic set whose control units are not planned yet
            (its class counts are known once the set exists): ``{"set": unit key, "arm",
            "amount", "generator_seed", "units": how many units its control adds at most}``.
    """

    units: list[Unit]
    arms: list[ArmSpec]
    pending_controls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def by_key(self) -> dict[str, Unit]:
        return {u.key: u for u in self.units}

    def dependants(self, key: str) -> set[str]:
        """Keys of every unit downstream of ``key``."""
        out: set[str] = set()
        frontier = {key}
        while frontier:
            nxt = {u.key for u in self.units if frontier & set(u.deps)} - out
            out |= nxt
            frontier = nxt
        return out


def resolve_plugin_config(kind: str, name: str, config: dict[str, Any], cfg: BenchConfig,
                          skip: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """Validate ``config`` against the plugin's Config (injecting image_size/device where the plugin
    has such fields and the config does not set them). Returns (canonical name, full config)."""
    from augengine.registry import get_plugin_class, resolve_name

    _, pname = resolve_name(name, kind)
    cls = get_plugin_class(kind, pname)
    data = dict(config)
    fields = cls.Config.model_fields
    if "image_size" in fields and "image_size" not in data:
        data["image_size"] = cfg.image_size
    if "device" in fields and "device" not in data and cfg.device != "auto":
        data["device"] = cfg.device
    model = validate_config(cls.Config, data, owner=f"{kind} {pname!r}", strict=True)  # typed in TOML or -o
    out = model.model_dump(mode="json")
    for k in skip:
        out.pop(k, None)
    return pname, out


def build_plan(cfg: BenchConfig, data_fingerprint: str, test_sets: dict[str, str],
               set_quality: list[tuple[str, dict]] | None = None,
               set_counts: Callable[[Unit], dict[str, int] | None] | None = None) -> Plan:
    """Expand ``cfg`` into units.

    Args:
        cfg: the bench config.
        data_fingerprint: identity of the real data (hash).
        test_sets: test-set name → fingerprint; ``"test"`` is the in-distribution split, the
            others are external test sets.
        set_quality: (name, config) of evaluators run on each synthetic set.
        set_counts: ``final set unit → class counts`` (real class names, in class order, zeros
            left out) of a finished synthetic set, None while it is not finished. The resampling
            control of a set (``cfg.controls``) is keyed by these counts, so arms that add the
            same counts share it; it is planned once they are known (else listed in
            :attr:`Plan.pending_controls`).

    Raises:
        ConfigError / PluginNotFoundError: unknown plugins or config keys (one line).
    """
    units: list[Unit] = []
    split = Unit("split", "split", {"data": data_fingerprint, "split": cfg.split.model_dump(mode="json"),
                                    "image_size": cfg.image_size}, [], {})
    units.append(split)
    cname, ccfg = resolve_plugin_config("classifier", cfg.classifier.name, cfg.classifier.config, cfg)
    evaluators = []
    for ev in cfg.evaluators:
        ename, ecfg = resolve_plugin_config("evaluator", ev.name, ev.config, cfg)
        evaluators.append((ev.on, ename, ecfg))
    for name, conf in set_quality or []:
        evaluators.append(("synthetic", name, conf))

    def clffit(arm: str, amount, seed: int, gen_seed, deps: list[str], amount_spec) -> Unit:
        spec = {"classifier": cname, "config": ccfg, "seed": seed, "amount": amount_spec}
        lab = f"clf-{arm}-{amount_label(amount) if amount is not None else '0'}-g{gen_seed}-s{seed}" \
            if amount is not None else f"clf-baseline-s{seed}"
        return Unit("clffit", lab, spec, [split.key, *deps],
                    {"arm": arm, "amount": amount, "generator_seed": gen_seed, "classifier_seed": seed})

    base_fits = [clffit("baseline", None, s, None, [], None) for s in cfg.classifier_seeds]
    units += base_fits

    def evals(arm: str, amount, gen_seed, fits: list[Unit], final: Unit | None) -> None:
        for on, ename, ecfg in evaluators:
            if on == "classifier":
                for tname, tfp in test_sets.items():
                    deps = [u.key for u in fits] + ([u.key for u in base_fits] if arm != "baseline" else [])
                    units.append(Unit(
                        "eval", f"eval-{ename}-{arm}-{amount_label(amount) if amount is not None else '0'}-g{gen_seed}-{tname}",
                        {"evaluator": ename, "config": ecfg, "test_set": tname, "test_fingerprint": tfp,
                         "n_arm": len(fits)},
                        deps,
                        {"arm": arm, "amount": amount, "generator_seed": gen_seed, "test_set": tname,
                         "evaluator": ename, "classifier_seeds": [u.meta["classifier_seed"] for u in fits]}))
            elif final is not None:
                units.append(Unit("quality", f"quality-{ename}-{arm}-{amount_label(amount)}-g{gen_seed}",
                                  {"evaluator": ename, "config": ecfg}, [split.key, final.key, base_fits[0].key],
                                  {"arm": arm, "amount": amount, "generator_seed": gen_seed, "evaluator": ename}))

    evals("baseline", None, None, base_fits, None)
    clf_evals = [(ename, ecfg) for on, ename, ecfg in evaluators if on == "classifier"]
    pending: list[dict[str, Any]] = []

    def controls(arm: str, amount, gen_seed, fits: list[Unit], final: Unit) -> None:
        """The resampling control of one synthetic set: the set's class counts drawn from the real
        training images (seed = the generator seed), classifier fits with the arm's seeds, their
        evaluation against the baseline (shared by every arm adding these counts), and the arm's
        paired comparison with them."""
        counts = set_counts(final) if set_counts is not None else None
        if counts is None:
            n = 1 + len(fits) + 2 * len(clf_evals) * len(test_sets)
            pending.append({"set": final.key, "arm": arm, "amount": amount, "generator_seed": gen_seed, "units": n})
            return
        total = int(sum(counts.values()))
        clab = _counts_label(counts)
        rs = Unit("resample", f"resample-{clab}-g{gen_seed}", {"control": "resample", "counts": counts,
                                                               "seed": gen_seed},
                  [split.key], {"arm": CONTROL_ARM, "counts": counts, "generator_seed": gen_seed})
        units.append(rs)
        cfits = [Unit("clffit", f"clf-resample-{clab}-g{gen_seed}-s{f.meta['classifier_seed']}",
                      {**f.spec, "amount": total}, [split.key, rs.key],
                      {"arm": CONTROL_ARM, "amount": total, "generator_seed": gen_seed,
                       "classifier_seed": f.meta["classifier_seed"], "counts": counts}) for f in fits]
        units.extend(cfits)
        seeds = [f.meta["classifier_seed"] for f in fits]
        for ename, ecfg in clf_evals:
            for tname, tfp in test_sets.items():
                spec = {"evaluator": ename, "config": ecfg, "test_set": tname, "test_fingerprint": tfp,
                        "n_arm": len(cfits)}
                units.append(Unit("eval", f"eval-{ename}-resample-{clab}-g{gen_seed}-{tname}", spec,
                                  [u.key for u in cfits] + [u.key for u in base_fits],
                                  {"arm": CONTROL_ARM, "role": "control", "amount": total, "generator_seed": gen_seed,
                                   "test_set": tname, "evaluator": ename, "classifier_seeds": seeds,
                                   "counts": counts}))
                units.append(Unit("eval", f"eval-{ename}-{arm}-{amount_label(amount)}-g{gen_seed}-{tname}-vs-resample",
                                  {**spec, "n_arm": len(fits), "reference": "resample"},
                                  [u.key for u in fits] + [u.key for u in cfits],
                                  {"arm": arm, "role": "comparison", "reference": "resample", "amount": amount,
                                   "generator_seed": gen_seed, "test_set": tname, "evaluator": ename,
                                   "classifier_seeds": seeds, "counts": counts}))
    arms = expand_arms(cfg)
    first_base = base_fits[0]
    for arm in arms:
        flt = arm.filter
        skip = (flt.feeds,) if flt is not None and flt.apply_to == "target" else ()
        gname, gcfg = resolve_plugin_config("generator", arm.generator, arm.config, cfg, skip=skip)
        fname, fcfg = (resolve_plugin_config("filter", flt.name, flt.config, cfg) if flt is not None else (None, None))
        amounts = arm.amounts or cfg.amounts
        for gs in cfg.generator_seeds:
            fit_deps = [split.key]
            select = None
            if flt is not None and flt.apply_to == "target":
                select = Unit("select", f"select-{fname}-{arm.name}-g{gs}",
                              {"filter": fname, "config": fcfg, "target_class": flt.target_class, "seed": gs},
                              [split.key, first_base.key], {"arm": arm.name, "generator_seed": gs})
                units.append(select)
                fit_deps.append(select.key)
            genfit = Unit("genfit", f"gen-{gname}-g{gs}",
                          {"generator": gname, "config": gcfg, "seed": gs,
                           "feeds": flt.feeds if select is not None else None},
                          fit_deps, {"arm": arm.name, "generator_seed": gs})
            units.append(genfit)
            for amount in amounts:
                over = flt.oversample if flt is not None and flt.apply_to == "output" else 1.0
                synth = Unit("synth", f"set-{arm.name}-{amount_label(amount)}-g{gs}",
                             {"amount": amount, "oversample": over, "seed": gs, "source_class": arm.source_class,
                              "class_distribution": arm.class_distribution},
                             [split.key, genfit.key], {"arm": arm.name, "amount": amount, "generator_seed": gs})
                units.append(synth)
                final = synth
                if flt is not None and flt.apply_to == "output":
                    final = Unit("filtered", f"filtered-{fname}-{arm.name}-{amount_label(amount)}-g{gs}",
                                 {"filter": fname, "config": fcfg, "target_class": flt.target_class,
                                  "amount": amount, "seed": gs},
                                 [split.key, synth.key, first_base.key],
                                 {"arm": arm.name, "amount": amount, "generator_seed": gs})
                    units.append(final)
                fits = [clffit(arm.name, amount, s, gs, [final.key], amount) for s in cfg.classifier_seeds]
                units += fits
                evals(arm.name, amount, gs, fits, final)
                if "resample" in cfg.controls:
                    controls(arm.name, amount, gs, fits, final)
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        seen: dict[str, Unit] = {}
        dedup = []
        for u in units:  # identical work listed twice (e.g. two arms with the same generator): keep one
            if u.key not in seen:
                seen[u.key] = u
                dedup.append(u)
        units = dedup
    return Plan(units, arms, pending)


def _counts_label(counts: dict[str, int]) -> str:
    """``{"MEL": 40}`` → ``"MEL40"``; several classes → ``"<total>img-<k>cls"`` (labels only; keys tell apart)."""
    if len(counts) == 1:
        (c, k), = counts.items()
        return f"{c}{k}"
    return f"{sum(counts.values())}img-{len(counts)}cls"


def check_plan(plan: Plan) -> None:
    keys = {u.key for u in plan.units}
    for u in plan.units:
        missing = [d for d in u.deps if d not in keys]
        if missing:
            raise ConfigError(f"bench plan: unit {u.label} depends on unknown units {missing}")
