"""Real ∪ synthetic (combine) and kornia batch augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.data import Augment, AugmentConfig, augment, combine
from augengine.errors import DataError, ShapeError


def _set(n, classes, seed, size=8):
    rng = np.random.default_rng(seed)
    return ae.ArrayImageSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                            np.arange(n) % len(classes), classes, ids=[f"s{seed}:{i}" for i in range(n)])


def test_combine_counts_ratios_origin(tmp_path):
    real = ae.load_dataset("demo").image_set(np.arange(40), size=8)
    names = real.class_names
    s1 = _set(30, names, 1)
    s2 = _set(20, list(reversed(names)), 2)  # other class order: matched by name
    allc = combine(real, [s1, s2])
    assert len(allc) == 90 and (allc.origin == -1).sum() == 40
    assert (allc.origin[40:70] == 0).all() and (allc.source_ids[70:] == np.arange(20)).all()
    x = allc.images(8)
    assert np.array_equal(x[:40], real.images(8)) and np.array_equal(x[70:], s2.images(8))
    assert names[allc.labels[70]] == list(reversed(names))[s2.labels[0]]
    half = combine(real, [s1, s2], amount=0.5, seed=0)
    assert len(half) == 60 and (half.origin >= 0).sum() == 20
    again = combine(real, [s1, s2], amount=0.5, seed=0)
    other = combine(real, [s1, s2], amount=0.5, seed=1)
    assert np.array_equal(half.source_ids, again.source_ids) and not np.array_equal(half.source_ids, other.source_ids)
    n7 = combine(real, s1, amount=7)
    assert len(n7) == 47 and n7.images(16).shape == (47, 16, 16, 3)
    assert len(combine(real)) == 40 and combine(real, [s1], amount=0).origin.max() == -1
    assert n7.groups is not None and str(n7.groups[-1]).startswith("synthetic0:")


def test_combine_with_synthetic_set_file(tmp_path):
    real = ae.load_dataset("demo").image_set(np.arange(10), size=8)
    w = ae.SyntheticSet.create(tmp_path / "s.h5", class_names=real.class_names, image_size=8)
    w.append(np.full((5, 8, 8, 3), 7, np.uint8), np.arange(5))
    synth = w.close()
    both = combine(real, [synth], amount=3, seed=0)
    assert len(both) == 13 and (both.images()[10:] == 7).all()


def test_combine_errors():
    real = _set(10, ["a", "b"], 0)
    with pytest.raises(DataError, match="amount: 50 synthetic images requested"):
        combine(real, [_set(5, ["a", "b"], 1)], amount=50)
    with pytest.raises(DataError, match="class 'z' is not in the real class space"):
        combine(real, [_set(5, ["a", "z"], 1)])
    with pytest.raises(DataError, match="amount: expected a count >= 0"):
        combine(real, [_set(5, ["a", "b"], 1)], amount=-1)


def test_augment_deterministic_and_shapes():
    x = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    a = augment(x, seed=3)
    b = augment(x, generator=torch.Generator().manual_seed(3))
    c = augment(x, seed=4)
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.shape == x.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # geometry only: every output is a flip/rotation of its input (same multiset of pixels)
    g = Augment(brightness=0, contrast=0, saturation=0, hue=0)(torch.from_numpy(x), seed=1)
    assert isinstance(g, torch.Tensor)
    for i in range(16):
        variants = [np.rot90(v, k) for v in (x[i], x[i][:, ::-1]) for k in range(4)]
        assert any(np.array_equal(g[i].numpy(), v) for v in variants)
    assert not np.array_equal(g.numpy(), x)
    off = Augment(AugmentConfig(hflip=False, vflip=False, rot90=False, p_color=0.0))
    assert np.array_equal(off(x, seed=0), x)
    # colour jitter is light
    j = Augment(hflip=False, vflip=False, rot90=False, p_color=1.0, hue=0.02)(x, seed=0)
    assert 0 < np.abs(j.astype(int) - x).mean() < 40
    # model convention in, model convention out
    m = ae.to_model(x)
    y = augment(m, seed=3)
    assert y.dtype == torch.float32 and y.shape == m.shape and y.min() >= -1 and y.max() <= 1
    assert np.abs(ae.from_model(y).astype(int) - a.astype(int)).max() <= 1
    with pytest.raises(ShapeError, match="augment: expected uint8"):
        augment(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(Exception, match="extra"):
        AugmentConfig(flip=True)
