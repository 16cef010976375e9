"""Tests of the ``set-quality`` evaluator plugin (FD/KID, precision/recall, memorisation, CAS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import augengine as ae
from augengine.errors import AugengineError, DataError, PluginError
from augengine.testing import EvaluatorContract, StubClassifier, tiny_imageset

from augengine_setquality import FeatureCache, frechet_distance, kernel_distance, manifold_statistics
from augengine_setquality.features import FEATURE_CACHE, feature_cache_dir

FAST = {"kid_subsets": 10, "n_boot": 200}


def _copy_set(s, indices=None, shift: float = 0.0):
    idx = np.arange(len(s)) if indices is None else np.asarray(indices)
    imgs = s.images()[idx].astype(np.float32) + shift
    return ae.ArrayImageSet(np.clip(imgs, 0, 255).astype(np.uint8), s.labels[idx], s.class_names)


def _evaluate(train, synthetic, test=None, clf=None, **config):
    clf = clf or StubClassifier(train.class_names, image_size=train.size)
    ev = ae.create_evaluator("set-quality", **{**FAST, **config})
    return ev.evaluate(clf, test, synthetic=synthetic, train=train, seed=0)


@pytest.fixture(scope="module")
def train():
    return tiny_imageset(n_per_class=30, size=16, seed=0)


class TestSetQualityContract(EvaluatorContract):
    plugin_name = "set-quality"
    config = FAST

    def evaluate_kwargs(self, train, test):
        return {"classifier": StubClassifier(test.class_names, image_size=test.size), "test": test,
                "synthetic": tiny_imageset(n_per_class=8, size=train.size, seed=5), "train": train}


# -- the three "done when" properties ------------------------------------------------------------
def test_set_against_itself(train):
    res = _evaluate(train, _copy_set(train))
    shifted = _evaluate(train, _copy_set(train, shift=30.0)).metrics["synthetic"]["overall"]
    o = res.metrics["synthetic"]["overall"]
    assert o["n_real"] == o["n_fake"] == len(train)
    assert o["fd"] == pytest.approx(0.0, abs=1e-6)
    assert abs(o["kid"]["mean"]) < 0.02 * shifted["kid"]["mean"]
    assert o["precision"]["value"] == 1.0 and o["recall"]["value"] == 1.0 and o["coverage"]["value"] == 1.0
    for cname, r in res.metrics["synthetic"]["per_class"].items():
        assert r["fd"] == pytest.approx(0.0, abs=1e-6), cname
        assert r["precision"]["value"] == 1.0 and r["recall"]["value"] == 1.0, cname
    assert shifted["fd"] > 100 * max(o["fd"], 1e-9)


def test_copies_of_training_images_are_flagged(train):
    idx = np.arange(0, len(train), 3)
    copies = _evaluate(train, _copy_set(train, idx), grid_pairs=4)
    mem = copies.metrics["memorisation"]
    assert mem["flagged"] and mem["near_copy_fraction"]["value"] == 1.0 and mem["near_copies"] == len(idx)
    assert any("MEMORISED" in v for v in copies.verdicts)
    pair = mem["closest_pairs"][0]  # the nearest training image of a copy is its original
    assert idx[pair["synthetic_index"]] == pair["train_index"] and pair["ratio"] < 1e-2
    assert copies.figures["closest_pairs"][:8] == b"\x89PNG\r\n\x1a\n"

    fresh = _evaluate(train, tiny_imageset(n_per_class=10, size=16, seed=7),
                      test=tiny_imageset(n_per_class=10, size=16, seed=8))
    mem = fresh.metrics["memorisation"]
    assert not mem["flagged"] and mem["near_copy_fraction"]["value"] < 0.05
    assert mem["ratio_quantiles"]["0.5"] > 0.5
    assert mem["reference_real_test"]["near_copy_fraction"]["value"] < 0.05


def test_fd_grows_as_the_distribution_shifts(train):
    other = tiny_imageset(n_per_class=30, size=16, seed=3)
    fds, kids, precs = [], [], []
    for shift in (0, 8, 16, 32, 64):
        o = _evaluate(train, _copy_set(other, shift=shift), per_class=False).metrics["synthetic"]["overall"]
        fds.append(o["fd"])
        kids.append(o["kid"]["mean"])
        precs.append(o["precision"]["value"])
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    assert all(a < b for a, b in zip(kids, kids[1:])), kids
    assert precs[-1] < precs[0], precs


# -- the metrics against independent computations ---------------------------------------------
@pytest.mark.parametrize("n_real,n_fake", [(400, 300), (5, 8), (400, 4)])  # N > D, N ≤ D, mixed
def test_frechet_distance_matches_scipy_sqrtm_and_torchmetrics(n_real, n_fake):
    import torch
    from scipy.linalg import sqrtm
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_real, 6))
    b = rng.normal(size=(n_fake, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-8)
    tm = float(_compute_fid(*(torch.from_numpy(v) for v in (mu1, s1, mu2, s2))))
    assert frechet_distance(a, b) == pytest.approx(tm, rel=1e-6, abs=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert np.isnan(frechet_distance(a[:1], b))


def test_kid_is_seeded_and_unbiased_for_equal_distributions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    k1 = kernel_distance(a, b, subsets=20, subset_size=100, seed=3)
    assert k1 == kernel_distance(a, b, subsets=20, subset_size=100, seed=3)
    assert k1 != kernel_distance(a, b, subsets=20, subset_size=100, seed=4)
    far = kernel_distance(a, b + 1.0, subsets=20, subset_size=100, seed=3)
    assert abs(k1["mean"]) < 3 * k1["std"] + 1e-3 and far["mean"] > 10 * abs(k1["mean"])


def test_precision_recall_density_coverage_on_known_geometry():
    rng = np.random.default_rng(2)
    real = np.concatenate([rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 20.0])  # modes A, B
    far = rng.normal(size=(100, 4)) - 50.0
    st = manifold_statistics(real, np.concatenate([real[:100], far]), k=3, k_dc=5)  # copies of A + junk
    assert st.precision == pytest.approx(0.5)  # the junk half lies outside the real manifold
    assert st.recall == pytest.approx(0.5) and st.coverage == pytest.approx(0.5)  # mode B is missed
    assert st.density_count[100:].sum() == 0 and st.density_count[:100].min() >= 1
    # a mode-collapsed fake set: precise but low recall/coverage
    collapsed = manifold_statistics(real, real[:1].repeat(50, 0) + 1e-3 * rng.normal(size=(50, 4)))
    assert collapsed.precision == 1.0 and collapsed.recall < 0.1 and collapsed.coverage < 0.1


# -- classification views -------------------------------------------------------------------------
def test_reverse_view_and_cas(train):
    class CentroidClassifier(ae.Classifier):
        """Nearest class mean colour (test-only, trains in microseconds)."""

        name = "centroid-test"

        class Config(ae.PluginConfig):
            image_size: int = 16

        def fit(self, train, **kw):
            arr = self.as_array(train).reshape(len(train), -1, 3).mean(1)
            self.class_names = list(train.class_names)
            self.means = np.stack([arr[train.labels == k].mean(0) for k in range(len(self.class_names))])
            return self

        def predict_proba(self, images, batch_size=256):
            arr = self.as_array(images).reshape(len(images), -1, 3).mean(1)
            d = -((arr[:, None] - self.means[None]) ** 2).sum(-1) / 100.0
            e = np.exp(d - d.max(1, keepdims=True))
            return (e / e.sum(1, keepdims=True)).astype(np.float32)

        def features(self, images, batch_size=256):
            return self.as_array(images).reshape(len(images), -1, 3).mean(1).astype(np.float32)

    class Plugin:
        @ae.hookimpl
        def register_classifiers(register):
            register(CentroidClassifier)

    ae.register_plugin(Plugin, name="centroid-test-plugin")
    try:
        real_clf = CentroidClassifier().fit(train)
        test = tiny_imageset(n_per_class=10, size=16, seed=9)
        good = tiny_imageset(n_per_class=15, size=16, seed=4)
        res = _evaluate(train, good, test=test, clf=real_clf, cas=True)
        cas = res.metrics["cas"]
        assert cas["classifier"] == "centroid-test" and cas["synthetic_trained"]["n"] == len(test)
        assert cas["synthetic_trained"]["balanced_accuracy"]["value"] > 0.9
        assert cas["real_trained"]["balanced_accuracy"]["value"] > 0.9
        rev = res.metrics["reverse"]["synthetic"]
        assert rev["n"] == len(good) and set(rev["per_class_recall"]) == set(train.class_names)
        assert rev["accuracy"]["value"] > 0.9

        wrong = ae.ArrayImageSet(good.images(), (good.labels + 1) % 3, good.class_names)  # labels swapped
        bad = _evaluate(train, wrong, test=test, clf=real_clf, cas=True).metrics
        assert bad["cas"]["synthetic_trained"]["balanced_accuracy"]["value"] < 0.2
        assert bad["reverse"]["synthetic"]["accuracy"]["value"] < 0.2
        skipped = _evaluate(train, good, test=test, clf=real_clf, cas=True, cas_classifier="no-such-clf").metrics
        assert "not installed" in skipped["cas"]["skipped"]
    finally:
        ae.reset_plugins()


# -- feature cache ---------------------------------------------------------------------------------
class _CountingStub(StubClassifier):
    calls = 0

    def features(self, images, batch_size=256):
        type(self).calls += 1
        return super().features(images, batch_size)


def test_features_are_extracted_once_and_cached_on_disk(train, tmp_path):
    FEATURE_CACHE.clear()
    _CountingStub.calls = 0
    clf = _CountingStub(train.class_names)
    syn = tiny_imageset(n_per_class=10, size=16, seed=11)
    test = tiny_imageset(n_per_class=10, size=16, seed=12)
    first = _evaluate(train, syn, test=test, clf=clf)
    assert _CountingStub.calls == 3  # train, synthetic, test: once each, shared by every metric
    again = _evaluate(train, syn, test=test, clf=clf)
    assert _CountingStub.calls == 3 and first.to_json() == again.to_json()

    (tmp_path / "run.json").write_text(json.dumps({"checkpoint_sha256": "ab" * 32}))
    clf.run_dir = tmp_path
    cache = FeatureCache()
    before = set(feature_cache_dir().glob("classifier-*.npy"))  # the session's cache: other tests write there too
    f1, _ = cache.features(clf, syn)
    # the disk copy goes to the engine's cache, never into the classifier's run folder (an input)
    assert _CountingStub.calls == 4 and len(set(feature_cache_dir().glob("classifier-*.npy")) - before) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    f2, _ = FeatureCache().features(clf, syn)  # a fresh process-like cache reads the disk copy
    assert _CountingStub.calls == 4
    np.testing.assert_array_equal(f1, f2)


# -- errors ----------------------------------------------------------------------------------------
def test_clear_errors(train):
    ev = ae.create_evaluator("set-quality", **FAST)
    clf = StubClassifier(train.class_names)
    with pytest.raises(DataError, match="synthetic set"):
        ev.evaluate(clf, None, train=train)
    with pytest.raises(DataError, match="training set"):
        ev.evaluate(clf, None, synthetic=train)
    other = tiny_imageset(n_per_class=4, size=16, classes=("MEL", "NV", "DF"), seed=1)
    with pytest.raises(DataError, match=r"synthetic set: classes \['DF'\] of this set are not in the class space") as e:
        ev.evaluate(clf, None, synthetic=other, train=train)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="features='inception' needs inception_weights"):
        ae.create_evaluator("set-quality", features="inception").evaluate(clf, None, synthetic=train, train=train)
    with pytest.raises(AugengineError):
        ae.create_evaluator("set-quality", nearest_k=0)


def test_small_classes_are_reported_not_crashed(train):
    tiny = tiny_imageset(size=16, counts=(2, 12, 12), seed=13)
    m = _evaluate(train, tiny).metrics
    mel = m["synthetic"]["per_class"]["MEL"]
    assert mel["n_fake"] == 2 and mel["precision"]["value"] is None and "needs" in mel["precision"]["note"]
    assert mel["fd_preferred"] is False and m["synthetic"]["overall"]["preferred"] == "kid"
    json.dumps(m, allow_nan=False)
