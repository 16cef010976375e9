"""Batched classifier features with a cache keyed by (classifier checkpoint, image set).

Every set-quality metric reads features from here, so one evaluation extracts each image set's
features once, and a bench that evaluates many synthetic sets against the same training set
extracts the training features once per classifier.

Keys:
    - classifier: ``<plugin name>:<sha256 of checkpoint.pt>`` when the classifier was saved or
      loaded from a run directory (the sha is read from ``run.json`` where recorded); otherwise
      the classifier object itself (weakly referenced, in-memory only).
    - image set: sha256 of the uint8 pixels at the classifier's input size (so the same images
      in another container, or another file, hit the same entry).

Disk cache (optional): ``<classifier run_dir>/features/<ckpt sha[:12]>-<set sha[:16]>.npy``,
written atomically; a stale entry is impossible because both hashes are in the name.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

from augengine.classifier import Classifier
from augengine.errors import ShapeError
from augengine.imageset import ImageSet
from augengine.runs import atomic_write_bytes, sha256_file

__all__ = ["FeatureCache", "FEATURE_CACHE", "classifier_fingerprint", "pixels_fingerprint"]


def classifier_fingerprint(classifier: Classifier) -> str | None:
    """``name:checkpoint-sha256`` of a classifier saved in a run directory, else ``None``."""
    run_dir = getattr(classifier, "run_dir", None)
    if not run_dir:
        return None
    run_dir = Path(run_dir)
    sha = None
    try:
        rec = json.loads((run_dir / "run.json").read_text())
        sha = rec.get("checkpoint_sha256")
    except (OSError, ValueError):
        pass
    if not sha and (run_dir / "checkpoint.pt").is_file():
        sha = sha256_file(run_dir / "checkpoint.pt")
    return f"{classifier.name}:{sha}" if sha else None


def pixels_fingerprint(images: np.ndarray) -> str:
    """sha256 over the shape and the bytes of a uint8 N×S×S×3 array."""
    h = hashlib.sha256(repr(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


class FeatureCache:
    """In-memory LRU (plus optional on-disk) cache of ``classifier.features(images)``.

    Args:
        max_items: entries kept in memory (least recently used dropped first).
    """

    def __init__(self, max_items: int = 32):
        self.max_items = max_items
        self._by_key: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._by_obj: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._by_obj = weakref.WeakKeyDictionary()
            self.hits = self.misses = 0

    def _remember(self, classifier, ckey, skey, feats) -> None:
        with self._lock:
            if ckey is not None:
                self._by_key[(ckey, skey)] = feats
                self._by_key.move_to_end((ckey, skey))
                while len(self._by_key) > self.max_items:
                    self._by_key.popitem(last=False)
            else:
                per = self._by_obj.setdefault(classifier, OrderedDict())
                per[skey] = feats
                while len(per) > self.max_items:
                    per.popitem(last=False)

    def _lookup(self, classifier, ckey, skey):
        with self._lock:
            if ckey is not None:
                feats = self._by_key.get((ckey, skey))
                if feats is not None:
                    self._by_key.move_to_end((ckey, skey))
                return feats
            return self._by_obj.get(classifier, {}).get(skey)

    def features(self, classifier: Classifier, images: ImageSet | np.ndarray, *, batch_size: int = 256,
                 disk: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Features of ``images`` under ``classifier`` (cached), and the pixels they came from.

        Args:
            classifier: a trained classifier (``features`` = penultimate layer).
            images: an ImageSet or uint8 N×H×W×3 (resized to the classifier's input size).
            batch_size: forward batch size.
            disk: also read/write ``<run_dir>/features/`` when the classifier has a run dir.

        Returns:
            ``(features float32 (N, D), pixels uint8 (N, S, S, 3))``.
        """
        arr = classifier.as_array(images)
        skey = pixels_fingerprint(arr)
        ckey = classifier_fingerprint(classifier)
        feats = self._lookup(classifier, ckey, skey)
        path = None
        if ckey is not None and disk:
            path = Path(classifier.run_dir) / "features" / f"{ckey.split(':', 1)[1][:12]}-{skey[:16]}.npy"
        if feats is None and path is not None and path.is_file():
            try:
                feats = np.load(path, allow_pickle=False)
                if feats.shape[0] != len(arr):
                    feats = None
            except (OSError, ValueError):
                feats = None
        if feats is not None:
            self.hits += 1
        else:
            self.misses += 1
            feats = np.asarray(classifier.features(arr, batch_size=batch_size), dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != len(arr):
                raise ShapeError(
                    f"classifier {classifier.name!r}: features() returned shape {feats.shape}, "
                    f"expected ({len(arr)}, D)"
                )
            if path is not None:
                buf = io.BytesIO()
                np.save(buf, feats, allow_pickle=False)
                try:
                    atomic_write_bytes(path, buf.getvalue())
                except OSError:
                    pass  # a read-only run dir only loses the disk cache
        feats.setflags(write=False)
        self._remember(classifier, ckey, skey, feats)
        return feats, arr


#: the process-wide cache shared by every set-quality evaluation
FEATURE_CACHE = FeatureCache()
