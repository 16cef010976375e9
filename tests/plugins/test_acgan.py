"""Tests of the ``acgan`` generator plugin (tiny models, 16–32 px, a few steps each)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.errors import ConfigError, TrainingDiverged
from augengine.testing import GeneratorContract, assert_weights_only_loadable, tiny_imageset

from augengine_acgan import AcganGenerator
from augengine_acgan.diffaugment import diff_augment
from augengine_acgan.generator import BatchSampler
from augengine_acgan.models import AcganD, AcganG

# A tiny model: 16 px = one upsampling stage, narrow D.
TINY16 = {"image_size": 16, "g_channels": [16], "d_channels": [8, 8, 16, 16, 16, 16], "batch_size": 8,
          "iterations": 4, "latent_dim": 16, "checkpoint_every": 2, "sample_every": 2, "log_every": 1}
TINY32 = {**TINY16, "image_size": 32, "g_channels": [16, 8]}


class TestAcganContract(GeneratorContract):
    plugin_name = "acgan"
    config = TINY16


def _train(size=16, **kw):
    return tiny_imageset(n_per_class=6, size=size, seed=0, **kw)


def _weights(gen: AcganGenerator) -> dict[str, torch.Tensor]:
    sd = {f"G.{k}": v for k, v in gen.G.state_dict().items()}
    sd.update({f"D.{k}": v for k, v in gen.D.state_dict().items()})
    return sd


def _assert_same_weights(a: AcganGenerator, b: AcganGenerator) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


# -- architecture -------------------------------------------------------------------------------
@pytest.mark.parametrize("size,widths", [(32, [768, 384, 3]), (64, [768, 384, 256, 3]),
                                         (128, [768, 384, 256, 192, 3])])
def test_paper_architecture_shapes(size, widths):
    K = 7
    g = AcganG(size, 100, K, [768, 384, 256, 192])
    d = AcganD(size, K, [16, 32, 64, 128, 256, 512], [2, 1, 2, 1, 2, 1])
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.in_channels for c in convs] + [3] == widths
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert g.fc.in_features == 100 + K and g.fc.out_features == 768 * 8 * 8
    dconvs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in dconvs] == [16, 32, 64, 128, 256, 512]
    assert [c.stride[0] for c in dconvs] == [2, 1, 2, 1, 2, 1] and all(c.kernel_size == (3, 3) for c in dconvs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 5  # not on the first conv
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in d.modules()) == 6
    assert d.source.in_features == 512 * (size // 8) ** 2 and d.classes.out_features == K
    g.eval(), d.eval()
    with torch.no_grad():
        x = g(torch.randn(2, 100), torch.tensor([0, K - 1]))
        assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
        s, c = d(x)
    assert s.shape == (2,) and c.shape == (2, K)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_is_the_same_function_in_either_memory_format(spectral_norm):
    # under channels_last the heads read the features in (H, W, C) order with reordered weights
    torch.manual_seed(0)
    d = AcganD(32, 5, [8, 8, 16, 16, 32, 32], [2, 1, 2, 1, 2, 1], spectral_norm=spectral_norm).eval()
    d_cl = copy.deepcopy(d).to(memory_format=torch.channels_last)
    x = torch.randn(3, 3, 32, 32)
    x_cl = x.clone().to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    out, out_cl = d(x), d_cl(x_cl)
    for a, b in zip(out, out_cl):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    (out[0].sum() + out[1].square().sum()).backward()
    (out_cl[0].sum() + out_cl[1].square().sum()).backward()
    torch.testing.assert_close(x.grad, x_cl.grad, rtol=1e-4, atol=1e-6)
    for (name, p), p_cl in zip(d.named_parameters(), d_cl.parameters()):
        assert p.shape == p_cl.shape, name  # the same state dict in both formats
        torch.testing.assert_close(p.grad, p_cl.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_parameter_count_matches_the_table():
    K = 7
    g = AcganG(128, 100, K, [768, 384, 256, 192])
    fc = (100 + K) * 768 * 64 + 768 * 64
    convt = 768 * 384 * 25 + 384 * 256 * 25 + 256 * 192 * 25 + 192 * 3 * 25 + 3  # bias only on the last
    bn = 2 * (384 + 256 + 192)
    assert sum(p.numel() for p in g.parameters()) == fc + convt + bn
    d = AcganD(128, K, [16, 32, 64, 128, 256, 512], [2, 1, 2, 1, 2, 1])
    chans = [3, 16, 32, 64, 128, 256, 512]
    conv = sum(a * b * 9 + b for a, b in zip(chans[:-1], chans[1:]))
    bn = 2 * sum(chans[2:])
    heads = (512 * 16 * 16 + 1) * (1 + K)
    assert sum(p.numel() for p in d.parameters()) == conv + bn + heads


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="image_size") as e:
        AcganGenerator(image_size=48)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="g_channels"):
        AcganGenerator(image_size=128, g_channels=[64, 32])
    with pytest.raises(ConfigError, match="diffaugment"):
        AcganGenerator(diffaugment=["rotate"])


def test_defaults_follow_the_paper():
    c = AcganGenerator().config
    assert c.image_size == 128 and c.g_channels == [768, 384, 256, 192]
    assert c.d_channels == [16, 32, 64, 128, 256, 512] and c.d_strides == [2, 1, 2, 1, 2, 1]
    assert c.lr == 2e-4 and tuple(c.betas) == (0.5, 0.999) and c.d_dropout == 0.5 and c.leaky_slope == 0.2
    assert c.loss == "bce" and not c.spectral_norm and not c.ema and c.diffaugment == []
    assert not c.balanced_real and not c.balanced_fake_labels and c.lr_g is None and c.lr_d is None


# -- training -----------------------------------------------------------------------------------
def test_fit_writes_run_dir(tmp_path):
    gen = AcganGenerator(TINY16)
    gen.fit(_train(), run_dir=tmp_path, seed=0, progress=False)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    from PIL import Image

    grid = Image.open(tmp_path / "samples" / "step_0000004.png")
    assert grid.size[1] > 3 * 16  # one row per class (3 classes)
    rows = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "losses.png").stat().st_size > 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["name"] == "acgan" and record["class_names"] == ["MEL", "NV", "BKL"]
    assert record["train_counts"] == {"MEL": 6, "NV": 6, "BKL": 6}
    state = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert {"G", "D", "opt_g", "opt_d", "G_ema", "rng_torch", "rng_data", "step"} <= set(state)
    assert state["step"] == 4 and isinstance(state["rng_data"], torch.Tensor)


def test_same_seed_same_weights_other_seed_differs():
    a = AcganGenerator(TINY16).fit(_train(), seed=5, progress=False)
    b = AcganGenerator(TINY16).fit(_train(), seed=5, progress=False)
    _assert_same_weights(a, b)
    c = AcganGenerator(TINY16).fit(_train(), seed=6, progress=False)
    assert not torch.equal(a.G.fc.weight, c.G.fc.weight)


_KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import augengine_acgan.generator as mod
from augengine.testing import tiny_imageset

real_save = mod.save_checkpoint
def save_then_die(state, path):
    real_save(state, path)
    if state["step"] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
mod.save_checkpoint = save_then_die
gen = mod.AcganGenerator({config})
gen.fit(tiny_imageset(n_per_class=6, size=32, seed=0), run_dir=sys.argv[1], seed=3, progress=False)
"""


def test_resume_after_sigkill_equals_uninterrupted(tmp_path):
    cfg = {**TINY32, "iterations": 6, "ema": True, "diffaugment": ["translation", "cutout"]}
    run = tmp_path / "killed"
    script = _KILL_SCRIPT.format(kill_at=4, config=repr(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(run)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = AcganGenerator(cfg).fit(_train(32), run_dir=run, resume=True, seed=3, progress=False)
    full = AcganGenerator(cfg).fit(_train(32), run_dir=tmp_path / "full", seed=3, progress=False)
    _assert_same_weights(resumed, full)
    for a, b in zip(resumed.G_ema.parameters(), full.G_ema.parameters()):
        assert torch.equal(a, b)
    steps = [json.loads(x)["step"] for x in (run / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_huge_lr_diverges_with_one_line_error_and_no_nan_checkpoint(tmp_path):
    gen = AcganGenerator({**TINY16, "lr": 1e30, "iterations": 30, "checkpoint_every": 1, "precision": "fp32"})
    with pytest.raises(TrainingDiverged, match=r"became nan at step 1; no checkpoint written yet") as e:
        gen.fit(_train(), run_dir=tmp_path, seed=0, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_nan_from_monkeypatched_loss(tmp_path, monkeypatch):
    import augengine_acgan.generator as mod

    real_ce = mod.F.cross_entropy
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real_ce(*a, **k)
        return out * float("nan") if calls["n"] > 9 else out  # 3 CE calls per step → step 4

    monkeypatch.setattr(mod.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingDiverged, match="at step 4"):
        AcganGenerator({**TINY16, "iterations": 8}).fit(_train(), run_dir=tmp_path, seed=0, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2


OPTIONS = {
    "spectral_norm": {"spectral_norm": True},
    "hinge": {"loss": "hinge"},
    "diffaugment": {"diffaugment": ["color", "translation", "cutout"]},
    "ema": {"ema": True, "ema_decay": 0.5},
    "ttur": {"lr_g": 1e-4, "lr_d": 4e-4},
    "balanced": {"balanced_real": True, "balanced_fake_labels": True},
    "embedding": {"class_embedding": "embedding", "embedding_dim": 8},
    "minimax": {"g_source_loss": "minimax"},
    "fp32_contiguous": {"precision": "fp32", "channels_last": "off"},
    "bf16_channels_last": {"precision": "bf16", "channels_last": "on"},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_trains_with_finite_moving_losses(name, tmp_path):
    gen = AcganGenerator({**TINY16, "iterations": 5, **OPTIONS[name]})
    gen.fit(_train(counts=[10, 3, 3]), run_dir=tmp_path, seed=0, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    for key in ("loss_d", "loss_g"):
        vals = [r[key] for r in rows]
        assert all(np.isfinite(vals)), (key, vals)
        assert len(set(vals)) > 1, f"{key} did not move: {vals}"
    if name == "spectral_norm":
        assert hasattr(gen.D.source, "parametrizations")
    if name == "ema":
        assert gen.G_ema is not None and not torch.equal(gen.G_ema.fc.weight, gen.G.fc.weight)
        out = gen.sample(np.array([0, 1]), np.array([1, 2]))
        assert out.shape == (2, 16, 16, 3)
    if name == "embedding":
        assert gen.G.embed.weight.shape == (3, 8)
    loaded = ae.load_run(tmp_path)
    np.testing.assert_array_equal(loaded.sample(np.array([0, 2]), np.array([7, 8])),
                                  gen.sample(np.array([0, 2]), np.array([7, 8])))


@pytest.mark.parametrize("precision,channels_last", [("fp32", "off"), ("bf16", "on")])
def test_compiled_networks_train_the_eager_losses(precision, channels_last, tmp_path):
    """torch.compile is a speed knob, not a model change: the same seed trains the same losses.
    The dropout masks come from torch's generator eagerly in either case (the fp32 compiled step
    used to fail in AOTAutograd on the masks' dtype view)."""
    losses = {}
    for compiled in (False, True):
        run = tmp_path / str(compiled)
        cfg = {**TINY16, "iterations": 3, "precision": precision, "channels_last": channels_last,
               "compile": compiled}
        AcganGenerator(cfg).fit(_train(), run_dir=run, seed=0, progress=False)
        rows = [json.loads(x) for x in (run / "losses.jsonl").read_text().splitlines()]
        losses[compiled] = np.array([[r["loss_d"], r["loss_g"]] for r in rows])
    assert losses[True].shape == (3, 2) and np.isfinite(losses[True]).all()
    tol = 1e-3 if precision == "fp32" else 3e-2  # bf16: fused kernels round differently
    np.testing.assert_allclose(losses[True], losses[False], rtol=tol, atol=tol)


def test_ttur_sets_separate_learning_rates(tmp_path):
    gen = AcganGenerator({**TINY16, "iterations": 1, "lr_g": 1e-4, "lr_d": 4e-4})
    gen.fit(_train(), run_dir=tmp_path, seed=0, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-4
    assert state["opt_d"]["param_groups"][0]["lr"] == 4e-4


def test_class_balanced_sampling():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1, dtype=np.int64)
    rng = torch.Generator().manual_seed(0)
    plain = BatchSampler(labels, 4)
    bal = BatchSampler(labels, 4, balanced_real=True, balanced_fake_labels=True)
    n = 6000
    real_plain = np.bincount(plain.labels[plain.real(n, rng)].numpy(), minlength=4) / n
    real_bal = np.bincount(bal.labels[bal.real(n, rng)].numpy(), minlength=4) / n
    fake_plain = np.bincount(plain.fake_labels(n, rng).numpy(), minlength=4) / n
    fake_bal = np.bincount(bal.fake_labels(n, rng).numpy(), minlength=4) / n
    np.testing.assert_allclose(real_plain, [0.9, 0.09, 0.01, 0], atol=0.02)
    np.testing.assert_allclose(fake_plain, [0.9, 0.09, 0.01, 0], atol=0.02)
    np.testing.assert_allclose(real_bal, [1 / 3, 1 / 3, 1 / 3, 0], atol=0.03)  # class 3 has no images
    np.testing.assert_allclose(fake_bal, [1 / 3, 1 / 3, 1 / 3, 0], atol=0.03)
    assert set(bal.real(500, rng).numpy()) >= {99}  # the single class-2 image is drawn


def test_diffaugment_shapes_gradients_and_determinism():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    pol = ["color", "translation", "cutout"]
    y1 = diff_augment(x, pol, torch.Generator().manual_seed(1))
    y2 = diff_augment(x, pol, torch.Generator().manual_seed(1))
    y3 = diff_augment(x, pol, torch.Generator().manual_seed(2))
    assert y1.shape == x.shape and torch.equal(y1, y2) and not torch.equal(y1, y3)
    y1.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(8, 3, 16, 16), ["cutout"], torch.Generator().manual_seed(0))
    zero_frac = (cut == 0).float().mean().item()
    assert 0.1 < zero_frac < 0.3  # an 8×8 square of 16×16 (clipped at borders) per image


# -- sampling and generation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained16(tmp_path_factory):
    run = tmp_path_factory.mktemp("acgan16")
    gen = AcganGenerator({**TINY16, "sample_batch_size": 4})
    gen.fit(_train(), run_dir=run, seed=0, progress=False)
    return gen, run


def test_sample_depends_only_on_label_and_seed(trained16):
    gen, _ = trained16
    labels = np.array([0, 1, 2, 1, 0, 2], dtype=np.int64)
    seeds = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    full = gen.sample(labels, seeds)
    assert full.dtype == np.uint8 and full.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(gen.sample(labels[3:4], seeds[3:4])[0], full[3])
    np.testing.assert_array_equal(gen.sample(labels[::-1], seeds[::-1])[::-1], full)
    other_label = gen.sample(np.array([2]), seeds[3:4])[0]
    assert not np.array_equal(other_label, full[3])


def test_generate_same_seed_and_resume(trained16, tmp_path, monkeypatch):
    gen, _ = trained16
    a = gen.generate(20, out=tmp_path / "a.h5", seed=4, chunk_size=4, batch_size=4, progress=False)
    b = gen.generate(20, out=tmp_path / "b.h5", seed=4, chunk_size=4, batch_size=4, progress=False)
    np.testing.assert_array_equal(a.images(), b.images())
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.attrs["generator"] == "acgan"

    calls = {"n": 0}
    real_sample = AcganGenerator.sample

    def dying(self, labels, seeds):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_sample(self, labels, seeds)

    monkeypatch.setattr(AcganGenerator, "sample", dying)
    with pytest.raises(KeyboardInterrupt):
        gen.generate(20, out=tmp_path / "c.h5", seed=4, chunk_size=4, batch_size=4, progress=False)
    monkeypatch.setattr(AcganGenerator, "sample", real_sample)
    c = gen.generate(20, out=tmp_path / "c.h5", seed=4, chunk_size=4, batch_size=4, resume=True, progress=False)
    np.testing.assert_array_equal(c.images(), a.images())
    np.testing.assert_array_equal(c.labels, a.labels)


def test_checkpoint_loads_weights_only_and_load_run(trained16):
    gen, run = trained16
    assert_weights_only_loadable(run)
    loaded = ae.load_run(run)
    assert isinstance(loaded, AcganGenerator) and loaded.train_counts == gen.train_counts
    assert not loaded.G.training
    _assert_same_weights(loaded, gen)


def test_cpu_dropout_masks_are_seeded_unbiased_and_keep_the_layout():
    from augengine_acgan.models import Dropout

    x = torch.randn(8, 16, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
    drop = Dropout(0.5).train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)  # the global generator decides the masks
    assert a.is_contiguous(memory_format=torch.channels_last)
    kept = a != 0
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    torch.testing.assert_close(a[kept], 2 * x[kept])  # kept values scaled by 1 / (1 - p)
    a.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * 2)
    # another p: keep probability k/256 and scale 256/k, so the mean is preserved
    ones = torch.ones(400_000)
    out = Dropout(0.3).train()(ones)
    assert abs((out != 0).float().mean().item() - 0.7) < 0.005
    assert abs(out.mean().item() - 1.0) < 0.01
    assert torch.equal(Dropout(0.5).eval()(x), x)
    # p = 0.5 in every float width (the mask is built from bits in x's integer width): exactly
    # {0, 2}, unbiased, and each element's bit independent of its neighbours'
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        v = torch.ones(100_003, dtype=dtype)  # not a multiple of the bits per random word
        out = Dropout(0.5).train()(v)
        assert out.dtype == dtype and set(out.unique().tolist()) == {0.0, 2.0}, dtype
        keep = out != 0
        assert abs(keep.double().mean().item() - 0.5) < 0.01, dtype
        # neighbours come from bits of one random word: their masks must still be independent
        both = (keep[:-1] & keep[1:]).double().mean().item()
        assert abs(both - 0.25) < 0.01, dtype
