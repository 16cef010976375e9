"""The measured ``auto`` speed settings (augengine.autotune), with stubbed trial timings."""

from __future__ import annotations

import json

import pytest
import torch

from augengine import autotune
from augengine.autotune import SAFE, Resolution, Variant, cache_file, cache_key, resolve_variant
from augengine.errors import ConfigError

@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AUGENGINE_AUTOTUNE", raising=False)


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
