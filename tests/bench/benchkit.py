"""Tiny real plugins and data for the bench tests (importable by worker processes via PYTHONPATH).

* ``mean-colour`` classifier: nearest class mean of 4×4-downsampled images, fitted on
  real ∪ synthetic (through ``augengine.combine``), so amounts and seeds change its results.
* ``tiny-benefit`` evaluator: accuracy, balanced accuracy, per-class precision/recall with
  bootstrap CIs (``augengine.stats``) and a verdict against a baseline.
* ``boom`` generator: raises mid-fit; ``bad-shape`` generator: returns wrong-sized images.
* ``step-noise`` generator: a fit in checkpointed steps that resumes exactly (kill tests).

``mean-colour`` and ``step-noise`` declare their mid-fit state resume-only (``resume_state`` in
the run record), as the ResNet classifier does with ``train_state.pt``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

import augengine as ae
from augengine.bench.data import BenchData
from augengine.runs import load_checkpoint, read_run_record, save_checkpoint, write_run_record
from augengine.stats import bootstrap_weights, confusion_matrices, metrics_from_confusion, percentile_ci
from augengine.testing import tiny_imageset


class MeanColourConfig(ae.PluginConfig):
    image_size: int = 16
    sleep: float = 0.0  # seconds per fit (gives the kill test moments to hit)


class MeanColourClassifier(ae.Classifier):
    """Nearest class mean of 4×4 thumbnails (a tiny real classifier for tests)."""

    name = "mean-colour"
    Config = MeanColourConfig

    def fit(self, train, *, val=None, synthetic=(), amount=None, run_dir=None, resume=False, seed=0, progress=True):
        data = ae.combine(train, list(synthetic), amount=amount, seed=seed) if synthetic else train
        x = ae.resize_uint8(data.images(self.image_size), 1).reshape(len(data), -1).astype(np.float32)
        rng = np.random.default_rng(seed)
        keep = rng.random(len(x)) < 0.9  # seed matters
        self.class_names = list(train.class_names)
        c = len(self.class_names)
        self.means = np.stack([x[keep & (data.labels == k)].mean(0) if (keep & (data.labels == k)).any()
                               else x.mean(0) for k in range(c)])
        if run_dir is not None:  # what a resumed fit would read (declared resume-only in save)
            save_checkpoint({"means": torch.from_numpy(self.means)}, Path(run_dir) / "fit_state.pt")
        if self.config.sleep:
            import time

            time.sleep(self.config.sleep)
        return self

    #: known work (tests/bench/test_estimate.py): FLOPs per image of a fit and of a prediction
    FIT_FLOPS, PREDICT_FLOPS = 3e6, 1e6

    @classmethod
    def work(cls, config, *, phase, n_images=0, **context):
        from augengine.plugin_api import Work

        if phase == "fit":
            return [Work("mean-colour fit, one image", n_images, {"plugin": cls.name, "mode": "fit"},
                         flops=cls.FIT_FLOPS, seconds=None), Work("mean-colour sleep", 1, {"plugin": cls.name},
                                                                 seconds=config.get("sleep", 0.0))]
        return [Work("mean-colour prediction, one image", n_images, {"plugin": cls.name, "mode": "predict"},
                     flops=cls.PREDICT_FLOPS)]

    def predict_proba(self, images, batch_size=256):
        x = ae.resize_uint8(self.as_array(images), 1).reshape(len(images), -1).astype(np.float32)
        d = ((x[:, None] - self.means[None]) ** 2).sum(-1) / 2000.0
        e = np.exp(-(d - d.min(1, keepdims=True)))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    def features(self, images, batch_size=256):
        return ae.resize_uint8(self.as_array(images), 4).reshape(len(images), -1).astype(np.float32)

    def save(self, run_dir):
        run_dir = Path(run_dir)
        save_checkpoint({"means": torch.from_numpy(self.means)}, run_dir / "checkpoint.pt")
        write_run_record(run_dir, self, class_names=self.class_names, resume_state=["fit_state.pt"])
        self.run_dir = run_dir
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        clf = cls(rec["config"])
        clf.means = load_checkpoint(Path(run_dir) / "checkpoint.pt")["means"].numpy()
        clf.class_names = rec["class_names"]
        clf.run_dir = Path(run_dir)
        return clf


class TinyBenefitConfig(ae.PluginConfig):
    n_boot: int = 200


def _summ(vals, ci):
    return {"value": float(vals[0]), "ci": [float(ci[0]), float(ci[1])]}


class TinyBenefit(ae.Evaluator):
    """Accuracy, balanced accuracy, per-class precision/recall with bootstrap CIs, verdict vs baseline."""

    name = "tiny-benefit"
    Config = TinyBenefitConfig

    @classmethod
    def work(cls, config, *, phase, n_images=0, n_classifiers=1, **context):
        from augengine.plugin_api import ClassifierPass

        return [ClassifierPass(n_images * n_classifiers)]

    def _metrics(self, clfs, test, w):
        c = len(test.class_names)
        ms = []
        for clf in clfs:
            pred = clf.predict(test)
            obs = metrics_from_confusion(confusion_matrices(test.labels, pred, c))
            boot = metrics_from_confusion(confusion_matrices(test.labels, pred, c, weights=w))
            ms.append((obs, boot))
        obs = {k: np.mean([m[0][k] for m in ms], 0) for k in ("accuracy", "balanced_accuracy", "precision", "recall")}
        boot = {k: np.mean([m[1][k] for m in ms], 0) for k in obs}
        return obs, boot

    def evaluate(self, classifier=None, test=None, *, baseline=None, synthetic=None, train=None, external=None,
                 seed=0, **kw):
        clfs = classifier if isinstance(classifier, list) else [classifier]
        w = bootstrap_weights(len(test), self.config.n_boot, seed=seed)
        obs, boot = self._metrics(clfs, test, w)
        m = {k: _summ(obs[k], percentile_ci(boot[k])) for k in ("accuracy", "balanced_accuracy")}
        m["per_class"] = {}
        for i, name in enumerate(test.class_names):
            m["per_class"][name] = {k: _summ(obs[k][:, i], percentile_ci(boot[k][:, i])) for k in ("precision", "recall")}
        verdicts = []
        if baseline is not None:
            bl = baseline if isinstance(baseline, list) else [baseline]
            bobs, bboot = self._metrics(bl, test, w)
            d = boot["balanced_accuracy"] - bboot["balanced_accuracy"]
            lo, hi = percentile_ci(d)
            dv = float(obs["balanced_accuracy"][0] - bobs["balanced_accuracy"][0])
            m["delta_balanced_accuracy"] = {"value": dv, "ci": [float(lo), float(hi)]}
            word = "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"
            verdicts.append(f"balanced accuracy {dv:+.3f} (95% CI {lo:+.3f}..{hi:+.3f}) vs baseline: {word}")
        return ae.Evaluation(metrics=m, verdicts=verdicts)


class BoomGenerator(ae.Generator):
    """Raises in the middle of fit (a broken plugin)."""

    name = "boom"
    Config = type("BoomConfig", (ae.PluginConfig,), {"__annotations__": {"image_size": int}, "image_size": 16})

    def fit(self, train, **kw):
        raise RuntimeError("boom: the plugin exploded at iteration 3")


class InterruptGenerator(ae.Generator):
    """Prints, logs, then raises KeyboardInterrupt mid-fit (Ctrl-C while a unit runs in-process)."""

    name = "interrupt"
    Config = type("InterruptConfig", (ae.PluginConfig,), {"__annotations__": {"image_size": int}, "image_size": 16})

    def fit(self, train, **kw):
        import logging

        print("interrupt: fitting")
        logging.getLogger("benchkit").warning("interrupt: about to be interrupted")
        raise KeyboardInterrupt


class BadShapeGenerator(ae.Generator):
    """Returns images of the wrong size (a broken plugin)."""

    name = "bad-shape"
    Config = type("BadShapeConfig", (ae.PluginConfig,), {"__annotations__": {"image_size": int}, "image_size": 16})

    def fit(self, train, *, run_dir=None, **kw):
        self.class_names, self.train_counts = list(train.class_names), train.class_counts()
        return self

    def sample(self, labels, seeds):
        return np.zeros((len(labels), self.image_size + 3, self.image_size + 3, 3), np.uint8)

    def save(self, run_dir):
        write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts)
        return Path(run_dir)

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        g = cls(rec["config"])
        g.class_names, g.train_counts = rec["class_names"], rec["train_counts"]
        return g


class StepNoiseConfig(ae.PluginConfig):
    image_size: int = 16
    steps: int = 6
    sleep: float = 0.0  # seconds per step (gives kill tests moments to hit)


class StepNoiseGenerator(ae.Generator):
    """Per-class pixel means accumulated over ``steps`` chunks of the training set, one checkpoint per
    step; a resumed fit continues from the last step, with the same result as an uninterrupted one.

    Each fit start appends ``pid step`` to ``run_dir/attempts.txt`` (so tests can find the process
    that runs it and see where a retried fit resumed).
    """

    name = "step-noise"
    Config = StepNoiseConfig
    mode = "noise"

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
        import time

        x = train.images(self.image_size).astype(np.float64)
        c = len(train.class_names)
        state = {"step": 0, "sum": np.zeros((c, *x.shape[1:])), "n": np.zeros(c)}
        ckpt = None if run_dir is None else Path(run_dir) / "fit_state.pt"
        if resume and ckpt is not None and ckpt.exists():
            st = load_checkpoint(ckpt)
            state = {"step": int(st["step"]), "sum": st["sum"].numpy(), "n": st["n"].numpy()}
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(run_dir) / "attempts.txt", "a") as f:
                f.write(f"{os.getpid()} {state['step']}\n")
        chunks = np.array_split(np.arange(len(x)), self.config.steps)
        for i in range(state["step"], self.config.steps):
            idx = chunks[i]
            for k in range(c):
                m = idx[train.labels[idx] == k]
                state["sum"][k] += x[m].sum(0)
                state["n"][k] += len(m)
            state["step"] = i + 1
            if ckpt is not None:
                save_checkpoint({"step": torch.tensor(state["step"]), "sum": torch.from_numpy(state["sum"]),
                                 "n": torch.from_numpy(state["n"])}, ckpt)
            time.sleep(self.config.sleep)
        self.mean = (state["sum"] / np.maximum(state["n"], 1)[:, None, None, None]).astype(np.float32)
        self.class_names, self.train_counts = list(train.class_names), train.class_counts()
        return self

    def sample(self, labels, seeds):
        out = np.empty((len(labels), *self.mean.shape[1:]), np.uint8)
        for i, (k, s) in enumerate(zip(np.asarray(labels), np.asarray(seeds))):
            z = np.random.default_rng(int(s)).standard_normal(self.mean.shape[1:]) * 20
            out[i] = np.clip(self.mean[k] + z, 0, 255).round()
        return out

    def save(self, run_dir):
        run_dir = Path(run_dir)
        save_checkpoint({"mean": torch.from_numpy(self.mean)}, run_dir / "checkpoint.pt")
        write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts,
                         resume_state=["fit_state.pt"])
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = read_run_record(run_dir)
        g = cls(rec["config"])
        g.mean = load_checkpoint(Path(run_dir) / "checkpoint.pt")["mean"].numpy()
        g.class_names, g.train_counts = rec["class_names"], rec["train_counts"]
        return g


@ae.hookimpl
def register_classifiers(register):
    register(MeanColourClassifier)


@ae.hookimpl
def register_evaluators(register):
    register(TinyBenefit)


@ae.hookimpl
def register_generators(register):
    register(BoomGenerator)
    register(BadShapeGenerator)
    register(StepNoiseGenerator)
    register(InterruptGenerator)


def _fp(s) -> str:
    return hashlib.sha256(s.images().tobytes() + s.labels.tobytes()).hexdigest()


def tiny_loader(cfg) -> BenchData:
    """Tiny in-memory splits (3 classes, 16 px); an external set when cfg.test_data is given."""
    n = int(os.environ.get("BENCHKIT_N", "8"))
    train = tiny_imageset(n, 16, seed=1)
    val = tiny_imageset(3, 16, seed=2)
    test = tiny_imageset(6, 16, seed=3)
    ext = {name: tiny_imageset(5, 16, seed=10 + i) for i, name in enumerate(cfg.test_data)}
    return BenchData(train, val, test, ext, _fp(train) + _fp(val) + _fp(test), {k: _fp(v) for k, v in ext.items()})


def tiny_config(**over):
    from augengine.bench.config import validate_bench_config

    d = {
        "data": "tiny", "image_size": 16, "amounts": [6, 12], "classifier_seeds": [0, 1], "generator_seeds": [0],
        "classifier": {"name": "mean-colour"}, "evaluators": [{"name": "tiny-benefit"}], "set_quality": "off",
        "focus_class": "MEL", "plugin_modules": ["benchkit"],
        "arms": [{"name": "noise", "generator": "example-noise"},
                 {"name": "noise-dark", "generator": "example-noise", "config": {"shrink": 0.5},
                  "filter": {"name": "example-brightness", "config": {"keep": 0.5}, "target_class": None}}],
    }
    d.update(over)
    return validate_bench_config(d)
