"""Tests of ``augengine bench``: config errors, caching, amount changes, failures, SIGKILL + resume,
shards, parallel jobs, the CLI, the presets' plans and the HTML report (rendered in Chromium)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import augengine as ae
from augengine.bench import Bench, load_bench_config
from augengine.bench.config import expand_arms, validate_bench_config
from augengine.errors import ConfigError, PluginNotFoundError

HERE = Path(__file__).parent
REPO = HERE.parent.parent

import benchkit  # noqa: E402  (tests/bench on sys.path via conftest)


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    if not ae.get_plugin_manager().is_registered(benchkit):
        ae.register_plugin(benchkit)
    yield


def bench(out, _force=False, **over) -> Bench:
    return Bench(benchkit.tiny_config(**over), out, loader=benchkit.tiny_loader, progress=False, force=_force)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


# ---------------------------------------------------------------------------------------------
def test_config_errors():
    with pytest.raises(ConfigError, match="amounts"):
        benchkit.tiny_config(amounts=[0])
    with pytest.raises(ConfigError, match="amounts"):
        load_bench_config(overrides=["amounts=[-5]"])
    with pytest.raises(ConfigError, match="classifier_seeds"):
        load_bench_config(overrides=["classifier_seeds=[]"])
    with pytest.raises(ConfigError, match="amonts"):
        load_bench_config(overrides=["amonts=[5]"])
    with pytest.raises(ConfigError, match="alpha"):
        validate_bench_config({"arms": [{"name": "a", "generator": "g",
                                         "filter": {"name": "path-rank", "config": {"alpha": 1.5}}}]})
    with pytest.raises(ConfigError, match="unknown config key 'arms.0.genertor'"):
        validate_bench_config({"arms": [{"name": "a", "genertor": "x"}]}, "bench config t.toml")
    with pytest.raises(ConfigError, match="--preset 'nope'"):
        load_bench_config(preset="nope")
    # plugins are checked when the plan is built: unknown name, unknown config key
    with pytest.raises(PluginNotFoundError, match="no-such-gan"):
        Bench(benchkit.tiny_config(arms=[{"name": "x", "generator": "no-such-gan"}]), "/tmp/unused",
              loader=benchkit.tiny_loader).plan()
    with pytest.raises(ConfigError, match=r"generator 'example-noise': unknown config key 'shrinkk'"):
        Bench(benchkit.tiny_config(arms=[{"name": "x", "generator": "example-noise", "config": {"shrinkk": 1}}]),
              "/tmp/unused", loader=benchkit.tiny_loader).plan()
    # sweeps expand into a grid of arms
    cfg = benchkit.tiny_config(arms=[{"name": "n", "generator": "example-noise",
                                      "sweep": {"config.shrink": [0.5, 1.0], "class_distribution": ["train", "uniform"]}}])
    assert [a.name for a in expand_arms(cfg)] == ["n[shrink=0.5,class_distribution=train]",
                                                 "n[shrink=0.5,class_distribution=uniform]",
                                                 "n[shrink=1,class_distribution=train]",
                                                 "n[shrink=1,class_distribution=uniform]"]


def test_run_cached_and_one_amount_change(tmp_path):
    out = tmp_path / "b"
    b = bench(out)
    s = b.run()
    n_units = len(b.plan().units)
    assert s.exit_code == 0 and s.done == s.total == n_units == s.ran
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["arm"], r["amount"]) for r in rows} == {("baseline", None), ("noise", 6), ("noise", 12),
                                                       ("noise-dark", 6), ("noise-dark", 12)}
    r = next(r for r in rows if r["arm"] == "noise" and r["amount"] == 12)
    acc = r["metrics"]["accuracy"]
    assert 0 <= acc["value"] <= 1 and acc["ci"][0] <= acc["value"] <= acc["ci"][1]
    assert r["classifier_seeds"] == [0, 1] and r["amount_count"] == 12 and r["verdicts"]
    assert "Table 2" in (out / "tables.txt").read_text() and (out / "report.html").exists()
    # filtered arm: oversampled 2x, filter kept the darkest half
    filt = next(out.glob("units/filtered-*-noise-dark-12-*"))
    assert json.loads((filt / "done.json").read_text())["result"]["n_candidates"] == 24
    # second identical run: no work
    t0 = time.time()
    s2 = bench(out).run()
    assert s2.ran == 0 and s2.done == n_units and time.time() - t0 < 10
    # another config in the same directory is refused, unless --force
    with pytest.raises(ConfigError, match="another config.*amounts"):
        Bench(benchkit.tiny_config(amounts=[6, 18]), out, loader=benchkit.tiny_loader, progress=False).run()
    b3 = Bench(benchkit.tiny_config(amounts=[6, 18]), out, loader=benchkit.tiny_loader, progress=False, force=True)
    old = {u.key for u in b.plan().units}
    new = [u for u in b3.plan().units if u.key not in old]
    # only the amount-18 units are new: per arm a set (+ filtered set), 2 classifier fits, 1 evaluation
    assert sorted(u.kind for u in new) == sorted(["synth", "clffit", "clffit", "eval"] * 2 + ["filtered"])
    s3 = b3.run()
    # then the resampling controls of the new sets (planned once the sets exist): per arm a resample unit,
    # 2 classifier fits, the control's evaluation and the arm-vs-control comparison
    more = [u for u in b3.plan().units if u.key not in old and u not in new]
    assert sorted(u.kind for u in more) == sorted(["resample", "clffit", "clffit", "eval", "eval"] * 2)
    assert s3.ran == len(new) + len(more) and s3.exit_code == 0
    dry = b3.dry_run()
    assert "cached" in dry and "todo" not in dry.split("units:")[1]


def test_failing_plugins_are_isolated(tmp_path):
    out = tmp_path / "b"
    arms = [{"name": "noise", "generator": "example-noise"}, {"name": "boom", "generator": "boom"},
            {"name": "bad", "generator": "bad-shape"}]
    s = bench(out, arms=arms, amounts=[6]).run()
    assert s.exit_code == 1
    assert any("gen-boom" in f for f in s.failed) and any("set-bad" in f for f in s.failed)
    assert any("clf-boom" in b for b in s.blocked)
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in rows} == {"baseline", "noise"}  # independent units went on
    log = next(out.glob("units/genfit-boom-*.failed")) / "log.txt"
    assert "RuntimeError: boom: the plugin exploded at iteration 3" in log.read_text()
    bad = json.loads((next(out.glob("units/synth-bad-*.failed")) / "failed.json").read_text())["error"]
    assert "generator 'bad-shape'" in bad and "16×16×3" in bad and "(6, 19, 19, 3)" in bad, bad
    html = (out / "report.html").read_text()
    assert "boom: the plugin exploded" in html and "2 failed" in html


def test_resume_state_dropped_once_done_and_disk_reported(tmp_path):
    """Files a run declares resume-only go once the unit is done (kept with keep_resume_state); the dry run
    estimates disk use and the report measures it."""
    from augengine.bench.disk import resume_state_files

    out = tmp_path / "b"
    b = bench(out, amounts=[6], arms=[{"name": "steps", "generator": "step-noise"}])
    dry = b.dry_run()
    assert "disk: 0 B in" in dry and "more for the units to run" in dry and "synth: image counts" in dry, dry
    assert b.run().exit_code == 0
    fits = sorted(out.glob("units/clffit-*/run")) + sorted(out.glob("units/genfit-*/run"))
    assert len(fits) == 7  # classifier fits: 2 baseline, 2 arm, 2 resampling control; 1 generator fit
    for run in fits:
        assert (run / "checkpoint.pt").exists() and not (run / "fit_state.pt").exists(), run
        done = json.loads((run.parent / "done.json").read_text())
        assert done["resume_state_dropped_bytes"] > 0 and done["disk_bytes"] > 0
    html = (out / "report.html").read_text()
    assert "Disk use" in html and "resume state dropped from finished units" in html
    assert "clffit, eval, synth: finished units of this directory" in bench(out, amounts=[6, 12], _force=True,
                                                               arms=[{"name": "steps", "generator": "step-noise"}]
                                                               ).dry_run()
    # keep_resume_state: kept; it changes how units run, not what they compute (same directory accepted)
    keep = bench(out, amounts=[6], arms=[{"name": "steps", "generator": "step-noise"}], keep_resume_state=True)
    assert keep.run().exit_code == 0
    out2 = tmp_path / "keep"
    assert bench(out2, amounts=[6], arms=[{"name": "steps", "generator": "step-noise"}],
                 keep_resume_state=True).run().exit_code == 0
    assert len(list(out2.glob("units/*/run/fit_state.pt"))) == 7
    assert (out2 / "results.jsonl").read_text() == (out / "results.jsonl").read_text()
    # a run record may only name files inside its run directory
    run = next(out2.glob("units/clffit-*/run"))
    rec = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**rec, "resume_state": ["../done.json"]}))
    with pytest.raises(ValueError, match=r"resume_state entry '\.\./done\.json' is not a path inside"):
        resume_state_files(run.parent)


def test_ctrl_c_in_process_restores_logging_and_streams(tmp_path, capsys):
    """Ctrl-C while a unit runs in the bench's process: the unit's log handler and stream redirection are
    undone (nothing of the unit log leaks into later output), the unit stays partial for a resume."""
    import logging

    root = logging.getLogger()
    handlers, out, err = list(root.handlers), sys.stdout, sys.stderr
    with pytest.raises(KeyboardInterrupt):
        bench(tmp_path / "b", amounts=[6], arms=[{"name": "ctrl-c", "generator": "interrupt"}]).run()
    assert root.handlers == handlers and sys.stdout is out and sys.stderr is err
    print("after the bench")
    logging.getLogger("benchkit").warning("logged after the bench")
    assert "after the bench" in capsys.readouterr().out
    part = next((tmp_path / "b").glob("units/genfit-*.partial"))
    log = (part / "log.txt").read_text()
    assert "interrupt: fitting" in log and "about to be interrupted" in log and "== interrupted" in log
    assert "logged after the bench" not in log and "after the bench" not in log


def test_report_names_the_engine_version_not_the_host_commit(tmp_path):
    """The report records augengine's version; a git commit only under the name of whose it is."""
    from augengine.bench.report import engine_provenance

    def repo(root: Path, files: dict[str, str]) -> str:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
        subprocess.run(git[:3] + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-qm", "x"], check=True)
        return subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    host = repo(tmp_path / "host", {"pyproject.toml": 'name = "clinic-study"\n',
                                     "vendor/augengine/__init__.py": ""})
    p = engine_provenance(tmp_path / "host" / "vendor" / "augengine")
    assert set(p) == {"augengine_version", "host_git_commit"} and p["host_git_commit"] == host
    own = repo(tmp_path / "eng", {"pyproject.toml": '[project]\nname = "augengine"\n', "augengine/__init__.py": ""})
    assert engine_provenance(tmp_path / "eng" / "augengine")["engine_git_commit"] == own
    plain = tmp_path / "site" / "augengine"
    plain.mkdir(parents=True)
    assert set(engine_provenance(plain)) == {"augengine_version"} and engine_provenance(plain)["augengine_version"]
    out = tmp_path / "b"
    bench(out, amounts=[6]).run()
    html = (out / "report.html").read_text()
    assert "augengine_version" in html and '"git_commit"' not in html


def test_unit_folders_name_their_kind_once_and_old_names_are_adopted(tmp_path):
    """``clffit-baseline-s0-<key>``, not ``clffit-clf-baseline-s0-<key>``; a directory written with the old
    names reports as it is and continues without redoing any unit (a partial one is renamed and resumed)."""
    from augengine.bench.results import results_rows

    out = tmp_path / "b"
    b = bench(out, amounts=[6])
    assert b.run().exit_code == 0
    names = sorted(p.name for p in (out / "units").iterdir() if not p.name.startswith("."))
    assert names and all(n.split("-")[1] not in ("clf", "gen", "set", n.split("-")[0]) for n in names), names
    assert any(n.startswith("clffit-baseline-s0-") for n in names) and any(n.startswith("split-") for n in names)
    rows = results_rows(out)
    for u in b.plan().units:  # as an older version wrote it
        os.rename(out / "units" / u.dirname, out / "units" / u.legacy_dirname)
    assert any(p.name.startswith("clffit-clf-") for p in (out / "units").iterdir())
    assert results_rows(out) == rows
    last = b.plan().units[-1]  # an old partial unit: renamed, then finished
    (out / "units" / last.legacy_dirname / "done.json").unlink()
    os.rename(out / "units" / last.legacy_dirname, out / "units" / (last.legacy_dirname + ".partial"))
    s = bench(out, amounts=[6]).run()
    assert s.exit_code == 0 and s.ran == 1 and s.done == s.total
    assert (out / "units" / last.dirname / "done.json").exists()
    assert (out / "results.jsonl").read_text() == "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def _kill_cfg(**over):
    return benchkit.tiny_config(classifier={"name": "mean-colour", "config": {"sleep": 0.1}}, amounts=[6], **over)


def _run_child(out: str) -> None:  # runs in a forked child
    import sys as _sys

    _sys.stderr = open(os.devnull, "w")
    s = Bench(_kill_cfg(), out, loader=benchkit.tiny_loader, progress=False).run()
    os._exit(s.exit_code)


def _checkpoints(out: Path) -> dict[str, str]:
    import hashlib

    res = {}
    for p in sorted(out.glob("units/*/run/checkpoint.pt")):
        st = ae.load_checkpoint(p)
        res[p.parent.parent.name] = hashlib.sha256(b"".join(v.numpy().tobytes() for k, v in sorted(st.items()))).hexdigest()
    for p in sorted(out.glob("units/*/set.h5")):
        s = ae.SyntheticSet.open(p)
        res[p.parent.name] = hashlib.sha256(s.images().tobytes() + s.labels.tobytes()).hexdigest()
    return res


def test_sigkill_at_random_moments_then_resume_gives_identical_results(tmp_path):
    import multiprocessing as mp

    ref = tmp_path / "ref"
    t0 = time.time()
    assert Bench(_kill_cfg(), ref, loader=benchkit.tiny_loader, progress=False).run().exit_code == 0
    duration = time.time() - t0
    out = tmp_path / "killed"
    rng = random.Random(7)
    ctx = mp.get_context("fork")  # the child inherits the imports: kills land in the work, not in start-up
    kills = 0
    for _ in range(5):
        p = ctx.Process(target=_run_child, args=(str(out),))
        p.start()
        p.join(rng.uniform(0.05, duration * 0.8))
        if p.is_alive():
            p.kill()  # SIGKILL
            kills += 1
        p.join()
    assert kills >= 3
    partial_or_done = list(out.glob("units/*"))
    assert partial_or_done
    s = Bench(_kill_cfg(), out, loader=benchkit.tiny_loader, progress=False).run()  # = --resume
    assert s.exit_code == 0
    assert (out / "results.jsonl").read_text() == (ref / "results.jsonl").read_text()
    assert _checkpoints(out) == _checkpoints(ref)
    assert not list(out.glob("units/*.partial"))


_TWO_CFG = dict(amounts=[6], classifier={"name": "mean-colour", "config": {"sleep": 0.2}})
_CHILD = """
import sys, benchkit
from augengine.bench import Bench
s = Bench(benchkit.tiny_config(**{cfg!r}), {out!r}, loader=benchkit.tiny_loader, progress=False).run()
print("undone:", s.undone, file=sys.stderr)
sys.exit(s.exit_code)
"""


def test_two_benches_on_one_directory_wait_for_each_other(tmp_path):
    """Two processes on one output directory: units the other holds are waited for, never skipped; both
    finish with the complete results (equal to one process's). A third party holds the baseline fit's lock
    at first (as a process that then dies would): both benches say they wait, then run it themselves."""
    import fcntl

    ref = tmp_path / "ref"
    assert bench(ref, **_TWO_CFG).run().exit_code == 0
    out = tmp_path / "b"
    b = bench(out, **_TWO_CFG)
    u = next(u for u in b.plan().units if u.label == "clf-baseline-s0")
    (out / "units").mkdir(parents=True)
    lock = open(out / "units" / f".{u.dirname}.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    code = _CHILD.format(cfg=_TWO_CFG, out=str(out))
    errs = [open(tmp_path / f"err{i}.txt", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", code], env=_env(), stderr=e) for e in errs]
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not all("waiting for unit clf-baseline-s0" in (tmp_path / f"err{i}.txt")
                                                 .read_text() for i in range(2)):
            assert all(p.poll() is None for p in procs), [e.name for e in errs]
            time.sleep(0.2)
        for i in range(2):
            assert "waiting for unit clf-baseline-s0" in (tmp_path / f"err{i}.txt").read_text()
        assert all(p.poll() is None for p in procs)  # still waiting, not exited with units undone
        lock.close()  # the holder goes away without finishing the unit
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    logs = [(tmp_path / f"err{i}.txt").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert all("undone: []" in t for t in logs), logs
    assert (out / "results.jsonl").read_text() == (ref / "results.jsonl").read_text()
    assert all(b.state(u) == "done" for u in b.plan().units)


def test_unfinished_units_are_listed_and_exit_nonzero(tmp_path):
    """A bench that ends with units undone names them and exits non-zero (CLI)."""
    from click.testing import CliRunner

    from augengine.cli import main

    toml = tmp_path / "b.toml"
    toml.write_text('data = "demo"\nimage_size = 8\namounts = [20]\nclassifier_seeds = [0]\nset_quality = "off"\n'
                    'plugin_modules = ["benchkit"]\n[classifier]\nname = "mean-colour"\n[[evaluators]]\n'
                    'name = "tiny-benefit"\n[[arms]]\nname = "boom"\ngenerator = "boom"\n')
    r = CliRunner().invoke(main, ["bench", str(toml), "--out", str(tmp_path / "b"), "--no-progress"])
    assert r.exit_code == 1, r.output
    assert "1 unit(s) failed: gen-boom-g0" in r.output, r.output
    assert "3 unit(s) could not run: clf-boom-20-g0-s0, eval-tiny-benefit-boom-20-g0-test, set-boom-20-g0" in r.output


def _have_demo_plugins() -> bool:
    need = {"acgan", "cyclegan", "acgan+cyclegan"}
    return need <= set(ae.list_generators()) and "path-rank" in ae.list_filters() and \
        "resnet" in ae.list_classifiers() and "benefit" in ae.list_evaluators()


@pytest.mark.skipif(not _have_demo_plugins(), reason="built-in plugins not installed")
def test_preset_plans_on_demo_data(tmp_path):
    from augengine.bench.graph import KIND_ORDER  # noqa: F401

    for preset, n_arms, n_amounts in (("quick", 2, 2), ("paper-exp1", 2, 5), ("paper-exp2", 4, 8)):
        b = Bench(load_bench_config(preset=preset, overrides=["set_quality=\"off\""]), tmp_path / preset,
                  progress=False)
        units = b.plan().units
        kinds = [u.kind for u in units]
        seeds = len(b.cfg.classifier_seeds)
        assert kinds.count("clffit") == seeds * (1 + n_arms * n_amounts), preset
        assert kinds.count("eval") == 1 + n_arms * n_amounts
        assert kinds.count("synth") == n_arms * n_amounts
        text = b.dry_run()
        assert f"{len(units)} units" in text and "hours here" in text and "disk:" in text
    exp2 = [u for u in units if u.kind == "select"]
    assert sorted(u.spec["config"]["alpha"] for u in exp2) == [0.125, 0.25, 0.5, 1.0]


def test_parallel_jobs_give_the_same_results(tmp_path, monkeypatch):
    """--jobs 2 runs units in spawned worker processes; results equal a one-process run."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "example")  # workers import only what this bench needs
    cfg = benchkit.tiny_config(amounts=[6], arms=[{"name": "noise", "generator": "example-noise"}])
    a = Bench(cfg, tmp_path / "a", loader=benchkit.tiny_loader, progress=False, jobs=2).run()
    assert a.exit_code == 0 and a.ran == a.total
    Bench(cfg, tmp_path / "b", loader=benchkit.tiny_loader, progress=False).run()
    assert (tmp_path / "a" / "results.jsonl").read_text() == (tmp_path / "b" / "results.jsonl").read_text()


def test_cli_bench_and_report(tmp_path, monkeypatch):
    """The CLI end to end on a TOML config (tiny plugins via plugin_modules) on the demo data."""
    from click.testing import CliRunner

    from augengine.cli import main
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    toml = tmp_path / "b.toml"
    toml.write_text("""
data = "demo"
image_size = 8
amounts = [20]
classifier_seeds = [0]
set_quality = "off"
plugin_modules = ["benchkit"]
[classifier]
name = "mean-colour"
[[evaluators]]
name = "tiny-benefit"
[[arms]]
name = "noise"
generator = "example-noise"
""")
    out = tmp_path / "b"
    runner = CliRunner()
    args = ["bench", str(toml), "--out", str(out), "--no-progress"]
    r = runner.invoke(main, args + ["--dry-run"])
    assert r.exit_code == 0, r.output
    assert "todo" in r.output and "hours here" in r.output and "7 units" in r.output
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "vs baseline" in r.output and "report.html" in r.output
    r = runner.invoke(main, args + ["-o", "amounts=[30]"])
    assert r.exit_code == 2 and "another config" in r.output
    (out / "report.html").unlink()
    r = runner.invoke(main, ["report", str(out)])
    assert r.exit_code == 0 and (out / "report.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    out = tmp_path / "b"
    bench(out, amounts=[6, 12]).run()
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html and "<link" not in html
    assert html.count("data:image/png;base64,") >= 3
    assert html.index("Verdicts") < html.index("Table 2")
    shot = tmp_path / "shot.png"
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
                        f"--screenshot={shot}", (out / "report.html").as_uri()],
                       capture_output=True, text=True, timeout=60)
    assert shot.exists(), r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.float32)
    assert img.shape[0] >= 1000 and img.std() > 10, "screenshot is blank"
    colours = len(np.unique(img.reshape(-1, 3)[::7].astype(np.uint8), axis=0))
    assert colours > 50, colours


def test_output_filter_cut_keeps_the_generated_class_mix():
    from augengine.bench.units import _take_keeping_mix

    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)  # generated mix 60/30/10
    scores = np.r_[np.linspace(0.1, 0.2, 60), np.linspace(0.8, 0.9, 30), np.linspace(0.5, 0.6, 10)]
    keep = np.argsort(-scores, kind="stable")[:80]  # a filter kept 80, best first; class 1 scores highest
    got = _take_keeping_mix(keep, labels, 20)
    assert len(got) == 20 and np.bincount(labels[got], minlength=3).tolist() == [12, 6, 2]
    for c in range(3):  # within a class, the best-scored images are the ones kept
        mine = got[labels[got] == c]
        assert scores[mine].min() >= scores[keep[labels[keep] == c]][: len(mine)].min()
    # a class with too few survivors: the shortfall goes to the best remaining images
    keep2 = np.r_[np.arange(60, 90), np.arange(0, 5)]  # only 5 of class 0 survived, none of class 2
    got2 = _take_keeping_mix(keep2, labels, 20)
    assert len(got2) == 20 and len(set(got2.tolist())) == 20
    assert np.bincount(labels[got2], minlength=3).tolist() == [5, 15, 0]
    assert _take_keeping_mix(keep2, labels, 50).tolist() == keep2.tolist()


def test_two_external_sets_with_one_folder_name_stay_apart(tmp_path):
    """``a/ham`` and ``b/ham`` are two test sets: two safe, readable names, their own evaluation units."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for parent in ("a", "b"):
        for cls in ("MEL", "NV"):
            d = tmp_path / parent / "ham" / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{parent}{cls}{i}.png")
    cfg = benchkit.tiny_config(data="demo", test_data=[str(tmp_path / "a" / "ham"), str(tmp_path / "b" / "ham")],
                               amounts=[6], arms=[{"name": "noise", "generator": "example-noise"}])
    b = Bench(cfg, tmp_path / "out", progress=False)
    names = sorted(b.data.external)
    assert len(names) == 2 and all(n.startswith("ham-") and "/" not in n for n in names), names
    evals = [u for u in b.plan().units if u.kind == "eval"]
    per_set = {t: [u for u in evals if u.meta["test_set"] == t] for t in ["test", *names]}
    assert all(per_set[t] for t in per_set) and len({u.dirname for u in evals}) == len(evals)


def test_fit_units_not_resumed_start_over_their_own_earlier_attempt(tmp_path):
    """A fit unit killed after its checkpoint but before done.json, rerun with resume_fits off,
    starts over in its own folder (force) instead of being refused by the run-directory rule."""
    import shutil

    cfg = _kill_cfg(resume_fits=False)
    ref = tmp_path / "ref"
    assert Bench(cfg, ref, loader=benchkit.tiny_loader, progress=False).run().exit_code == 0
    out = tmp_path / "again"
    shutil.copytree(ref, out)
    (out / "results.jsonl").unlink()
    genfit = next(p for p in (out / "units").iterdir() if p.name.startswith("genfit-"))
    assert (genfit / "run" / "run.json").exists()
    (genfit / "done.json").unlink()
    genfit.rename(genfit.with_name(genfit.name + ".partial"))  # as a SIGKILL after the checkpoint leaves it
    s = Bench(cfg, out, loader=benchkit.tiny_loader, progress=False).run()
    assert s.exit_code == 0, s.undone
    assert (out / "results.jsonl").read_text() == (ref / "results.jsonl").read_text()


def test_bench_plugin_values_are_strict_and_eval_flags_training_images_in_external_sets(tmp_path):
    from augengine.bench.data import BenchData

    bad = benchkit.tiny_config(arms=[{"name": "noise", "generator": "example-noise", "config": {"image_size": "16"}}])
    with pytest.raises(ae.ConfigError, match="image_size"):
        Bench(bad, tmp_path / "bad", loader=benchkit.tiny_loader, progress=False).plan()

    def loader(cfg):  # the external set 'leak' is five training images
        d = benchkit.tiny_loader(cfg)
        ext = {"leak": d.train.subset(list(range(5)))}
        return BenchData(d.train, d.val, d.test, ext, d.fingerprint, {"leak": "leak-fp"})

    cfg = benchkit.tiny_config(amounts=[6], classifier_seeds=[0], test_data=["leak"],
                               arms=[{"name": "noise", "generator": "example-noise"}],
                               evaluators=[{"name": "benefit", "config": {"n_boot": 100}}])
    s = Bench(cfg, tmp_path / "out", loader=loader, progress=False).run()
    assert s.exit_code == 0, s.undone
    verdicts = (tmp_path / "out" / "verdicts.txt").read_text()
    assert "5 of 5 images of this set are training images" in verdicts, verdicts


def test_bench_with_the_real_benefit_and_set_quality_evaluators(tmp_path):
    """The report's extraction of real benefit metrics and the bench's set-quality unit, end to end."""
    cfg = benchkit.tiny_config(amounts=[6], classifier_seeds=[0], set_quality="on", controls=[],
                               arms=[{"name": "noise", "generator": "example-noise"}],
                               evaluators=[{"name": "benefit", "config": {"n_boot": 100}}])
    s = Bench(cfg, tmp_path / "out", loader=benchkit.tiny_loader, progress=False).run()
    assert s.exit_code == 0, s.undone
    rows = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    quality = [r for r in rows if r["kind"] == "synthetic-set"]
    assert len(quality) == 1 and "synthetic.overall.kid" in quality[0]["metrics"]
    clf = [r for r in rows if r["kind"] == "classifier" and r["arm"] == "noise"]
    assert clf and "sets.test.overall.balanced_accuracy" in clf[0]["metrics"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Synthetic set quality" in html and "KID ×10³ ± std" in html and "synthetic.overall" not in html
