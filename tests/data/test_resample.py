"""``augengine.resample_like``: the resampling control (class counts of a set, drawn from real images)."""

from __future__ import annotations

import numpy as np
import pytest

import augengine as ae
from augengine.testing import tiny_imageset


def test_exact_counts_drawn_from_real_images_of_each_class_reproducibly():
    train = tiny_imageset(counts=[3, 10, 5], size=8, seed=1)  # MEL, NV, BKL
    synth = tiny_imageset(counts=[7, 0, 2], size=8, seed=9)
    a = ae.resample_like(train, synth, seed=4)
    assert a.class_counts() == {"MEL": 7, "NV": 0, "BKL": 2}
    assert len(a) == 9 and a.class_names == train.class_names
    # every drawn image is a real training image of its label
    imgs, timgs = a.images(), train.images()
    for i, j in enumerate(a.indices):
        assert train.labels[j] == a.labels[i] and np.array_equal(imgs[i], timgs[j])
    # MEL has 3 real images: 7 draws repeat some (with replacement)
    assert len(set(a.indices[a.labels == 0].tolist())) <= 3
    # same seed, same draw; another seed, another draw
    assert ae.resample_like(train, {"MEL": 7, "BKL": 2}, seed=4).indices.tolist() == a.indices.tolist()
    assert any(ae.resample_like(train, synth, seed=s).indices.tolist() != a.indices.tolist() for s in range(5, 9))
    # a class's draw does not depend on the other classes' counts, and k draws start the draw of more
    b = ae.resample_like(train, {"mel": 9}, seed=4)  # names match case-insensitively
    assert b.indices[:7].tolist() == a.indices[a.labels == 0].tolist()


def test_class_names_match_by_name_and_errors_name_the_problem():
    train = tiny_imageset(counts=[4, 4, 0], size=8, seed=1)
    mel_nv = tiny_imageset(counts=[0, 5], size=8, classes=("NV", "MEL"), seed=2)  # another class list
    assert ae.resample_like(train, mel_nv, seed=0).class_counts() == {"MEL": 5, "NV": 0, "BKL": 0}
    with pytest.raises(ae.DataError, match="class 'SCC' is not in the real class space"):
        ae.resample_like(train, {"SCC": 2})
    with pytest.raises(ae.DataError, match="class 'BKL': 3 images asked for, but the training set holds none"):
        ae.resample_like(train, {"BKL": 3})
    with pytest.raises(ae.DataError, match="count of class 'MEL' must be an int >= 0, got -1"):
        ae.resample_like(train, {"MEL": -1})
    with pytest.raises(ae.DataError, match="expected class counts"):
        ae.resample_like(train, [1, 2])
    assert len(ae.resample_like(train, {"MEL": 0})) == 0


def test_a_classifier_trains_on_the_control_like_on_a_synthetic_set():
    """The control goes where a synthetic set goes (``fit(..., synthetic=[control])``), through combine."""
    train = tiny_imageset(counts=[3, 6, 6], size=8, seed=1)
    control = ae.resample_like(train, {"MEL": 6}, seed=0)
    both = ae.combine(train, [control])
    assert both.class_counts() == {"MEL": 9, "NV": 6, "BKL": 6}
    assert np.array_equal(both.images()[len(train):], train.images()[control.indices])
