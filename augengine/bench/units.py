"""The unit kinds of a bench: what each kind does, given its inputs, and what it needs.

A unit runner is ``(unit, ctx) → result dict`` (JSON-able, stored in ``done.json``); it writes its
artifacts into ``ctx.work``. Only the public API is called (``augengine.create_*``,
``Generator.fit/generate/save``, ``load_run``, ``Classifier.fit``, ``Filter.select/score``,
``augengine.selection``, ``Evaluator.evaluate``), so any installed plugin drops in.

:data:`UNIT_KINDS` is the table of kinds; a new kind of unit is one runner function and one
entry there (plus the graph that plans it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from augengine.bench.config import BenchConfig
from augengine.bench.data import BenchData
from augengine.bench.graph import Unit
from augengine.errors import DataError

__all__ = ["UnitKind", "UNIT_KINDS", "Ctx", "unit_kind", "image_count"]


@dataclasses.dataclass
class Ctx:
    """What a unit runner gets besides its unit: the config, the data, its work directory, its inputs."""

    cfg: BenchConfig
    data: BenchData
    work: Path
    units_dir: Path
    deps: list[dict[str, Any]]  # [{"unit": …, "dir": Path, "done": …}] in dep order
    progress: bool = True

    def dep(self, kind: str, i: int = 0) -> dict[str, Any]:
        return [d for d in self.deps if d["unit"]["kind"] == kind][i]

    def deps_of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.deps if d["unit"]["kind"] == kind]


def image_count(amount, n_train: int) -> int:
    """An amount (count, or ratio of the real training set) as a number of images."""
    return int(round(amount * n_train)) if isinstance(amount, float) else int(amount)


def _samples_per_class(images: np.ndarray, labels: np.ndarray, n_classes: int, k: int = 8) -> dict[str, np.ndarray]:
    out = {}
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)[:k]
        if len(idx):
            out[str(c)] = images[idx]
    return out


def _run_split(u: Unit, ctx: Ctx) -> dict[str, Any]:
    d = ctx.data
    if d.split is not None and hasattr(d.split, "save"):
        d.split.save(ctx.work / "split.json")
    imgs = d.train.images(ctx.cfg.image_size)
    np.savez_compressed(ctx.work / "real_samples.npz",
                        **_samples_per_class(imgs, d.train.labels, len(d.train.class_names)))
    return {"class_names": list(d.train.class_names), "n_train": len(d.train), "n_val": len(d.val),
            "n_test": len(d.test), "counts": {"train": d.train.class_counts(), "val": d.val.class_counts(),
                                              "test": d.test.class_counts()},
            "external": {k: len(v) for k, v in d.external.items()}, "fingerprint": d.fingerprint, "info": d.info}


def _has_checkpoint(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(run_dir.glob("*.pt"))


def _run_clffit(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae
    from augengine.synthetic import SyntheticSet

    s = u.spec
    clf = ae.create_classifier(s["classifier"], **s["config"])
    synthetic, amount = [], None
    finals = [d for d in ctx.deps if d["unit"]["kind"] in ("synth", "filtered")]
    controls = ctx.deps_of("resample")
    if finals:
        synthetic = [SyntheticSet.open(finals[0]["dir"] / "set.h5")]
        amount = image_count(s["amount"], len(ctx.data.train))
    elif controls:  # the resampling control: real training images in place of the synthetic set
        synthetic = [ctx.data.train.subset(_read_json(controls[0]["dir"] / "resample.json")["indices"])]
        amount = len(synthetic[0])
    run = ctx.work / "run"
    # an interrupted fit continues from its last epoch checkpoint, bit-identical to an
    # uninterrupted fit (tests/plugins/test_resnet.py::test_resume_after_sigkill_is_bit_identical)
    # the unit's own folder: what is there and not resumed is an earlier attempt, started over
    # (the fit seeds itself inside and leaves the host's RNG state alone: augengine.rng)
    resume = ctx.cfg.resume_fits and _has_checkpoint(run)
    clf.fit(ctx.data.train, val=ctx.data.val, synthetic=synthetic, amount=amount, run_dir=run, resume=resume,
            force=not resume, seed=s["seed"], progress=ctx.progress)
    clf.save(run)
    return {"amount_count": amount or 0, "n_train_real": len(ctx.data.train)}


def _read_json(p: Path) -> Any:
    import json

    return json.loads(p.read_text())


def _run_resample(u: Unit, ctx: Ctx) -> dict[str, Any]:
    """The resampling control's images: the synthetic set's class counts drawn with replacement from
    the real training images (``augengine.resample_like``); the drawn indices go to ``resample.json``."""
    import augengine as ae
    from augengine.runs import atomic_write_json

    s = u.spec
    view = ae.resample_like(ctx.data.train, s["counts"], seed=int(s["seed"]))
    counts = {k: v for k, v in view.class_counts().items() if v}
    atomic_write_json(ctx.work / "resample.json", {"counts": counts, "seed": int(s["seed"]),
                                                   "indices": view.indices.tolist(), "ids": list(view.ids)})
    return {"n": len(view), "class_counts": counts, "n_distinct": int(len(np.unique(view.indices)))}


def _preview(images: np.ndarray, kept: np.ndarray, rejected: np.ndarray, scores: np.ndarray, path: Path) -> None:
    kept, rejected = np.asarray(kept[:8], np.int64), np.asarray(rejected[-8:], np.int64)
    np.savez_compressed(path, kept=images[kept] if len(kept) else np.zeros((0, 1, 1, 3), np.uint8),
                        rejected=images[rejected] if len(rejected) else np.zeros((0, 1, 1, 3), np.uint8),
                        kept_scores=scores[kept], rejected_scores=scores[rejected])


def _rejected(order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The entries of ``order`` not in ``keep``, in ``order``'s order (O(N))."""
    kept = np.zeros(int(max(order.max(initial=-1), keep.max(initial=-1))) + 1, bool)
    kept[keep] = True
    return order[~kept[order]]


def _run_select(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae
    from augengine.selection import selection_record, write_selection

    s = u.spec
    flt = ae.create_filter(s["filter"], **s["config"])
    clf = ae.load_run(ctx.dep("clffit")["dir"] / "run", kind="classifier")
    train = ctx.data.train
    scores = np.asarray(flt.score(train, classifier=clf, target_class=s["target_class"]), np.float64)
    keep = np.asarray(flt.select(train, classifier=clf, target_class=s["target_class"], seed=s["seed"],
                                 scores=scores), np.int64)
    write_selection(ctx.work / "selection.json",
                    selection_record(train, keep, scores, filter_name=s["filter"], filter_config=s["config"],
                                     target_class=s["target_class"], seed=int(s["seed"]), info=flt.info()))
    pool = np.flatnonzero(train.labels == train.class_index(s["target_class"]))
    rejected = _rejected(pool[np.argsort(-scores[pool], kind="stable")], keep)
    _preview(train.images(ctx.cfg.image_size), keep, rejected, scores, ctx.work / "preview.npz")
    return {"n_candidates": int(len(pool)), "n_selected": int(len(keep)), "info": flt.info()}


def _run_genfit(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae

    s = u.spec
    config = dict(s["config"])
    if s.get("feeds"):
        config[s["feeds"]] = str(ctx.dep("select")["dir"] / "selection.json")
    gen = ae.create_generator(s["generator"], **config)
    run = ctx.work / "run"
    resume = ctx.cfg.resume_fits and _has_checkpoint(run)
    gen.fit(ctx.data.train, val=ctx.data.val, run_dir=run, resume=resume, force=not resume, seed=s["seed"],
            progress=ctx.progress)
    gen.save(run)
    return {"class_names": list(gen.class_names), "mode": gen.mode}


def _run_synth(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae

    s = u.spec
    gen = ae.load_run(ctx.dep("genfit")["dir"] / "run", kind="generator")
    n = int(np.ceil(image_count(s["amount"], len(ctx.data.train)) * s["oversample"]))
    kw: dict[str, Any] = {}
    if gen.mode == "translate":
        kw = {"source": ctx.data.train, "source_class": s["source_class"]}
    else:
        kw = {"class_distribution": s["class_distribution"]}
    target = ctx.work / "set.h5"
    if target.exists():  # finished before a kill, but the unit was not marked done yet
        out = ae.SyntheticSet.open(target)
    else:
        out = gen.generate(n, out=target, seed=s["seed"], resume=True, progress=ctx.progress, **kw)
    return {"n": len(out), "class_counts": out.class_counts()}


def _run_filtered(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae
    from augengine.selection import write_filtered_set
    from augengine.synthetic import SyntheticSet

    s = u.spec
    src = SyntheticSet.open(ctx.dep("synth")["dir"] / "set.h5")
    flt = ae.create_filter(s["filter"], **s["config"])
    clf = ae.load_run(ctx.dep("clffit")["dir"] / "run", kind="classifier")
    scores = np.asarray(flt.score(src, classifier=clf, target_class=s["target_class"]), np.float64)
    keep = np.asarray(flt.select(src, classifier=clf, target_class=s["target_class"], seed=s["seed"],
                                 scores=scores), np.int64)
    need = image_count(s["amount"], len(ctx.data.train))
    if len(keep) < need:
        raise DataError(f"filter {s['filter']!r}: kept {len(keep)} of {len(src)} generated images, the arm needs "
                        f"{need}; raise the arm's filter.oversample")
    keep = _take_keeping_mix(keep, np.asarray(src.labels), need)
    out = ctx.work / "set.h5"
    part = out.with_name("set.partial.h5")
    part.unlink(missing_ok=True)
    res = write_filtered_set(src, keep, scores, out, filter_name=s["filter"], filter_config=s["config"],
                             filter_info=flt.info(), force=True)
    rejected = _rejected(np.argsort(-scores, kind="stable"), keep)
    _preview(src.images(), keep, rejected, scores, ctx.work / "preview.npz")
    return {"n": len(res), "n_candidates": len(src), "class_counts": res.class_counts(), "info": flt.info()}


def _take_keeping_mix(keep: np.ndarray, labels: np.ndarray, need: int) -> np.ndarray:
    """``need`` of the kept indices (best first) with the class mix of the generated set.

    The generator drew its labels with the arm's class distribution; a global top-``need`` cut
    would shift that mix towards the classes the classifier is most confident on. Quotas are
    proportional to the generated class counts (largest remainders); a class with fewer kept
    images than its quota gives the rest to the best remaining images of other classes.
    """
    if len(keep) <= need:
        return keep
    classes, counts = np.unique(labels, return_counts=True)
    exact = need * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - quota), kind="stable")[: need - int(quota.sum())]:
        quota[i] += 1
    chosen = np.zeros(len(keep), bool)
    for c, q in zip(classes, quota):
        pos = np.flatnonzero(labels[keep] == c)[:q]  # keep is best-first, so these are the class's best
        chosen[pos] = True
    short = need - int(chosen.sum())
    if short:
        chosen[np.flatnonzero(~chosen)[:short]] = True
    return keep[chosen]


def _test_set(ctx: Ctx, name: str):
    return ctx.data.test if name == "test" else ctx.data.external[name]


def _one_or_list(xs: list):
    return xs[0] if len(xs) == 1 else xs


def _run_eval(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae

    s = u.spec
    ev = ae.create_evaluator(s["evaluator"], **s["config"])
    fits = [ae.load_run(d["dir"] / "run", kind="classifier") for d in ctx.deps_of("clffit")]
    arm, base = fits[: s["n_arm"]], fits[s["n_arm"]:]
    kw: dict[str, Any] = {}
    reference = s.get("reference")  # "resample": ``base`` are the arm's resampling-control fits
    if reference and _takes(ev.evaluate, "names"):
        kw["names"] = REFERENCE_NAMES[reference]
    if _takes(ev.evaluate, "train"):  # lets the evaluator flag test images that are training images
        kw["train"] = ctx.data.train
    result = ev.evaluate(_one_or_list(arm), _test_set(ctx, s["test_set"]), baseline=_one_or_list(base) if base else None,
                         seed=0, **kw)
    verdicts = list(result.verdicts)
    if reference and "names" not in kw:  # an evaluator that cannot name its reference says "baseline"
        verdicts = [v.replace("vs baseline", f"vs {REFERENCE_NAMES[reference][1]}") for v in verdicts]
    result.save(ctx.work / "eval")
    return {"metrics": result.metrics, "verdicts": verdicts, "figures": sorted(result.figures)}


#: reference of a comparison → (what the arm is, what it is compared with), handed to an evaluator
#: that takes ``names`` (the ``benefit`` evaluator words its verdict with them)
REFERENCE_NAMES = {"resample": ("synthetic images", "resampling")}


def _takes(fn, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _run_quality(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae
    from augengine.synthetic import SyntheticSet

    s = u.spec
    ev = ae.create_evaluator(s["evaluator"], **s["config"])
    final = [d for d in ctx.deps if d["unit"]["kind"] in ("synth", "filtered")][0]
    clf = ae.load_run(ctx.dep("clffit")["dir"] / "run", kind="classifier")
    result = ev.evaluate(clf, ctx.data.test, synthetic=SyntheticSet.open(final["dir"] / "set.h5"),
                         train=ctx.data.train, seed=0)
    result.save(ctx.work / "eval")
    return {"metrics": result.metrics, "verdicts": list(result.verdicts), "figures": sorted(result.figures)}


@dataclasses.dataclass(frozen=True)
class UnitKind:
    """What the bench knows about one kind of unit.

    Attributes:
        run: ``(unit, ctx) → result dict``.
        accelerator: the unit trains or runs a network for long (fits): on CUDA it asks for a GPU.
        disk_mb: rough size of a finished unit, for ``--dry-run`` before any unit of the kind has
            finished (synthetic sets are sized from their image count instead).
    """

    run: Callable[[Unit, "Ctx"], dict[str, Any]]
    accelerator: bool = False
    disk_mb: float = 1.0


UNIT_KINDS: dict[str, UnitKind] = {
    "split": UnitKind(_run_split, disk_mb=1),
    "clffit": UnitKind(_run_clffit, accelerator=True, disk_mb=50),
    "select": UnitKind(_run_select, disk_mb=1),
    "genfit": UnitKind(_run_genfit, accelerator=True, disk_mb=50),
    "synth": UnitKind(_run_synth),
    "filtered": UnitKind(_run_filtered),
    "quality": UnitKind(_run_quality, disk_mb=2),
    "eval": UnitKind(_run_eval, disk_mb=2),
    "resample": UnitKind(_run_resample, disk_mb=0.1),
}


def unit_kind(kind: str) -> UnitKind:
    """The :class:`UnitKind` of ``kind``; DataError naming the known kinds when unknown."""
    try:
        return UNIT_KINDS[kind]
    except KeyError:
        raise DataError(f"bench: unknown unit kind {kind!r}; known: {', '.join(UNIT_KINDS)}") from None
