"""CycleGAN speed variants: grouped pairs compute the separate networks, every variant trains the
same losses, and ``auto`` is resolved by a trial, recorded in run.json and reused by resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from augengine.testing import tiny_imageset

from augengine_cyclegan import CycleGanGenerator
from augengine_cyclegan.networks import GroupedPair, PatchDiscriminator, ResnetGenerator, init_normal

TINY = {"image_size": 32, "x_class": "NV", "y_class": "MEL", "ngf": 4, "ndf": 4, "n_blocks": 1,
        "n_epochs": 1, "n_epochs_decay": 1, "iterations": 6, "precision": "fp32", "channels_last": False,
        "sample_every": 0, "log_every": 1, "pool_size": 3, "batched_passes": False, "grouped": False,
        "compile": False}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AUGENGINE_AUTOTUNE", raising=False)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("cls,args", [(ResnetGenerator, (2, 8)), (PatchDiscriminator, (8, 3))])
def test_grouped_pair_equals_the_two_networks(cls, args, channels_last):
    torch.manual_seed(0)
    a, b = init_normal(cls(*args)), init_normal(cls(*args))
    if channels_last:
        a.to(memory_format=torch.channels_last)
        b.to(memory_format=torch.channels_last)
    xa, xb = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ref_a, ref_b = a(xa), b(xb)
    pair = GroupedPair(a, b)
    out_a, out_b = pair.pair(pair(torch.cat([xa, xb], 1)))
    torch.testing.assert_close(out_a, ref_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_b, ref_b, rtol=1e-5, atol=1e-5)
    # a and b are views of the pair's weights: an update of the pair is seen by both
    with torch.no_grad():
        for p in pair.parameters():
            p.mul_(1.5)
    out_a, out_b = pair.pair(pair(torch.cat([xa, xb], 1)))
    torch.testing.assert_close(out_a, a(xa), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_b, b(xb), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a(xa), ref_a)
    # and loading a's state loads into the pair
    a.load_state_dict({k: torch.zeros_like(v) for k, v in a.state_dict().items()})
    out_a, _ = pair.pair(pair(torch.cat([xa, xb], 1)))
    torch.testing.assert_close(out_a, a(xa))


def _losses(seed=0, **cfg):
    g = CycleGanGenerator(**{**TINY, **cfg})
    g.fit(tiny_imageset(n_per_class=4, size=32, seed=0), seed=seed, progress=False)
    return np.array([row[1:9] for row in g.history]), g


@pytest.mark.parametrize("variant", [{"grouped": True}, {"batched_passes": True}, {"grouped": True, "batched_passes": True}])
def test_variants_train_the_same_losses_within_seed_spread(variant):
    base, _ = _losses()
    other_seed, _ = _losses(seed=1)
    got, g = _losses(**variant)
    assert g.speed.source == "fixed"
    spread = np.abs(base - other_seed).mean()
    diff = np.abs(base - got).mean()
    # on a CPU the variants round like the separate networks (1e-3); on CUDA, cuDNN runs grouped
    # and batched convolutions with other algorithms (TF32 included): 0.0026 against a spread of
    # 0.35 on an H200 — still far inside the seed spread
    tol = 1e-3 if g.device.type == "cpu" else 0.02 * spread
    assert diff < tol < spread, (diff, spread)


def test_grouped_run_saves_separate_networks_and_reloads(tmp_path):
    _, g = _losses(grouped=True)
    g.save(tmp_path / "run")
    h = CycleGanGenerator.load(tmp_path / "run")
    assert h.variant.grouped
    imgs = tiny_imageset(n_per_class=2, size=32, seed=3).images(32)
    a, _ = g.translate(imgs, np.zeros(len(imgs)))
    b, _ = h.translate(imgs, np.zeros(len(imgs)))
    np.testing.assert_array_equal(a, b)
    # a grouped checkpoint reopens ungrouped (same state dict keys and shapes)
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["speed"]["variant"]["grouped"] is True and rec["speed"]["source"] == "fixed"


def test_auto_is_measured_recorded_and_reused_by_resume(tmp_path, monkeypatch):
    calls = []

    def fake_trial(self, v, n):  # stubbed timings: grouped bf16-free fp32 variant wins
        calls.append(v.label)
        return [0.001 if v.grouped else 0.002] * n

    monkeypatch.setattr(CycleGanGenerator, "_trial", fake_trial)
    cfg = {**TINY, "grouped": "auto", "batched_passes": "auto", "n_epochs": 2000, "iterations": 4000,
           "checkpoint_every": 2}
    cfg_short = {**cfg, "iterations": 4}
    g = CycleGanGenerator(**cfg_short)
    g.fit(tiny_imageset(n_per_class=4, size=32, seed=0), run_dir=tmp_path / "short", progress=False)
    assert g.speed.source == "default" and not calls  # shorter than the trial: safe default

    g = CycleGanGenerator(**cfg)
    stops = []
    g._on_step = lambda step: stops.append(step) or (step == 4 and (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        g.fit(tiny_imageset(n_per_class=4, size=32, seed=0), run_dir=tmp_path / "run", progress=False)
    assert g.speed.source == "trial" and g.variant.grouped and calls
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["speed"]["variant"]["grouped"] is True and rec["speed"]["source"] == "trial"

    # the cache now says grouped; pretend it says otherwise: resume must still use the record
    calls.clear()
    monkeypatch.setattr(CycleGanGenerator, "_trial", lambda self, v, n: calls.append(v.label) or [0.001] * n)
    monkeypatch.setenv("AUGENGINE_AUTOTUNE", "retune")
    h = CycleGanGenerator(**cfg)
    h._on_step = lambda step: step == 6 and (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        h.fit(tiny_imageset(n_per_class=4, size=32, seed=0), run_dir=tmp_path / "run", resume=True, progress=False)
    assert h.speed.source == "resume" and h.variant.grouped and not calls


def test_losses_read_only_when_needed_still_name_the_diverged_iteration(tmp_path, monkeypatch):
    from augengine.errors import TrainingDiverged

    orig = CycleGanGenerator._train_step
    count = {"n": 0}

    def step(self, x, y):
        out = orig(self, x, y)
        count["n"] += 1
        assert isinstance(out, torch.Tensor)  # not read (no sync) inside the step
        return out * float("nan") if count["n"] == 3 else out

    monkeypatch.setattr(CycleGanGenerator, "_train_step", step)
    g = CycleGanGenerator(**{**TINY, "iterations": 8, "log_every": 5, "checkpoint_every": 5})
    with pytest.raises(TrainingDiverged, match=r"iteration 3 \(epoch"):
        g.fit(tiny_imageset(n_per_class=4, size=32, seed=0), run_dir=tmp_path / "run", progress=False)
    assert count["n"] == 5 and not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing written after it


@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 0, 1, 3)])
def test_reflection_pad_by_copies_equals_torch_reflect(padding):
    # the deterministic CUDA path (deterministic=true): same values and gradients as F.pad
    import torch.nn.functional as F
    from augengine_cyclegan.networks import _reflect_by_copies

    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    a, b = F.pad(x, padding, mode="reflect"), _reflect_by_copies(x, padding)
    assert torch.equal(a, b)
    g = torch.randn_like(a)
    (ga,), (gb,) = torch.autograd.grad(a, x, g), torch.autograd.grad(b, x, g)
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("variant", [{"compile": True}, {"compile": True, "cudagraphs": True, "grouped": True, "batched_passes": True}])
def test_compiled_variants_train_the_same_losses(variant):
    # torch.compile (and its CUDA-graph mode on a GPU: benchmarks/gpu.sh runs this file there)
    # keeps the eager losses: fused kernels round differently, far inside the seed spread
    base, _ = _losses()
    other_seed, _ = _losses(seed=1)
    got, g = _losses(**variant)
    assert g.variant.compile and g.variant.cudagraphs == bool(variant.get("cudagraphs"))
    assert np.isfinite(got).all()
    diff, spread = np.abs(base - got).mean(), np.abs(base - other_seed).mean()
    assert diff < 0.05 * spread, (diff, spread)


def test_a_variant_compiled_ahead_in_another_process_is_a_cache_hit_here(tmp_path, monkeypatch):
    # the point of compiling trial candidates ahead (augengine.autotune): the process that times
    # them then finds every compiled graph in torch.compile's on-disk caches — also when it runs
    # with other settings than a fresh process has by default (here: 1 thread, as in the tests)
    from torch._dynamo.utils import counters

    from augengine import autotune
    from augengine.plugin_api import PluginTrial, Variant

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    g = CycleGanGenerator(**{**TINY, "device": "cpu"})
    trial = PluginTrial(g)
    v = Variant("fp32", grouped=True, compile=True)
    assert autotune._precompile(trial, [(v, 3)], workers=2) == {}
    counters.clear()
    try:
        assert len(trial(v, 3)) == 3
    finally:
        torch.compiler.reset()
    assert counters["inductor"]["fxgraph_cache_miss"] == 0, dict(counters["inductor"])
    assert counters["inductor"]["fxgraph_cache_hit"] >= 4, dict(counters["inductor"])  # G/F and D, fwd and bwd


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (benchmarks/gpu.sh runs this)")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_translation_replayed_as_cuda_graph_equals_the_eager_pass(precision):
    _, g = _losses(precision=precision, channels_last=precision == "bf16", device="cuda")
    imgs = tiny_imageset(n_per_class=6, size=32, seed=3).images(32)[:20]
    assert len(imgs) >= 16  # enough images for the replayed path
    replayed = g._apply("G", imgs)
    assert any(v is not None for v in g._replays.values())
    eager = np.concatenate([g._apply("G", imgs[i:i + 8]) for i in range(0, len(imgs), 8)])  # < 16: eager
    assert np.abs(replayed.astype(int) - eager).max() <= 1
    # weights updated in place (as training and loading do) are what the next replay computes with
    with torch.no_grad():
        for p in g.G.parameters():
            p.mul_(0.5)
    again = g._apply("G", imgs)
    eager2 = np.concatenate([g._apply("G", imgs[i:i + 8]) for i in range(0, len(imgs), 8)])
    assert np.abs(again.astype(int) - eager2).max() <= 1 and not np.array_equal(again, replayed)
