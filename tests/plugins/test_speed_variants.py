"""``auto`` speed settings of the acgan and resnet plugins: resolved by a real (tiny) trial,
recorded, reused by resume; a fixed setting is never measured."""

from __future__ import annotations

import json

import pytest
import torch

import augengine as ae
from augengine.testing import tiny_imageset

TINY16 = {"image_size": 16, "g_channels": [16], "d_channels": [8, 8, 16, 16, 16, 16], "batch_size": 8,
          "iterations": 4, "latent_dim": 16, "checkpoint_every": 2, "sample_every": 2, "log_every": 1}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AUGENGINE_AUTOTUNE", raising=False)


def test_acgan_trial_measures_candidates_without_touching_the_rng():
    g = ae.create_generator("acgan", **{**TINY16, "compile": False})
    g.device = torch.device("cpu")
    before = torch.get_rng_state()
    res = g._resolve_speed(3, total_steps=10_000)
    assert torch.equal(before, torch.get_rng_state())
    assert res.source == "trial" and res.timings_ms["fp32"] > 0
    assert "fp32+cl" in res.timings_ms and not res.variant.compile
    again = ae.create_generator("acgan", **{**TINY16, "compile": False})
    again.device = torch.device("cpu")
    assert again._resolve_speed(3, total_steps=10_000).source == "cache"


def test_acgan_short_fit_uses_the_safe_default_and_records_it(tmp_path):
    g = ae.create_generator("acgan", **TINY16)
    g.fit(tiny_imageset(n_per_class=6, size=16, seed=0), run_dir=tmp_path / "run", progress=False)
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["speed"]["source"] == "default" and rec["speed"]["label"] == "fp32"
    loaded = ae.load_run(tmp_path / "run") if hasattr(ae, "load_run") else None
    if loaded is not None:
        assert loaded.variant.label == "fp32"


def test_acgan_resume_reuses_the_recorded_variant(tmp_path, monkeypatch):
    from augengine_acgan.generator import AcganGenerator

    calls = []
    monkeypatch.setattr(AcganGenerator, "_trial", lambda self, v, n, k: calls.append(v.label) or
                        [0.001 if v.channels_last else 0.002] * n)
    # a run too short for a trial records the safe default (channels_last off) ...
    run = tmp_path / "run"
    h = ae.create_generator("acgan", **{**TINY16, "compile": False})
    h.fit(tiny_imageset(n_per_class=6, size=16, seed=0), run_dir=run, progress=False)
    rec = json.loads((run / "run.json").read_text())
    assert rec["speed"]["variant"]["channels_last"] is False
    # ... then a long fit's trial caches channels_last on for this machine and architecture ...
    g = ae.create_generator("acgan", **{**TINY16, "compile": False})
    g._resolve_speed(3, 4000)  # stubbed 1-2 ms steps are timed ~20 times each: a fit long enough for that
    assert g.variant.channels_last and calls
    # ... and the resume keeps the recorded variant
    calls.clear()
    r = ae.create_generator("acgan", **{**TINY16, "compile": False})
    r.fit(tiny_imageset(n_per_class=6, size=16, seed=0), run_dir=run, resume=True, progress=False)
    assert r.speed.source == "resume" and not r.variant.channels_last and not calls


RESNET = {"arch": "resnet18", "image_size": 32, "epochs": 1, "batch_size": 8, "lr": 1e-3, "pretrained": None,
          "early_stopping_patience": None}


def test_resnet_trial_resolution_is_recorded_and_reused(tmp_path, monkeypatch):
    from augengine_resnet.classifier import ResnetClassifier

    clf = ae.create_classifier("resnet", **{**RESNET, "compile": False})
    before = torch.get_rng_state()
    res = clf._resolve_speed(3, total_steps=10_000)  # a real trial on a throwaway ResNet-18
    assert torch.equal(before, torch.get_rng_state())
    assert res.source == "trial" and res.timings_ms["fp32"] > 0 and "fp32+cl" in res.timings_ms

    calls = []
    monkeypatch.setattr(ResnetClassifier, "_trial", lambda self, v, n, k: calls.append(v.label) or [0.001] * n)
    short = ae.create_classifier("resnet", **{**RESNET, "channels_last": False, "compile": False})
    data = tiny_imageset(n_per_class=6, size=32, seed=0)
    short.fit(data, run_dir=tmp_path / "run", progress=False)
    short.save(tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["speed"]["source"] == "default" and rec["speed"]["label"] == "fp32" and not calls
    assert ae.create_classifier("resnet", **RESNET).load(tmp_path / "run").variant.label == "fp32"
