"""The one rule for outputs that are already used, and clean failure.

Every fit (any plugin, from Python, the CLI or the bench) and every command that writes an
output follows it:

* a **new or empty** output is simply used;
* a **used** output — a run directory with ``run.json``, an existing split file or set — needs
  ``resume=True`` (continue; the recorded config and seed must equal the new ones, otherwise
  the first differing key is named) or ``force=True`` (start over cleanly: the old run's
  files, stale sample grids included, are removed first); without either, one line says which;
* a directory that holds files but no ``run.json`` is not an augengine run: it is never
  written into nor cleaned, whatever the flags;
* a fit that fails before the plugin recorded or checkpointed anything leaves nothing behind
  (no empty run folder); a run killed that early is simply started over.

The engine applies the rule around :meth:`Generator.fit <augengine.Generator.fit>` and
:meth:`Classifier.fit <augengine.Classifier.fit>` itself (see :mod:`augengine.plugin`), so a
plugin only reads ``resume`` to decide whether to load its checkpoint. Messages name the
library arguments (``resume=True``, ``force=True``); the command line shows its flags instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from augengine.errors import ConfigError, DataError
from augengine.runs import RUN_RECORD, atomic_write_json, software_versions

__all__ = ["RunDirClaim", "claim_run_dir", "check_output_file", "STARTED"]

#: ``run.json["status"]`` of a run the engine opened and the plugin has not recorded yet
STARTED = "started"


def _first_difference(recorded: dict[str, Any], now: dict[str, Any], ignore: frozenset[str]) -> str | None:
    for key, value in now.items():
        if key in ignore or key not in recorded:
            continue
        if recorded[key] != value:
            return key
    return None


#: file patterns of checkpoints: a directory holding one is never cleaned without force=True
CHECKPOINT_PATTERNS = ("*.pt", "*.pth", "*.ckpt", "*.safetensors")


def has_checkpoint(p: Path) -> bool:
    """Whether ``p`` holds a checkpoint file anywhere below it."""
    return p.is_dir() and any(next(p.rglob(pat), None) is not None for pat in CHECKPOINT_PATTERNS)


def _is_empty_dir(p: Path) -> bool:
    return p.is_dir() and not any(p.iterdir())


def _clear_dir(p: Path) -> None:
    for child in p.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class RunDirClaim:
    """What :func:`claim_run_dir` decided; :meth:`failed` undoes what the claim created."""

    def __init__(self, run_dir: Path, *, created: Path | None, fresh: bool, resuming: bool):
        self.run_dir = run_dir
        self.created = created  # the topmost directory this claim created (None: it existed)
        self.fresh = fresh  # started over (new, empty or forced)
        self.resuming = resuming

    def _still_unrecorded(self) -> bool:
        if has_checkpoint(self.run_dir):
            return False
        rec = self.run_dir / RUN_RECORD
        if not rec.is_file():
            return True
        try:
            import json

            return json.loads(rec.read_text()).get("status") == STARTED
        except (OSError, ValueError):
            return False

    def failed(self) -> None:
        """The fit raised: remove what a fresh claim left if the plugin recorded nothing yet."""
        if not self.fresh or not self.run_dir.exists() or not self._still_unrecorded():
            return
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        else:
            _clear_dir(self.run_dir)

    def succeeded(self) -> None:
        """The fit returned: a record the plugin never replaced loses its ``started`` status."""
        rec = self.run_dir / RUN_RECORD
        if not rec.is_file():
            return
        import json

        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            return
        if data.get("status") == STARTED:
            data.pop("status")
            atomic_write_json(rec, data)


def claim_run_dir(run_dir: str | Path, plugin, *, seed: int, resume: bool = False, force: bool = False,
                  provenance: dict[str, Any] | None = None) -> RunDirClaim:
    """Apply the run-directory rule to ``run_dir`` before ``plugin`` fits into it.

    Args:
        run_dir: the run directory.
        plugin: the plugin about to fit (its ``kind``, ``name``, ``config`` and
            ``resume_may_change`` are used).
        seed: the fit's seed (compared with the recorded one on resume).
        resume: continue the run recorded there (config and seed must match).
        force: remove the recorded run and start over.
        provenance: extra fields for the start record (split hash, …).

    Returns:
        a :class:`RunDirClaim`; the directory exists and holds a ``run.json`` with
        ``status: started`` when the fit starts over.

    Raises:
        DataError: the directory is used and neither flag is given, or it is not a run directory.
        ConfigError: ``resume=True`` with a config or seed other than the recorded ones.
    """
    run_dir = Path(run_dir)
    if resume and force:
        raise ConfigError(f"{run_dir}: resume=True and force=True exclude each other (continue or start over)")
    if run_dir.exists() and not run_dir.is_dir():
        raise DataError(f"{run_dir}: exists and is not a directory; a run directory is expected")
    record_path = run_dir / RUN_RECORD
    used = run_dir.is_dir() and not _is_empty_dir(run_dir)
    if used and not record_path.is_file():
        raise DataError(f"{run_dir}: holds files but no {RUN_RECORD}, so it is not an augengine run directory; "
                        "choose a new or empty directory (nothing there is changed or removed)")
    if used:
        import json

        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{record_path}: not a readable run record ({e}); force=True starts over") from None
        label = f"{record.get('kind')} '{record.get('name')}'"
        if resume:
            if (record.get("kind"), record.get("name")) != (plugin.kind, plugin.name):
                raise ConfigError(f"{run_dir}: cannot resume: it holds a {label} run, not {plugin.kind} "
                                  f"'{plugin.name}' (key 'name')")
            now = plugin.config.model_dump(mode="json")
            key = _first_difference(dict(record.get("config") or {}), now, frozenset(plugin.resume_may_change))
            if key is not None:
                raise ConfigError(f"{run_dir}: cannot resume: config key {key!r} was "
                                  f"{record['config'][key]!r} in the recorded run, now {now[key]!r} "
                                  "(resume with the recorded config, or force=True to start over)")
            if "seed" in record and record["seed"] is not None and int(record["seed"]) != int(seed):
                raise ConfigError(f"{run_dir}: cannot resume: seed was {record['seed']} in the recorded run, "
                                  f"now {seed} (resume with the recorded seed, or force=True to start over)")
            for k, v in (provenance or {}).items():
                if v is not None and record.get(k) not in (None, v):
                    raise DataError(f"{run_dir}: cannot resume: {k} differs from the recorded run's "
                                    "(other training data or split)")
            return RunDirClaim(run_dir, created=None, fresh=False, resuming=True)
        if not force and (record.get("status") != STARTED or has_checkpoint(run_dir)):
            raise DataError(f"{run_dir}: holds a {label} run already; pass resume=True to continue it "
                            "(same config and seed) or force=True to replace it")
        _clear_dir(run_dir)  # force, or a run killed before it wrote anything worth keeping
    created = None
    if not run_dir.exists():
        created = run_dir
        while not created.parent.exists():
            created = created.parent
        run_dir.mkdir(parents=True)
    start = {"kind": plugin.kind, "name": plugin.name, "config": plugin.config.model_dump(mode="json"),
             "seed": int(seed), "status": STARTED, "versions": software_versions(), **(provenance or {})}
    atomic_write_json(record_path, start)
    return RunDirClaim(run_dir, created=created, fresh=True, resuming=False)


def check_output_file(path: str | Path, *, force: bool = False, what: str = "output") -> Path:
    """An output file that exists needs ``force=True`` (it is then replaced when written).

    Raises:
        DataError: ``path`` exists (or is a directory) and ``force`` is not given.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory; the {what} is a file")
    if p.exists() and not force:
        raise DataError(f"{p}: the {what} exists already; pass force=True to replace it")
    return p
