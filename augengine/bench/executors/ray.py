"""The Ray executor: each unit a Ray task, its input units' tasks its dependencies.

Ray orders, places and retries the tasks; the engine adds nothing of its own. A unit asks for
the resources of its kind (``[resources.<kind>]`` in the bench config; by default one CPU, and
one GPU for generator and classifier fits when the bench runs on CUDA). A task whose worker
process or node dies is retried by Ray (at most ``max_retries`` times); the retried unit
continues from its ``.partial`` directory — fits from their checkpoints — as a killed local
bench does (the unit's file lock, held by the dead process, is released by the kernel, or on a
network filesystem when its lock lease expires; the retried task waits for it).

Units read and write the bench's output directory, so every node must see it (a shared
filesystem). Before any unit runs, one probe task per node reads a file the bench wrote there
and writes one back; a node that cannot fails the bench with one line naming the node and the
path. A node that mounts the directory under another path sets :data:`OUT_DIR_ENV` there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from augengine.bench.config import BenchConfig
from augengine.bench.execute import UnitCall
from augengine.bench.executors import Executor, RunListener
from augengine.bench.graph import Unit
from augengine.bench.units import UNIT_KINDS
from augengine.errors import ConfigError

__all__ = ["RayExecutor", "OUT_DIR_ENV", "unit_resources"]

#: set on a node whose mount of the output directory has another path than on the node running the bench
OUT_DIR_ENV = "AUGENGINE_BENCH_OUT_DIR"

#: a Ray cluster this executor starts itself (no address given): small and quiet
_LOCAL_INIT = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
               "object_store_memory": 128 * 1024 * 1024}


def _worker_out_dir(out_dir: str) -> str:
    return os.environ.get(OUT_DIR_ENV) or out_dir


def _probe(out_dir: str, token: str) -> dict[str, Any]:
    """Runs on one node: read the bench's probe file, write this node's (None error when both work)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    host = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    path = Path(_worker_out_dir(out_dir))
    probe = path / ".probe" / token
    try:
        if probe.read_text() != token:
            return {"node": node, "host": host, "path": str(path), "error": f"{probe} holds other content"}
        (path / ".probe" / f"{token}-{node}").write_text(node)
    except OSError as e:
        return {"node": node, "host": host, "path": str(path), "error": f"{type(e).__name__}: {e}"}
    return {"node": node, "host": host, "path": str(path), "error": None}


def _run_unit(call: UnitCall, cwd: str, unit_json: dict[str, Any], *inputs: dict[str, Any]) -> dict[str, Any]:
    """Runs on a worker: the unit, unless an input did not finish; waits while another process holds it.

    Relative paths of the config (data, split file, test sets) resolve against the bench's working
    directory ``cwd`` where this node has it (a shared filesystem), as they do in the bench's process.
    """
    if any(r.get("status") != "done" for r in inputs):
        return {"status": "blocked"}
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    call = dataclasses.replace(call, out_dir=_worker_out_dir(call.out_dir))
    wait = 0.5
    while True:
        res = call(unit_json)
        if res["status"] != "busy":  # busy: a bench outside this Ray job runs it; wait for it
            return res
        time.sleep(wait)
        wait = min(15.0, 2 * wait)


def unit_resources(cfg: BenchConfig, kind: str, cuda: bool) -> dict[str, float]:
    """Ray task options ``num_cpus``/``num_gpus`` for a unit of ``kind``."""
    spec = cfg.resources.get(kind)
    cpus = 1.0 if spec is None else spec.num_cpus
    gpus = None if spec is None else spec.num_gpus
    if gpus is None:
        gpus = 1.0 if cuda and UNIT_KINDS[kind].accelerator else 0.0
    return {"num_cpus": cpus, "num_gpus": gpus}


class RayExecutor(Executor):
    """Units as tasks of a Ray cluster.

    Args:
        address: ``"auto"`` or ``"HOST:PORT"`` of a running cluster; None starts a local one (it
            stays up until this process ends or calls ``ray.shutdown()``). A process already
            connected to Ray keeps its connection.
        num_cpus: CPUs of a local cluster started here (default: all of this machine).
        max_retries: how often Ray retries a unit whose worker process or node died.
        init_options: more keyword arguments for ``ray.init`` (e.g. ``runtime_env``).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3,
                 init_options: dict[str, Any] | None = None):
        if address is not None and address != "auto" and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
            raise ConfigError(f"ray address {address!r}: expected 'auto' or HOST:PORT, e.g. 10.0.0.5:6379")
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = int(max_retries)
        self.init_options = dict(init_options or {})
        self._checked: set[str] = set()

    # -- the cluster ----------------------------------------------------------------------------
    def _connect(self):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor 'ray': the ray package is not installed; pip install 'augengine[ray]'") from None
        if ray.is_initialized():
            return ray, False
        opts = dict(self.init_options)
        if self.address is None:
            opts = {**_LOCAL_INIT, **({"num_cpus": self.num_cpus} if self.num_cpus else {}), **opts}
        else:
            opts = {"address": self.address, "log_to_driver": False, "configure_logging": False, **opts}
        try:
            ray.init(**opts)
        except (ConnectionError, RuntimeError) as e:
            raise ConfigError(f"ray address {self.address!r}: no Ray cluster reachable ({e})") from None
        return ray, True

    def check_storage(self, ray, out_dir: str) -> None:
        """Each alive node reads a file written here and writes one back in ``out_dir``; ConfigError if not."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = uuid.uuid4().hex
        d = Path(out_dir) / ".probe"
        d.mkdir(parents=True, exist_ok=True)
        (d / token).write_text(token)
        probe = ray.remote(_probe)
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            refs = [probe.options(num_cpus=0, max_retries=0,
                                  scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(out_dir, token) for n in nodes]
            for r in ray.get(refs):
                back = d / f"{token}-{r['node']}"
                if r["error"] is None and not back.exists():
                    r["error"] = f"its probe file is not visible here as {back}"
                if r["error"] is not None:
                    raise ConfigError(f"bench: node {r['host']} does not share the output directory (it sees "
                                      f"{r['path']}): {r['error']}; put the output directory on storage every node mounts "
                                      f"(set {OUT_DIR_ENV} on nodes that mount it elsewhere)")
        finally:
            for p in d.glob(f"{token}*"):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                d.rmdir()  # unless another bench probes at the same time

    # -- running --------------------------------------------------------------------------------
    def run(self, units: list[Unit], call: UnitCall, done: set[str], listener: RunListener) -> None:
        if not units:
            return
        ray, started = self._connect()  # a local cluster started here stays up for this process's next runs
        call = dataclasses.replace(call, out_dir=str(Path(call.out_dir).resolve()))
        if call.out_dir not in self._checked:
            self.check_storage(ray, call.out_dir)
            self._checked.add(call.out_dir)
            res = ray.cluster_resources()
            n = sum(1 for x in ray.nodes() if x.get("Alive"))
            where = ("a local Ray cluster" if started and self.address is None
                     else f"Ray at {self.address or 'the connection of this process'}")
            print(f"ray: {where}: {n} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs; "
                  f"every node sees {call.out_dir}", file=sys.stderr, flush=True)
        self._run(ray, units, call, done, listener)

    def _run(self, ray, units: list[Unit], call: UnitCall, done: set[str], listener: RunListener) -> None:
        cfg = BenchConfig.model_validate(call.cfg_json)
        cuda = cfg.device == "cuda" or (cfg.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
        task = ray.remote(_run_unit)
        call_ref = ray.put(call)
        refs: dict[str, Any] = {}
        unit_of: dict[Any, Unit] = {}
        for u in units:  # plan order: inputs first
            missing = [d for d in u.deps if d not in refs and d not in done]
            if missing:  # an input neither finished nor planned here: cannot run
                continue
            r = task.options(**unit_resources(cfg, u.kind, cuda), max_retries=self.max_retries,
                             retry_exceptions=False, name=f"augengine:{u.label}") \
                .remote(call_ref, os.getcwd(), u.to_json(), *(refs[d] for d in u.deps if d in refs))
            refs[u.key] = r
            unit_of[r] = u
        results: dict[str, dict[str, Any]] = {}
        reported: set[str] = set()
        pending = list(refs.values())
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=None)
                for r in ready:
                    u = unit_of[r]
                    try:
                        results[u.key] = ray.get(r)
                    except Exception as e:  # noqa: BLE001 - retries exhausted, or an input's task failed
                        results[u.key] = {"status": "failed", "error": f"{type(e).__name__}: {_first_line(e)}"}
                # report in plan order, a unit after its inputs (ray.wait may return a dependant first)
                for u in units:
                    if u.key in results and u.key not in reported and all(d in reported or d not in refs
                                                                           for d in u.deps):
                        res = results[u.key]
                        if res["status"] == "failed" and any(results[d]["status"] != "done"
                                                             for d in u.deps if d in refs):
                            res = {"status": "blocked"}
                        reported.add(u.key)
                        listener.finished(u, res)
                listener.running([u.label for u in units if u.key in refs and u.key not in results
                                  and all(d in reported or d not in refs for d in u.deps)])
        except BaseException:
            for r in pending:
                ray.cancel(r)
            raise


def _first_line(e: BaseException) -> str:
    lines = [x for x in str(e).splitlines() if x.strip()]
    return lines[-1] if lines else type(e).__name__
