"""Disk use of a bench: resume state dropped from finished units, measured sizes, estimates.

A plugin declares which files of its run directory only a resumed fit reads by listing them
in its run record (``run.json``) under :data:`RESUME_STATE_KEY`, e.g.
``write_run_record(run_dir, self, …, resume_state=["train_state.pt"])`` (the ResNet
classifier's optimiser/scheduler state, 2× its final weights). Once a unit is done the bench
deletes those files (unless the bench config sets ``keep_resume_state = true``); final weights
and everything evaluation reads stay. Files a plugin does not list are never deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["RESUME_STATE_KEY", "dir_bytes", "drop_resume_state", "resume_state_files", "human_bytes"]

RESUME_STATE_KEY = "resume_state"


def dir_bytes(path: str | Path) -> int:
    """Bytes of the files under ``path`` (0 when absent; links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def resume_state_files(work: str | Path) -> list[Path]:
    """The files that run directories under ``work`` declare resume-only (existing ones).

    Raises:
        ValueError: a run record lists a path outside its run directory.
    """
    out = []
    for rec in sorted(Path(work).rglob("run.json")):
        try:
            names = json.loads(rec.read_text()).get(RESUME_STATE_KEY) or []
        except (OSError, ValueError, AttributeError):
            continue
        for name in names:
            p = PurePosixPath(str(name))
            if p.is_absolute() or ".." in p.parts:
                raise ValueError(f"{rec}: {RESUME_STATE_KEY} entry {name!r} is not a path inside the run directory")
            f = rec.parent / p
            if f.is_file():
                out.append(f)
    return out


def drop_resume_state(work: str | Path) -> int:
    """Delete the resume-only files declared under ``work``; returns the bytes freed."""
    freed = 0
    for f in resume_state_files(work):
        freed += f.stat().st_size
        f.unlink()
    return freed


def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KB"`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_by_kind(done_records: list[tuple[str, dict[str, Any]]]) -> dict[str, list[int]]:
    """kind → measured ``disk_bytes`` of finished units (records without the field skipped)."""
    out: dict[str, list[int]] = {}
    for kind, rec in done_records:
        if isinstance(rec.get("disk_bytes"), int):
            out.setdefault(kind, []).append(rec["disk_bytes"])
    return out
