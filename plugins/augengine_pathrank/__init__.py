"""augengine built-in filter ``path-rank``: the Path-Rank-Filter (Wei et al. 2019).

Ranks the images of a target class by a classifier's softmax confidence for that class and
keeps the top α fraction: ``K = floor(α · n)`` of the ``n`` candidates (an α that keeps no
image is an error). Controls that tell the filter's effect from the effect of having fewer
images: ``mode="bottom"`` keeps the K least confident, ``mode="random"`` keeps K at random
(seeded). Ties break deterministically (lower index first).

Two uses:

* a real dataset → a selection JSON (:meth:`PathRankFilter.select_dataset`,
  :func:`augengine.selection.write_selection` / ``read_selection``) that ``cyclegan`` takes as
  ``selection=`` to restrict its domain Y;
* a :class:`~augengine.SyntheticSet` → a filtered SyntheticSet with the scores stored
  (:meth:`PathRankFilter.filter_set`).

Selection JSON (``"schema": "augengine.selection/1"``): ``filter``, ``config``,
``target_class``, ``n_candidates``, ``n_kept``, ``ids``, ``indices`` and ``scores`` (kept
images in descending score order), ``data_fingerprint``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

import augengine as ae
from augengine import DataError, PluginError
from augengine.plugin_api import (
    ClassifierPass,
    SELECTION_SCHEMA,
    read_selection,
    selection_record,
    write_filtered_set,
    write_selection,
)

__all__ = ["PathRankFilter", "PathRankConfig", "write_selection", "read_selection", "SELECTION_SCHEMA"]

class PathRankConfig(ae.PluginConfig):
    """Configuration of :class:`PathRankFilter`."""

    alpha: float = Field(1.0, gt=0, le=1, description="fraction kept, K = floor(alpha * n) (paper: 1/8, 1/4, 1/2, 1)")
    mode: Literal["top", "bottom", "random"] = Field("top", description="top = the filter; bottom/random = controls")
    batch_size: int = Field(256, ge=1, description="classifier batch size")


class PathRankFilter(ae.Filter):
    """Path-Rank-Filter (Wei et al. 2019): keep the top α of a class by classifier confidence."""

    name = "path-rank"
    Config = PathRankConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self._info: dict[str, Any] = {}

    @classmethod
    def work(cls, config, *, phase, n_images=0, **context):
        """Scoring is one classifier pass over the candidates (ranking them costs no FLOPs)."""
        return [ClassifierPass(n_images, "path-rank scores")] if phase == "score" else []

    # -- scoring -----------------------------------------------------------------------
    def score(self, images: ae.ImageSet, *, classifier: ae.Classifier | None = None,
              target_class: str | None = None) -> np.ndarray:
        """Softmax confidence for ``target_class`` (or, when None, for each image's own label).

        Shape:
            - output: :math:`(N,)` float64.
        """
        if classifier is None:
            raise PluginError("filter 'path-rank': needs a classifier (classifier=RUN_DIR or a fitted Classifier)")
        names = [c.lower() for c in classifier.class_names]
        inputs = images
        if [c.lower() for c in images.class_names] != names:
            # another class list (a MEL/NV set scored by a 7-class classifier): the classifier reads the
            # pixels only, and the classes are matched by name below
            inputs = images.images(classifier.image_size)
        proba = np.asarray(classifier.predict_proba(inputs, batch_size=self.config.batch_size), dtype=np.float64)
        if proba.shape != (len(images), len(names)):
            raise PluginError(f"filter 'path-rank': classifier returned probabilities of shape {proba.shape}, "
                              f"expected {(len(images), len(names))}")
        if target_class is not None:
            if target_class.lower() not in names:
                raise DataError(f"filter 'path-rank': class {target_class!r} is not in the classifier's classes "
                                f"{classifier.class_names}")
            return proba[:, names.index(target_class.lower())]
        cols = []
        for c in images.class_names:
            if c.lower() not in names:
                raise DataError(f"filter 'path-rank': class {c!r} of the images is not in the classifier's classes "
                                f"{classifier.class_names}")
            cols.append(names.index(c.lower()))
        return proba[np.arange(len(images)), np.asarray(cols)[images.labels]]

    def _keep(self, pool: np.ndarray, scores: np.ndarray, seed: int, what: str) -> np.ndarray:
        """Kept indices of ``pool`` (descending score, ties → lower index first)."""
        c = self.config
        n = len(pool)
        k = math.floor(c.alpha * n + 1e-9)
        if k == 0:
            raise DataError(f"filter 'path-rank': alpha={c.alpha} keeps no image of the {n} candidates ({what}); "
                            f"use alpha ≥ {1 / max(n, 1):.4g}")
        s = scores[pool]
        desc = pool[np.lexsort((pool, -s))]
        if c.mode == "top":
            kept = desc[:k]
        elif c.mode == "bottom":
            kept = pool[np.lexsort((pool, s))][:k]
            kept = kept[np.lexsort((kept, -scores[kept]))]
        else:
            chosen = np.random.default_rng(seed).choice(n, size=k, replace=False)
            kept = pool[np.sort(chosen)]
            kept = kept[np.lexsort((kept, -scores[kept]))]
        return kept.astype(np.int64)

    def select(self, images: ae.ImageSet, *, classifier: ae.Classifier | None = None,
               target_class: str | None = None, seed: int = 0, scores: np.ndarray | None = None) -> np.ndarray:
        """Indices kept, in descending score order.

        With ``target_class`` the candidates are the images labelled with it; without, each
        class is filtered on its own (top α of every class, by confidence for its own label).

        Shape:
            - output: :math:`(K,)` int64.
        """
        if target_class is not None:
            k = images.class_index(target_class)  # DataError for an unknown class
            pools = {images.class_names[k]: np.flatnonzero(images.labels == k)}
        else:
            pools = {c: np.flatnonzero(images.labels == i) for i, c in enumerate(images.class_names)}
            pools = {c: p for c, p in pools.items() if len(p)}
        if scores is None:
            scores = self.score(images, classifier=classifier, target_class=target_class)
        kept = [self._keep(p, scores, seed, f"class {c}") for c, p in pools.items()]
        out = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        if len(kept) > 1:
            out = out[np.lexsort((out, -scores[out]))]
        self._info = {"alpha": self.config.alpha, "mode": self.config.mode, "seed": int(seed),
                      "target_class": target_class, "n_candidates": int(sum(len(p) for p in pools.values())),
                      "n_kept": int(len(out)), "per_class": {c: int(len(k)) for c, k in zip(pools, kept)},
                      "min_kept_score": float(scores[out].min()) if len(out) else None}
        return out

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    # -- (a) real data → selection JSON -------------------------------------------------
    def select_dataset(self, images: ae.ImageSet, *, classifier: ae.Classifier, target_class: str,
                       seed: int = 0, classifier_run: str | None = None) -> dict[str, Any]:
        """Select from a real split; returns the selection record (:func:`augengine.selection.selection_record`)."""
        if target_class is None:
            raise DataError("filter 'path-rank': a real dataset needs a target class (target_class='MEL')")
        scores = self.score(images, classifier=classifier, target_class=target_class)
        kept = self.select(images, classifier=classifier, target_class=target_class, seed=seed, scores=scores)
        return selection_record(images, kept, scores, filter_name=self.name,
                                filter_config=self.config.model_dump(mode="json"), target_class=target_class,
                                seed=int(seed), info=self.info(),
                                classifier_run=None if classifier_run is None else str(classifier_run))

    # -- (b) synthetic set → filtered synthetic set -------------------------------------
    def filter_set(self, in_set: ae.SyntheticSet | ae.ImageSet, out_path: str | Path, *,
                   classifier: ae.Classifier, target_class: str | None = None, seed: int = 0,
                   force: bool = False) -> ae.SyntheticSet:
        """Write the kept images of ``in_set`` (with their scores) as a new SyntheticSet
        (:func:`augengine.selection.write_filtered_set`: labels, seeds, ``source_index`` and the
        input's attributes carry over)."""
        scores = self.score(in_set, classifier=classifier, target_class=target_class)
        kept = self.select(in_set, classifier=classifier, target_class=target_class, seed=seed, scores=scores)
        return write_filtered_set(in_set, kept, scores, out_path, filter_name=self.name,
                                  filter_config=self.config.model_dump(mode="json"), filter_info=self.info(),
                                  force=force)


@ae.hookimpl
def register_filters(register):
    register(PathRankFilter)
