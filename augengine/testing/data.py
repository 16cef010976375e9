"""Tiny, learnable, fully synthetic data for plugin tests (no files, no downloads)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augengine.classifier import Classifier
from augengine.config import PluginConfig
from augengine.imageset import ArrayImageSet, ImageSet

__all__ = ["tiny_imageset", "StubClassifier"]

_PALETTE = np.array(
    [[200, 60, 50], [90, 60, 40], [230, 190, 150], [60, 140, 200], [120, 200, 90], [200, 120, 220],
     [240, 240, 60], [40, 40, 40]], dtype=np.float32)


def tiny_imageset(n_per_class: int = 8, size: int = 16, classes: Sequence[str] = ("MEL", "NV", "BKL"),
                  seed: int = 0, groups: bool = True, counts: Sequence[int] | None = None) -> ArrayImageSet:
    """A labelled set whose classes differ in lesion colour and size (learnable in a few steps).

    Each image is skin-coloured background with a noisy disc; class k has colour ``_PALETTE[k]``
    and radius growing with k. Lesion ids pair up consecutive images of a class.

    Args:
        n_per_class: images per class (ignored where ``counts`` is given).
        size: side length in pixels.
        classes: class names.
        seed: RNG seed (same seed, same images).
        groups: attach lesion ids.
        counts: per-class counts (e.g. imbalanced sets).

    Shape:
        - images: :math:`(N, size, size, 3)` uint8.
    """
    rng = np.random.default_rng(seed)
    counts = list(counts) if counts is not None else [n_per_class] * len(classes)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    imgs, labels, lesion = [], [], []
    for k, n in enumerate(counts):
        for i in range(n):
            cy, cx = rng.uniform(0.35, 0.65, size=2) * size
            r = size * (0.18 + 0.05 * (k % 4)) * rng.uniform(0.85, 1.15)
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
            bg = np.array([225, 180, 160], np.float32) + rng.normal(0, 6, 3)
            img = np.broadcast_to(bg, (size, size, 3)).copy()
            img[mask] = _PALETTE[k % len(_PALETTE)] + rng.normal(0, 8, 3)
            img += rng.normal(0, 6, img.shape)
            imgs.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(k)
            lesion.append(f"L{k}_{i // 2}")
    order = rng.permutation(len(labels))
    imgs_a = np.stack(imgs)[order] if imgs else np.zeros((0, size, size, 3), np.uint8)
    return ArrayImageSet(
        imgs_a,
        np.asarray(labels, np.int64)[order],
        list(classes),
        groups=np.asarray(lesion)[order] if groups else None,
        ids=[f"tiny:{i}" for i in order],
    )


class _StubConfig(PluginConfig):
    image_size: int = 16


class StubClassifier(Classifier):
    """Deterministic stand-in classifier: probabilities from a given function or mean colour.

    Args:
        class_names: the class space.
        proba_fn: ``uint8 N×S×S×3 → float N×C``; default: softmax of negative distances
            between each image's mean colour and the class palette colours of
            :func:`tiny_imageset`.
    """

    name = "stub"
    Config = _StubConfig

    def __init__(self, class_names: Sequence[str], proba_fn=None, image_size: int = 16):
        super().__init__(image_size=image_size)
        self.class_names = list(class_names)
        self._fn = proba_fn

    def fit(self, train: ImageSet, **kwargs):
        return self

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        arr = self.as_array(images)
        if self._fn is not None:
            return np.asarray(self._fn(arr), dtype=np.float32)
        return _palette_proba(arr, len(self.class_names))

    def features(self, images, batch_size: int = 256) -> np.ndarray:
        arr = self.as_array(images).astype(np.float32) / 255.0
        return np.concatenate([arr.mean((1, 2)), arr.std((1, 2)), arr.reshape(len(arr), -1)[:, ::97]], 1)


def _palette_proba(arr: np.ndarray, c: int) -> np.ndarray:
    s = arr.shape[1]
    centre = arr[:, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4].reshape(len(arr), -1, 3).mean(1)
    d = ((centre[:, None, :] - _PALETTE[None, :c, :]) ** 2).sum(-1) / 2000.0
    e = np.exp(-(d - d.min(1, keepdims=True)))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)
