"""Batched features (a classifier's penultimate layer, or the FID Inception network) with a
cache keyed by (feature network, image set).

Every set-quality metric reads features from here, so one evaluation extracts each image set's
features once, and a bench that evaluates many synthetic sets against the same training set
extracts the training features once per classifier.

Keys:
    - classifier: ``<plugin name>:<sha256 of checkpoint.pt>`` when the classifier was saved or
      loaded from a run directory (the sha is read from ``run.json`` where recorded); otherwise
      the classifier object itself (weakly referenced, in-memory only).
    - image set: sha256 of the uint8 pixels at the classifier's input size (so the same images
      in another container, or another file, hit the same entry).

    - inception: ``inception-fid-2048:<sha256 of the weights file>``.

Disk cache (optional): ``$AUGENGINE_CACHE/features/<source>-<network key hash>-<set sha>.npy``
(the engine's cache directory, never the classifier's run folder or any other input), written
atomically; a stale entry is impossible because both hashes are in the name.
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

from augengine import DataError, PluginError, check_images, load_checkpoint, resize_uint8
from augengine.plugin_api import cache_dir

from augengine import Classifier, ImageSet, ShapeError
from augengine.plugin_api import atomic_write_bytes, sha256_file

__all__ = [
    "FeatureCache",
    "FEATURE_CACHE",
    "FeatureSpace",
    "ClassifierFeatures",
    "InceptionFeatures",
    "classifier_fingerprint",
    "pixels_fingerprint",
    "feature_cache_dir",
]


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


def feature_cache_dir() -> Path:
    """``$AUGENGINE_CACHE/features`` (default ``~/.cache/augengine/features``): the engine's cache,
    never a directory the evaluation reads from (a classifier's run folder stays as it was)."""
    return cache_dir() / "features"


class FeatureSpace:
    """Where features come from: an identity (``key``), an input size, and the extraction.

    Attributes:
        source: ``"classifier"`` or ``"inception"`` (recorded in the metrics).
        key: stable identity of the network's weights, or ``None`` (in-memory cache only).
        owner: the object the in-memory cache is tied to when ``key`` is ``None``.
        image_size: side length the images are resized to before :meth:`extract`.
    """

    source: str = ""
    key: str | None = None
    owner: object = None
    image_size: int = 0

    def pixels(self, images: ImageSet | np.ndarray) -> np.ndarray:
        """uint8 N×S×S×3 at :attr:`image_size`."""
        if isinstance(images, ImageSet):
            return images.images(self.image_size)
        return resize_uint8(check_images(np.asarray(images), where=f"{self.source} features input"), self.image_size)

    def extract(self, arr: np.ndarray, batch_size: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.source, "image_size": int(self.image_size)}


class ClassifierFeatures(FeatureSpace):
    """The penultimate layer of a (real-trained) classifier."""

    source = "classifier"

    def __init__(self, classifier: Classifier):
        self.classifier = classifier
        self.owner = classifier
        self.key = classifier_fingerprint(classifier)
        self.image_size = int(classifier.image_size)

    def pixels(self, images):
        return self.classifier.as_array(images)

    def extract(self, arr, batch_size):
        return self.classifier.features(arr, batch_size=batch_size)

    def describe(self) -> dict:
        return {"source": "classifier", "classifier": self.classifier.name, "image_size": int(self.image_size),
                "checkpoint": self.key}


_INCEPTION_NETS: dict[tuple[str, str], object] = {}
_INCEPTION_LOCK = threading.Lock()


class InceptionFeatures(FeatureSpace):
    """The FID Inception-v3 network as torchmetrics defines it (``NoTrainInceptionV3``,
    torch-fidelity's ``FeatureExtractorInceptionV3``; 2048-d pool features), read from a local
    weights file — nothing is downloaded.

    The file is read with ``weights_only=True`` (a file that holds more than tensors is refused);
    its tensors must match the network's keys and shapes. Images are fed as uint8 at
    ``image_size`` (the network resizes them to 299 px itself, as torchmetrics' FID does).

    Args:
        weights: path of the weights file (a state dict of tensors; the torch-fidelity release
            file ``weights-inception-2015-12-05-6726825d.pth`` is one).
        image_size: side length of the images given to the network.
        device: torch device string.
    """

    source = "inception"
    DIM = 2048

    def __init__(self, weights: str | Path, image_size: int, device: str = "cpu"):
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise DataError(f"evaluator 'set-quality': config key 'inception_weights': file {str(self.weights)!r} "
                            "not found")
        self.sha256 = sha256_file(self.weights)
        self.key = f"inception-fid-2048:{self.sha256}"
        self.owner = self
        self.image_size = int(image_size)
        self.device = device

    def network(self):
        """The network (built once per weights file and device in this process)."""
        import torch

        with _INCEPTION_LOCK:
            net = _INCEPTION_NETS.get((self.sha256, self.device))
            if net is not None:
                return net
            try:
                from torchmetrics.image.fid import NoTrainInceptionV3
                from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
            except ImportError as e:  # pragma: no cover - torchmetrics is a dependency
                raise PluginError(f"evaluator 'set-quality': features='inception' needs torchmetrics ({e})") from None
            if not _TORCH_FIDELITY_AVAILABLE:
                raise PluginError("evaluator 'set-quality': features='inception' needs torch-fidelity "
                                  "(pip install 'augengine[inception]')")
            state = load_checkpoint(self.weights)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise DataError(f"{self.weights}: expected a state dict of tensors (the FID Inception-v3 weights)")
            # torch-fidelity reads its weights file with a full unpickling; hand it a buffer of
            # the tensors just read with weights_only=True instead of the file itself
            buf = io.BytesIO()
            torch.save(dict(state), buf)
            buf.seek(0)
            try:
                net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(self.DIM)],
                                         feature_extractor_weights_path=buf)
            except RuntimeError as e:
                first = str(e).split("\n\t", 2)[1].strip() if "\n\t" in str(e) else str(e).splitlines()[0]
                raise DataError(f"{self.weights}: not the FID Inception-v3 weights that torchmetrics defines "
                                f"({first})") from None
            net = net.to(self.device).eval()
            _INCEPTION_NETS[(self.sha256, self.device)] = net
            return net

    def extract(self, arr, batch_size):
        import torch

        net = self.network()
        out = []
        with torch.inference_mode():
            for i in range(0, len(arr), batch_size):
                x = torch.from_numpy(np.array(arr[i:i + batch_size])).permute(0, 3, 1, 2)  # a writable copy
                out.append(net(x.to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.DIM), np.float32)

    def describe(self) -> dict:
        return {"source": "inception", "network": "FID Inception-v3 (torchmetrics NoTrainInceptionV3, 2048-d pool)",
                "weights": str(self.weights), "weights_sha256": self.sha256, "image_size": int(self.image_size)}


def as_feature_space(source: Classifier | FeatureSpace) -> FeatureSpace:
    return source if isinstance(source, FeatureSpace) else ClassifierFeatures(source)


class FeatureCache:
    """In-memory LRU (plus optional on-disk) cache of features of image sets.

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

    def _remember(self, owner, ckey, skey, feats) -> None:
        with self._lock:
            if ckey is not None:
                self._by_key[(ckey, skey)] = feats
                self._by_key.move_to_end((ckey, skey))
                while len(self._by_key) > self.max_items:
                    self._by_key.popitem(last=False)
            else:
                per = self._by_obj.setdefault(owner, OrderedDict())
                per[skey] = feats
                while len(per) > self.max_items:
                    per.popitem(last=False)

    def _lookup(self, owner, ckey, skey):
        with self._lock:
            if ckey is not None:
                feats = self._by_key.get((ckey, skey))
                if feats is not None:
                    self._by_key.move_to_end((ckey, skey))
                return feats
            return self._by_obj.get(owner, {}).get(skey)

    def features(self, source: Classifier | FeatureSpace, images: ImageSet | np.ndarray, *, batch_size: int = 256,
                 disk: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Features of ``images`` in a feature space (cached), and the pixels they came from.

        Args:
            source: a trained classifier (penultimate layer) or a :class:`FeatureSpace`.
            images: an ImageSet or uint8 N×H×W×3 (resized to the space's input size).
            batch_size: forward batch size.
            disk: also read/write :func:`feature_cache_dir` when the space has a stable key
                (a classifier saved in a run directory, an Inception weights file).

        Returns:
            ``(features float32 (N, D), pixels uint8 (N, S, S, 3))``.
        """
        space = as_feature_space(source)
        arr = space.pixels(images)
        skey = pixels_fingerprint(arr)
        ckey = space.key
        feats = self._lookup(space.owner, ckey, skey)
        path = None
        if ckey is not None and disk:
            space_id = hashlib.sha256(ckey.encode()).hexdigest()[:16]
            path = feature_cache_dir() / f"{space.source}-{space_id}-{skey[:16]}.npy"
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
            feats = np.asarray(space.extract(arr, batch_size), dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != len(arr):
                raise ShapeError(
                    f"{space.source} features: extraction returned shape {feats.shape}, expected ({len(arr)}, D)"
                )
            if path is not None:
                buf = io.BytesIO()
                np.save(buf, feats, allow_pickle=False)
                try:
                    atomic_write_bytes(path, buf.getvalue())
                except OSError:
                    pass  # a read-only cache directory only loses the disk copy
        feats.setflags(write=False)
        self._remember(space.owner, ckey, skey, feats)
        return feats, arr


#: the process-wide cache shared by every set-quality evaluation
FEATURE_CACHE = FeatureCache()
