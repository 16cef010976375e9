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
Generators and classifiers also get the run-directory rule (a used ``run_dir`` needs
``resume=True`` with the recorded config and seed, or ``force=True``, which starts over
cleanly; a failed fit leaves no folder behind) and host hygiene (``fit`` and ``generate``
leave the caller's global Python, NumPy and torch RNG states as they were).
Override the hooks (``make_train_set``, ``fit_inputs``, ``make_classifier``,
``evaluate_kwargs``, ``changed_config``) where a plugin needs more than the defaults.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.errors import AugengineError, ConfigError, DataError
from augengine.imageset import ImageSet
from augengine.rng import global_rng_state
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
        config = {**self.config, **overrides}
        # $AUGENGINE_TEST_DEVICE (e.g. cuda) runs the contracts on that device (benchmarks/gpu.sh)
        device = os.environ.get("AUGENGINE_TEST_DEVICE")
        if device and "device" not in overrides:
            from augengine.registry import get_plugin_class

            fields = getattr(get_plugin_class(self.kind, self.plugin_name), "Config").model_fields
            if "device" in fields:
                config["device"] = device
            if "deterministic" in fields and "deterministic" not in overrides and device != "cpu":
                config["deterministic"] = True  # the same-seed contracts need it on a GPU
        return factory(self.plugin_name, **config)

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


class _UnreadableSet(ImageSet):
    """A set whose pixels cannot be read: makes any fit fail part-way (after the run dir is claimed)."""

    def __init__(self, like: ImageSet):
        self.class_names, self.labels, self.groups = list(like.class_names), like.labels, like.groups
        self.ids, self.size = list(like.ids), like.size

    def _load(self, size):
        raise DataError("contract kit: this training set cannot be read (a fit that fails on purpose)")


def _seed_host_rngs(seed: int = 1234) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _FitContract(_Contract):
    """The run-directory rule and RNG hygiene, shared by generators and classifiers."""

    #: config changes that a resumed fit must refuse; None → found from the config's fields
    changed_config: ClassVar[dict[str, Any] | None] = None

    def fit_kwargs(self, train: ImageSet) -> dict[str, Any]:
        """Keyword arguments of ``fit`` besides ``run_dir``/``resume``/``force``/``seed``."""
        return {"progress": False}

    def _fit(self, plugin, train, **kw):
        return plugin.fit(train, **{**self.fit_kwargs(train), **kw})

    def _changed(self) -> tuple[str, Any]:
        if self.changed_config:
            return next(iter(self.changed_config.items()))
        current = self.make_plugin().config.model_dump()
        order = sorted(current, key=lambda k: (k in ("image_size", "device"), k))
        for key in order:
            value = current[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            for new in ((value + 1, value * 2) if isinstance(value, int) else (value * 2, value / 2)):
                try:
                    self.make_plugin(**{key: new})
                except ConfigError:
                    continue
                return key, new
        pytest.skip("no numeric config field to change; set changed_config")

    def test_used_run_dir_needs_resume_or_force(self, trained):
        plugin, run_dir, train = trained
        before = {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob("*")}
        with pytest.raises(AugengineError) as e:
            self._fit(self.make_plugin(), train, run_dir=run_dir, seed=0)
        msg = str(e.value)
        assert "resume=True" in msg and "force=True" in msg and "\n" not in msg, msg
        assert "--" not in msg, f"a library error names arguments, not CLI flags: {msg}"
        after = {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob("*")}
        assert before == after, "a refused fit changed the run directory"

    def test_resume_refuses_another_seed(self, trained):
        _, run_dir, train = trained
        with pytest.raises(ConfigError) as e:
            self._fit(self.make_plugin(), train, run_dir=run_dir, resume=True, seed=1)
        assert "seed" in str(e.value) and "cannot resume" in str(e.value)

    def test_resume_refuses_another_config(self, trained):
        _, run_dir, train = trained
        key, value = self._changed()
        with pytest.raises(ConfigError) as e:
            self._fit(self.make_plugin(**{key: value}), train, run_dir=run_dir, resume=True, seed=0)
        assert repr(key) in str(e.value) and "cannot resume" in str(e.value), str(e.value)

    def test_force_starts_over_cleanly(self, trained, tmp_path):
        _, run_dir, train = trained
        run = Path(shutil.copytree(run_dir, tmp_path / "old"))
        (run / "samples").mkdir(exist_ok=True)
        (run / "samples" / "step_9999999.png").write_bytes(b"stale")
        (run / "stale.txt").write_text("left by the old run")
        self._fit(self.make_plugin(), train, run_dir=run, seed=0, force=True)
        assert not (run / "stale.txt").exists() and not (run / "samples" / "step_9999999.png").exists()
        assert (run / "run.json").is_file()

    def test_failed_fit_leaves_nothing_behind(self, trained, tmp_path):
        _, _, train = trained
        run = tmp_path / "new" / "run"
        with pytest.raises(Exception):  # noqa: B017 - whatever the plugin raises on unreadable pixels
            self._fit(self.make_plugin(), _UnreadableSet(train), run_dir=run, seed=0,
                      **self._broken_inputs())
        assert not (tmp_path / "new").exists(), sorted(str(p) for p in (tmp_path / "new").rglob("*"))
        run.mkdir(parents=True)  # an empty directory the caller made stays, empty
        with pytest.raises(Exception):  # noqa: B017
            self._fit(self.make_plugin(), _UnreadableSet(train), run_dir=run, seed=0, **self._broken_inputs())
        assert run.is_dir() and not any(run.iterdir())

    def test_not_a_run_directory_is_never_touched(self, trained, tmp_path):
        _, _, train = trained
        (tmp_path / "mine.txt").write_text("not a run")
        for flags in ({}, {"force": True}, {"resume": True}):
            with pytest.raises(DataError):
                self._fit(self.make_plugin(), train, run_dir=tmp_path, seed=0, **flags)
        assert (tmp_path / "mine.txt").read_text() == "not a run"

    def test_fit_leaves_host_rng_state_unchanged(self, trained):
        _, _, train = trained
        _seed_host_rngs()
        before = global_rng_state()
        self._fit(self.make_plugin(), train, seed=3)
        assert global_rng_state() == before, "fit() changed the caller's global Python/NumPy/torch RNG state"

    def _broken_inputs(self) -> dict[str, Any]:
        return {}


class GeneratorContract(_FitContract):
    """Generic tests for generator plugins (noise and translate modes)."""

    kind = "generator"

    def fit_inputs(self) -> dict[str, Any]:
        """Extra keyword inputs for ``fit`` (e.g. a translator's target)."""
        return {}

    def source_set(self, train: ImageSet) -> ImageSet:
        """Images a translator translates in the tests (default: the training set)."""
        return train

    def fit_kwargs(self, train: ImageSet) -> dict[str, Any]:
        return {"progress": False, **self.fit_inputs()}

    def _broken_inputs(self) -> dict[str, Any]:
        return {k: _UnreadableSet(v) if isinstance(v, ImageSet) else v for k, v in self.fit_inputs().items()}

    def test_generate_leaves_host_rng_state_unchanged(self, trained, tmp_path):
        gen, _, train = trained
        kw = {"source": self.source_set(train)} if gen.mode == "translate" else {}
        _seed_host_rngs()
        before = global_rng_state()
        gen.generate(4, out=tmp_path / "rng.h5", seed=3, progress=False, **kw)
        assert global_rng_state() == before, "generate() changed the caller's global RNG state"

    def test_failed_generate_leaves_no_partial_set(self, trained, tmp_path, monkeypatch):
        gen, _, train = trained
        kw = {"source": self.source_set(train)} if gen.mode == "translate" else {}
        method = "translate" if gen.mode == "translate" else "sample"

        def broken(*a, **k):
            raise DataError("contract kit: a generator that fails on purpose")

        monkeypatch.setattr(gen, method, broken)
        out = tmp_path / "never.h5"
        with pytest.raises(DataError):
            gen.generate(4, out=out, seed=3, progress=False, **kw)
        assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed generate left files behind"
        monkeypatch.undo()
        assert len(gen.generate(4, out=out, seed=3, progress=False, **kw)) == 4  # a plain rerun works

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


class ClassifierContract(_FitContract):
    """Generic tests for classifier plugins."""

    kind = "classifier"

    def fit_kwargs(self, train: ImageSet) -> dict[str, Any]:
        return {"progress": False, "val": tiny_imageset(n_per_class=4, size=train.size, seed=1)}

    def test_records_training_split(self, trained, tmp_path):
        """A classifier records the split of its training images, however it was trained, and an
        evaluation on another split's test images is refused."""
        from augengine.evaluator import check_same_split

        _, _, train = trained
        tagged = train.subset(np.arange(len(train)))
        tagged.split_sha256 = "a" * 64
        clf = self._fit(self.make_plugin(), tagged, run_dir=tmp_path / "run", seed=0)
        clf.save(tmp_path / "run")
        assert json.loads((tmp_path / "run" / "run.json").read_text())["split_sha256"] == "a" * 64
        loaded = ae.load_run(tmp_path / "run")
        assert loaded.trained_split_sha256 == "a" * 64
        other = train.subset(np.arange(4))
        other.split_sha256 = "b" * 64
        with pytest.raises(DataError, match="another split"):
            check_same_split(loaded, other)

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
