"""Image conventions and their checks."""

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.errors import ShapeError


def test_check_images_names_expected_and_actual():
    with pytest.raises(ShapeError) as e:
        ae.check_images(np.zeros((2, 3, 8, 8), np.uint8), where="thing")
    assert "thing" in str(e.value) and "(2, 3, 8, 8)" in str(e.value) and "N×H×W×3" in str(e.value)
    with pytest.raises(ShapeError, match="float32"):
        ae.check_images(np.zeros((2, 8, 8, 3), np.float32), where="x")
    with pytest.raises(ShapeError, match="expected 3 images"):
        ae.check_images(np.zeros((2, 8, 8, 3), np.uint8), where="x", n=3)


def test_round_trip_model_space():
    x = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    t = ae.to_model(x)
    assert t.shape == (3, 3, 8, 8) and t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    np.testing.assert_array_equal(ae.from_model(t), x)


def test_resize_and_arrayimageset():
    s = ae.ArrayImageSet(np.zeros((4, 16, 16, 3), np.uint8), [0, 1, 1, 0], ["A", "B"])
    assert s.images(8).shape == (4, 8, 8, 3) and s.class_counts() == {"A": 2, "B": 2}
    img, label = s[1]
    assert img.shape == (16, 16, 3) and label == 1
    with pytest.raises(ae.DataError, match="values must lie"):
        ae.ArrayImageSet(np.zeros((1, 4, 4, 3), np.uint8), [5], ["A"])
    with pytest.raises(ae.DataError, match="'C'"):
        s.class_index("C")
