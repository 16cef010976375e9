"""The local executor: units in this process (``jobs=1``) or in a pool of worker processes."""

from __future__ import annotations

import time
from typing import Any

from augengine.bench.execute import UnitCall
from augengine.bench.executors import Executor, RunListener
from augengine.bench.graph import Unit

__all__ = ["LocalExecutor"]


class _Ready:
    """Which units can start: every input finished; downstream of a failure → blocked.

    A unit another process holds (its lock is taken: status ``busy``) waits and is tried again
    after a backoff (0.5 s, doubling up to :attr:`max_backoff`), until that process finishes it
    (then it is found done), fails it or dies (then this bench runs or resumes it).
    """

    max_backoff = 15.0

    def __init__(self, units: list[Unit], done: set[str]):
        self.units = units
        self.done = set(done)
        self.state = {u.key: "todo" for u in units}
        self.retry_at: dict[str, float] = {}  # busy units: key → when to try again
        self.backoff: dict[str, float] = {}

    def next(self) -> list[Unit]:
        now = time.monotonic()
        return [u for u in self.units
                if (self.state[u.key] == "todo" or self.state[u.key] == "busy" and self.retry_at[u.key] <= now)
                and all(d in self.done for d in u.deps)]

    def waiting(self) -> list[Unit]:
        return [u for u in self.units if self.state[u.key] == "busy"]

    def sleep_until_retry(self) -> None:
        time.sleep(max(0.0, min(self.retry_at[u.key] for u in self.waiting()) - time.monotonic()))

    def record(self, u: Unit, res: dict[str, Any]) -> list[Unit]:
        """Record a result; returns the units that became blocked (to report)."""
        st = res["status"]
        self.state[u.key] = st
        if st == "busy":
            b = self.backoff[u.key] = min(self.max_backoff, 2 * self.backoff.get(u.key, 0.25))
            self.retry_at[u.key] = time.monotonic() + b
            return []
        if st == "done":
            self.done.add(u.key)
            return []
        if st != "failed":
            return []
        blocked, frontier = [], {u.key}
        while frontier:
            nxt = [v for v in self.units if self.state[v.key] in ("todo", "busy") and frontier & set(v.deps)]
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
            was_waiting = bool(ready.waiting())
            blocked = ready.record(u, res)
            if res["status"] == "busy" or was_waiting:
                listener.waiting([v.label for v in ready.waiting()])
            if res["status"] != "busy":
                listener.finished(u, res)
            for v in blocked:
                listener.finished(v, {"status": "blocked"})

        if self.jobs == 1:
            while True:
                todo = ready.next()
                if not todo:
                    if not ready.waiting():
                        break
                    ready.sleep_until_retry()
                    continue
                u = todo[0]
                listener.running([u.label])
                finish(u, call(u.to_json()))
        else:
            self._run_pool(ready, call, listener, finish)

    def _run_pool(self, ready: _Ready, call: UnitCall, listener: RunListener, finish) -> None:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        running: dict[Any, Unit] = {}
        ex = ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_share_cores, initargs=(_threads_per_job(self.jobs),))
        try:
            while True:
                for u in ready.next()[: self.jobs - len(running)]:
                    running[ex.submit(call, u.to_json())] = u
                    ready.state[u.key] = "running"
                if not running:
                    if not ready.waiting():
                        break
                    ready.sleep_until_retry()
                    continue
                listener.running([u.label for u in running.values()])
                retry = min((ready.retry_at[u.key] for u in ready.waiting()), default=None)
                timeout = None if retry is None else max(0.0, retry - time.monotonic())
                finished, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
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


def _threads_per_job(jobs: int) -> int:
    """Intra-op threads of each of ``jobs`` worker processes: this process's cores shared out. Each
    worker at the full thread count oversubscribes the cores (measured on a 2-core Xeon: the quick
    preset took 747 s with ``--jobs 2`` at 2 threads each, 236 s on Ray at 1 thread per task)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))


def _share_cores(threads: int) -> None:  # runs in each spawned worker before its first unit
    import torch

    torch.set_num_threads(threads)

