"""``ImageSet``: the one type of labelled images that crosses every plugin boundary.

Real splits (from :mod:`augengine.data`), synthetic sets (:class:`augengine.SyntheticSet`),
joins of both, and in-memory arrays all present the same small interface, so a plugin never
needs to know where its images came from.

An ``ImageSet`` is also a :class:`torch.utils.data.Dataset`: item ``i`` is
``(uint8 tensor H×W×3, int label)``, so a plain ``DataLoader`` batches it into the storage
convention (uint8 N×H×W×3, see :mod:`augengine.images`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from augengine.errors import DataError, ShapeError
from augengine.images import check_images, resize_uint8

__all__ = ["ImageSet", "ArrayImageSet", "SubsetImageSet"]


class ImageSet(Dataset):
    """Abstract labelled image collection.

    Subclasses provide ``class_names``, ``labels``, and :meth:`_load` (all images as uint8
    N×S×S×3 at a given size). Everything else is derived.

    Attributes:
        class_names: names of the class space, index = label value.
        labels: int64 array (N,), indices into ``class_names``.
        groups: optional array (N,) of group ids (lesion ids) or ``None``.
        ids: list of N human-readable image names (file names, ``synthetic:123``).
        size: the image size that ``__getitem__`` and :meth:`images` return by default.
        split_sha256: hash of the split this set was cut from (``Split.sha256()``), ``None``
            for sets that do not come from a split. A classifier records it of its training
            set; an evaluation refuses a test set of another split.
    """

    class_names: list[str]
    labels: np.ndarray
    groups: np.ndarray | None = None
    ids: list[str]
    size: int | None = None
    split_sha256: str | None = None

    # -- to implement -------------------------------------------------------------------
    def _load(self, size: int | None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- derived ------------------------------------------------------------------------
    def images(self, size: int | None = None) -> np.ndarray:
        """All images as one array.

        Args:
            size: square side length; ``None`` keeps :attr:`size` (native size).

        Returns:
            uint8 array, **read-only**: it is the set's cache, shared by every later call, so an
            in-place edit raises ``ValueError`` (copy it with ``np.array(...)`` to edit).

        Shape:
            - output: :math:`(N, S, S, 3)`.
        """
        size = size or self.size
        cache = self.__dict__.setdefault("_image_cache", {})
        if size not in cache:
            arr = self._load(size)
            check_images(arr, where=f"{type(self).__name__}.images", size=size, n=len(self))
            view = arr.view()  # never flip the flag of an array the caller handed in
            view.flags.writeable = False
            cache.clear()  # keep one size in memory at a time
            cache[size] = view
        return cache[size]

    def __len__(self) -> int:
        return int(len(self.labels))

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.images()[i])), int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name (all classes, zeros included)."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {c: int(k) for c, k in zip(self.class_names, counts)}

    def class_index(self, name: str) -> int:
        """Index of class ``name`` (case-insensitive); DataError listing the classes otherwise."""
        for i, c in enumerate(self.class_names):
            if c.lower() == str(name).lower():
                return i
        raise DataError(f"class {name!r}: not in the class space {self.class_names}")

    def subset(self, indices: np.ndarray | Sequence[int]) -> "SubsetImageSet":
        """The images at ``indices``, as a view: ``images(size)`` decodes through this set at
        any size (no upsampling of an already-resized copy)."""
        return SubsetImageSet(self, indices)

    def relabel(self, class_names: Sequence[str], where: str = "relabel") -> "SubsetImageSet":
        """This set in another class space, matched by name (case-insensitive): a view whose
        labels index ``class_names``. Classes of ``class_names`` that this set lacks simply have
        no images; a class of this set missing from ``class_names`` is a DataError naming it.

        Used for external test sets whose class list differs from the classifier's (another
        clinic's MEL/NV-only set evaluated by a seven-class classifier).
        """
        target = [str(c) for c in class_names]
        lookup = {c.lower(): i for i, c in enumerate(target)}
        counts = self.class_counts()
        present = [c for c in self.class_names if c.lower() not in lookup and counts[c] > 0]
        if present:
            raise DataError(f"{where}: classes {present} of this set are not in the class space {target} "
                            f"(images of them cannot be scored; drop them or train on them)")
        mapping = np.array([lookup.get(c.lower(), -1) for c in self.class_names], dtype=np.int64)
        view = SubsetImageSet(self, np.arange(len(self)))
        view.labels = mapping[np.asarray(self.labels, dtype=np.int64)]
        view.class_names = target
        return view

    def fingerprint(self) -> str:
        """SHA-256 over labels, class names and pixels at native size (stable across runs)."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.class_names).encode())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.images()).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, size={self.size}, classes={self.class_counts()})"


class ArrayImageSet(ImageSet):
    """An :class:`ImageSet` over arrays in memory.

    Args:
        images: uint8 array N×H×W×3 (H = W).
        labels: int array (N,) of indices into ``class_names``.
        class_names: the class space.
        groups: optional group ids (N,).
        ids: optional names (N,); default ``image:<i>``.

    Shape:
        - images: :math:`(N, S, S, 3)` uint8.
        - labels: :math:`(N,)` int.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | Sequence[int],
        class_names: Sequence[str],
        groups: np.ndarray | Sequence | None = None,
        ids: Sequence[str] | None = None,
    ):
        images = np.asarray(images)
        check_images(images, where="ArrayImageSet(images)")
        if images.shape[1] != images.shape[2]:
            raise ShapeError(f"ArrayImageSet(images): expected square images, got shape {images.shape}")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise ShapeError(
                f"ArrayImageSet(labels): expected {images.shape[0]} labels, got {labels.shape[0]}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(
                f"ArrayImageSet(labels): values must lie in 0..{len(class_names) - 1} "
                f"for classes {list(class_names)}, got {labels.min()}..{labels.max()}"
            )
        self._images = images
        self.labels = labels
        self.class_names = list(class_names)
        self.groups = None if groups is None else np.asarray(groups)
        self.ids = list(ids) if ids is not None else [f"image:{i}" for i in range(len(labels))]
        self.size = int(images.shape[1])

    def _load(self, size):
        return resize_uint8(self._images, size)


class SubsetImageSet(ImageSet):
    """Rows ``indices`` of another :class:`ImageSet` (labels, groups and ids follow; pixels are
    read through the parent at whatever size is asked)."""

    def __init__(self, parent: ImageSet, indices: np.ndarray | Sequence[int]):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(parent)):
            raise DataError(f"subset: indices must lie in 0..{len(parent) - 1}, got {idx.min()}..{idx.max()}")
        self.parent = parent
        self.indices = idx
        self.labels = parent.labels[idx]
        self.class_names = list(parent.class_names)
        self.groups = None if parent.groups is None else np.asarray(parent.groups)[idx]
        self.ids = [parent.ids[i] for i in idx]
        self.size = parent.size
        self.split_sha256 = getattr(parent, "split_sha256", None)

    def _load(self, size):
        return self.parent.images(size)[self.indices]
