"""The resampling control: add the class counts of a synthetic set as copies of real images.

Adding N synthetic melanomas changes two things at once: the classifier sees new images, and
it sees more images of that class. :func:`resample_like` gives the second alone — the same
class counts drawn with replacement from the real training images — so a classifier trained
on ``real ∪ resample_like(real, synthetic_set)`` is the control that a classifier trained on
``real ∪ synthetic_set`` has to beat::

    import augengine as ae
    control = ae.resample_like(split.train, synth, seed=0)      # same class counts as synth
    clf.fit(split.train, synthetic=[control], val=split.val, seed=s)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from augengine.errors import DataError
from augengine.imageset import ImageSet, SubsetImageSet

__all__ = ["resample_like", "class_counts_in"]


def class_counts_in(counts_or_set: Mapping[str, int] | ImageSet, class_names: list[str],
                    where: str = "resample_like") -> dict[str, int]:
    """Class counts (of a mapping or an ImageSet's labels) in the class space ``class_names``.

    Class names match case-insensitively (a MEL/NV synthetic set maps onto seven real classes).

    Returns:
        class name (spelled as in ``class_names``) → count, in ``class_names`` order, zero
        counts left out.

    Raises:
        DataError: a class outside ``class_names`` with images, or a count that is not an int ≥ 0.
    """
    if isinstance(counts_or_set, ImageSet):
        counts = counts_or_set.class_counts()
    elif isinstance(counts_or_set, Mapping):
        counts = dict(counts_or_set)
    else:
        raise DataError(f"{where}: expected class counts (a mapping class → count) or an ImageSet, "
                        f"got {type(counts_or_set).__name__}")
    lookup = {c.lower(): c for c in class_names}
    out: dict[str, int] = {}
    for name, k in counts.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 0:
            raise DataError(f"{where}: count of class {name!r} must be an int >= 0, got {k!r}")
        if int(k) == 0:
            continue
        real = lookup.get(str(name).lower())
        if real is None:
            raise DataError(f"{where}: class {name!r} is not in the real class space {list(class_names)}")
        out[real] = out.get(real, 0) + int(k)
    return {c: out[c] for c in class_names if c in out}


def resample_like(train: ImageSet, counts_or_set: Mapping[str, int] | ImageSet, seed: int = 0) -> SubsetImageSet:
    """Real training images drawn with replacement, with exactly the given class counts.

    Class ``c``'s images are drawn uniformly from ``train``'s images of class ``c`` with their
    own stream (``numpy.random.default_rng([seed, index of c])``), so a class's draw does not
    depend on the other classes' counts, and the draw of k images is the start of the draw of
    more.

    Args:
        train: the real training set to draw from.
        counts_or_set: class name → count, or a set (e.g. a :class:`~augengine.SyntheticSet`)
            whose class counts to copy; classes match by name (case-insensitive).
        seed: the draw (the same seed gives the same images).

    Returns:
        a view of ``train`` (:class:`~augengine.imageset.SubsetImageSet`; ``.indices`` are the
        drawn training indices), grouped by class in ``train``'s class order.

    Raises:
        DataError: a class outside ``train``'s classes, a bad count, or a class asked for that
            has no training images.
    """
    counts = class_counts_in(counts_or_set, list(train.class_names))
    labels = np.asarray(train.labels, dtype=np.int64)
    parts = []
    for c, name in enumerate(train.class_names):
        k = counts.get(name, 0)
        if not k:
            continue
        pool = np.flatnonzero(labels == c)
        if not len(pool):
            raise DataError(f"resample_like: class {name!r}: {k} images asked for, but the training set holds none")
        rng = np.random.default_rng([int(seed), c])
        parts.append(pool[rng.integers(0, len(pool), size=k)])
    idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return train.subset(idx)
