"""An outside augengine plugin, published as its own package (``augengine-example-plugin``).

It is the template for third-party authors: its ``pyproject.toml`` declares

    [project.entry-points.augengine]
    example = "augengine_example_plugin"

and this module implements two hooks. Nothing in augengine imports it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import augengine as ae
from augengine.plugin_api import load_checkpoint, read_run_record, save_checkpoint, write_run_record


class PixelGaussianConfig(ae.PluginConfig):
    image_size: int = 32
    shrink: float = 1.0  # scales the per-pixel standard deviation


class PixelGaussianGenerator(ae.Generator):
    """Per-class pixel-wise Gaussian: the simplest generator that is still a real one."""

    name = "example-noise"
    Config = PixelGaussianConfig
    mode = "noise"

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
        x = train.images(self.image_size).astype(np.float32)
        c = len(train.class_names)
        self.mean = np.zeros((c, *x.shape[1:]), np.float32)
        self.std = np.zeros((c, *x.shape[1:]), np.float32)
        for k in range(c):
            xs = x[train.labels == k]
            if len(xs):
                self.mean[k], self.std[k] = xs.mean(0), xs.std(0)
        self.class_names = list(train.class_names)
        self.train_counts = train.class_counts()
        if run_dir is not None:
            self.save(run_dir)
        return self

    def sample(self, labels, seeds):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names))):
            raise ae.DataError(f"generator {self.name!r}: labels must be in 0..{len(self.class_names) - 1}, got {labels}")
        out = np.empty((len(labels), *self.mean.shape[1:]), np.uint8)
        for i, (k, s) in enumerate(zip(labels, np.asarray(seeds))):
            z = np.random.default_rng(int(s)).standard_normal(self.mean.shape[1:]).astype(np.float32)
            out[i] = np.clip(self.mean[k] + self.config.shrink * self.std[k] * z, 0, 255).round()
        return out

    def save(self, run_dir):
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        save_checkpoint({"mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)}, run_dir / "checkpoint.pt")
        write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts)
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        gen = cls(rec["config"])
        state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
        gen.mean, gen.std = state["mean"].numpy(), state["std"].numpy()
        gen.class_names, gen.train_counts, gen.run_dir = rec["class_names"], rec["train_counts"], Path(run_dir)
        return gen


class BrightnessConfig(ae.PluginConfig):
    keep: float = 0.5


class BrightnessFilter(ae.Filter):
    """Keeps the darkest images of the target class (a classifier-free example filter)."""

    name = "example-brightness"
    Config = BrightnessConfig

    def score(self, images, *, classifier=None, target_class=None):
        return -images.images().astype(np.float32).mean(axis=(1, 2, 3))

    def select(self, images, *, classifier=None, target_class=None, seed=0, scores=None):
        scores = self.score(images) if scores is None else scores
        pool = np.arange(len(images))
        if target_class is not None:
            pool = pool[images.labels == images.class_index(target_class)]
        order = pool[np.lexsort((pool, -scores[pool]))]
        return order[: max(1, int(round(self.config.keep * len(order))))]


@ae.hookimpl
def register_generators(register):
    register(PixelGaussianGenerator)


@ae.hookimpl
def register_filters(register):
    register(BrightnessFilter)
