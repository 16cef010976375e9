"""A bench bound to an output directory: its plan, the state of its units, running them, results.

Output directory layout::

    OUT/bench.json                 the config (a different config is refused unless --force)
    OUT/plan.json                  the units of the plan
    OUT/units/<kind>-<label>-<key>/  finished units: unit.json, done.json, log.txt, artifacts
    OUT/units/<…>.partial/         a unit being written (resumed after a kill)
    OUT/units/<…>.failed/          a unit that raised: log.txt holds the traceback
    OUT/results.jsonl, OUT/tables.txt, OUT/verdicts.txt, OUT/report.html

What one unit does is in :mod:`augengine.bench.units`, how it is run atomically in
:mod:`augengine.bench.execute`, where it runs in :mod:`augengine.bench.executors`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from augengine.bench.config import BenchConfig
from augengine.bench.data import BenchData, default_loader, load_data
from augengine.bench.disk import dir_bytes, disk_by_kind, human_bytes
from augengine.bench.execute import UnitCall, register_modules
from augengine.bench.executors import Executor, create_executor
from augengine.bench.graph import Plan, Unit, build_plan
from augengine.bench.results import flatten_metrics, unit_dir
from augengine.bench.units import UNIT_KINDS, image_count
from augengine.errors import ConfigError, DataError
from augengine.runs import atomic_write_json, atomic_write_text

__all__ = ["BenchData", "default_loader", "Bench", "RunSummary", "flatten_metrics"]


@dataclasses.dataclass
class RunSummary:
    """How a run ended.

    Attributes:
        total: units in the plan.
        done: units finished (now or before).
        ran: units this run executed.
        failed: labels of units that raised.
        blocked: labels of units that could not run because an input failed.
        undone: labels of every unit of the plan not finished (failed and blocked included).
        seconds: wall time of the run.
    """

    total: int
    done: int
    ran: int
    failed: list[str]
    blocked: list[str]
    undone: list[str]
    seconds: float

    @property
    def exit_code(self) -> int:
        """0 only when every unit of the plan is done."""
        return 1 if self.failed or self.blocked or self.undone else 0


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


class Bench:
    """A bench bound to an output directory.

    Args:
        cfg: the config.
        out: output directory.
        loader: ``cfg → BenchData`` (default: :func:`default_loader`; tests inject their own).
        jobs: parallel worker processes for independent units (the local executor).
        executor: ``"local"``, ``"ray"`` or an :class:`~augengine.bench.executors.Executor`.
        executor_options: options of a named executor (e.g. ``{"address": "auto"}`` for ray).
        force: accept an output directory that holds another config.
    """

    def __init__(self, cfg: BenchConfig, out: str | Path, *, loader: Callable[[BenchConfig], BenchData] = default_loader,
                 jobs: int = 1, force: bool = False, progress: bool = True,
                 executor: str | Executor = "local", executor_options: dict[str, Any] | None = None):
        self.cfg = cfg
        self.out = Path(out)
        self.loader = loader
        self.jobs = max(1, int(jobs))
        self.force = force
        self.progress = progress
        if isinstance(executor, str):
            opts = dict(executor_options or {})
            if executor == "local":
                opts.setdefault("jobs", self.jobs)
            executor = create_executor(executor, **opts)
        self.executor = executor
        register_modules(cfg.plugin_modules)
        self._plan: Plan | None = None
        self._data: BenchData | None = None

    # -- planning ---------------------------------------------------------------------------
    @property
    def data(self) -> BenchData:
        if self._data is None:
            self._data = load_data(self.cfg, self.loader)
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
            self._plan = build_plan(self.cfg, self.data.fingerprint, tests, self.set_quality_evaluators(),
                                    set_counts=self._set_counts)
        return self._plan

    def _set_counts(self, final: Unit) -> dict[str, int] | None:
        """Class counts of a finished synthetic set (real class names), None while it is not finished:
        what its resampling control adds (planned once known, keyed by them)."""
        from augengine.data.resample import class_counts_in

        p = self.unit_dir(final) / "done.json"
        try:
            counts = json.loads(p.read_text())["result"]["class_counts"] if p.exists() else None
            return None if counts is None else class_counts_in(counts, list(self.data.train.class_names),
                                                               where=f"bench: set {final.label}")
        except (OSError, ValueError, KeyError, TypeError, DataError):
            return None  # a set the classifier cannot train on either: its fits fail and say why

    def unit_dir(self, u: Unit) -> Path:
        return unit_dir(self.out, u)

    def state(self, u: Unit) -> str:
        d = self.unit_dir(u)
        if (d / "done.json").exists():
            return "done"
        if d.with_name(d.name + ".failed").exists():
            return "failed"
        if d.with_name(d.name + ".partial").exists():
            return "partial"
        return "todo"

    def finished_records(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind, done.json) of every finished unit in the output directory (any config's)."""
        out = []
        for p in sorted((self.out / "units").glob("*/done.json")) if (self.out / "units").exists() else []:
            try:
                out.append((p.parent.name.split("-", 1)[0], json.loads(p.read_text())))
            except (OSError, ValueError):
                pass
        return out

    def estimator(self, **kw):
        """An :class:`~augengine.bench.estimate.Estimator` of this bench's units (work ÷ measured throughput)."""
        from augengine.bench.estimate import Estimator

        return Estimator(self, **kw)

    def estimate_disk(self, u: Unit, measured: dict[str, list[int]]) -> tuple[float, str]:
        """Bytes ``u`` should hold once done, and where the number comes from."""
        if measured.get(u.kind):
            return float(np.mean(measured[u.kind])), "measured"
        if u.kind in ("synth", "filtered"):
            by_key = self.plan().by_key()
            synth = u if u.kind == "synth" else next(by_key[k] for k in u.deps if by_key[k].kind == "synth")
            gen = next(by_key[k] for k in synth.deps if by_key[k].kind == "genfit")
            size = int(gen.spec["config"].get("image_size") or self.cfg.image_size)  # the generator's size wins
            n = image_count(u.spec["amount"], len(self.data.train)) * float(u.spec.get("oversample", 1.0))
            return n * size * size * 3, "set size"
        return (UNIT_KINDS[u.kind].disk_mb if u.kind in UNIT_KINDS else 1.0) * 1e6, "default"

    def dry_run(self, log: Callable[[str], None] | None = None) -> str:
        """The plan as text: one line per unit (state, kind, label, key), then totals, time and disk estimates.

        Args:
            log: called with a line before each throughput probe (the estimate measures what is not cached).
        """
        plan = self.plan()
        finished = self.finished_records()
        measured = disk_by_kind(finished)
        lines = [f"bench plan → {self.out}   ({len(plan.units)} units, {len(plan.arms)} arms + baseline, "
                 f"amounts {self.cfg.amounts}, classifier seeds {self.cfg.classifier_seeds}, "
                 f"generator seeds {self.cfg.generator_seeds})"]
        counts: dict[str, int] = {}
        disk = 0.0
        disk_src: dict[str, set[str]] = {}
        for u in plan.units:
            st = self.state(u)
            counts[st] = counts.get(st, 0) + 1
            if st != "done":
                b, src = self.estimate_disk(u, measured)
                disk += b
                disk_src.setdefault(src, set()).add(u.kind)
            lines.append(f"  {'cached' if st == 'done' else st:8s} {u.kind:8s} {u.label:55s} {u.key[:12]}")
        lines.append("units: " + ", ".join(f"{v} {'cached' if k == 'done' else k}" for k, v in sorted(counts.items())))
        if plan.pending_controls:
            n_more = sum(p["units"] for p in plan.pending_controls)
            lines.append(f"controls ({', '.join(self.cfg.controls)}): up to {n_more} more units for "
                         f"{len(plan.pending_controls)} synthetic sets not made yet, planned once each set exists "
                         "(keyed by its class counts: arms adding the same counts share them)")
        from augengine.bench.estimate import format_estimate

        lines += format_estimate(self, self.estimator(log=log), disk=lambda u: self.estimate_disk(u, measured)[0])
        names = {"measured": "finished units of this directory", "set size": "image counts × size² × 3",
                 "default": "rough defaults"}
        how = "; ".join(f"{', '.join(sorted(k))}: {names[s]}" for s, k in sorted(disk_src.items()))
        now = dir_bytes(self.out) if self.out.exists() else 0
        keep = ("resume state kept (keep_resume_state = true)" if self.cfg.keep_resume_state
                else "resume state dropped once a unit is done")
        lines.append(f"disk: {human_bytes(now)} in {self.out} now, about {human_bytes(disk)} more for the units to run"
                     + (f" ({how})" if how else "") + f"; {keep}")
        return "\n".join(lines)

    # -- output directory ---------------------------------------------------------------------
    def check_out_dir(self) -> None:
        """Refuse an output directory that holds a bench of another config (unless ``force``); record ours.

        Fields that only change how units run (:data:`~augengine.bench.config.EXECUTION_FIELDS`)
        do not make a config another one; the record is updated to this run's values.
        """
        rec = self.out / "bench.json"
        mine = self.cfg.canonical()
        old = None
        if rec.exists():
            try:
                old = json.loads(rec.read_text()).get("config")
            except (json.JSONDecodeError, AttributeError):
                old = None
            diff = self.cfg.differs_from(old) if isinstance(old, dict) else ["bench.json (unreadable)"]
            if diff and not self.force:
                raise ConfigError(f"--out {self.out}: holds a bench with another config (differs in: "
                                  f"{', '.join(diff)}); use --force to run this config there (matching finished "
                                  f"units are reused) or choose another --out")
        if old != mine:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(rec, {"config": mine, "versions": installed_versions(),
                                    "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    # -- running ------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run every unit not finished yet (failed ones are retried), then write results and the report."""
        t0 = time.time()
        self.check_out_dir()
        from tqdm.auto import tqdm

        state: dict[str, str] = {}
        from augengine.bench.estimate import EtaBar

        bar = EtaBar(tqdm(total=0, desc="bench", unit="unit", disable=not self.progress, file=sys.stderr,
                          dynamic_ncols=True, bar_format=EtaBar.FORMAT), self)
        listener = _Progress(self, state, bar)
        call = UnitCall(str(self.out), self.cfg.canonical(), self.loader, self.progress)
        try:
            # a control unit is planned once the synthetic set whose class counts it copies exists: run the
            # plan, plan again, and run what that added, until planning adds nothing
            while True:
                plan = self.plan()
                atomic_write_json(self.out / "plan.json", [u.to_json() for u in plan.units])
                new = [u for u in plan.units if u.key not in state]
                for u in new:
                    st = self.state(u)
                    state[u.key] = "todo" if st in ("failed", "partial") else st
                bar.total = len(state)
                bar.update(sum(state[u.key] == "done" for u in new))
                todo = [u for u in new if state[u.key] == "todo"]
                if not todo:
                    break
                bar.plan(todo)
                self.executor.run(todo, call, {k for k, st in state.items() if st == "done"}, listener)
                self._plan = None
        finally:
            bar.close()
        by_key = plan.by_key()
        total = len(plan.units)
        failed, blocked, ran = listener.failed, listener.blocked, listener.ran
        undone = [u.label for u in plan.units if state[u.key] != "done"]
        rows_changed = self.write_results()
        try:
            from augengine.bench.report import write_report

            if ran or rows_changed or failed or not (self.out / "report.html").exists():
                write_report(self.out)
        except Exception as e:  # noqa: BLE001 - a report problem must not hide the results
            atomic_write_text(self.out / "report-error.txt", traceback.format_exc())
            print(f"warning: report.html not written: {type(e).__name__}: {e}", file=sys.stderr)
        return RunSummary(total, total - len(undone), ran, failed, sorted(by_key[k].label for k in blocked), undone,
                          time.time() - t0)

    # -- results ------------------------------------------------------------------------------
    def write_results(self) -> bool:
        """Write ``results.jsonl`` (one row per finished evaluation), ``tables.txt``, ``verdicts.txt``.

        Returns:
            whether ``results.jsonl`` changed.
        """
        from augengine.bench.report import tables_text, verdict_lines
        from augengine.bench.results import results_rows

        rows = results_rows(self.out, self.plan())
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        p = self.out / "results.jsonl"
        changed = not p.exists() or p.read_text() != text
        atomic_write_text(p, text)
        atomic_write_text(self.out / "tables.txt", tables_text(rows, self.cfg, list(self.data.train.class_names)))
        atomic_write_text(self.out / "verdicts.txt", "\n".join(verdict_lines(rows)) + "\n")
        return changed




class _Progress:
    """The bench's view of a run: unit states, the progress bar, failures and blocked units."""

    def __init__(self, bench: Bench, state: dict[str, str], bar):
        self.bench, self.state, self.bar = bench, state, bar
        self.failed: list[str] = []
        self.blocked: set[str] = set()
        self.announced: set[str] = set()
        self.ran = 0

    def running(self, labels: Iterable[str]) -> None:
        self.bar.set_postfix_str(", ".join(labels)[:80], refresh=True)

    def finished(self, u: Unit, res: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        st = res["status"]
        if st == "done":
            self.state[u.key] = "done"
            self.ran += 0 if res.get("cached") else 1
            self.bar.unit_done(u, res)
        elif st == "failed":
            self.state[u.key] = "failed"
            self.failed.append(u.label)
            tqdm.write(f"unit failed: {u.label}: {res['error']} (log: {self.bench.unit_dir(u)}.failed/log.txt)",
                       file=sys.stderr)
        elif st == "blocked":
            self.state[u.key] = "blocked"
            self.blocked.add(u.key)
        else:
            raise ValueError(f"bench: unit {u.label}: unexpected status {st!r} from the executor")

    def waiting(self, labels: list[str]) -> None:
        from tqdm.auto import tqdm

        for lab in labels:
            if lab not in self.announced:
                self.announced.add(lab)
                msg = f"waiting for unit {lab}: another process on this output directory is running it"
                if self.bar.disable:
                    print(msg, file=sys.stderr, flush=True)
                else:
                    tqdm.write(msg, file=sys.stderr)
        if labels:
            self.bar.set_postfix_str(("waiting: " + ", ".join(labels))[:80], refresh=True)
