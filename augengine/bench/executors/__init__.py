"""Executors: where the units of a bench run.

The bench decides *what* runs (the units of its plan not finished yet, and what to do with
each result); an executor decides only *where* and *when*: in this process, in a pool of
worker processes (:mod:`~augengine.bench.executors.local`), or as tasks of a Ray cluster
(:mod:`~augengine.bench.executors.ray`). Every executor honours the same contract:

* a unit runs only after each of its inputs that is in ``units`` finished with status
  ``done``; inputs outside ``units`` must already be in ``done``, else the unit never runs;
* a unit downstream of a failure is reported with status ``blocked`` and not run;
* a unit held by another process (status ``busy``: another bench on the same output
  directory runs it) is waited for, never skipped: it is tried again until it is done or
  failed (``listener.waiting(labels)`` shows what is waited for);
* ``listener.finished(unit, result)`` is called once per unit that ran (or was blocked), in
  the calling thread; ``listener.running(labels)`` says what runs now (progress display).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, Protocol

from augengine.bench.execute import UnitCall
from augengine.bench.graph import Unit
from augengine.errors import ConfigError

__all__ = ["Executor", "RunListener", "create_executor", "EXECUTOR_NAMES"]

EXECUTOR_NAMES = ("local", "ray")


class RunListener(Protocol):
    def running(self, labels: Iterable[str]) -> None: ...

    def waiting(self, labels: list[str]) -> None: ...

    def finished(self, unit: Unit, result: dict[str, Any]) -> None: ...


class Executor(abc.ABC):
    """Runs the units it is handed, in an order their dependencies allow."""

    name: str = ""

    @abc.abstractmethod
    def run(self, units: list[Unit], call: UnitCall, done: set[str], listener: RunListener) -> None:
        """Run ``units`` (in plan order: inputs before the units that read them).

        Args:
            units: units to run (none finished yet).
            call: runs one unit where it is called (``call(unit.to_json())`` → status dict).
            done: keys of the units finished before (inputs outside ``units``).
            listener: told what runs and what finished.
        """


def create_executor(name: str = "local", **options: Any) -> Executor:
    """``local`` (``jobs``) or ``ray`` (``address``, …); ConfigError for another name."""
    if name == "local":
        from augengine.bench.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        from augengine.bench.executors.ray import RayExecutor

        return RayExecutor(**options)
    raise ConfigError(f"executor {name!r}: unknown; expected one of {', '.join(EXECUTOR_NAMES)}")
