"""set-quality with features="inception": the FID Inception-v3 network as torchmetrics defines
it, from a local weights file (here randomly initialised, with the right keys and shapes); and the
feature cache's place (issue 15: never the classifier's run folder)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import augengine as ae
from augengine.errors import DataError
from augengine.testing import StubClassifier, tiny_imageset

pytest.importorskip("torch_fidelity", reason="optional extra 'inception' (torch-fidelity) not installed")
from torchmetrics.image.fid import NoTrainInceptionV3  # noqa: E402

from augengine_setquality.features import FEATURE_CACHE, FeatureCache, InceptionFeatures, feature_cache_dir  # noqa: E402

FAST = {"kid_subsets": 5, "kid_subset_size": 20, "n_boot": 0, "grid_pairs": 0, "reverse": False}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised state dict of NoTrainInceptionV3 (built without downloading)."""
    buf = io.BytesIO()
    torch.save({}, buf)
    buf.seek(0)
    mp = pytest.MonkeyPatch()
    mp.setattr(NoTrainInceptionV3, "load_state_dict", lambda self, *a, **k: None)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buf)
            for m in net.modules():  # variance-preserving init, so that deep features still vary
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("inception") / "inception-random.pt"
    ae.save_checkpoint({k: v.clone() for k, v in net.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def train():
    return tiny_imageset(n_per_class=4, size=16, seed=0)


def _shift(s, delta):
    imgs = np.clip(s.images().astype(np.int16) + delta, 0, 255).astype(np.uint8)
    return ae.ArrayImageSet(imgs, s.labels, s.class_names)


def test_features_equal_torchmetrics_network_from_the_same_file(weights, train):
    space = InceptionFeatures(weights, image_size=16)
    ours, px = FeatureCache().features(space, train, batch_size=8, disk=False)
    assert ours.shape == (len(train), 2048) and ours.dtype == np.float32
    ref_net = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.inference_mode():
        ref = ref_net(torch.from_numpy(np.array(px)).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert float(np.std(ours)) > 0  # not a degenerate feature map


def test_set_quality_in_inception_space_without_a_classifier(weights, train):
    FEATURE_CACHE.clear()
    ev = ae.create_evaluator("set-quality", features="inception", inception_weights=str(weights), device="cpu", **FAST)
    same = ev.evaluate(None, None, synthetic=_shift(train, 0), train=train, seed=0).metrics
    moved = ev.evaluate(None, None, synthetic=_shift(train, 60), train=train, seed=0).metrics
    fs = same["feature_space"]
    assert fs["source"] == "inception" and fs["dim"] == 2048 and fs["image_size"] == 16
    assert fs["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert same["synthetic"]["overall"]["fd"] == pytest.approx(0.0, abs=1e-4)
    assert moved["synthetic"]["overall"]["fd"] > 100 * max(same["synthetic"]["overall"]["fd"], 1e-6)
    assert "reverse" not in same and "skipped" in same["cas"]
    # the disk copy of the features lives in the engine cache, keyed by the weights' hash
    assert list(feature_cache_dir().glob("inception-*.npy"))


def test_wrong_weights_are_one_line_errors_naming_the_file(tmp_path, train):
    bad = tmp_path / "small.pt"
    ae.save_checkpoint({"fc.weight": torch.zeros(3, 3)}, bad)
    ev = ae.create_evaluator("set-quality", features="inception", inception_weights=str(bad), **FAST)
    with pytest.raises(DataError) as e:
        ev.evaluate(None, None, synthetic=train, train=train)
    assert str(bad) in str(e.value) and "Inception" in str(e.value) and "\n" not in str(e.value)
    ev = ae.create_evaluator("set-quality", features="inception", inception_weights=str(tmp_path / "nope.pt"))
    with pytest.raises(DataError, match="inception_weights.*not found"):
        ev.evaluate(None, None, synthetic=train, train=train)


def test_feature_cache_never_writes_into_the_classifier_run_folder(tmp_path, train, private_cache):
    """CLI `evaluate set-quality --out`: the run folder (an input) is left as it was."""
    from augengine.cli import main

    FEATURE_CACHE.clear()
    split = ae.split(ae.load_dataset("demo"), fractions=(0.8, 0.1, 0.1), group_by="lesion", seed=0)
    run = tmp_path / "clf"
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, batch_size=64, lr=1e-3,
                               precision="fp32", early_stopping_patience=None)
    clf.fit(split.train, run_dir=run, seed=0, progress=False)
    clf.save(run)
    syn = ae.SyntheticSet.create(tmp_path / "s.h5", class_names=split.train.class_names, image_size=16)
    sub = split.train.subset(np.arange(40))
    syn.append(sub.images(16), sub.labels)
    syn.close()
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    out = tmp_path / "ev"
    r = CliRunner().invoke(main, ["evaluate", "set-quality", "--classifier", str(run), "--set", str(tmp_path / "s.h5"),
                                  "--out", str(out), "-o", "n_boot=0", "-o", "kid_subsets=2", "-o", "cas=false"])
    assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before
    assert (out / "metrics.json").is_file()
    assert list((private_cache / "features").glob("classifier-*.npy"))
