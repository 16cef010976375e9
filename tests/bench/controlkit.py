"""Stub plugins and data for the resampling-control tests (importable by worker processes via PYTHONPATH).

* ``copy-real`` generator: "generates" copies of real training images of the asked class (picked
  by each image's seed): a synthetic set that carries no information beyond its class counts.
* ``count-prior`` classifier: nearest class mean (mean colour) weighted by the training class
  counts (``prior_weight``): a rare class is never predicted until images of it are added, as
  the HAM10000 baseline never predicted MEL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

import augengine as ae
from augengine.bench.data import BenchData
from augengine.runs import load_checkpoint, read_run_record, save_checkpoint, write_run_record
from augengine.testing import tiny_imageset


class CopyRealConfig(ae.PluginConfig):
    image_size: int = 16
    classes: list[str] | None = None  # the class space of the generated images (default: the training classes)
    label: str = "copy"  # changes nothing generated (two arms, same class counts)


class CopyRealGenerator(ae.Generator):
    """Copies of real training images, by class: no information beyond the class counts."""

    name = "copy-real"
    Config = CopyRealConfig

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **kw):
        names = list(self.config.classes or train.class_names)
        self.class_names = names
        self.train_counts = {c: train.class_counts()[train.class_names[train.class_index(c)]] for c in names}
        imgs = train.images(self.image_size)
        self.pools = [np.array(imgs[train.labels == train.class_index(c)]) for c in names]
        return self

    def sample(self, labels, seeds):
        out = [self.pools[k][np.random.default_rng(int(s)).integers(len(self.pools[k]))] for k, s in zip(labels, seeds)]
        return np.stack(out)

    def save(self, run_dir):
        run_dir = Path(run_dir)
        save_checkpoint({f"pool{k}": torch.from_numpy(p) for k, p in enumerate(self.pools)}, run_dir / "checkpoint.pt")
        write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts)
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        g = cls(rec["config"])
        st = load_checkpoint(Path(run_dir) / "checkpoint.pt")
        g.class_names, g.train_counts = rec["class_names"], rec["train_counts"]
        g.pools = [st[f"pool{k}"].numpy() for k in range(len(g.class_names))]
        return g


class CountPriorConfig(ae.PluginConfig):
    image_size: int = 16
    prior_weight: float = 1.0


class CountPriorClassifier(ae.Classifier):
    """p(k | x) ∝ n_k^prior_weight · exp(−‖mean colour − class mean‖² / 2000), fitted on real ∪ added."""

    name = "count-prior"
    Config = CountPriorConfig

    def fit(self, train, *, val=None, synthetic=(), amount=None, run_dir=None, resume=False, seed=0, progress=True):
        data = ae.combine(train, list(synthetic), amount=amount, seed=seed) if synthetic else train
        x = ae.resize_uint8(data.images(self.image_size), 1).reshape(len(data), -1).astype(np.float32)
        keep = np.random.default_rng(seed).random(len(x)) < 0.9  # the seed matters
        self.class_names = list(train.class_names)
        c = len(self.class_names)
        self.counts = np.array([(keep & (data.labels == k)).sum() for k in range(c)], np.float32)
        self.means = np.stack([x[keep & (data.labels == k)].mean(0) if self.counts[k] else x.mean(0) for k in range(c)])
        return self

    def predict_proba(self, images, batch_size=256):
        x = ae.resize_uint8(self.as_array(images), 1).reshape(len(images), -1).astype(np.float32)
        logit = -((x[:, None] - self.means[None]) ** 2).sum(-1) / 2000.0
        logit = logit + self.config.prior_weight * np.log(np.maximum(self.counts, 0.5))[None]
        e = np.exp(logit - logit.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    def features(self, images, batch_size=256):
        return ae.resize_uint8(self.as_array(images), 4).reshape(len(images), -1).astype(np.float32)

    def save(self, run_dir):
        run_dir = Path(run_dir)
        save_checkpoint({"means": torch.from_numpy(self.means), "counts": torch.from_numpy(self.counts)},
                        run_dir / "checkpoint.pt")
        write_run_record(run_dir, self, class_names=self.class_names)
        self.run_dir = run_dir
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        clf = cls(rec["config"])
        st = load_checkpoint(Path(run_dir) / "checkpoint.pt")
        clf.means, clf.counts = st["means"].numpy(), st["counts"].numpy()
        clf.class_names = rec["class_names"]
        clf.run_dir = Path(run_dir)
        return clf


@ae.hookimpl
def register_generators(register):
    register(CopyRealGenerator)


@ae.hookimpl
def register_classifiers(register):
    register(CountPriorClassifier)


def _fp(s) -> str:
    return hashlib.sha256(s.images().tobytes() + s.labels.tobytes()).hexdigest()


def rare_mel_loader(cfg) -> BenchData:
    """MEL is rare in training (4 of 36 images), balanced in validation and test (3 classes, 16 px)."""
    train = tiny_imageset(counts=[4, 16, 16], size=16, seed=1)
    val = tiny_imageset(3, 16, seed=2)
    test = tiny_imageset(10, 16, seed=3)
    return BenchData(train, val, test, {}, _fp(train) + _fp(val) + _fp(test), {})
