"""The Ray executor on a local Ray cluster (2 CPUs, started by the tests): same results as the local
executor, a worker SIGKILLed mid-fit is retried and the fit resumes, the storage probe names the node
and the path it cannot see."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import augengine as ae  # noqa: E402
from augengine.bench import Bench  # noqa: E402
from augengine.bench.executors.ray import OUT_DIR_ENV, RayExecutor  # noqa: E402
from augengine.errors import ConfigError  # noqa: E402

HERE = Path(__file__).parent

import benchkit  # noqa: E402  (tests/bench on sys.path via conftest)

LIGHT = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
         "object_store_memory": 100 * 1024 * 1024}


@pytest.fixture(scope="module", autouse=True)
def _env():
    """Workers import benchkit (PYTHONPATH) and only the plugins these benches need."""
    if not ae.get_plugin_manager().is_registered(benchkit):
        ae.register_plugin(benchkit)
    old = {k: os.environ.get(k) for k in ("PYTHONPATH", "AUGENGINE_LOAD_PLUGINS")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), old["PYTHONPATH"] or ""])
    os.environ["AUGENGINE_LOAD_PLUGINS"] = "example"
    yield
    ray.shutdown()
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture
def cluster():
    if not ray.is_initialized():
        ray.init(num_cpus=2, **LIGHT)
    yield


def _bench(out, executor="local", **over) -> Bench:
    return Bench(benchkit.tiny_config(**over), out, loader=benchkit.tiny_loader, progress=False, executor=executor)


def test_storage_probe_fails_with_node_and_path(tmp_path):
    """A worker that sees another directory at the output path (env override on the worker side) → one line."""
    ray.shutdown()
    elsewhere = tmp_path / "not-shared"
    elsewhere.mkdir()
    ray.init(num_cpus=1, runtime_env={"env_vars": {OUT_DIR_ENV: str(elsewhere)}}, **LIGHT)
    try:
        with pytest.raises(ConfigError) as e:
            _bench(tmp_path / "b", "ray", amounts=[6]).run()
        msg = str(e.value)
        assert "\n" not in msg and "does not share the output directory" in msg, msg
        assert f"it sees {elsewhere}" in msg and "No such file" in msg and "node " in msg, msg
        assert not list((tmp_path / "b" / "units").glob("*-*")) if (tmp_path / "b" / "units").exists() else True
    finally:
        ray.shutdown()


def test_ray_results_equal_local_results(tmp_path, cluster):
    arms = [{"name": "noise", "generator": "example-noise"},
            {"name": "noise-dark", "generator": "example-noise", "config": {"shrink": 0.5},
             "filter": {"name": "example-brightness", "config": {"keep": 0.5}, "target_class": None}},
            {"name": "boom", "generator": "boom"}]
    loc = _bench(tmp_path / "local", amounts=[6, 12], arms=arms).run()
    t0 = time.time()
    rs = _bench(tmp_path / "ray", "ray", amounts=[6, 12], arms=arms).run()
    ray_s = time.time() - t0
    assert (tmp_path / "ray" / "results.jsonl").read_text() == (tmp_path / "local" / "results.jsonl").read_text()
    rows = [json.loads(x) for x in (tmp_path / "ray" / "results.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in rows} >= {"baseline", "noise", "noise-dark"} and len(rows) >= 5
    assert (rs.exit_code, rs.done, rs.total, sorted(rs.failed), rs.blocked) == \
        (loc.exit_code, loc.done, loc.total, sorted(loc.failed), loc.blocked) and rs.exit_code == 1
    assert rs.failed == ["gen-boom-g0"] and any(b.startswith("clf-boom") for b in rs.blocked)
    assert "boom: the plugin exploded" in (next((tmp_path / "ray").glob("units/genfit-*boom*.failed")) /
                                          "log.txt").read_text()
    assert ray_s < 60


def _kill_when_fitting(out: Path, killed: list, stop: threading.Event) -> None:
    """SIGKILL the worker process running the generator fit once it has checkpointed a step."""
    while not stop.is_set():
        for run in out.glob("units/genfit-*.partial/run"):
            att, state = run / "attempts.txt", run / "fit_state.pt"
            if att.exists() and state.exists() and not killed:
                pid = int(att.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def test_worker_killed_mid_fit_is_retried_and_resumes(tmp_path, cluster):
    arms = [{"name": "steps", "generator": "step-noise", "config": {"steps": 6, "sleep": 0.4}}]
    over = dict(amounts=[6], classifier_seeds=[0], arms=arms)
    out = tmp_path / "ray"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_when_fitting, args=(out, killed, stop), daemon=True)
    watcher.start()
    try:
        s = _bench(out, "ray", **over).run()
    finally:
        stop.set()
        watcher.join()
    assert killed, "the generator fit was never seen running"
    assert s.exit_code == 0 and s.done == s.total, s
    attempts = [line.split() for line in (next(out.glob("units/genfit-*[0-9a-f]/run")) / "attempts.txt")
                .read_text().splitlines()]
    assert len(attempts) == 2 and int(attempts[0][0]) == killed[0] and int(attempts[1][0]) != killed[0]
    assert int(attempts[1][1]) > 0, attempts  # the retried fit resumed from its checkpoint, not from step 0
    assert _bench(tmp_path / "local", **over).run().exit_code == 0
    assert (out / "results.jsonl").read_text() == (tmp_path / "local" / "results.jsonl").read_text()


def test_resources_per_kind_and_address_checks():
    from augengine.bench.executors.ray import unit_resources

    cfg = benchkit.tiny_config(resources={"clffit": {"num_cpus": 2}, "eval": {"num_cpus": 0.5, "num_gpus": 0}})
    assert unit_resources(cfg, "clffit", cuda=True) == {"num_cpus": 2, "num_gpus": 1}
    assert unit_resources(cfg, "clffit", cuda=False) == {"num_cpus": 2, "num_gpus": 0}
    assert unit_resources(cfg, "genfit", cuda=True) == {"num_cpus": 1, "num_gpus": 1}
    assert unit_resources(cfg, "eval", cuda=True) == {"num_cpus": 0.5, "num_gpus": 0}
    assert unit_resources(cfg, "synth", cuda=True) == {"num_cpus": 1, "num_gpus": 0}
    with pytest.raises(ConfigError, match="resources.clfit: unknown unit kind"):
        benchkit.tiny_config(resources={"clfit": {"num_cpus": 2}})
    with pytest.raises(ConfigError, match="ray address 'head': expected 'auto' or HOST:PORT"):
        RayExecutor(address="head")


def test_cli_executor_options(tmp_path):
    from click.testing import CliRunner

    from augengine.cli import main

    r = CliRunner().invoke(main, ["bench", "--ray-address", "auto", "--out", str(tmp_path / "b"), "--dry-run"])
    assert r.exit_code == 2 and "--ray-address: only with --executor ray" in r.output, r.output
    r = CliRunner().invoke(main, ["bench", "--executor", "ray", "--ray-address", "head", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "ray address 'head': expected 'auto' or HOST:PORT" in r.output, r.output
