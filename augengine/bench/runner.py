"""Running a bench: data loading, one executor per unit kind, the scheduler, results.

Only the public API is called (``augengine.create_*``, ``Generator.fit/generate/save``,
``load_run``, ``Classifier.fit``, ``Filter.select/score``, ``augengine.selection``,
``Evaluator.evaluate``), so any installed plugin drops in.

Output directory layout::

    OUT/bench.json                 the config (a different config is refused unless --force)
    OUT/units/<kind>-<label>-<key>/  finished units: unit.json, done.json, log.txt, artifacts
    OUT/units/<…>.partial/         a unit being written (resumed after a kill)
    OUT/units/<…>.failed/          a unit that raised: log.txt holds the traceback
    OUT/results.jsonl, OUT/tables.txt, OUT/verdicts.txt, OUT/report.html

A unit is written in its ``.partial`` directory and renamed into place after ``done.json``
is written, so a finished directory is always complete; a SIGKILL leaves at most a
``.partial`` directory, which the next run continues (fits resume from their checkpoints,
synthetic sets from their committed chunks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from augengine.bench.config import BenchConfig
from augengine.bench.graph import Plan, Unit, build_plan
from augengine.errors import ConfigError, DataError
from augengine.runs import atomic_write_json, atomic_write_text

__all__ = ["BenchData", "default_loader", "Bench", "RunSummary", "flatten_metrics", "parse_shard"]

DEFAULT_SECONDS = {"split": 2, "clffit": 60, "select": 10, "genfit": 120, "synth": 10, "filtered": 5,
                   "quality": 10, "eval": 10}


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BenchData:
    """The real data of a bench: splits, external test sets, identity.

    Attributes:
        train, val, test: ImageSets of the split.
        external: name → external test ImageSet.
        fingerprint: identity of the real data and split settings (hash).
        external_fingerprints: name → identity of each external set.
        split: the data layer's Split (saved as split.json when present), or None.
        info: provenance (format, root, counts).
    """

    train: Any
    val: Any
    test: Any
    external: dict[str, Any]
    fingerprint: str
    external_fingerprints: dict[str, str]
    split: Any = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def default_loader(cfg: BenchConfig) -> BenchData:
    """Load ``cfg.data`` and its split through :mod:`augengine.data` (the public data API)."""
    import augengine as ae
    import augengine.data as D

    table = ae.load_dataset(cfg.data)
    if cfg.split.file:
        split = ae.load_split(cfg.split.file, table)
    else:
        split = ae.split(table, fractions=cfg.split.fractions, group_by=cfg.split.group_by, seed=cfg.split.seed)
    external, ext_fp = {}, {}
    for p in cfg.test_data:
        t = D.load_dataset(p)
        name = Path(p).name or str(p)
        external[name] = t.image_set()
        ext_fp[name] = t.fingerprint
    fp = getattr(split, "sha256", None)
    fp = fp() if callable(fp) else table.fingerprint
    info = {"data": cfg.data, "format": getattr(table, "format", None), "root": str(getattr(table, "root", "")),
            "table_fingerprint": table.fingerprint, "n_images": len(table)}
    return BenchData(split.train, split.val, split.test, external, fp, ext_fp, split=split, info=info)


_DATA: dict[str, BenchData] = {}


def _data(cfg: BenchConfig, loader: Callable[[BenchConfig], BenchData]) -> BenchData:
    k = json.dumps(cfg.canonical(), sort_keys=True) + repr(loader)
    if k not in _DATA:
        _DATA.clear()
        _DATA[k] = loader(cfg)
    return _DATA[k]


# ---------------------------------------------------------------------------------------------
# executors: (unit, context) → result dict; artifacts go into ctx.work
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Ctx:
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


def _count(amount, n_train: int) -> int:
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
    if finals:
        synthetic = [SyntheticSet.open(finals[0]["dir"] / "set.h5")]
        amount = _count(s["amount"], len(ctx.data.train))
    run = ctx.work / "run"
    # an interrupted fit continues from its last epoch checkpoint, bit-identical to an
    # uninterrupted fit (tests/plugins/test_resnet.py::test_resume_after_sigkill_is_bit_identical)
    resume = ctx.cfg.resume_fits and _has_checkpoint(run)
    ae.seed_everything(s["seed"])
    clf.fit(ctx.data.train, val=ctx.data.val, synthetic=synthetic, amount=amount, run_dir=run, resume=resume,
            seed=s["seed"], progress=ctx.progress)
    clf.save(run)
    return {"amount_count": amount or 0, "n_train_real": len(ctx.data.train)}


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
    ae.seed_everything(s["seed"])
    gen.fit(ctx.data.train, val=ctx.data.val, run_dir=run, resume=resume, seed=s["seed"], progress=ctx.progress)
    gen.save(run)
    return {"class_names": list(gen.class_names), "mode": gen.mode}


def _run_synth(u: Unit, ctx: Ctx) -> dict[str, Any]:
    import augengine as ae

    s = u.spec
    gen = ae.load_run(ctx.dep("genfit")["dir"] / "run", kind="generator")
    n = int(np.ceil(_count(s["amount"], len(ctx.data.train)) * s["oversample"]))
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
    need = _count(s["amount"], len(ctx.data.train))
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
    result = ev.evaluate(_one_or_list(arm), _test_set(ctx, s["test_set"]), baseline=_one_or_list(base) if base else None,
                         seed=0)
    result.save(ctx.work / "eval")
    return {"metrics": result.metrics, "verdicts": list(result.verdicts), "figures": sorted(result.figures)}


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


EXECUTORS = {"split": _run_split, "clffit": _run_clffit, "select": _run_select, "genfit": _run_genfit,
             "synth": _run_synth, "filtered": _run_filtered, "eval": _run_eval, "quality": _run_quality}


# ---------------------------------------------------------------------------------------------
# one unit, atomically
# ---------------------------------------------------------------------------------------------
def _register_modules(mods: list[str]) -> None:
    import importlib

    import augengine as ae

    for m in mods:
        mod = importlib.import_module(m)
        if not ae.get_plugin_manager().is_registered(mod):
            ae.register_plugin(mod)


class _Tee:
    """File-like that writes to the unit log (stdout/stderr of plugins while a unit runs)."""

    def __init__(self, f):
        self.f = f

    def write(self, s):
        self.f.write(s)
        return len(s)

    def flush(self):
        self.f.flush()

    def isatty(self):
        return False


def execute_unit(out_dir: str, unit_json: dict, cfg_json: dict, loader, progress: bool = True) -> dict[str, Any]:
    """Run one unit in ``units/<name>.partial`` and rename it into place (or into ``.failed``).

    Returns ``{"status": "done"|"failed"|"busy", "seconds": …, "error": …}``. Another process
    holding the unit's lock → ``busy``. KeyboardInterrupt propagates (the partial stays).
    """
    import logging

    u = Unit.from_json(unit_json)
    cfg = BenchConfig.model_validate(cfg_json)
    _register_modules(cfg.plugin_modules)
    units = Path(out_dir) / "units"
    units.mkdir(parents=True, exist_ok=True)
    final = units / u.dirname
    lock_f = open(units / f".{u.dirname}.lock", "a")
    try:
        try:
            fcntl.flock(lock_f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return {"status": "busy"}
        if (final / "done.json").exists():
            return {"status": "done", "seconds": 0.0, "cached": True}
        part = units / f"{u.dirname}.partial"
        failed = units / f"{u.dirname}.failed"
        if failed.exists():
            shutil.rmtree(failed)
        part.mkdir(exist_ok=True)
        atomic_write_json(part / "unit.json", u.to_json())
        deps = []
        for k in u.deps:
            d = next((p for p in units.glob(f"*-{k[:12]}") if (p / "done.json").exists()), None)
            if d is None:
                raise DataError(f"bench: input unit {k[:12]} of {u.label} is not finished")
            deps.append({"unit": json.loads((d / "unit.json").read_text()), "dir": d,
                         "done": json.loads((d / "done.json").read_text())})
        t0 = time.time()
        log = open(part / "log.txt", "a", buffering=1)
        log.write(f"== {u.label} ({u.kind} {u.key[:12]}) started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handler = logging.StreamHandler(log)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(_Tee(log)), contextlib.redirect_stderr(_Tee(log)):
                data = _data(cfg, loader)
                result = EXECUTORS[u.kind](u, Ctx(cfg, data, part, units, deps, progress=progress))
        except KeyboardInterrupt:
            log.write("\n== interrupted\n")
            raise
        except Exception as e:  # noqa: BLE001 - a failing plugin must not stop independent units
            tb = traceback.format_exc()
            log.write("\n== FAILED\n" + tb)
            log.close()
            root.removeHandler(handler)
            atomic_write_json(part / "failed.json", {"error": f"{type(e).__name__}: {e}", "traceback": tb,
                                                     "seconds": time.time() - t0})
            os.replace(part, failed) if not failed.exists() else shutil.rmtree(part)
            return {"status": "failed", "error": f"{type(e).__name__}: {e}", "seconds": time.time() - t0}
        root.removeHandler(handler)
        secs = time.time() - t0
        log.write(f"== done in {secs:.1f} s\n")
        log.close()
        atomic_write_json(part / "done.json", {"result": result, "seconds": secs, "key": u.key,
                                               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        _fsync_dir(part)
        try:
            os.rename(part, final)
        except OSError:
            if (final / "done.json").exists():  # finished elsewhere meanwhile
                shutil.rmtree(part, ignore_errors=True)
            else:
                raise
        _fsync_dir(units)
        return {"status": "done", "seconds": secs}
    finally:
        lock_f.close()


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# the bench
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunSummary:
    total: int
    done: int
    ran: int
    failed: list[str]
    blocked: list[str]
    other_shards: int
    seconds: float

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.blocked else 0


def installed_versions() -> dict[str, str]:
    """Versions of Python, the platform, augengine, its dependencies and plugin packages (no imports)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    names = ["augengine", "torch", "torchvision", "timm", "kornia", "numpy", "h5py", "pydantic", "scikit-learn"]
    names += sorted({ep.dist.metadata["Name"] for ep in metadata.entry_points(group="augengine") if ep.dist})
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based i), else SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else None."""
    if text is None:
        tid, cnt = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
        if tid is None or cnt is None:
            return None
        lo = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        text = f"{int(tid) - lo}/{cnt}"
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: expected 0 <= i < n")
    return i, n


class Bench:
    """A bench bound to an output directory.

    Args:
        cfg: the config.
        out: output directory.
        loader: ``cfg → BenchData`` (default: :func:`default_loader`; tests inject their own).
        jobs: parallel worker processes for independent units.
        shard: ``(i, n)``: run only units whose key falls in shard i of n (the split unit runs everywhere).
        force: accept an output directory that holds another config.
    """

    def __init__(self, cfg: BenchConfig, out: str | Path, *, loader: Callable[[BenchConfig], BenchData] = default_loader,
                 jobs: int = 1, shard: tuple[int, int] | None = None, force: bool = False, progress: bool = True):
        self.cfg = cfg
        self.out = Path(out)
        self.loader = loader
        self.jobs = max(1, int(jobs))
        self.shard = shard
        self.force = force
        self.progress = progress
        _register_modules(cfg.plugin_modules)
        self._plan: Plan | None = None
        self._data: BenchData | None = None

    # -- planning ---------------------------------------------------------------------------
    @property
    def data(self) -> BenchData:
        if self._data is None:
            self._data = _data(self.cfg, self.loader)
        return self._data

    def set_quality_evaluators(self) -> list[tuple[str, dict]]:
        import augengine as ae
        from augengine.bench.graph import resolve_plugin_config

        if self.cfg.set_quality == "off" or any(e.on == "synthetic" for e in self.cfg.evaluators):
            return []
        if "set-quality" not in ae.list_evaluators():
            if self.cfg.set_quality == "on":
                raise ConfigError("bench: set_quality = 'on' but no 'set-quality' evaluator is installed")
            return []
        return [resolve_plugin_config("evaluator", "set-quality", {}, self.cfg)]

    def plan(self) -> Plan:
        if self._plan is None:
            tests = {"test": self.data.fingerprint + ":test", **self.data.external_fingerprints}
            self._plan = build_plan(self.cfg, self.data.fingerprint, tests, self.set_quality_evaluators())
        return self._plan

    def unit_dir(self, u: Unit) -> Path:
        return self.out / "units" / u.dirname

    def state(self, u: Unit) -> str:
        d = self.unit_dir(u)
        if (d / "done.json").exists():
            return "done"
        if d.with_name(d.name + ".failed").exists():
            return "failed"
        if d.with_name(d.name + ".partial").exists():
            return "partial"
        return "todo"

    def in_shard(self, u: Unit) -> bool:
        if self.shard is None or u.kind == "split":
            return True
        i, n = self.shard
        return int(u.key[:12], 16) % n == i

    def estimate(self, u: Unit) -> float:
        times: dict[str, list[float]] = {}
        for p in (self.out / "units").glob("*/done.json") if (self.out / "units").exists() else []:
            kind = p.parent.name.split("-", 1)[0]
            try:
                times.setdefault(kind, []).append(float(json.loads(p.read_text())["seconds"]))
            except (ValueError, KeyError):
                pass
        t = times.get(u.kind)
        return float(np.mean(t)) if t else DEFAULT_SECONDS.get(u.kind, 30)

    def dry_run(self) -> str:
        """The plan as text: one line per unit (state, kind, label, key), then totals and a time estimate."""
        plan = self.plan()
        lines = [f"bench plan → {self.out}   ({len(plan.units)} units, {len(plan.arms)} arms + baseline, "
                 f"amounts {self.cfg.amounts}, classifier seeds {self.cfg.classifier_seeds}, "
                 f"generator seeds {self.cfg.generator_seeds})"]
        counts: dict[str, int] = {}
        est = 0.0
        for u in plan.units:
            st = self.state(u)
            counts[st] = counts.get(st, 0) + 1
            mine = self.in_shard(u)
            if st != "done" and mine:
                est += self.estimate(u)
            lines.append(f"  {'cached' if st == 'done' else st:8s} {u.kind:8s} {u.label:55s} {u.key[:12]}"
                         + ("" if mine else "  (other shard)"))
        lines.append("units: " + ", ".join(f"{v} {'cached' if k == 'done' else k}" for k, v in sorted(counts.items())))
        src = "earlier units of this directory" if any(s == "done" for s in counts) else "rough defaults per unit kind"
        lines.append(f"estimated time: {est / 60:.1f} min with 1 job (from {src})")
        return "\n".join(lines)

    # -- output directory ---------------------------------------------------------------------
    def check_out_dir(self) -> None:
        rec = self.out / "bench.json"
        mine = self.cfg.canonical()
        if rec.exists():
            try:
                old = json.loads(rec.read_text()).get("config")
            except json.JSONDecodeError:
                old = None
            if old != mine and not self.force:
                diff = sorted(k for k in set(mine) | set(old or {}) if (old or {}).get(k) != mine.get(k))
                raise ConfigError(f"--out {self.out}: holds a bench with another config (differs in: "
                                  f"{', '.join(diff)}); use --force to run this config there (matching finished "
                                  f"units are reused) or choose another --out")
        if not rec.exists() or self.force:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(rec, {"config": mine, "versions": installed_versions(),
                                    "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    # -- running ------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run every unit not finished yet (failed ones are retried), then write results and the report."""
        t0 = time.time()
        self.check_out_dir()
        plan = self.plan()
        atomic_write_json(self.out / "plan.json", [u.to_json() for u in plan.units])
        by_key = plan.by_key()
        state = {u.key: self.state(u) for u in plan.units}
        for k, s in state.items():
            if s in ("failed", "partial"):
                state[k] = "todo"
        failed: list[str] = []
        blocked: set[str] = set()
        ran = 0
        from tqdm.auto import tqdm

        total = len(plan.units)
        bar = tqdm(total=total, initial=sum(s == "done" for s in state.values()), desc="bench", unit="unit",
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        cfg_json = self.cfg.canonical()

        def ready() -> list[Unit]:
            out = []
            for u in plan.units:
                if state[u.key] != "todo" or u.key in blocked or not self.in_shard(u):
                    continue
                if all(state[d] == "done" for d in u.deps):
                    out.append(u)
            return out

        def mark_blocked(key: str) -> None:
            for k in plan.dependants(key):
                if state[k] != "done":
                    blocked.add(k)

        def finish(u: Unit, res: dict[str, Any]) -> None:
            nonlocal ran
            st = res["status"]
            if st == "done":
                state[u.key] = "done"
                ran += 0 if res.get("cached") else 1
                bar.update(1)
            elif st == "failed":
                state[u.key] = "failed"
                failed.append(u.label)
                mark_blocked(u.key)
                tqdm.write(f"unit failed: {u.label}: {res['error']} (log: {self.unit_dir(u)}.failed/log.txt)",
                           file=sys.stderr)
            else:  # busy elsewhere (another shard or process)
                state[u.key] = "busy"

        try:
            if self.jobs == 1:
                while todo := ready():
                    u = todo[0]
                    bar.set_postfix_str(u.label, refresh=True)
                    finish(u, execute_unit(str(self.out), u.to_json(), cfg_json, self.loader, self.progress))
            else:
                self._run_pool(ready, finish, cfg_json, bar)
        finally:
            bar.close()
        # units that another process was running: not ours to wait for
        other = sum(1 for u in plan.units if state[u.key] != "done" and u.key not in blocked
                    and u.label not in failed)
        rows_changed = self.write_results()
        try:
            from augengine.bench.report import write_report

            if ran or rows_changed or failed or not (self.out / "report.html").exists():
                write_report(self.out)
        except Exception as e:  # noqa: BLE001 - a report problem must not hide the results
            atomic_write_text(self.out / "report-error.txt", traceback.format_exc())
            print(f"warning: report.html not written: {type(e).__name__}: {e}", file=sys.stderr)
        done = sum(1 for s in state.values() if s == "done")
        return RunSummary(total, done, ran, failed, sorted(by_key[k].label for k in blocked), other, time.time() - t0)

    def _run_pool(self, ready, finish, cfg_json, bar) -> None:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        running: dict[Any, Unit] = {}
        ex = ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"))
        try:
            while True:
                started = {u.key for u in running.values()}
                for u in ready():
                    if len(running) >= self.jobs:
                        break
                    if u.key in started:
                        continue
                    fut = ex.submit(execute_unit, str(self.out), u.to_json(), cfg_json, self.loader, self.progress)
                    running[fut] = u
                    started.add(u.key)
                if not running:
                    break
                bar.set_postfix_str(", ".join(u.label for u in running.values())[:80], refresh=True)
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    u = running.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as e:  # noqa: BLE001 - e.g. a worker killed
                        res = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                    finish(u, res)
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown(wait=True)

    # -- results ------------------------------------------------------------------------------
    def write_results(self) -> bool:
        """Write ``results.jsonl`` (one row per finished evaluation), ``tables.txt``, ``verdicts.txt``.

        Returns:
            whether ``results.jsonl`` changed.
        """
        from augengine.bench.report import results_rows, tables_text, verdict_lines

        rows = results_rows(self.out, self.plan())
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        p = self.out / "results.jsonl"
        changed = not p.exists() or p.read_text() != text
        atomic_write_text(p, text)
        atomic_write_text(self.out / "tables.txt", tables_text(rows, self.cfg, list(self.data.train.class_names)))
        atomic_write_text(self.out / "verdicts.txt", "\n".join(verdict_lines(rows)) + "\n")
        return changed


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
_VALUE_KEYS = ("value", "mean", "estimate", "point")


def _ci_of(d: dict) -> list[float] | None:
    for k in ("ci", "ci95", "interval"):
        v = d.get(k)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return [None if x is None else float(x) for x in v]
    for lo, hi in (("ci_low", "ci_high"), ("low", "high"), ("lo", "hi"), ("lower", "upper")):
        if lo in d and hi in d:
            return [d[lo], d[hi]]
    return None


def flatten_metrics(m: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Nested metrics → ``{"a.b.c": {"value": v, "ci": [lo, hi] | None}}`` (numbers only).

    A dict holding a value key (value/mean/estimate/point) is one metric; its CI is read from
    ``ci``/``ci95`` (a pair) or ``ci_low``/``ci_high`` (or low/high).
    """
    out: dict[str, dict[str, Any]] = {}
    if isinstance(m, dict):
        vk = next((k for k in _VALUE_KEYS if k in m and isinstance(m[k], (int, float)) and not isinstance(m[k], bool)), None)
        if vk is not None:
            out[prefix or vk] = {"value": float(m[vk]), "ci": _ci_of(m)}
            for k, v in m.items():  # other numbers beside the value (e.g. p_value, n)
                if k != vk and k not in ("ci", "ci95", "ci_low", "ci_high", "low", "high", "lo", "hi", "lower", "upper"):
                    out.update(flatten_metrics(v, f"{prefix}.{k}" if prefix else k))
            return out
        for k, v in m.items():
            out.update(flatten_metrics(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(m, bool):
        return out
    elif isinstance(m, (int, float)):
        out[prefix] = {"value": float(m), "ci": None}
    return out
