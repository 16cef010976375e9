"""Tests of the ``cyclegan`` translator and the ``acgan+cyclegan`` composition (tiny models, 32 px)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.selection import SELECTION_SCHEMA
from augengine.errors import ConfigError, DataError, TrainingDiverged
from augengine.testing import GeneratorContract, assert_weights_only_loadable, tiny_imageset

from augengine_cyclegan import CycleGanGenerator
from augengine_cyclegan.networks import PatchDiscriminator, ResnetGenerator, count_parameters

# 32 px is the smallest size a 3-layer PatchGAN accepts; narrow nets, one residual block.
TINY = {"image_size": 32, "x_class": "NV", "y_class": "MEL", "ngf": 4, "ndf": 4, "n_blocks": 1,
        "n_epochs": 1, "n_epochs_decay": 1, "iterations": 3, "precision": "fp32", "channels_last": False,
        "sample_every": 0, "log_every": 1, "pool_size": 3}


class TestCycleGanContract(GeneratorContract):
    plugin_name = "cyclegan"
    config = TINY

    def make_train_set(self):
        return tiny_imageset(n_per_class=4, size=32, seed=0)


# -- a tiny noise generator standing in for ACGAN as the composition's source ----------------
class _MeanColourConfig(ae.PluginConfig):
    image_size: int = 32


class MeanColourNoise(ae.Generator):
    """Test-only noise generator: per-class mean image plus seeded Gaussian noise."""

    name = "cg-test-noise"
    mode = "noise"
    Config = _MeanColourConfig

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
        x = train.images(self.image_size).astype(np.float32)
        self.mean = np.stack([x[train.labels == k].mean(0) if (train.labels == k).any() else x.mean(0)
                              for k in range(len(train.class_names))])
        self.class_names, self.train_counts = list(train.class_names), train.class_counts()
        return self

    def sample(self, labels, seeds):
        labels = np.asarray(labels)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(f"cg-test-noise: bad labels {labels}")
        return np.stack([np.clip(self.mean[k] + np.random.default_rng(int(s)).normal(0, 20, self.mean.shape[1:]),
                                 0, 255).astype(np.uint8) for k, s in zip(labels, seeds)])

    def save(self, run_dir):
        self.run_dir = Path(run_dir)
        ae.save_checkpoint({"mean": torch.from_numpy(self.mean)}, self.run_dir / "checkpoint.pt")
        ae.runs.write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts)
        return self.run_dir

    @classmethod
    def load(cls, run_dir, device=None):
        rec = ae.runs.read_run_record(run_dir)
        g = cls(**rec["config"])
        g.mean = ae.load_checkpoint(Path(run_dir) / "checkpoint.pt")["mean"].numpy()
        g.class_names, g.train_counts, g.run_dir = rec["class_names"], rec["train_counts"], Path(run_dir)
        return g


class _TestNoisePlugin:
    @staticmethod
    @ae.hookimpl
    def register_generators(register):
        register(MeanColourNoise)


@pytest.fixture(scope="module", autouse=True)
def _register_test_noise():
    if "cg-test-noise" not in ae.list_generators():
        ae.register_plugin(_TestNoisePlugin, name="cg-test-noise-plugin")
    yield


COMPOSE = {"image_size": 32, "source": "cg-test-noise", "samples_per_class": 3,
           "translator_config": {k: v for k, v in TINY.items() if k not in ("image_size", "x_class", "y_class")}}


class TestCompositionContract(GeneratorContract):
    plugin_name = "acgan+cyclegan"
    config = COMPOSE

    def make_train_set(self):
        return tiny_imageset(n_per_class=3, size=32, classes=("MEL", "NV"), seed=0)


# -- architecture -----------------------------------------------------------------------------
def test_parameter_counts_match_reference_at_256():
    cfg = CycleGanGenerator(image_size=256).config
    assert cfg.blocks == 9 and CycleGanGenerator(image_size=128).config.blocks == 6
    assert cfg.crop_from == 286 and CycleGanGenerator(image_size=64).config.crop_from == 72
    assert round(count_parameters(ResnetGenerator(cfg.blocks)) / 1e6, 3) == 11.378
    assert round(count_parameters(PatchDiscriminator()) / 1e6, 3) == 2.765
    # 70×70 receptive field: a 256 px image gives 30×30 patch scores
    assert PatchDiscriminator(ndf=4)(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_lr_schedule_constant_then_linear_decay():
    train = tiny_imageset(n_per_class=2, size=32, classes=("MEL", "NV"), seed=0)  # epoch = 2 iterations
    g = ae.create_generator("cyclegan", **{**TINY, "n_epochs": 2, "n_epochs_decay": 3, "iterations": None})
    g.fit(train, progress=False)
    lrs = [row[-1] for row in g.history]  # lr after each iteration
    assert len(lrs) == 10 and g.step == 10
    per_epoch = lrs[1::2]  # lr in effect after each epoch ends
    expect = [2e-4 * (1 - max(0, e + 1 - 2) / 4) for e in range(1, 6)]
    np.testing.assert_allclose(per_epoch, expect, rtol=1e-6)
    assert lrs[0] == pytest.approx(2e-4) and lrs[-1] == 0.0  # decayed to zero after the last epoch
    hist = np.array(g.history)
    assert np.isfinite(hist).all() and hist[:, 3].min() > 0  # cycle loss recorded


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    import augengine as ae
    from augengine.testing import tiny_imageset
    cfg = {cfg!r}
    g = ae.create_generator("cyclegan", **cfg)
    g._on_step = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == {kill_at} else None
    g.fit(tiny_imageset(n_per_class=2, size=32, classes=("MEL", "NV"), seed=0), run_dir=sys.argv[1],
          seed=5, progress=False)
""")


def test_resume_after_sigkill_is_exact(tmp_path):
    cfg = {**TINY, "n_epochs": 2, "n_epochs_decay": 2, "iterations": None, "checkpoint_every": 3,
           "pool_size": 2}  # 8 iterations, 2 per epoch; pool fills and starts swapping
    script = tmp_path / "killed.py"
    script.write_text(_KILL_SCRIPT.format(cfg=cfg, kill_at=5))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(run)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    state = ae.load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 3  # killed at 5, last checkpoint at 3
    assert state["sched_G"]["last_epoch"] == 1 and len(state["pool_x"]["buffer"]) == 2

    train = tiny_imageset(n_per_class=2, size=32, classes=("MEL", "NV"), seed=0)
    with pytest.raises(DataError, match="resume=True"):
        ae.create_generator("cyclegan", **cfg).fit(train, run_dir=run, seed=5, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        ae.create_generator("cyclegan", **{**cfg, "lr": 1e-3}).fit(train, run_dir=run, resume=True, seed=5,
                                                                    progress=False)
    resumed = ae.create_generator("cyclegan", **cfg).fit(train, run_dir=run, resume=True, seed=5, progress=False)
    straight = ae.create_generator("cyclegan", **cfg).fit(train, run_dir=tmp_path / "straight", seed=5,
                                                          progress=False)
    assert resumed.step == straight.step == 8
    assert resumed.lr == straight.lr == 0.0
    assert resumed.history[5][0] == 6 and resumed.history[5][-1] == pytest.approx(2e-4 / 3)  # mid-decay lr
    for k in ("G", "F", "D_x", "D_y"):
        for (n, a), b in zip(resumed._nets[k].state_dict().items(), straight._nets[k].state_dict().values()):
            assert torch.equal(a, b), f"{k}.{n} differs after resume"
    sa, sb = resumed.opt_G.state_dict()["state"], straight.opt_G.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    np.testing.assert_array_equal(np.array(resumed.history)[-5:], np.array(straight.history)[-5:])
    assert_weights_only_loadable(run)


def test_nan_stops_with_training_diverged(tmp_path):
    train = tiny_imageset(n_per_class=2, size=32, classes=("MEL", "NV"), seed=0)
    g = ae.create_generator("cyclegan", **{**TINY, "iterations": 6})

    def poison(step):
        if step == 2:
            with torch.no_grad():
                g.G.net[1].weight.fill_(float("nan"))

    g._on_step = poison
    with pytest.raises(TrainingDiverged, match="iteration 3") as e:
        g.fit(train, run_dir=tmp_path / "nan", progress=False)
    assert "\n" not in str(e.value)


def test_domains_selection_and_errors(tmp_path):
    train = tiny_imageset(n_per_class=4, size=32, seed=0)
    mel = [train.ids[i] for i in np.flatnonzero(train.labels == train.class_index("MEL"))]
    sel = tmp_path / "sel.json"
    sel.write_text(json.dumps({"schema": SELECTION_SCHEMA, "filter": "path-rank", "target_class": "MEL", "ids": mel[:2], "scores": [0.9, 0.8]}))
    g = ae.create_generator("cyclegan", **{**TINY, "selection": str(sel), "iterations": 1, "sample_every": 1})
    g.fit(train, run_dir=tmp_path / "sel", progress=False)
    assert g._meta["y_count"] == 2 and g._meta["x_count"] == 4
    assert g.class_names == train.class_names and g.train_counts == {"MEL": 2, "NV": 0, "BKL": 0}
    assert list((tmp_path / "sel" / "samples").glob("iter_*.png"))  # x, G(x), F(G(x)) grid
    imgs, labels = g.translate(train.images(64)[:2], train.labels[:2])  # other sizes are resized
    assert imgs.shape == (2, 32, 32, 3) and (labels == train.class_index("MEL")).all()

    sel.write_text(json.dumps({"schema": SELECTION_SCHEMA, "target_class": "MEL", "ids": ["nope:1"]}))
    with pytest.raises(DataError, match="not among"):
        ae.create_generator("cyclegan", **{**TINY, "selection": str(sel)}).fit(train, progress=False)
    with pytest.raises(ConfigError, match="x_class"):
        ae.create_generator("cyclegan", **{**TINY, "x_class": None}).fit(train, progress=False)
    with pytest.raises(DataError, match="XYZ"):
        ae.create_generator("cyclegan", **{**TINY, "y_class": "XYZ"}).fit(train, progress=False)
    with pytest.raises(ConfigError, match="image_size"):
        ae.create_generator("cyclegan", image_size=30)


def test_bf16_and_channels_last_step_runs():
    train = tiny_imageset(n_per_class=2, size=32, classes=("MEL", "NV"), seed=0)
    g = ae.create_generator("cyclegan", **{**TINY, "precision": "bf16", "channels_last": True, "iterations": 2})
    g.fit(train, progress=False)
    assert np.isfinite(np.array(g.history)).all()


def test_composition_trains_one_translator_per_class_and_resumes(tmp_path):
    train = tiny_imageset(n_per_class=3, size=32, classes=("MEL", "NV", "DF"), counts=[3, 3, 0], seed=0)
    run = tmp_path / "comp"
    comp = ae.create_generator("acgan+cyclegan", **COMPOSE)
    comp.fit(train, run_dir=run, seed=1, progress=False)
    assert sorted(comp.translators) == [0, 1]
    assert (run / "translators" / "MEL" / "checkpoint.pt").exists() and not (run / "translators" / "DF").exists()
    rec = json.loads((run / "run.json").read_text())
    assert rec["finished_classes"] == ["MEL", "NV"]
    out = comp.sample(np.array([0, 1, 0]), np.array([5, 6, 7]))
    # image 0 equals the MEL translator applied to the source sample of (MEL, seed 5)
    raw = comp.source.sample(np.array([0]), np.array([5]))
    np.testing.assert_array_equal(out[0], comp.translators[0].translate(raw, np.array([0]))[0][0])
    with pytest.raises(DataError, match="DF"):
        comp.sample(np.array([2]), np.array([0]))
    # resume: finished classes are loaded, not retrained
    mtime = (run / "translators" / "NV" / "checkpoint.pt").stat().st_mtime_ns
    again = ae.create_generator("acgan+cyclegan", **COMPOSE).fit(train, run_dir=run, resume=True, seed=1,
                                                                 progress=False)
    assert (run / "translators" / "NV" / "checkpoint.pt").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.sample(np.array([0, 1, 0]), np.array([5, 6, 7])), out)
    with pytest.raises(ConfigError, match="translator"):
        ae.create_generator("acgan+cyclegan", **{**COMPOSE, "translator": "cg-test-noise"}).fit(train, progress=False)
