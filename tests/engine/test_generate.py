"""Generator.generate: label planning, per-image seeds, chunked resumable writes, contract checks."""

import numpy as np
import pytest

import augengine as ae
from augengine.generator import image_seeds, plan_labels
from augengine.synthetic import partial_path
from augengine.testing import tiny_imageset


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    g = ae.create_generator("example-noise", image_size=16)
    g.fit(tiny_imageset(n_per_class=6, size=16, counts=[12, 4, 2]))
    return g


def test_plan_labels():
    names = ["A", "B", "C"]
    lab = plan_labels(names, 10, distribution="train", train_counts={"A": 6, "B": 3, "C": 1}, seed=0)
    assert np.bincount(lab, minlength=3).tolist() == [6, 3, 1]
    assert np.bincount(plan_labels(names, 7, distribution="uniform"), minlength=3).tolist() == [3, 2, 2]
    assert np.bincount(plan_labels(names, None, per_class={"b": 4, "C": 1}), minlength=3).tolist() == [0, 4, 1]
    with pytest.raises(ae.DataError, match="'Z'"):
        plan_labels(names, None, per_class={"Z": 1})
    with pytest.raises(ae.DataError, match="^n: expected"):
        plan_labels(names, 0)


def test_image_seeds_stable_under_resume():
    np.testing.assert_array_equal(image_seeds(7, 10)[4:], image_seeds(7, 10, start=4))


def test_generate_interrupted_then_resumed_equals_uninterrupted(gen, tmp_path, monkeypatch):
    full = gen.generate(40, out=tmp_path / "full.h5", seed=5, chunk_size=8, batch_size=8, progress=False)
    calls = {"n": 0}
    real = type(gen).sample

    def flaky(self, labels, seeds):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, labels, seeds)

    monkeypatch.setattr(type(gen), "sample", flaky)
    out = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        gen.generate(40, out=out, seed=5, chunk_size=8, batch_size=8, progress=False)
    assert partial_path(out).exists() and not out.exists()
    with pytest.raises(ae.DataError, match="resume=True"):
        ae.SyntheticSet.open(out)
    with pytest.raises(ae.DataError, match="resume=True"):
        gen.generate(40, out=out, seed=5, chunk_size=8, batch_size=8, progress=False)
    monkeypatch.setattr(type(gen), "sample", real)
    done = gen.generate(40, out=out, seed=5, chunk_size=8, batch_size=8, progress=False, resume=True)
    np.testing.assert_array_equal(done.images(), full.images())
    np.testing.assert_array_equal(done.labels, full.labels)
    np.testing.assert_array_equal(done.seeds, full.seeds)
    assert not partial_path(out).exists()


def test_wrong_shape_from_plugin_is_named(gen, tmp_path, monkeypatch):
    monkeypatch.setattr(type(gen), "sample", lambda self, labels, seeds: np.zeros((len(labels), 8, 8, 3), np.uint8))
    with pytest.raises(ae.PluginError, match=r"example-noise.*sample\(\).*\(8, 8, 8, 3\)|example-noise.*sample\(\)"):
        gen.generate(8, out=tmp_path / "bad.h5", progress=False)


def test_force_overwrites(gen, tmp_path):
    gen.generate(4, out=tmp_path / "s.h5", seed=1, progress=False)
    with pytest.raises(ae.DataError, match="force=True"):
        gen.generate(4, out=tmp_path / "s.h5", seed=1, progress=False)
    s = gen.generate(6, out=tmp_path / "s.h5", seed=1, progress=False, force=True)
    assert len(s) == 6 and s.attrs["generator"] == "example-noise" and s.attrs["n_planned"] == 6
