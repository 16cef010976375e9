"""The filter plugin interface: score images, keep a selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from augengine.imageset import ImageSet
from augengine.plugin import Plugin

if TYPE_CHECKING:
    from augengine.classifier import Classifier

__all__ = ["Filter"]


class Filter(Plugin):
    """Base class of filter plugins (e.g. ``path-rank``).

    A filter scores the images of a set and selects a subset. Filters that need a model
    (path-rank needs a classifier) receive it as the ``classifier`` argument.
    """

    kind: ClassVar[str] = "filter"

    def score(self, images: ImageSet, *, classifier: "Classifier | None" = None,
              target_class: str | None = None) -> np.ndarray:
        """Score every image (higher = more wanted).

        Shape:
            - output: :math:`(N,)` float64, one score per image of ``images``.
        """
        raise NotImplementedError

    def select(self, images: ImageSet, *, classifier: "Classifier | None" = None,
               target_class: str | None = None, seed: int = 0, scores: np.ndarray | None = None) -> np.ndarray:
        """Indices of the images kept, in descending score order.

        ``scores`` (from :meth:`score` on the same arguments) saves scoring twice.

        Shape:
            - output: :math:`(K,)` int64, K ≤ N.
        """
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What the last selection did (counts, thresholds); JSON-able."""
        return {}
