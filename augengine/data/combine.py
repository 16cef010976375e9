"""Real ∪ synthetic: one :class:`~augengine.ImageSet` joining a real set with synthetic sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augengine.errors import DataError
from augengine.images import resize_uint8
from augengine.imageset import ImageSet

__all__ = ["CombinedImageSet", "combine"]


class CombinedImageSet(ImageSet):
    """The real set followed by the chosen synthetic images (see :func:`combine`).

    Attributes:
        origin: int64 (N,): ``-1`` for a real image, ``k`` for an image of synthetic set ``k``.
        source_ids: int64 (N,): index of the item inside its own set.
        parts: ``[real, *synthetic]``.
    """

    def __init__(self, real: ImageSet, synthetic: Sequence[ImageSet], origin, source_ids):
        self.parts = [real, *synthetic]
        self.real = real
        self.synthetic = list(synthetic)
        self.origin = np.asarray(origin, dtype=np.int64)
        self.source_ids = np.asarray(source_ids, dtype=np.int64)
        self.class_names = list(real.class_names)
        ids, groups = [], []
        self.size = real.size or (synthetic[0].size if synthetic else None)
        self._maps = [_label_map(s, self.class_names, k) for k, s in enumerate(self.synthetic)]
        self.labels = np.array(
            [int(real.labels[i]) if o < 0 else int(self._maps[o][self.synthetic[o].labels[i]])
             for o, i in zip(self.origin.tolist(), self.source_ids.tolist())], dtype=np.int64)
        for o, i in zip(self.origin.tolist(), self.source_ids.tolist()):
            s = real if o < 0 else self.synthetic[o]
            ids.append(s.ids[i])
            if real.groups is not None:
                groups.append(real.groups[i] if o < 0 else f"synthetic{o}:{i}")
        self.ids = ids
        self.groups = np.asarray(groups, dtype=object) if real.groups is not None else None

    @property
    def is_real(self) -> np.ndarray:
        """Boolean mask of the real items."""
        return self.origin < 0

    def _load(self, size):
        size = size or self.size
        out = np.empty((len(self), size, size, 3), dtype=np.uint8)
        for k, part in enumerate(self.parts):
            sel = self.origin == (k - 1)
            if not sel.any():
                continue
            imgs = part.images(size) if part.size is not None else part.images()
            imgs = imgs[self.source_ids[sel]]
            out[sel] = imgs if imgs.shape[1] == size else resize_uint8(imgs, size)
        return out


def _label_map(s: ImageSet, class_names: list[str], k: int) -> np.ndarray:
    lower = [c.lower() for c in class_names]
    m = np.empty(len(s.class_names), dtype=np.int64)
    for j, c in enumerate(s.class_names):
        if c.lower() not in lower:
            raise DataError(f"synthetic set {k} ({getattr(s, 'path', type(s).__name__)}): class {c!r} is not in the "
                            f"real class space {class_names}")
        m[j] = lower.index(c.lower())
    return m


def combine(real: ImageSet, synthetic: Sequence[ImageSet] = (), amount: int | float | None = None,
            seed: int = 0) -> CombinedImageSet:
    """Join a real set with synthetic sets (optionally filtered beforehand).

    Synthetic labels are matched to the real class space by name.

    Args:
        real: the real training set.
        synthetic: synthetic sets (e.g. :class:`~augengine.SyntheticSet`, a filtered subset).
        amount: how many synthetic images to add: ``None`` all of them; an ``int`` a count; a
            ``float`` a ratio of ``len(real)`` (``0.5`` → half as many synthetic as real images).
            A subset is drawn uniformly without replacement from all synthetic images, with ``seed``.
        seed: draws the subset.

    Returns:
        a :class:`CombinedImageSet` (real items first, then synthetic in source order) with
        ``.origin`` (-1 real, k = synthetic set k) and ``.source_ids``.

    Raises:
        DataError: amount negative or more than available, or a synthetic class not in the real class space.
    """
    if isinstance(synthetic, ImageSet):
        synthetic = [synthetic]
    synthetic = list(synthetic)
    sizes = [len(s) for s in synthetic]
    available = int(sum(sizes))
    if amount is None:
        n = available
    elif isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise DataError(f"amount: expected a count (int) or a ratio of the real set (float); got {amount!r}")
    elif isinstance(amount, (float, np.floating)):
        if amount < 0:
            raise DataError(f"amount: expected a ratio >= 0; got {amount}")
        n = int(round(float(amount) * len(real)))
    else:
        n = int(amount)
        if n < 0:
            raise DataError(f"amount: expected a count >= 0; got {n}")
    if n > available:
        raise DataError(f"amount: {n} synthetic images requested ({amount!r}), but the synthetic sets hold only {available}")
    pool_origin = np.concatenate([np.full(k, j, np.int64) for j, k in enumerate(sizes)]) if sizes else np.zeros(0, np.int64)
    pool_index = np.concatenate([np.arange(k, dtype=np.int64) for k in sizes]) if sizes else np.zeros(0, np.int64)
    if n < available:
        pick = np.sort(np.random.default_rng(seed).choice(available, size=n, replace=False))
        pool_origin, pool_index = pool_origin[pick], pool_index[pick]
    origin = np.concatenate([np.full(len(real), -1, np.int64), pool_origin])
    source_ids = np.concatenate([np.arange(len(real), dtype=np.int64), pool_index])
    return CombinedImageSet(real, synthetic, origin, source_ids)
