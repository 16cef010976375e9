"""Contract test kit: subclass, give a tiny config, get the generic plugin tests for free.

Like torchvision's ``DatasetTestCase`` and kornia's ``BaseTester``. Example::

    from augengine.testing import GeneratorContract

    class TestMyGenerator(GeneratorContract):
        plugin_name = "my-gan"
        config = {"image_size": 16, "iterations": 3}

Every contract checks: registered and listed; the config rejects unknown keys and wrong
types with a one-line error naming the key; fit on tiny data; output shapes, dtypes and
value ranges; same seed → same output; save → load → identical outputs (checkpoints readable
with ``torch.load(..., weights_only=True)``); bad input → a clear :class:`AugengineError`.
Override the hooks (``make_train_set``, ``fit_inputs``, ``make_classifier``,
``evaluate_kwargs``) where a plugin needs more than the defaults.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.errors import AugengineError, ConfigError
from augengine.imageset import ImageSet
from augengine.testing.data import StubClassifier, tiny_imageset

__all__ = [
    "GeneratorContract",
    "FilterContract",
    "ClassifierContract",
    "EvaluatorContract",
    "assert_weights_only_loadable",
]


def assert_weights_only_loadable(run_dir: str | Path) -> list[Path]:
    """Every ``*.pt`` under ``run_dir`` loads with ``torch.load(..., weights_only=True)``."""
    files = sorted(Path(run_dir).rglob("*.pt"))
    assert files, f"{run_dir}: no checkpoint (*.pt) written"
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)
    return files


class _Contract:
    kind: ClassVar[str] = ""
    plugin_name: ClassVar[str] = ""
    config: ClassVar[dict[str, Any]] = {}
    #: (field, bad value) used to check type errors; None → first int field with "abc"
    bad_value: ClassVar[tuple[str, Any] | None] = None

    def make_plugin(self, **overrides):
        factory = getattr(ae, f"create_{self.kind}")
        return factory(self.plugin_name, **{**self.config, **overrides})

    def make_train_set(self) -> ImageSet:
        """Tiny training data; override for plugins that need something else."""
        size = int(self.config.get("image_size", 16))
        return tiny_imageset(n_per_class=8, size=size, seed=0)

    # -- generic checks --------------------------------------------------------------------
    def test_registered_and_listed(self):
        names = {i.name for i in ae.list_plugins(self.kind) if i.error is None}
        assert self.plugin_name in names, f"{self.kind} {self.plugin_name!r} not registered: {sorted(names)}"
        info = next(i for i in ae.list_plugins(self.kind) if i.name == self.plugin_name)
        row = info.to_json()
        json.dumps(row)
        assert row["description"], "the plugin class needs a docstring (first line = description)"
        assert row["package"]

    def test_config_rejects_unknown_key(self):
        with pytest.raises(ConfigError) as e:
            self.make_plugin(no_such_key_xyz=1)
        assert "no_such_key_xyz" in str(e.value) and "\n" not in str(e.value)

    def test_config_rejects_wrong_type(self):
        cls = ae.registry.get_plugin_class(self.kind, self.plugin_name)
        if self.bad_value is not None:
            key, value = self.bad_value
        else:
            ints = [n for n, f in cls.Config.model_fields.items() if f.annotation is int]
            if not ints:
                pytest.skip("no int field to feed a wrong type")
            key, value = ints[0], "abc"
        with pytest.raises(ConfigError) as e:
            self.make_plugin(**{key: value})
        assert key in str(e.value) and "\n" not in str(e.value)


class GeneratorContract(_Contract):
    """Generic tests for generator plugins (noise and translate modes)."""

    kind = "generator"

    def fit_inputs(self) -> dict[str, Any]:
        """Extra keyword inputs for ``fit`` (e.g. a translator's target)."""
        return {}

    def source_set(self, train: ImageSet) -> ImageSet:
        """Images a translator translates in the tests (default: the training set)."""
        return train

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, tmp_path_factory):
        self = cls()
        run_dir = tmp_path_factory.mktemp(f"gen-{self.plugin_name.replace('+', '_')}")
        gen = self.make_plugin()
        train = self.make_train_set()
        gen.fit(train, run_dir=run_dir, seed=0, progress=False, **self.fit_inputs())
        gen.save(run_dir)
        return gen, run_dir, train

    def _outputs(self, gen, train, seed: int = 0):
        if gen.mode == "translate":
            src = self.source_set(train)
            imgs = src.images(gen.image_size)[:4]
            out, labels = gen.translate(imgs, src.labels[:4])
            return np.asarray(out), np.asarray(labels)
        labels = np.arange(4, dtype=np.int64) % len(gen.class_names)
        seeds = np.arange(4, dtype=np.int64) + 1000 * seed
        return np.asarray(gen.sample(labels, seeds)), labels

    def test_output_shape_dtype_range(self, trained):
        gen, _, train = trained
        imgs, labels = self._outputs(gen, train)
        s = gen.image_size
        assert imgs.dtype == np.uint8 and imgs.shape == (4, s, s, 3), (imgs.dtype, imgs.shape)
        assert labels.shape == (4,) and labels.min() >= 0 and labels.max() < len(gen.class_names)
        assert imgs.std() > 0, "generator returned constant images"

    def test_same_seed_same_output(self, trained):
        gen, _, train = trained
        a, _ = self._outputs(gen, train)
        b, _ = self._outputs(gen, train)
        np.testing.assert_array_equal(a, b)
        if gen.mode == "noise":
            c, _ = self._outputs(gen, train, seed=1)
            assert not np.array_equal(a, c), "different seeds gave identical images"

    def test_fit_is_deterministic(self, trained, tmp_path):
        gen, _, train = trained
        again = self.make_plugin()
        again.fit(train, run_dir=tmp_path / "again", seed=0, progress=False, **self.fit_inputs())
        np.testing.assert_array_equal(self._outputs(gen, train)[0], self._outputs(again, train)[0])

    def test_save_load_round_trip(self, trained, tmp_path):
        gen, run_dir, train = trained
        assert_weights_only_loadable(run_dir)
        moved = shutil.copytree(run_dir, tmp_path / "moved")  # a run directory must survive a move
        loaded = ae.load_run(moved)
        assert type(loaded) is type(gen) and loaded.class_names == gen.class_names
        np.testing.assert_array_equal(self._outputs(gen, train)[0], self._outputs(loaded, train)[0])

    def test_generate_writes_set(self, trained, tmp_path):
        gen, _, train = trained
        kw = {"source": self.source_set(train)} if gen.mode == "translate" else {}
        s1 = gen.generate(6, out=tmp_path / "a.h5", seed=3, progress=False, **kw)
        s2 = gen.generate(6, out=tmp_path / "b.h5", seed=3, progress=False, **kw)
        assert len(s1) == 6 and s1.class_names == gen.class_names
        np.testing.assert_array_equal(s1.images(), s2.images())
        np.testing.assert_array_equal(s1.labels, s2.labels)
        assert s1.attrs["generator"] == gen.name
        with pytest.raises(AugengineError):
            gen.generate(6, out=tmp_path / "a.h5", seed=3, progress=False, **kw)  # exists, no force

    def test_bad_input(self, trained):
        gen, _, _ = trained
        fresh = self.make_plugin()
        with pytest.raises(AugengineError):
            fresh.generate(2, out="never-written.h5", progress=False)
        if gen.mode == "translate":
            with pytest.raises(AugengineError):
                gen.translate(np.zeros((2, 5, 5), np.uint8), np.zeros(2, np.int64))
        else:
            with pytest.raises(AugengineError):
                gen.sample(np.array([len(gen.class_names) + 5]), np.array([0]))


class ClassifierContract(_Contract):
    """Generic tests for classifier plugins."""

    kind = "classifier"

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, tmp_path_factory):
        self = cls()
        run_dir = tmp_path_factory.mktemp(f"clf-{self.plugin_name}")
        train = self.make_train_set()
        val = tiny_imageset(n_per_class=4, size=train.size, seed=1)
        clf = self.make_plugin()
        clf.fit(train, val=val, run_dir=run_dir, seed=0, progress=False)
        clf.save(run_dir)
        return clf, run_dir, train

    def test_predict_proba(self, trained):
        clf, _, train = trained
        p = clf.predict_proba(train)
        assert p.shape == (len(train), len(train.class_names)) and np.isfinite(p).all()
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
        assert clf.predict(train).shape == (len(train),)

    def test_features(self, trained):
        clf, _, train = trained
        f = clf.features(train.images()[:5])
        assert f.ndim == 2 and f.shape[0] == 5 and np.isfinite(f).all()

    def test_other_input_size_is_resized(self, trained):
        clf, _, train = trained
        big = ae.resize_uint8(train.images()[:3], train.size * 2)
        assert clf.predict_proba(big).shape == (3, len(train.class_names))

    def test_fit_is_deterministic(self, trained, tmp_path):
        clf, _, train = trained
        again = self.make_plugin()
        val = tiny_imageset(n_per_class=4, size=train.size, seed=1)
        again.fit(train, val=val, run_dir=tmp_path / "again", seed=0, progress=False)
        np.testing.assert_allclose(clf.predict_proba(train), again.predict_proba(train), atol=1e-5)

    def test_save_load_round_trip(self, trained, tmp_path):
        clf, run_dir, train = trained
        assert_weights_only_loadable(run_dir)
        moved = shutil.copytree(run_dir, tmp_path / "moved")  # a run directory must survive a move
        loaded = ae.load_run(moved)
        np.testing.assert_allclose(clf.predict_proba(train), loaded.predict_proba(train), atol=1e-6)

    def test_bad_input(self, trained):
        clf, _, _ = trained
        with pytest.raises(AugengineError):
            clf.predict_proba(np.zeros((2, 8, 8), np.uint8))
        with pytest.raises(AugengineError):
            clf.predict_proba(np.zeros((2, 8, 8, 3), np.float32))


class FilterContract(_Contract):
    """Generic tests for filter plugins. Default scorer: :class:`StubClassifier`."""

    kind = "filter"
    target_class: ClassVar[str] = "MEL"

    def make_classifier(self, train: ImageSet):
        return StubClassifier(train.class_names, image_size=train.size)

    def test_score_and_select(self):
        train = self.make_train_set()
        flt = self.make_plugin()
        clf = self.make_classifier(train)
        scores = np.asarray(flt.score(train, classifier=clf, target_class=self.target_class))
        assert scores.shape == (len(train),) and np.isfinite(scores).all()
        keep = np.asarray(flt.select(train, classifier=clf, target_class=self.target_class, seed=0))
        assert keep.ndim == 1 and len(keep) > 0 and len(set(keep.tolist())) == len(keep)
        assert keep.min() >= 0 and keep.max() < len(train)
        again = np.asarray(flt.select(train, classifier=clf, target_class=self.target_class, seed=0))
        np.testing.assert_array_equal(keep, again)

    def test_bad_input(self):
        train = self.make_train_set()
        flt = self.make_plugin()
        with pytest.raises(AugengineError):
            flt.select(train, classifier=self.make_classifier(train), target_class="NO_SUCH_CLASS", seed=0)


class EvaluatorContract(_Contract):
    """Generic tests for evaluator plugins. Default: a StubClassifier on a tiny test set."""

    kind = "evaluator"

    def evaluate_kwargs(self, train: ImageSet, test: ImageSet) -> dict[str, Any]:
        return {"classifier": StubClassifier(test.class_names, image_size=test.size), "test": test}

    def _run(self):
        train = self.make_train_set()
        test = tiny_imageset(n_per_class=10, size=train.size, seed=2)
        return self.make_plugin().evaluate(**self.evaluate_kwargs(train, test), seed=0)

    def test_evaluation_is_well_formed(self, tmp_path):
        res = self._run()
        assert isinstance(res, ae.Evaluation) and res.metrics
        json.loads(res.to_json())
        for name, png in res.figures.items():
            assert png[:8] == b"\x89PNG\r\n\x1a\n", f"figure {name} is not a PNG"
        for name, text in res.tables.items():
            assert isinstance(text, str) and text.strip()
        res.save(tmp_path)
        assert (tmp_path / "metrics.json").exists()

    def test_same_seed_same_metrics(self):
        assert self._run().to_json() == self._run().to_json()

    def test_bad_input(self):
        with pytest.raises(AugengineError):
            self.make_plugin().evaluate(classifier=None, test=None, seed=0)
