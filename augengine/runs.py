"""Run directories and checkpoints: atomic writes, ``weights_only`` loads, run records.

A run directory (``augengine fit … --out RUN_DIR``) holds at least ``run.json`` — the run
record: plugin kind and name, full config, class names, seed, data fingerprint, software
versions, timings — and the plugin's checkpoint(s). :func:`augengine.load_run` (in
:mod:`augengine.registry`, which knows the plugin classes) reopens any run from its record.
This module imports nothing of the engine's plugin layer, so plugins and the registry can both
depend on it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from augengine.errors import DataError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_checkpoint",
    "load_checkpoint",
    "sha256_file",
    "software_versions",
    "write_run_record",
    "read_run_record",
    "RUN_RECORD",
]

RUN_RECORD = "run.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` atomically (temporary file, fsync, rename). Keep ``state`` to tensors,
    numbers, strings, lists and dicts so that :func:`load_checkpoint` can read it with
    ``weights_only=True``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(..., weights_only=True)`` (no pickle of code).

    Raises:
        DataError: one line naming the file: not found, not a torch checkpoint (damaged,
            truncated, another format), or not a plain-tensor checkpoint (it refers to Python
            objects that only a full unpickling would run). The message never suggests
            unpickling: a file that needs it is not loaded, whatever its source.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on the pickle protocol of foreign files
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - turned into a one-line error
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if found:
            raise DataError(f"{path}: not a plain-tensor checkpoint (it refers to the Python object {found.group(1)}); "
                            "augengine reads only tensors, numbers, strings, lists and dicts from checkpoint files "
                            "(save a state_dict, or use .safetensors)") from None
        why = "empty or truncated" if isinstance(e, EOFError) else "damaged, truncated or another format"
        raise DataError(f"{path}: not a readable torch checkpoint ({why}; {type(e).__name__})") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and the stack (from package metadata: imports nothing)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("augengine", "torch", "numpy", "torchvision", "timm", "kornia", "h5py"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_run_record(run_dir: str | Path, plugin, **extra: Any) -> Path:
    """Write ``RUN_DIR/run.json`` for ``plugin`` (kind, name, config, versions, ``extra``).

    The engine's provenance of the plugin's last fit — ``seed`` and, for training sets that
    come from a split, ``split_sha256`` — is added whatever the plugin passes, so every run
    records them however it was trained (Python API, CLI or bench).
    """
    record = {
        "kind": plugin.kind,
        "name": plugin.name,
        "config": plugin.config.model_dump(mode="json"),
        "versions": software_versions(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    record.update({k: v for k, v in (getattr(plugin, "fit_provenance", None) or {}).items() if v is not None})
    record.update(extra)
    return atomic_write_json(Path(run_dir) / RUN_RECORD, record)


def read_run_record(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / RUN_RECORD
    if not p.is_file():
        raise DataError(f"{run_dir}: not a run directory (no {RUN_RECORD}); make one with 'augengine fit'")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from None
