"""fp16 autocast trains through a GradScaler (one helper for acgan, cyclegan and resnet); bf16 and
fp32 steps stay plain. Runs on CPU, with the CUDA capability check stubbed."""

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.plugin_api import LossScaler, autocast_dtype, needs_loss_scaling
from augengine.testing import tiny_imageset


def _tiny_step(scaler: LossScaler | None, dtype):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    x = torch.randn(16, 8)
    before = lin.weight.detach().clone()
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)
    with ctx:
        out = lin(x)
    loss = out.float().sum() * 1e-9  # gradients ~1e-9: below fp16's smallest subnormal (6e-8)
    opt.zero_grad()
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.backward(loss)
        scaler.step(opt)
        scaler.update()
    return lin.weight.detach() - before


def test_auto_on_cuda_without_bf16_is_fp16_and_scaled(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(cuda, "auto") == torch.float16 and needs_loss_scaling(torch.float16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(cuda, "auto") == torch.bfloat16 and not needs_loss_scaling(torch.bfloat16)
    assert not needs_loss_scaling(None)


def test_fp16_gradients_underflow_without_scaling_and_survive_with_it():
    plain = _tiny_step(None, torch.float16)
    scaled = _tiny_step(LossScaler("cpu", torch.float16), torch.float16)
    reference = _tiny_step(None, None)  # fp32
    assert plain.abs().sum() == 0, "expected the unscaled fp16 gradients to flush to zero"
    assert scaled.abs().sum() > 0
    np.testing.assert_allclose(scaled.numpy(), reference.numpy(), rtol=0.05, atol=1e-12)


def test_scaler_is_a_pass_through_for_bf16_and_fp32():
    for dtype in (None, torch.bfloat16):
        sc = LossScaler("cpu", dtype)
        assert not sc.enabled and sc.scale == 1.0 and sc.state_dict() is None
        np.testing.assert_array_equal(_tiny_step(sc, dtype).numpy(), _tiny_step(None, dtype).numpy())


def test_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    sc = LossScaler("cpu", torch.float16)
    _tiny_step(sc, torch.float16)
    ae.save_checkpoint({"scaler": sc.state_dict()}, tmp_path / "s.pt")
    again = LossScaler("cpu", torch.float16)
    again.load_state_dict(ae.load_checkpoint(tmp_path / "s.pt")["scaler"])
    assert again.scale == sc.scale


@pytest.mark.parametrize("module,name,config", [
    ("augengine_acgan.generator", "acgan", {"image_size": 16, "g_channels": [16], "d_channels": [8, 8],
                                            "d_strides": [2, 2], "batch_size": 4, "iterations": 2,
                                            "latent_dim": 8}),
    ("augengine_resnet.classifier", "resnet", {"arch": "test_resnet", "image_size": 16, "epochs": 1,
                                               "batch_size": 8, "lr": 1e-3}),
])
def test_plugins_train_fp16_through_the_scaler(monkeypatch, tmp_path, module, name, config):
    """With the autocast choice stubbed to fp16, each plugin steps through an enabled LossScaler."""
    import importlib

    import augengine.amp as amp

    from augengine.autotune import Variant

    importlib.import_module(module)
    # every plugin takes its autocast dtype from the resolved speed variant (augengine.autotune)
    monkeypatch.setattr(Variant, "autocast_dtype", lambda self: torch.float16)
    used = []
    real_init = amp.LossScaler.__init__

    def spy(self, device, dtype):
        real_init(self, device, dtype)
        used.append(self)

    monkeypatch.setattr(amp.LossScaler, "__init__", spy)
    train = tiny_imageset(n_per_class=8, size=16, seed=0)
    factory = ae.create_generator if name == "acgan" else ae.create_classifier
    plugin = factory(name, **config)
    plugin.fit(train, run_dir=tmp_path / "run", seed=0, progress=False)
    assert used and all(s.enabled for s in used), [s.dtype for s in used]
    assert any(s.scale != 1.0 for s in used)
