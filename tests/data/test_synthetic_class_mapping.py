"""A synthetic set with another class list (MEL/NV) is matched by name onto a classifier's
class space, as external test sets are; a class outside that space is a one-line error (issue 15)."""

import numpy as np
import pytest

import augengine as ae
from augengine.errors import DataError
from augengine.testing import StubClassifier, tiny_imageset

SEVEN = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC")


@pytest.fixture(scope="module")
def train():
    return tiny_imageset(n_per_class=6, size=16, classes=SEVEN, seed=0)


@pytest.fixture(scope="module")
def melnv():
    # class list in another order: NV first
    return tiny_imageset(n_per_class=5, size=16, classes=("NV", "MEL"), seed=3)


def test_combine_maps_melnv_by_name(train, melnv):
    both = ae.combine(train, [melnv])
    syn = ~both.is_real
    assert both.class_names == list(SEVEN)
    want = np.array([SEVEN.index(melnv.class_names[k]) for k in melnv.labels])
    assert np.array_equal(both.labels[syn], want)


def test_resnet_trains_on_a_melnv_set_with_a_seven_class_training_set(train, melnv):
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, batch_size=16, lr=1e-3,
                               precision="fp32", early_stopping_patience=None)
    clf.fit(train, synthetic=[melnv], seed=0, progress=False)
    assert clf.class_names == list(SEVEN)
    counts = clf.train_counts
    assert counts["MEL"] == 6 + 5 and counts["NV"] == 6 + 5 and counts["BCC"] == 6


def test_unknown_synthetic_class_is_one_line_error_naming_it(train):
    odd = tiny_imageset(n_per_class=3, size=16, classes=("MEL", "XYZ"), seed=1)
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, precision="fp32")
    with pytest.raises(DataError) as e:
        clf.fit(train, synthetic=[odd], seed=0, progress=False)
    assert "'XYZ'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="XYZ"):
        ae.combine(train, [odd])


def test_set_quality_scores_a_melnv_set_against_a_seven_class_classifier(train, melnv):
    clf = StubClassifier(SEVEN, image_size=16)
    ev = ae.create_evaluator("set-quality", kid_subsets=5, n_boot=0, disk_cache=False)
    res = ev.evaluate(clf, None, synthetic=melnv, train=train, seed=0)
    per = res.metrics["synthetic"]["per_class"]
    assert set(per) == {"MEL", "NV"} and per["MEL"]["n_fake"] == 5 and per["MEL"]["n_real"] == 6
    odd = tiny_imageset(n_per_class=3, size=16, classes=("MEL", "XYZ"), seed=1)
    with pytest.raises(DataError) as e:
        ev.evaluate(clf, None, synthetic=odd, train=train, seed=0)
    assert "XYZ" in str(e.value) and "set-quality" in str(e.value) and "\n" not in str(e.value)


def test_path_rank_scores_a_melnv_set_with_a_seven_class_classifier(melnv):
    clf = StubClassifier(SEVEN, image_size=16)
    flt = ae.create_filter("path-rank", alpha=0.5)
    own = flt.score(melnv, classifier=clf)
    proba = clf.predict_proba(melnv.images(16))
    cols = np.array([SEVEN.index(melnv.class_names[k]) for k in melnv.labels])
    assert np.allclose(own, proba[np.arange(len(melnv)), cols])
    mel = flt.score(melnv, classifier=clf, target_class="MEL")
    assert np.allclose(mel, proba[:, 0])
