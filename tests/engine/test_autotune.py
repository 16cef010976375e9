"""The measured ``auto`` speed settings (augengine.autotune), with stubbed trial timings."""

from __future__ import annotations

import json
import os

import pytest
import torch

from augengine import autotune
from augengine.autotune import SAFE, Resolution, Variant, cache_file, cache_key, resolve_variant
from augengine.errors import ConfigError

@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AUGENGINE_AUTOTUNE", raising=False)
    monkeypatch.setenv("AUGENGINE_AUTOTUNE_WORKERS", "1")  # the tests below that compile ahead say so


AUTO = {"precision": "auto", "channels_last": "auto", "batched": "auto"}
OPTIONS = {"precision": ["fp32", "bf16"], "channels_last": [False, True], "batched": [False, True]}
# stubbed ms per step: bf16 contiguous batched is the fastest
MS = {"fp32": 10.0, "bf16": 6.0, "bf16+cl": 7.0, "bf16+batched": 5.0, "bf16+cl+batched": 5.5, "fp32+cl": 9.0}


class StubTrial:
    def __init__(self, ms=MS):
        self.ms, self.calls = ms, []

    def __call__(self, v: Variant, n: int):
        self.calls.append((v.label, n))
        return [self.ms[v.label] / 1000.0] * n


def resolve(trial, total_steps=10_000, **kw):
    args = dict(plugin="cyclegan", arch="G9-D3", image_size=128, device="cpu", requested=AUTO, options=OPTIONS,
                trial=trial, total_steps=total_steps)
    args.update(kw)
    return resolve_variant(**args)


def test_trial_picks_the_fastest_and_caches_it():
    trial = StubTrial()
    res = resolve(trial)
    assert res.source == "trial"
    assert res.variant == Variant("bf16", False, True)
    assert res.timings_ms["fp32"] == 10.0 and res.timings_ms["bf16+batched"] == 5.0
    # 1 warm-up + 3 timed steps for the first; steps of 10 ms are then timed for ~1 s (capped at 20)
    assert trial.calls[0] == ("fp32", 4) and all(n == 1 + autotune.MAX_TIMED_STEPS for _, n in trial.calls[1:])
    stored = json.loads(cache_file().read_text())
    (entry,) = stored["entries"].values()
    assert entry["variant"] == res.variant.as_dict()


def test_cache_hit_skips_the_trial():
    resolve(StubTrial())
    again = StubTrial()
    res = resolve(again)
    assert res.source == "cache" and res.variant == Variant("bf16", False, True)
    assert again.calls == []


def test_a_trial_releases_its_memory_before_the_fit_goes_on(monkeypatch):
    released = []
    trial = StubTrial()
    monkeypatch.setattr(autotune, "release_free_memory", lambda: released.append(len(trial.calls)))
    resolve(trial)
    assert released == [len(trial.calls)] and trial.calls  # once, after the last candidate
    resolve(StubTrial())  # cached: no trial, nothing to release
    assert len(released) == 1


def test_cache_key_holds_device_torch_plugin_arch_size_and_space():
    space = autotune.candidate_space(AUTO, OPTIONS)
    key = cache_key(plugin="acgan", arch="g64", image_size=64, device="cpu", space=space)
    assert key["torch"] == torch.__version__ and key["plugin"] == "acgan" and key["arch"] == "g64"
    assert key["image_size"] == 64 and key["device"].startswith("cpu:") and "threads" in key["device"]
    assert key["space"]["precision"] == ["fp32", "bf16"]
    # another size, plugin or architecture is another entry: measured anew
    resolve(StubTrial())
    for kw in ({"image_size": 256}, {"plugin": "acgan"}, {"arch": "G6-D3"}):
        t = StubTrial()
        assert resolve(t, **kw).source == "trial" and t.calls


def test_fixed_setting_overrides_auto():
    trial = StubTrial()
    res = resolve(trial, requested={**AUTO, "precision": "fp32"})
    assert res.variant.precision == "fp32" and res.source == "trial"
    assert all(label.startswith("fp32") for label, _ in trial.calls)
    all_fixed = resolve(StubTrial(), requested={"precision": "bf16", "channels_last": True, "batched": False})
    assert all_fixed.source == "fixed" and all_fixed.variant == Variant("bf16", True, False)


def test_short_run_skips_the_trial_with_safe_default():
    trial = StubTrial()
    res = resolve(trial, total_steps=20)
    assert res.source == "default" and res.variant == SAFE and trial.calls == []


def test_resume_reuses_the_recorded_choice_even_if_cache_disagrees():
    resolve(StubTrial())  # cache says bf16+batched
    rec = Resolution(Variant("bf16", True, False), "trial").record()
    t = StubTrial()
    res = resolve(t, recorded=json.loads(json.dumps(rec)))
    assert res.source == "resume" and res.variant == Variant("bf16", True, False) and t.calls == []
    # a knob fixed now wins over the record
    res = resolve(StubTrial(), recorded=rec, requested={**AUTO, "channels_last": False})
    assert res.variant == Variant("bf16", False, False)


def test_failing_candidate_is_not_chosen_and_env_switches(monkeypatch):
    def trial(v, n):
        if v.precision == "bf16":
            raise RuntimeError("no kernel")
        return [MS[v.label] / 1000.0] * n

    res = resolve(trial)
    assert res.variant == Variant("fp32", True, False) and res.timings_ms["bf16"] is None
    monkeypatch.setenv("AUGENGINE_AUTOTUNE", "retune")
    t = StubTrial()
    assert resolve(t).source == "trial" and t.calls
    monkeypatch.setenv("AUGENGINE_AUTOTUNE", "off")
    assert resolve(StubTrial(), image_size=64).source == "default"
    monkeypatch.setenv("AUGENGINE_AUTOTUNE", "sometimes")
    with pytest.raises(ConfigError, match="AUGENGINE_AUTOTUNE"):
        resolve(StubTrial(), image_size=32)


def test_bad_record_and_knob_errors_name_the_key():
    with pytest.raises(ConfigError, match="'speed_knob'"):
        autotune.candidate_space({"speed_knob": "auto"}, {})
    with pytest.raises(ConfigError, match="'precision'"):
        autotune.candidate_space({"precision": "int8"}, {})
    with pytest.raises(ConfigError, match="'cl'"):
        Variant.from_dict({"cl": True})


def test_trial_budget_limits_candidates():
    # 10 s per fp32 step, 400 steps at 5 % = 200 s; bf16 (50 s a step here) spends it all
    slow = {k: v * 1000 for k, v in MS.items()}
    slow["bf16"] = 50_000.0
    calls = []

    def trial(v, n):
        calls.append(v.label)
        return [slow[v.label] / 1000.0] * n

    clock = {"t": 0.0}
    orig = autotune.time.perf_counter

    def fake_clock():
        return clock["t"]

    def timed_trial(v, n):
        out = trial(v, n)
        clock["t"] += sum(out)
        return out

    autotune.time.perf_counter = fake_clock
    try:
        res = resolve(timed_trial, total_steps=400)
    finally:
        autotune.time.perf_counter = orig
    assert res.source == "trial" and calls == ["fp32", "bf16"] and res.variant == SAFE
    assert any(v is None for v in res.timings_ms.values())


def test_first_candidates_one_time_warm_up_does_not_spend_the_budget(monkeypatch):
    # on a GPU the first step of the first candidate pays the CUDA context and cuDNN set-up
    # (seconds) that the fit would pay anyway; it must not use up the trial budget by itself
    clock = {"t": 0.0}
    monkeypatch.setattr(autotune.time, "perf_counter", lambda: clock["t"])
    calls = []

    def trial(v, n):
        calls.append(v.label)
        secs = [MS[v.label] / 1000.0] * n
        if len(calls) == 1:
            secs[0] += 30.0  # one-time start-up inside the first warm-up step
        clock["t"] += sum(secs)
        return secs

    # budget: 5 % of 4,000 steps × 10 ms = 2 s; without the rule the 30 s start-up spends it
    res = resolve(trial, total_steps=4_000)
    assert res.variant == Variant("bf16", False, True)
    assert "bf16" in calls and len(calls) > 2


def test_a_late_winner_reopens_the_other_knobs():
    # channels_last loses in eager mode and wins once compiled: one pass over the knobs would
    # stop at bf16+compile; the second pass finds bf16+cl+compile
    ms = {"fp32": 10.0, "bf16": 6.0, "bf16+cl": 7.0, "bf16+compile": 5.0, "bf16+cl+compile": 4.0,
          "fp32+compile": 8.0, "fp32+cl+compile": 7.5}
    trial = StubTrial(ms)
    res = resolve(trial, requested={"precision": "auto", "channels_last": "auto", "compile": "auto"},
                  options={"precision": ["fp32", "bf16"], "channels_last": [False, True], "compile": [False, True]},
                  total_steps=1_000_000)
    assert res.variant.label == "bf16+cl+compile"
    labels = [label for label, _ in trial.calls]
    assert labels[:4] == ["fp32", "bf16", "bf16+cl", "bf16+compile"]  # the first pass
    assert len(labels) == len(set(labels))  # nothing measured twice


def test_near_tie_flips_are_tried_together():
    # channels_last and batched passes each lose by 2 % and 0.5 % alone and win by 5 % together:
    # the pair is tried and wins, then the search goes on from it (fp32+cl+batched)
    ms = {"fp32": 10.0, "bf16": 6.0, "bf16+cl": 6.12, "bf16+batched": 6.03, "bf16+cl+batched": 5.7,
          "fp32+cl+batched": 9.0}
    trial, log = StubTrial(ms), []
    res = resolve(trial, total_steps=1_000_000, log=log.append)
    assert res.variant.label == "bf16+cl+batched"
    labels = [label for label, _ in trial.calls]
    assert labels == ["fp32", "bf16", "bf16+cl", "bf16+batched", "bf16+cl+batched", "fp32+cl+batched"]
    assert any("bf16+cl, bf16+batched within 5% of bf16: trying them together" in m for m in log)
    # one flip clearly slower (10 %): no near-tie pair, nothing more measured (the stub has no
    # timing for bf16+cl+batched and would fail if asked)
    ms = {"fp32": 10.0, "bf16": 6.0, "bf16+cl": 6.6, "bf16+batched": 6.03}
    trial = StubTrial(ms)
    res = resolve(trial, total_steps=1_000_000, use_cache=False)
    assert res.variant.label == "bf16" and [label for label, _ in trial.calls] == ["fp32", "bf16", "bf16+cl",
                                                                                    "bf16+batched"]


def test_slow_steps_are_timed_three_times_fast_ones_for_about_a_second():
    slow = StubTrial({k: 100 * v for k, v in MS.items()})  # CPU-like: 0.5 to 1 s a step
    resolve(slow, total_steps=1_000_000)
    assert all(n == 4 for _, n in slow.calls)
    fast = StubTrial({k: 10 * v for k, v in MS.items()})  # first candidate 100 ms → 10 timed steps
    resolve(fast, total_steps=1_000_000, use_cache=False)
    assert fast.calls[0] == ("fp32", 4) and {n for _, n in fast.calls[1:]} == {11}


def test_cudagraphs_is_a_compile_mode():
    v = Variant("bf16", cudagraphs=True)
    assert v.compile and v.compile_mode == "reduce-overhead" and v.label == "bf16+compile+cudagraphs"
    assert Variant("bf16", compile=True).compile_mode is None
    assert Variant.from_dict({"precision": "fp32", "compile": True}).cudagraphs is False  # older records
    # compile fixed off: no CUDA graphs either; asking for both is an error naming the keys
    space = autotune.candidate_space({"compile": False, "cudagraphs": "auto"}, {"cudagraphs": [False, True]})
    assert space["cudagraphs"] == [False]
    with pytest.raises(ConfigError, match="cudagraphs.*compile off"):
        autotune.candidate_space({"compile": False, "cudagraphs": True}, {})


def test_cudagraph_candidates_get_their_warm_up_and_can_win():
    ms = {"fp32": 100.0, "fp32+compile": 60.0, "fp32+compile+cudagraphs": 20.0}
    trial = StubTrial(ms)
    res = resolve(trial, requested={"precision": "fp32", "compile": "auto", "cudagraphs": "auto"},
                  options={"compile": [False, True], "cudagraphs": [False, True]}, total_steps=1_000_000)
    assert res.variant.label == "fp32+compile+cudagraphs"
    calls = dict(trial.calls)
    timed = calls["fp32+compile"] - 3  # 1 warm-up + 2 for compiling
    assert calls["fp32+compile+cudagraphs"] == 5 + timed  # and 2 more to warm up and record the graphs


def test_compiled_candidates_are_charged_the_measured_compile_time():
    class Compiling(StubTrial):
        def __call__(self, v, n):
            self.calls.append((v.label, n))
            secs = [self.ms[v.label] / 1000.0] * n
            if v.compile:
                secs[0] += self.compile_s  # the first step compiles
            return secs

    ms = {"fp32": 100.0, "fp32+compile": 50.0, "fp32+compile+cudagraphs": 20.0}
    req = {"precision": "fp32", "compile": "auto", "cudagraphs": "auto"}
    opts = {"compile": [False, True], "cudagraphs": [False, True]}
    # a budget of 0.05 × 40,000 × 0.1 s = 200 s: room for the assumed 60 s compile and another
    cheap = Compiling(ms)
    cheap.compile_s = 5.0
    res = resolve(cheap, requested=req, options=opts, total_steps=40_000, use_cache=False)
    assert res.variant.label == "fp32+compile+cudagraphs"
    # a compile measured at 250 s leaves no room for another (the assumed 60 s would have)
    slow = Compiling(ms)
    slow.compile_s = 250.0
    res = resolve(slow, requested=req, options=opts, total_steps=40_000, use_cache=False)
    assert res.variant.label == "fp32+compile"
    assert res.timings_ms["fp32+compile+cudagraphs"] is None
    assert [c for c, _ in slow.calls] == ["fp32", "fp32+compile"]


# -- compiling ahead in other processes ------------------------------------------------------------
class DiskCacheTrial:
    """A stub trial that pickles: "compiling" a variant costs COMPILE_S in its first step unless a
    marker in ``root`` (the on-disk cache's stand-in) says some process compiled it before; every
    call is logged with its process id."""

    COMPILE_S = 40.0

    def __init__(self, ms, root, fail_in_child=()):
        self.ms, self.root, self.fail_in_child, self.parent = ms, str(root), set(fail_in_child), os.getpid()

    def __call__(self, v, n):
        from pathlib import Path

        root = Path(self.root)
        with open(root / "calls.txt", "a") as f:
            f.write(f"{os.getpid()} {v.label} {n}\n")
        if os.getpid() != self.parent and v.label in self.fail_in_child:
            raise RuntimeError(f"no compiler for {v.label}")
        secs = [self.ms[v.label] / 1000.0] * n
        marker = root / f"compiled-{v.label}"
        if v.compile and not marker.exists():
            secs[0] += self.COMPILE_S
            marker.touch()
        elif v.compile:
            secs[0] += 0.5  # loading the cached code
        return secs

    def calls(self):
        from pathlib import Path

        rows = [ln.split() for ln in (Path(self.root) / "calls.txt").read_text().splitlines()]
        return [(int(pid) == self.parent, label, int(n)) for pid, label, n in rows]


LATE_WINNER_MS = {"fp32": 10.0, "bf16": 6.0, "bf16+cl": 7.0, "bf16+compile": 5.0, "bf16+cl+compile": 4.0,
                  "fp32+compile": 8.0, "fp32+cl+compile": 7.5}
LATE_WINNER = dict(requested={"precision": "auto", "channels_last": "auto", "compile": "auto"},
                   options={"precision": ["fp32", "bf16"], "channels_last": [False, True], "compile": [False, True]},
                   total_steps=1_000_000)


def test_compiled_candidates_of_a_pass_compile_side_by_side_in_other_processes(tmp_path):
    (tmp_path / "serial").mkdir()
    (tmp_path / "ahead").mkdir()
    serial = resolve(DiskCacheTrial(LATE_WINNER_MS, tmp_path / "serial"), workers=1, use_cache=False, **LATE_WINNER)
    log: list[str] = []
    trial = DiskCacheTrial(LATE_WINNER_MS, tmp_path / "ahead")
    res = resolve(trial, workers=2, use_cache=False, log=log.append, **LATE_WINNER)
    # the same search and choice; only where the compiling happened differs
    assert res.variant == serial.variant and res.variant.label == "bf16+cl+compile"
    assert res.timings_ms == serial.timings_ms
    calls = trial.calls()
    ahead = [(label, n) for here, label, n in calls if not here]
    # the second pass's compiled candidates (the two knobs reopened under compile), with the
    # trial's warm-up steps (1 + 2 for compiling): one pass ahead at a time, not the first
    # pass's single compiled candidate, nor the third's
    assert sorted(ahead) == [("bf16+cl+compile", 3), ("fp32+compile", 3)]
    assert any("side by side (2 processes)" in m for m in log)
    # every variant is still timed here, once
    here = [label for is_here, label, _ in calls if is_here]
    assert len(here) == len(set(here)) and set(here) == {k for k, v in res.timings_ms.items() if v is not None}


def test_compiling_ahead_goes_one_round_at_a_time(tmp_path):
    # pass 2 reopens precision, channels_last and batching under compile: the first round (two
    # processes) compiles fp32+compile and bf16+cl+compile; bf16+cl+compile wins, so batching is
    # tried next from it (bf16+cl+batched+compile, alone: compiled here), never from the old best
    ms = {**LATE_WINNER_MS, "bf16+batched": 6.5, "bf16+cl+batched+compile": 4.5, "bf16+batched+compile": 5.5}
    trial = DiskCacheTrial(ms, tmp_path)
    res = resolve(trial, workers=2, use_cache=False, requested={**LATE_WINNER["requested"], "batched": "auto"},
                  options={**LATE_WINNER["options"], "batched": [False, True]}, total_steps=1_000_000)
    assert res.variant.label == "bf16+cl+compile"
    calls = trial.calls()
    assert sorted(label for here, label, _ in calls if not here) == ["bf16+cl+compile", "fp32+compile"]
    assert "bf16+batched+compile" not in res.timings_ms
    assert res.timings_ms["bf16+cl+batched+compile"] == 4.5


def test_compiling_ahead_takes_no_more_processes_than_the_memory_holds(tmp_path, monkeypatch):
    # each compiling process is taken to need this process's peak memory (at least 1 GiB): with
    # room for one, the candidates compile in turn here
    monkeypatch.setattr(autotune, "_mem_available", lambda: int(1.5 * 2**30))
    log: list[str] = []
    trial = DiskCacheTrial(LATE_WINNER_MS, tmp_path)
    res = resolve(trial, workers=2, use_cache=False, log=log.append, **LATE_WINNER)
    assert res.variant.label == "bf16+cl+compile"
    assert not any("side by side" in m for m in log) and all(here for here, _, _ in trial.calls())
    monkeypatch.setattr(autotune, "_mem_available", lambda: 2**50)
    assert autotune._workers_memory_allows(3) == 3
    monkeypatch.setattr(autotune, "_mem_available", lambda: None)  # not Linux: no bound
    assert autotune._workers_memory_allows(3) == 3


def test_a_candidate_that_fails_to_compile_ahead_compiles_in_the_trial(tmp_path):
    log: list[str] = []
    trial = DiskCacheTrial(LATE_WINNER_MS, tmp_path, fail_in_child={"bf16+cl+compile"})
    res = resolve(trial, workers=2, use_cache=False, log=log.append, **LATE_WINNER)
    assert res.variant.label == "bf16+cl+compile" and res.timings_ms["bf16+cl+compile"] == 4.0
    assert any("bf16+cl+compile failed to compile ahead (exit code 1: RuntimeError: no compiler for "
               "bf16+cl+compile); compiling it here" in m for m in log)


def test_compiling_ahead_is_charged_to_the_trial_budget(tmp_path, monkeypatch):
    # a budget with room for one more compile in turn but not for a round side by side (1.5× one
    # compile) plus loading both: nothing is compiled ahead, the first reopened candidate compiles here
    clock = {"t": 0.0}
    monkeypatch.setattr(autotune.time, "perf_counter", lambda: clock["t"])

    class Clocked(DiskCacheTrial):
        def __call__(self, v, n):
            secs = super().__call__(v, n)
            clock["t"] += sum(secs)
            return secs

    log: list[str] = []
    trial = Clocked(LATE_WINNER_MS, tmp_path)
    # fp32: 10 ms; budget 0.05 × 200,000 × 10 ms = 100 s; pass 1 spends ~40 s compiling bf16+compile
    res = resolve(trial, workers=2, use_cache=False, log=log.append, **{**LATE_WINNER, "total_steps": 200_000})
    assert not any("side by side" in m for m in log)
    assert all(here for here, _, _ in trial.calls())
    assert res.timings_ms["bf16+compile"] == 5.0


def test_workers_setting(monkeypatch):
    monkeypatch.setenv("AUGENGINE_AUTOTUNE_WORKERS", "3")
    assert autotune.precompile_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("AUGENGINE_AUTOTUNE_WORKERS", bad)
        with pytest.raises(ConfigError, match="AUGENGINE_AUTOTUNE_WORKERS.*whole number"):
            autotune.precompile_workers()
    monkeypatch.delenv("AUGENGINE_AUTOTUNE_WORKERS")
    # a third of the process's threads (its share of the cores), at least 2, at most 8; a process
    # of one thread (a bench job's worker on 2 cores) compiles nothing ahead
    for threads, workers in ((1, 1), (2, 2), (16, 5), (64, 8)):
        with monkeypatch.context() as m:
            m.setattr(autotune.torch, "get_num_threads", lambda t=threads: t)
            assert autotune.precompile_workers() == workers, threads
    # a trial that does not pickle (a lambda) compiles every candidate in the trial's process
    calls = []
    res = resolve(lambda v, n: calls.append(v.label) or [LATE_WINNER_MS[v.label] / 1000.0] * n, workers=2,
                  use_cache=False, **LATE_WINNER)
    assert res.variant.label == "bf16+cl+compile"


def test_plugin_trials_run_in_another_process():
    # what compiling ahead sends to another process: the plugin's class, config and device (and
    # the trial method's other arguments); the other process makes the plugin anew and runs it
    import augengine as ae
    from augengine.plugin_api import PluginTrial

    for kind, name, config, args in [
        ("generator", "cyclegan", {"image_size": 32, "n_blocks": 1, "ngf": 8, "ndf": 8}, ()),
        ("generator", "acgan", {"image_size": 32, "batch_size": 4}, (3,)),
        ("classifier", "resnet", {"arch": "resnet18", "image_size": 32, "batch_size": 4, "pretrained": None}, (3,)),
    ]:
        plugin = getattr(ae, f"create_{kind}")(name, device="cpu", **config)
        trial = PluginTrial(plugin, "_trial", *args)
        assert len(trial(SAFE, 1)) == 1  # in this process, on the plugin itself
        assert autotune._precompile(trial, [(Variant("fp32", channels_last=True), 1)], workers=2) == {}, name
