"""The classifier plugin interface: fit, predict_proba, features, save, load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from augengine.errors import DataError
from augengine.images import check_images, resize_uint8
from augengine.imageset import ImageSet
from augengine.plugin import Plugin

__all__ = ["Classifier"]


class Classifier(Plugin):
    """Base class of classifier plugins (e.g. ``resnet``).

    After :meth:`fit` or :meth:`load`, ``class_names`` is the class space. Inputs to
    :meth:`predict_proba` and :meth:`features` are an :class:`~augengine.ImageSet` or a uint8
    array N×H×W×3 (resized to the classifier's ``image_size`` when needed).
    """

    kind: ClassVar[str] = "classifier"
    class_names: list[str]
    run_dir: Path | None = None

    @property
    def image_size(self) -> int:
        return int(getattr(self.config, "image_size"))

    def fit(self, train: ImageSet, *, val: ImageSet | None = None, synthetic: Sequence[ImageSet] = (),
            amount: int | float | None = None, run_dir: str | Path | None = None, resume: bool = False,
            force: bool = False, seed: int = 0, progress: bool = True) -> "Classifier":
        """Train on ``train`` ∪ ``synthetic`` (``amount`` synthetic images: a count, or a ratio of
        ``len(train)``; all when ``None``); keep the best epoch on ``val``. Returns ``self``.

        The engine wraps every implementation (see :mod:`augengine.plugin`): the run-directory
        rule (``resume``/``force``), the caller's RNG state left as it was, and the training
        split's hash (``train.split_sha256``) recorded in ``run.json`` so that an evaluation on
        another split's test images is refused.
        """
        raise NotImplementedError

    @property
    def trained_split_sha256(self) -> str | None:
        """Hash of the split whose training images this classifier saw (``None``: unknown,
        e.g. trained on images that do not come from a split)."""
        prov = self.fit_provenance or {}
        if prov.get("split_sha256"):
            return str(prov["split_sha256"])
        run_dir = getattr(self, "run_dir", None)
        if run_dir is not None and (Path(run_dir) / "run.json").is_file():
            import json

            try:
                value = json.loads((Path(run_dir) / "run.json").read_text()).get("split_sha256")
            except (OSError, ValueError):
                return None
            return str(value) if value else None
        return None

    def predict_proba(self, images: ImageSet | np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities.

        Shape:
            - images: :math:`(N, H, W, 3)` uint8 (or an ImageSet of N images).
            - output: :math:`(N, C)` float32, rows sum to 1, C = ``len(class_names)``.
        """
        raise NotImplementedError

    def features(self, images: ImageSet | np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate-layer features.

        Shape:
            - images: :math:`(N, H, W, 3)` uint8 (or an ImageSet of N images).
            - output: :math:`(N, D)` float32.
        """
        raise NotImplementedError

    def predict(self, images: ImageSet | np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Arg-max labels, int64 (N,)."""
        return self.predict_proba(images, batch_size=batch_size).argmax(1).astype(np.int64)

    def save(self, run_dir: str | Path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir: str | Path, device: str | None = None) -> "Classifier":
        raise NotImplementedError

    # -- helpers for implementations ------------------------------------------------------
    def as_array(self, images: ImageSet | np.ndarray) -> np.ndarray:
        """ImageSet or array → uint8 N×S×S×3 at ``image_size`` (checked; class space checked)."""
        if isinstance(images, ImageSet):
            if getattr(self, "class_names", None) and list(images.class_names) != list(self.class_names):
                raise DataError(
                    f"classifier {self.name!r}: images have classes {images.class_names}, "
                    f"the classifier was trained on {self.class_names}"
                )
            return images.images(self.image_size)
        arr = check_images(np.asarray(images), where=f"classifier {self.name!r} input")
        return resize_uint8(arr, self.image_size)
