"""The local executor: units in this process (``jobs=1``) or in a pool of worker processes."""

from __future__ import annotations

from typing import Any

from augengine.bench.execute import UnitCall
from augengine.bench.executors import Executor, RunListener
from augengine.bench.graph import Unit

__all__ = ["LocalExecutor"]


class _Ready:
    """Which units can start: every input finished; downstream of a failure → blocked."""

    def __init__(self, units: list[Unit], done: set[str]):
        self.units = units
        self.done = set(done)
        self.state = {u.key: "todo" for u in units}

    def next(self) -> list[Unit]:
        return [u for u in self.units if self.state[u.key] == "todo" and all(d in self.done for d in u.deps)]

    def record(self, u: Unit, res: dict[str, Any]) -> list[Unit]:
        """Record a result; returns the units that became blocked (to report)."""
        st = res["status"]
        self.state[u.key] = st
        if st == "done":
            self.done.add(u.key)
            return []
        if st != "failed":
            return []
        blocked, frontier = [], {u.key}
        while frontier:
            nxt = [v for v in self.units if self.state[v.key] == "todo" and frontier & set(v.deps)]
            for v in nxt:
                self.state[v.key] = "blocked"
            blocked += nxt
            frontier = {v.key for v in nxt}
        return blocked


class LocalExecutor(Executor):
    """Units on this machine.

    Args:
        jobs: 1 → one unit at a time in this process; N → up to N units at once in spawned
            worker processes (each loads the data once and keeps it for its next units).
    """

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))

    def run(self, units: list[Unit], call: UnitCall, done: set[str], listener: RunListener) -> None:
        ready = _Ready(units, done)

        def finish(u: Unit, res: dict[str, Any]) -> None:
            listener.finished(u, res)
            for v in ready.record(u, res):
                listener.finished(v, {"status": "blocked"})

        if self.jobs == 1:
            while todo := ready.next():
                u = todo[0]
                listener.running([u.label])
                finish(u, call(u.to_json()))
        else:
            self._run_pool(ready, call, listener, finish)

    def _run_pool(self, ready: _Ready, call: UnitCall, listener: RunListener, finish) -> None:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        running: dict[Any, Unit] = {}
        ex = ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"))
        try:
            while True:
                for u in ready.next()[: self.jobs - len(running)]:
                    running[ex.submit(call, u.to_json())] = u
                    ready.state[u.key] = "running"
                if not running:
                    break
                listener.running([u.label for u in running.values()])
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
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
