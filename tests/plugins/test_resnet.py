"""The ``resnet`` classifier: contract kit, recipe pieces, bad input, resume, NaN handling."""

import json

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.errors import ConfigError, DataError, TrainingDiverged
from augengine.testing import ClassifierContract, tiny_imageset

import augengine_resnet
from augengine_resnet import ResnetClassifier, build_model, load_pretrained, lr_range_test

TINY = {"arch": "test_resnet", "image_size": 16, "epochs": 2, "batch_size": 8, "lr": 3e-3, "precision": "fp32"}


class TestResnetContract(ClassifierContract):
    plugin_name = "resnet"
    config = TINY

    def test_benefit_evaluates_run_dirs(self, trained):
        clf, run_dir, train = trained
        test = tiny_imageset(n_per_class=6, size=16, seed=3)
        res = ae.create_evaluator("benefit", n_boot=200).evaluate(str(run_dir), test, baseline=[clf, clf])
        m = res.metrics["sets"]["test"]
        assert m["overall"]["accuracy"]["value"] == pytest.approx((clf.predict(test) == test.labels).mean())
        assert m["difference"]["overall"]["accuracy"]["value"] == pytest.approx(0.0)


def _sets(size=16):
    return tiny_imageset(n_per_class=8, size=size, seed=0), tiny_imageset(n_per_class=4, size=size, seed=1)


def test_run_dir_records_and_learning(tmp_path):
    train, val = _sets()
    clf = ae.create_classifier("resnet", **{**TINY, "epochs": 4, "lr": None, "lr_find_iters": 12})
    clf.fit(train, val=val, run_dir=tmp_path, seed=0, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_balanced_accuracy", "lr", "images_per_s", "best_epoch"} <= set(rows[0])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    rec = json.loads((tmp_path / "run.json").read_text())
    assert rec["pretrained"] == "random init" and rec["seed"] == 0 and rec["lr_finder"]["iters"] > 5
    assert rec["data_fingerprint"] == train.fingerprint() and rec["versions"]["timm"]
    assert rec["best_epoch"] == max(range(1, 5), key=lambda e: (rows[e - 1]["val_balanced_accuracy"], -e))
    assert (tmp_path / "lr_finder.png").read_bytes()[:4] == b"\x89PNG"
    assert clf.record["lr"] == pytest.approx(rec["lr_finder"]["suggestion"])
    # the kept weights are the best epoch's: val balanced accuracy reproduces it
    from sklearn.metrics import balanced_accuracy_score

    bal = balanced_accuracy_score(val.labels, clf.predict(val))
    assert bal == pytest.approx(rows[rec["best_epoch"] - 1]["val_balanced_accuracy"])
    assert clf.features(val).shape == (len(val), clf.model.num_features)


def test_unknown_arch_lists_close_matches():
    with pytest.raises(ConfigError) as e:
        build_model("resnet5O", 3)
    msg = str(e.value)
    assert "resnet5O" in msg and "resnet50" in msg and "\n" not in msg


def test_pretrained_file_loading(tmp_path):
    from safetensors.torch import save_file

    src = build_model("test_resnet", 5)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    for f in ("w.pt", "w.safetensors"):
        model = build_model("test_resnet", 3)
        rec = load_pretrained(model, tmp_path / f)
        assert rec["missing_keys"] == [] and rec["unexpected_keys"] == []
        assert rec["head_reinitialised"] and all(k.startswith("fc.") for k in rec["head_reinitialised"])
        torch.testing.assert_close(model.state_dict()["conv1.weight"] if "conv1.weight" in sd else
                                   next(iter(model.state_dict().values())), next(iter(sd.values())))
    bad = dict(sd)
    first = next(k for k, v in sd.items() if v.ndim == 4)
    bad[first] = torch.zeros(1, 1, 1, 1)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(DataError) as e:
        load_pretrained(build_model("test_resnet", 3), tmp_path / "bad.pt")
    msg = str(e.value)
    assert first in msg and "(1, 1, 1, 1)" in msg and str(tuple(sd[first].shape)) in msg and "\n" not in msg
    # through the plugin: the run record says which weights were used
    train, _ = _sets()
    clf = ae.create_classifier("resnet", **{**TINY, "epochs": 1, "pretrained": str(tmp_path / "w.pt")})
    clf.fit(train, progress=False)
    assert clf.record["pretrained"]["sha256"] and clf.record["pretrained"]["path"].endswith("w.pt")
    with pytest.raises(ConfigError, match="not found"):
        ae.create_classifier("resnet", **{**TINY, "pretrained": str(tmp_path / "nope.pt")}).fit(train, progress=False)


def test_lr_range_test_finds_the_known_good_range():
    """Least squares with Hessian eigenvalues in [0.5, 1]: plain gradient descent converges for
    lr < 2 and is fastest near 1; the suggestion must land in that decade, not at the ends."""
    torch.manual_seed(0)
    d = 20
    q, _ = torch.linalg.qr(torch.randn(d, d))
    a = q @ torch.diag(torch.linspace(0.5, 1.0, d).sqrt()) @ q.T  # loss = 0.5 |A w - b|², H = AᵀA
    b = torch.randn(d) * 3
    w = torch.nn.Linear(d, 1, bias=False)
    opt = torch.optim.SGD(w.parameters(), lr=1.0)

    def step_loss(_):
        return 0.5 * ((a @ w.weight.view(-1) - b) ** 2).sum()

    before = w.weight.detach().clone()
    res = lr_range_test(w, opt, step_loss, iter(range(200)), start_lr=1e-4, end_lr=100.0, num_iter=120, beta=0.5)
    assert 0.05 <= res.suggestion <= 2.0, res.suggestion
    assert res.lrs[-1] < 100.0  # stopped on divergence
    torch.testing.assert_close(w.weight.detach(), before)  # model restored
    assert opt.param_groups[0]["lr"] == 1.0
    png = augengine_resnet.plot_lr_curve(res)
    assert png[:4] == b"\x89PNG"


def test_recipe_options_train(tmp_path):
    train = tiny_imageset(size=16, counts=[16, 4, 4], seed=0)
    val = tiny_imageset(size=16, counts=[4, 2, 2], seed=1)
    clf = ae.create_classifier(
        "resnet", **{**TINY, "epochs": 2, "class_balanced_sampling": True, "class_weighted_loss": "sqrt_inverse",
                     "label_smoothing": 0.1, "ema_decay": 0.9, "tta_flips": True, "augment": "strong"})
    clf.fit(train, val=val, run_dir=tmp_path, progress=False)
    p = clf.predict_proba(val)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    w = clf._class_weights(train.labels, 3)
    assert w[0] < w[1] and float((w[torch.as_tensor(train.labels)]).mean()) == pytest.approx(1.0)
    again = ae.load_run(tmp_path)
    np.testing.assert_allclose(again.predict_proba(val), p, atol=1e-5)


def test_bf16_channels_last_path_runs():
    # 32 px, not 16: at 16 px the last stage's stride-2 3×3 conv sees a 1×1 input, and oneDNN's
    # bf16 weight-gradient kernel returns non-finite values for that shape on AMX CPUs (measured on
    # an Intel Xeon with amx_bf16: 65 of 200 random trials of conv2d(8×192×1×1, 96×192×3×3, stride 2,
    # padding 1) in bf16; 0 of 200 at 2×2), so the fit stops with TrainingDiverged there.
    train, val = _sets(size=32)
    clf = ae.create_classifier("resnet", **{**TINY, "image_size": 32, "epochs": 1, "precision": "bf16", "channels_last": True})
    clf.fit(train, val=val, progress=False)
    assert clf.record["amp_dtype"] == "bfloat16" and clf.record["channels_last"] is True
    assert np.isfinite(clf.predict_proba(val)).all()


def test_synthetic_sets(tmp_path):
    train, val = _sets()
    synth = tiny_imageset(n_per_class=3, size=24, seed=7, groups=False)
    clf = ae.create_classifier("resnet", **{**TINY, "epochs": 1})
    clf.fit(train, val=val, synthetic=[synth], amount=6, run_dir=tmp_path, progress=False)
    rec = json.loads((tmp_path / "run.json").read_text())
    assert rec["n_synthetic"] == 6 and rec["n_real"] == len(train) and rec["synthetic_sets"][0]["n"] == 9
    assert any("resized" in n for n in rec["notes"])
    other = tiny_imageset(n_per_class=2, size=16, classes=("MEL", "NV", "SCC"))
    with pytest.raises(DataError) as e:
        clf.fit(train, synthetic=[other], progress=False)
    assert "SCC" in str(e.value) and "\n" not in str(e.value)


def _nan_after(monkeypatch, calls):
    """Make the training loss NaN from the ``calls``-th cross-entropy call on."""
    import augengine_resnet.classifier as mod

    real = mod.F.cross_entropy
    count = {"n": 0}

    class FakeF:
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        @staticmethod
        def cross_entropy(*a, **k):
            count["n"] += 1
            out = real(*a, **k)
            return out * float("nan") if count["n"] > calls else out

    monkeypatch.setattr(mod, "F", FakeF())


def test_nan_loss_stops_names_step_keeps_checkpoint_and_resume_matches(tmp_path, monkeypatch):
    train, val = _sets()  # 24 images, batch 8: 3 steps per epoch
    cfg = {**TINY, "epochs": 3}
    full = ae.create_classifier("resnet", **cfg).fit(train, val=val, run_dir=tmp_path / "full", progress=False)

    with monkeypatch.context() as m:
        _nan_after(m, 3)  # epoch 1 fine, first step of epoch 2 diverges
        with pytest.raises(TrainingDiverged) as e:
            ae.create_classifier("resnet", **cfg).fit(train, val=val, run_dir=tmp_path / "cut", progress=False)
    msg = str(e.value)
    assert "step 3" in msg and "epoch 2" in msg and "train_state.pt" in msg and "\n" not in msg
    state = ae.load_checkpoint(tmp_path / "cut" / "train_state.pt")
    assert state["epoch"] == 1
    resumed = ae.create_classifier("resnet", **cfg).fit(train, val=val, run_dir=tmp_path / "cut", resume=True,
                                                           progress=False)
    np.testing.assert_allclose(resumed.predict_proba(val), full.predict_proba(val), atol=1e-5)
    lines = (tmp_path / "cut" / "epochs.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


_KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import augengine_resnet.classifier as mod
from augengine.testing import tiny_imageset

real_save = mod.save_checkpoint
def save_then_die(state, path):
    real_save(state, path)
    if state.get("epoch") == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
mod.save_checkpoint = save_then_die
train = tiny_imageset(n_per_class=8, size=16, seed=0)
val = tiny_imageset(n_per_class=4, size=16, seed=1)
mod.ResnetClassifier({config}).fit(train, val=val, run_dir=sys.argv[1], seed=4, progress=False)
"""


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """Killed after epoch 2's checkpoint, resumed: weights, optimizer (lr, betas, moments), EMA and
    history equal an uninterrupted run bit for bit — the OneCycle schedule included."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    cfg = {**TINY, "epochs": 4, "augment": "strong", "ema_decay": 0.9, "label_smoothing": 0.1,
           "class_balanced_sampling": True}
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILL_SCRIPT.format(kill_at=2, config=repr(cfg))),
                           str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert ae.load_checkpoint(run / "train_state.pt")["epoch"] == 2
    train, val = _sets()
    resumed = ae.create_classifier("resnet", **cfg).fit(train, val=val, run_dir=run, resume=True, seed=4,
                                                           progress=False)
    full = ae.create_classifier("resnet", **cfg).fit(train, val=val, run_dir=tmp_path / "full", seed=4,
                                                        progress=False)
    a, b = ae.load_checkpoint(run / "train_state.pt"), ae.load_checkpoint(tmp_path / "full" / "train_state.pt")
    for part in ("model", "ema", "best_model"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for i, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][i][k]), f"optimizer state {i}.{k} differs"
    assert a["scheduler"] == b["scheduler"]
    strip = lambda h: [{k: v for k, v in r.items() if "second" not in k and k != "images_per_s"} for r in h]
    assert strip(a["history"]) == strip(b["history"])
    np.testing.assert_array_equal(resumed.predict_proba(val), full.predict_proba(val))
    assert [json.loads(x)["epoch"] for x in (run / "epochs.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_not_trained_and_class_space_errors():
    clf = ResnetClassifier(**TINY)
    with pytest.raises(ae.PluginError):
        clf.predict_proba(np.zeros((1, 16, 16, 3), np.uint8))
    train, val = _sets()
    other = tiny_imageset(n_per_class=2, size=16, classes=("A", "B", "C"))
    with pytest.raises(DataError):
        ae.create_classifier("resnet", **TINY).fit(train, val=other, progress=False)
