"""One unit, atomically: its lock, its ``.partial`` work directory, its log, its ``done.json``.

A unit is written in ``units/<name>.partial`` and renamed into place after ``done.json`` is
written, so a finished directory is always complete; a SIGKILL leaves at most a ``.partial``
directory, which the next run continues (fits resume from their checkpoints, synthetic sets
from their committed chunks). A unit that raises is moved to ``units/<name>.failed`` with its
traceback in ``log.txt``. Once a unit is done, the resume-only files its run directories
declare are deleted (:mod:`augengine.bench.disk`) unless the config keeps them.

:class:`UnitCall` is what an executor ships to wherever it runs units: a picklable callable
``unit_json → status dict``.
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

from augengine.bench.config import BenchConfig
from augengine.bench.data import BenchData, load_data
from augengine.bench.disk import dir_bytes, drop_resume_state, human_bytes
from augengine.bench.graph import Unit
from augengine.bench.units import Ctx, unit_kind
from augengine.errors import DataError
from augengine.runs import atomic_write_json

__all__ = ["UnitCall", "execute_unit", "register_modules"]


def register_modules(mods: list[str]) -> None:
    """Register each module of ``mods`` (import names) as a plugin, once per process."""
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
    register_modules(cfg.plugin_modules)
    units = Path(out_dir) / "units"
    units.mkdir(parents=True, exist_ok=True)
    final = units / u.dirname
    lock_f = open(units / f".{u.dirname}.lock", "a")
    try:
        try:
            fcntl.flock(lock_f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return {"status": "busy"}
        _adopt_legacy_dirs(units, u)
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
        saved = sys.stdout, sys.stderr
        root.addHandler(handler)
        error = None
        try:
            with contextlib.redirect_stdout(_Tee(log)), contextlib.redirect_stderr(_Tee(log)):
                data = load_data(cfg, loader)
                result = unit_kind(u.kind).run(u, Ctx(cfg, data, part, units, deps, progress=progress))
        except KeyboardInterrupt:
            log.write("\n== interrupted\n")
            log.close()
            raise
        except Exception as e:  # noqa: BLE001 - a failing plugin must not stop independent units
            error = e
        finally:  # whatever happened (Ctrl-C included): the caller's logging and streams as they were
            root.removeHandler(handler)
            if isinstance(sys.stdout, _Tee) or isinstance(sys.stderr, _Tee):
                sys.stdout, sys.stderr = saved
        if error is not None:
            tb = "".join(traceback.format_exception(error))
            log.write("\n== FAILED\n" + tb)
            log.close()
            msg = f"{type(error).__name__}: {error}"
            atomic_write_json(part / "failed.json", {"error": msg, "traceback": tb, "seconds": time.time() - t0})
            os.replace(part, failed) if not failed.exists() else shutil.rmtree(part)
            return {"status": "failed", "error": msg, "seconds": time.time() - t0}
        secs = time.time() - t0
        freed = 0 if cfg.keep_resume_state else drop_resume_state(part)
        log.write(f"== done in {secs:.1f} s" + (f"; resume state dropped ({human_bytes(freed)})" if freed else "")
                  + "\n")
        log.close()
        atomic_write_json(part / "done.json", {"result": result, "seconds": secs, "key": u.key,
                                               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                               "disk_bytes": dir_bytes(part), "resume_state_dropped_bytes": freed})
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


def _adopt_legacy_dirs(units: Path, u: Unit) -> None:
    """Rename the unit's folders written under the old name (``clffit-clf-…``) to its name (``clffit-…``)."""
    if u.legacy_dirname == u.dirname:
        return
    for suffix in ("", ".partial", ".failed"):
        old, new = units / (u.legacy_dirname + suffix), units / (u.dirname + suffix)
        if old.exists() and not new.exists():
            os.rename(old, new)


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


@dataclasses.dataclass(frozen=True)
class UnitCall:
    """A picklable ``unit_json → status dict`` bound to one bench (what executors ship to workers).

    Attributes:
        out_dir: the bench's output directory (as the process running the bench sees it).
        cfg_json: the bench config (``BenchConfig.canonical()``).
        loader: ``cfg → BenchData`` (a module-level function, importable where units run).
        progress: show the plugins' own progress bars (in the unit logs).
    """

    out_dir: str
    cfg_json: dict[str, Any]
    loader: Callable[[BenchConfig], BenchData]
    progress: bool = True

    def __call__(self, unit_json: dict[str, Any]) -> dict[str, Any]:
        return execute_unit(self.out_dir, unit_json, self.cfg_json, self.loader, self.progress)
