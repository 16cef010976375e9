"""Tests of the ``path-rank`` filter with stub classifiers whose confidences are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

import augengine as ae
from augengine.errors import ConfigError, DataError
from augengine.testing import FilterContract, StubClassifier

from augengine_pathrank import PathRankFilter, read_selection, write_selection

CLASSES = ["MEL", "NV"]


class TestPathRankContract(FilterContract):
    plugin_name = "path-rank"
    config = {"alpha": 0.5}
    bad_value = ("alpha", "abc")


def known_set(conf_mel: list[float], n_nv: int = 3) -> tuple[ae.ArrayImageSet, StubClassifier]:
    """MEL images i carry pixel value i; the stub reads it back and returns conf_mel[i] for MEL."""
    n = len(conf_mel) + n_nv
    imgs = np.zeros((n, 8, 8, 3), np.uint8)
    imgs[:, :, :, 0] = np.arange(n, dtype=np.uint8)[:, None, None]
    labels = np.array([0] * len(conf_mel) + [1] * n_nv)
    table = np.array(list(conf_mel) + [0.99] * n_nv)  # NV images look very MEL: must still be excluded

    def proba(arr):
        p = table[arr[:, 0, 0, 0].astype(int)]
        return np.stack([p, 1 - p], 1)

    return ae.ArrayImageSet(imgs, labels, CLASSES, ids=[f"img{i}" for i in range(n)]), StubClassifier(
        CLASSES, proba_fn=proba, image_size=8)


def test_top_alpha_keeps_exactly_the_most_confident():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.01, 0.98, 16).tolist()
    data, clf = known_set(conf)
    for alpha, k in ((1 / 8, 2), (0.25, 4), (0.5, 8), (1.0, 16), (0.3, 4), (0.99, 15)):
        flt = ae.create_filter("path-rank", alpha=alpha)
        kept = flt.select(data, classifier=clf, target_class="MEL")
        expect = np.argsort(-np.array(conf), kind="stable")[:k]
        np.testing.assert_array_equal(kept, expect)
        assert flt.info()["n_kept"] == k and flt.info()["n_candidates"] == 16
    scores = ae.create_filter("path-rank").score(data, classifier=clf, target_class="MEL")
    np.testing.assert_allclose(scores[:16], conf)


def test_bottom_and_random_controls():
    conf = [0.1 * i for i in range(10)]
    data, clf = known_set(conf)
    bottom = ae.create_filter("path-rank", alpha=0.3, mode="bottom").select(data, classifier=clf, target_class="MEL")
    np.testing.assert_array_equal(bottom, [2, 1, 0])  # the three least confident, reported by descending score
    flt = ae.create_filter("path-rank", alpha=0.5, mode="random")
    r1 = flt.select(data, classifier=clf, target_class="MEL", seed=1)
    r2 = flt.select(data, classifier=clf, target_class="MEL", seed=1)
    r3 = flt.select(data, classifier=clf, target_class="MEL", seed=2)
    np.testing.assert_array_equal(r1, r2)
    assert len(r1) == len(r3) == 5 and set(r1) <= set(range(10))  # same count, MEL only
    assert not np.array_equal(np.sort(r1), np.sort(r3))
    assert list(conf[i] for i in r1) == sorted((conf[i] for i in r1), reverse=True)


def test_ties_break_by_index():
    data, clf = known_set([0.5, 0.7, 0.5, 0.7, 0.5, 0.5])
    kept = ae.create_filter("path-rank", alpha=0.5).select(data, classifier=clf, target_class="MEL")
    np.testing.assert_array_equal(kept, [1, 3, 0])
    kept = ae.create_filter("path-rank", alpha=0.5, mode="bottom").select(data, classifier=clf, target_class="mel")
    np.testing.assert_array_equal(kept, [0, 2, 4])


def test_errors():
    data, clf = known_set([0.5, 0.6, 0.7])
    with pytest.raises(DataError, match="keeps no image"):
        ae.create_filter("path-rank", alpha=0.2).select(data, classifier=clf, target_class="MEL")
    with pytest.raises(ConfigError, match="alpha"):
        ae.create_filter("path-rank", alpha=0.0)
    with pytest.raises(ConfigError, match="alpha"):
        ae.create_filter("path-rank", alpha=1.5)
    with pytest.raises(ConfigError, match="mode"):
        ae.create_filter("path-rank", mode="best")
    with pytest.raises(ae.PluginError, match="classifier"):
        ae.create_filter("path-rank").select(data, classifier=None, target_class="MEL")


def test_selection_json_round_trip_feeds_cyclegan(tmp_path):
    data, clf = known_set([0.9, 0.2, 0.8, 0.4])
    flt = ae.create_filter("path-rank", alpha=0.5)
    sel = flt.select_dataset(data, classifier=clf, target_class="MEL", seed=0)
    path = write_selection(tmp_path / "sel.json", sel)
    back = read_selection(path)
    assert back["ids"] == ["img0", "img2"] and back["scores"] == pytest.approx([0.9, 0.8])
    assert back["target_class"] == "MEL" and back["config"]["alpha"] == 0.5 and back["n_candidates"] == 4
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(DataError, match="not a selection"):
        read_selection(tmp_path / "bad.json")


def test_filter_synthetic_set_stores_scores(tmp_path):
    data, clf = known_set([0.3, 0.9, 0.6, 0.1], n_nv=4)
    w = ae.SyntheticSet.create(tmp_path / "in.h5", class_names=CLASSES, image_size=8, attrs={"generator": "x"})
    with w:
        w.append(data.images(), data.labels, seeds=np.arange(8) + 100, source_index=np.arange(8) + 50)
        src = w.close()
    flt = ae.create_filter("path-rank", alpha=0.5)
    out = flt.filter_set(src, tmp_path / "out.h5", classifier=clf, target_class="MEL")
    out = ae.SyntheticSet.open(tmp_path / "out.h5")
    np.testing.assert_array_equal(out.seeds, [101, 102])
    np.testing.assert_array_equal(out.source_index, [51, 52])
    np.testing.assert_allclose(out.scores, [0.9, 0.6], rtol=1e-6)
    assert out.attrs["filter"] == "path-rank" and out.attrs["generator"] == "x"
    np.testing.assert_array_equal(out.images(), data.images()[[1, 2]])
    # without a target class every class is filtered by confidence in its own label
    allc = flt.filter_set(src, tmp_path / "all.h5", classifier=clf)
    assert sorted(allc.labels.tolist()) == [0, 0, 1, 1]
    with pytest.raises(DataError, match="exists"):
        flt.filter_set(src, tmp_path / "out.h5", classifier=clf, target_class="MEL")


def test_registered_class():
    assert ae.registry.get_plugin_class("filter", "path-rank") is PathRankFilter
