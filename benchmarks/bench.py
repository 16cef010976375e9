"""Benchmark of ``augengine bench``: wall time of the quick preset, of a fully cached rerun, and
SIGKILL-at-random-moments + resume giving the uninterrupted results.

    python benchmarks/bench.py --quick --out bench-quick.json   # smoke: tiny iterations, < 1-2 min
    python benchmarks/bench.py --out bench.json                 # the real quick preset (≤ 10 min target)
    python benchmarks/bench.py --kills 5 --out bench.json       # + 5 SIGKILLs, each followed by --resume
    python benchmarks/bench.py --executor-overhead-only --out ray.json   # Ray vs local --jobs 2 (quick preset)

Prints a table and writes JSON. Run the full mode only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from augengine.runtime import cpu_model



def smoke_toml(path: Path) -> Path:
    """The quick preset's arms with tiny iteration counts (a smoke check of every real plugin)."""
    from augengine.bench.config import PRESETS

    q = json.loads(json.dumps(PRESETS["quick"]))
    q["amounts"] = [0.05, 0.1]
    q["classifier"]["config"].update(epochs=1)
    q["arms"][0]["config"].update(iterations=10, checkpoint_every=5, sample_every=5)
    q["arms"][1]["config"].update(iterations=10, checkpoint_every=5)
    path.write_text(json.dumps(q))
    return path


def run(cmd: list[str], env=None) -> tuple[float, int, str]:
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.time() - t, r.returncode, r.stderr[-3000:] + r.stdout[-3000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with tiny iteration counts")
    ap.add_argument("--config", type=Path, help="benchmark this bench config (TOML) instead of the quick preset")
    ap.add_argument("--kills", type=int, default=0, help="SIGKILL the bench at this many random moments")
    ap.add_argument("--out", type=Path, help="write the numbers as JSON here")
    ap.add_argument("--workdir", type=Path, help="bench output directories (default: a temp dir)")
    ap.add_argument("--executor-overhead", action="store_true",
                    help="add the row: wall time of --executor ray against --executor local --jobs 2 (fresh runs)")
    ap.add_argument("--executor-overhead-only", action="store_true", help="only that row")
    ap.add_argument("--repeat", type=int, default=1, help="executor overhead: runs per executor (median)")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="augengine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-c", "from augengine.cli import main; main()", "bench", "--no-progress"]
    cfg_args: list[str] = [str(a.config)] if a.config else []
    if a.quick and not a.config:
        import tomllib  # noqa: F401  (the config is JSON, which TOML cannot express; write a TOML-free preset)

        js = smoke_toml(work / "smoke.json")
        cfg = json.loads(js.read_text())
        toml = work / "smoke.toml"
        toml.write_text(_to_toml(cfg))
        cfg_args = [str(toml)]
    mode = str(a.config) if a.config else "smoke" if a.quick else "quick preset"
    res: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "mode": mode}
    if a.executor_overhead_only:
        res.update(executor_overhead(exe + cfg_args, work, a.repeat))
        report(res, a.out)
        return
    first = work / "first"
    shutil.rmtree(first, ignore_errors=True)
    res["first_run_s"], rc, log = run(exe + cfg_args + ["--out", str(first)])
    res["first_run_rc"] = rc
    if rc != 0:
        print(log)
    res["cached_rerun_s"], rc2, _ = run(exe + cfg_args + ["--out", str(first)])
    res["report_written"] = (first / "report.html").exists()
    if a.kills:
        killed = work / "killed"
        shutil.rmtree(killed, ignore_errors=True)
        rng = random.Random(0)
        moments = sorted(rng.uniform(5, res["first_run_s"]) for _ in range(a.kills))
        res["kill_moments_s"] = moments
        for m in moments:
            p = subprocess.Popen(exe + cfg_args + ["--out", str(killed), "--resume"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            try:
                p.wait(timeout=m)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
        run(exe + cfg_args + ["--out", str(killed), "--resume"])
        res["resumed_results_equal"] = (killed / "results.jsonl").read_text() == (first / "results.jsonl").read_text()
    if a.executor_overhead:
        res.update(executor_overhead(exe + cfg_args, work, a.repeat))
    report(res, a.out)


def executor_overhead(cmd: list[str], work: Path, repeat: int = 1) -> dict:
    """Fresh benches with ``--executor local --jobs 2`` and ``--executor ray --jobs 2`` (a local Ray cluster
    of 2 CPUs started by the bench), alternating, ``repeat`` times each: median wall times, the Ray
    executor's overhead in percent (target ≤ 10 %), and whether both gave the same results.jsonl."""
    import statistics

    arms = {"local_jobs2": ["--executor", "local", "--jobs", "2"], "ray_jobs2": ["--executor", "ray", "--jobs", "2"]}
    times: dict[str, list[float]] = {k: [] for k in arms}
    ok = True
    for i in range(repeat):
        for name, extra in arms.items():
            d = work / f"{name}-{i}"
            shutil.rmtree(d, ignore_errors=True)
            t, rc, log = run(cmd + ["--out", str(d), *extra])
            if rc != 0:
                ok = False
                print(f"{name} run {i} failed (exit {rc}):\n{log}")
            times[name].append(t)
    local, ray = statistics.median(times["local_jobs2"]), statistics.median(times["ray_jobs2"])
    same = all((work / f"ray_jobs2-{i}" / "results.jsonl").exists() and
               (work / f"ray_jobs2-{i}" / "results.jsonl").read_text() ==
               (work / f"local_jobs2-{i}" / "results.jsonl").read_text() for i in range(repeat))
    return {"executor_local_jobs2_s": round(local, 1), "executor_ray_jobs2_s": round(ray, 1),
            "executor_ray_overhead_pct": round(100 * (ray / local - 1), 1), "executor_runs_ok": ok,
            "executor_results_equal": same, "executor_times_s": {k: [round(x, 1) for x in v] for k, v in times.items()}}


def report(res: dict, out: Path | None) -> None:
    print(f"CPU: {res['cpu']} ({res['cores']} cores visible)")
    print(f"{'measure':28s} value")
    for k, v in res.items():
        if k not in ("cpu", "cores"):
            print(f"{k:28s} {v}")
    if out:
        out.write_text(json.dumps(res, indent=2))


def _to_toml(d: dict, prefix: str = "") -> str:
    """Minimal TOML writer for a bench config (tables, arrays of tables, inline values)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        if v is None:
            raise ValueError("TOML has no null")
        raise TypeError(type(v))
    lines = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                lines.append(f"[[{k}]]")
                lines += [f"{kk} = {val(_drop_none(vv))}" for kk, vv in x.items() if vv is not None]
        else:
            lines.insert(0, f"{k} = {val(_drop_none(v))}")
    return "\n".join(lines) + "\n"


def _drop_none(v):
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    return v


if __name__ == "__main__":
    main()
