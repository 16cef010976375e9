"""Plan estimates from the work: arithmetic on stub plugins with known work, recorded times, caches, ETA."""

from __future__ import annotations

import io
import json

import pytest
import torch

import augengine as ae
from augengine.bench.estimate import (
    MATMUL,
    REFERENCE_GPU,
    EtaBar,
    Estimator,
    count_flops,
    estimate_cache_file,
    format_estimate,
    probe_throughput,
)
from augengine.bench.runner import Bench
from augengine.work import ClassifierPass, Work
from benchkit import MeanColourClassifier, tiny_config, tiny_loader

RATE = 2e9  # FLOP/s the fake probe "measures"


@pytest.fixture
def probes(monkeypatch, tmp_path):
    monkeypatch.setenv("AUGENGINE_CACHE", str(tmp_path / "cache"))  # a cache of this test's own
    calls = []

    def fake_probe(work, device):
        calls.append(work.what)
        return {"flops_per_s": RATE, "points": []}

    return calls, fake_probe


def _bench(tmp_path, **over):
    cfg = tiny_config(**over)
    return Bench(cfg, tmp_path / "out", loader=tiny_loader, progress=False)


def test_stub_work_arithmetic(tmp_path, probes):
    calls, fake = probes
    b = _bench(tmp_path, arms=[], classifier_seeds=[0, 1])
    est = Estimator(b, probe=fake, device="cpu")
    d = b.data
    n_train, n_test = len(d.train), len(d.test)
    units = {u.kind: [] for u in b.plan().units}
    for u in b.plan().units:
        units[u.kind].append(u)
    fit = est.unit(units["clffit"][0])
    assert fit.source == "estimated"
    assert fit.flops == pytest.approx(n_train * MeanColourClassifier.FIT_FLOPS)
    assert fit.seconds == pytest.approx(n_train * MeanColourClassifier.FIT_FLOPS / RATE)
    ev = est.unit(units["eval"][0])  # baseline eval: both seeds' fits predict the test set once
    assert ev.flops == pytest.approx(2 * n_test * MeanColourClassifier.PREDICT_FLOPS)
    assert ev.seconds == pytest.approx(ev.flops / RATE)
    assert est.unit(units["split"][0]).flops == 0
    # the stubs' steps have no make(): the machine's matmul rate stands in, probed once for every unit
    assert calls == [MATMUL.what]

    lines = format_estimate(b, est, disk=lambda u: 1e6)
    total = next(x for x in lines if x.startswith("total"))
    want = 2 * fit.flops + ev.flops
    assert f"{want / 1e12:.1f}" in total
    assert f"{len(b.plan().units)} / {len(b.plan().units)}" in total
    gpu_h = want / REFERENCE_GPU.flops_per_s(1) / 3600  # the stubs' steps are one image each
    assert total.split()[-1] == f"{gpu_h:.2f}"
    assert any("ASSUMED" in x and "An assumption, not a measurement" in x for x in lines)


def test_amount_adds_synthetic_images_and_unreported_work_is_named(tmp_path, probes):
    _, fake = probes
    b = _bench(tmp_path, amounts=[6], arms=[{"name": "noise", "generator": "example-noise"}])
    est = Estimator(b, probe=fake)
    n = len(b.data.train)
    fits = [u for u in b.plan().units if u.kind == "clffit" and u.spec["amount"] is not None]
    assert est.unit(fits[0]).flops == pytest.approx((n + 6) * MeanColourClassifier.FIT_FLOPS)
    gen = next(u for u in b.plan().units if u.kind == "genfit")
    assert est.unit(gen).source == "not reported"  # the example plugin does not declare work()
    lines = format_estimate(b, est)
    assert any(x.startswith("genfit") and "not reported" in x for x in lines)
    assert any("report no work are not counted" in x for x in lines)


def test_finished_unit_counts_with_its_recorded_seconds(tmp_path, probes):
    _, fake = probes
    b = _bench(tmp_path, arms=[])
    u = next(u for u in b.plan().units if u.kind == "clffit")
    d = b.unit_dir(u)
    d.mkdir(parents=True)
    (d / "done.json").write_text(json.dumps({"seconds": 123.0, "result": {}}))
    est = Estimator(b, probe=fake)
    e = est.unit(u, json.loads((d / "done.json").read_text()))
    assert (e.source, e.seconds) == ("recorded", 123.0)
    assert e.flops == pytest.approx(len(b.data.train) * MeanColourClassifier.FIT_FLOPS)
    lines = format_estimate(b, est)
    row = next(x for x in lines if x.startswith("clffit"))
    assert row.split()[1:4] == ["1", "/", "2"]  # one of the two fits still to run
    assert any("finished units: 0.03 h recorded" in x for x in lines)


def test_probe_cache_is_hit_the_second_time(tmp_path, probes):
    calls, fake = probes
    b = _bench(tmp_path, arms=[])
    Estimator(b, probe=fake).work_seconds(
        Estimator(b, probe=fake).unit_work(next(u for u in b.plan().units if u.kind == "clffit")))
    assert len(calls) == 1
    assert estimate_cache_file().exists()
    est = Estimator(b, probe=fake)  # a new process would read the same file
    f, s = est.work_seconds(est.unit_work(next(u for u in b.plan().units if u.kind == "clffit")))
    assert len(calls) == 1 and est.probes == 0
    assert s == pytest.approx(f / RATE)
    assert Estimator(b, probe=fake, use_cache=False).rate(
        Work("x", 1, {"plugin": "mean-colour", "mode": "fit"}, flops=1.0)) == RATE
    assert len(calls) == 2


def _mlp_make(b, s, device):
    lin = torch.nn.Linear(s, s).to(device)
    x = torch.randn(b, s, device=device)
    return lambda: lin(x).sum().backward()


def test_flops_counted_on_meta_and_probe_measures_a_rate():
    f = count_flops(_mlp_make, 4, 32)
    assert f == 2 * (2 * 4 * 32 * 32)  # forward and the weight gradient (the input needs none)
    w = Work("linear", 10, {"t": "mlp"}, batch=64, image_size=32, make=_mlp_make)
    res = probe_throughput(w, torch.device("cpu"), step_budget_s=0.05)
    assert res["flops_per_s"] > 0 and res["points"] and res["probe_seconds"] < 30
    assert all(p[0] <= 64 for p in res["points"])


@pytest.mark.parametrize("kind,name,config,phases", [
    ("classifier", "resnet", {"arch": "resnet18", "image_size": 32, "epochs": 2, "batch_size": 8, "lr": 1e-3},
     ("fit", "predict")),
    ("generator", "acgan", {"image_size": 32, "iterations": 5, "batch_size": 4, "g_channels": [32, 16, 8],
                            "d_channels": [8, 16, 32, 64], "d_strides": [2, 1, 2, 1]}, ("fit", "generate")),
    ("generator", "cyclegan", {"image_size": 32, "n_blocks": 1, "ngf": 8, "ndf": 8, "x_class": "NV",
                               "y_class": "MEL", "iterations": 7}, ("fit", "generate")),
])
def test_builtin_work_counts_on_meta_as_on_cpu(kind, name, config, phases):
    cls = ae.get_plugin_class(kind, name)
    full = cls.Config.model_validate(config).model_dump()
    counts = {"NV": 20, "MEL": 10, "BCC": 5}
    for phase in phases:
        items = cls.work(full, phase=phase, n_images=40, class_counts=counts, n_val=8)
        assert items and all(isinstance(w, Work) and w.make is not None for w in items)
        for w in items:
            meta = count_flops(w.make, 2, w.image_size)
            from torch.utils.flop_counter import FlopCounterMode

            with torch.random.fork_rng(devices=[]):
                step = w.make(2, w.image_size, torch.device("cpu"))
                with FlopCounterMode(display=False) as fc:
                    step()
            assert meta == fc.get_total_flops() > 0, w.what
    if name == "cyclegan":
        assert cls.work(full, phase="fit", n_images=0, class_counts=counts)[0].count == 7
        long = {**full, "iterations": None, "n_epochs": 2, "n_epochs_decay": 1}
        assert cls.work(long, phase="fit", n_images=0, class_counts=counts)[0].count == 20 * 3  # max(|X|, |Y|)
    if name == "resnet":
        fit = cls.work(full, phase="fit", n_images=40, class_counts=counts, n_val=8)
        assert fit[0].count == 2 * (40 // 8) and fit[1].count == pytest.approx(2 * 8 / 256)


def test_filter_and_evaluators_report_classifier_passes():
    pr = ae.get_plugin_class("filter", "path-rank")
    assert pr.work({}, phase="score", n_images=30) == [ClassifierPass(30, "path-rank scores")]
    ben = ae.get_plugin_class("evaluator", "benefit")
    assert ben.work({}, phase="evaluate", n_images=10, n_classifiers=4)[0].n_images == 40


class _FakeEst:
    def __init__(self, secs):
        self.secs = secs

    def unit(self, u):
        from augengine.bench.estimate import UnitEstimate

        return UnitEstimate(1.0, self.secs[u.key], "estimated")


class _U:
    def __init__(self, key):
        self.key = key


def test_eta_uses_estimates_corrected_by_finished_units():
    from tqdm import tqdm

    bar = tqdm(total=3, file=io.StringIO(), disable=False, bar_format=EtaBar.FORMAT)
    eta = EtaBar(bar, bench=None, estimator=_FakeEst({"a": 100.0, "b": 300.0, "c": 600.0}))
    units = [_U("a"), _U("b"), _U("c")]
    eta.plan(units)
    assert eta.remaining() == pytest.approx(1000.0, abs=1.0)
    eta.unit_done(units[0], {"status": "done", "seconds": 200.0})  # twice as slow as estimated
    assert eta.ratio() == pytest.approx(2.0)
    assert eta.remaining() == pytest.approx(2 * 900.0, abs=1.0)
    assert "left" in bar.desc
    eta.unit_done(units[1], {"status": "done", "seconds": 0.0, "cached": True})  # cached: no correction
    assert eta.ratio() == pytest.approx(2.0)
    assert eta.remaining() == pytest.approx(1200.0, abs=1.0)
    bar.close()


def test_bench_run_with_eta_bar(tmp_path, probes, monkeypatch):
    _, fake = probes
    monkeypatch.setattr("augengine.bench.estimate.probe_throughput", fake)
    cfg = tiny_config(arms=[])
    b = Bench(cfg, tmp_path / "out", loader=tiny_loader, progress=True)
    s = b.run()
    assert s.exit_code == 0
    out = Bench(cfg, tmp_path / "out", loader=tiny_loader, progress=False).dry_run()
    n = s.total
    total = next(x for x in out.splitlines() if x.startswith("total"))
    assert total.split()[1:4] == ["0", "/", str(n)]  # nothing left to run
    assert "finished units:" in out and "h recorded" in out


def test_failing_work_hook_costs_its_units_only(tmp_path, probes, monkeypatch):
    _, fake = probes
    b = _bench(tmp_path, arms=[])

    def broken(cls, config, **kw):
        raise ValueError("widths do not fit 256 px")

    monkeypatch.setattr(MeanColourClassifier, "work", classmethod(broken))
    est = Estimator(b, probe=fake)
    u = next(u for u in b.plan().units if u.kind == "clffit")
    assert est.unit(u).source == "not reported"
    lines = format_estimate(b, est)
    assert any("work() failed: ValueError: widths do not fit 256 px" in x for x in lines)


def test_autotune_trial_timings_are_reused(tmp_path, probes):
    from augengine import autotune

    calls, fake = probes
    b = _bench(tmp_path, arms=[])
    est = Estimator(b, probe=fake, device="cpu")
    key = autotune.cache_key(plugin="cyclegan", arch="G1x8", image_size=32, device="cpu", space={"precision": ["fp32"]})
    res = autotune.Resolution(autotune.Variant(), "trial", key, {"fp32": 40.0, "bf16": 20.0, "fp32+cl": None})
    autotune._store(key, res)
    w = Work("cyclegan step", 10, {"plugin": "cyclegan", "autotune": {"plugin": "cyclegan", "arch": "G1x8",
                                                                    "image_size": 32}}, 1, 32, flops=4e9)
    assert est.rate(w) == pytest.approx(4e9 / 0.020)  # the fastest variant's step: 20 ms
    assert calls == []
