"""``deterministic=true``: deterministic kernels during the fit only, everything restored after;
without it, fits and generation run with cuDNN's algorithm search."""

from __future__ import annotations

import os

import numpy as np
import torch

import augengine as ae
from augengine.plugin_api import benchmarked_convolutions, deterministic_algorithms
from augengine.testing import tiny_imageset


def _flags():
    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def test_context_turns_on_and_restores():
    before = _flags()
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert _flags() == before
    with deterministic_algorithms(False):
        assert _flags() == before


def test_fit_with_deterministic_runs_under_it_and_restores(tmp_path, monkeypatch):
    seen = []
    real = torch.Tensor.backward

    def spy(self, *a, **k):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    before = _flags()
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, batch_size=8, lr=3e-3,
                               precision="fp32", deterministic=True, device="cpu")
    train = tiny_imageset(n_per_class=4, size=16, seed=0)
    clf.fit(train, val=tiny_imageset(n_per_class=2, size=16, seed=1), run_dir=tmp_path / "run", seed=0,
            progress=False)
    assert seen and all(seen)
    assert _flags() == before


def test_algorithm_search_context_turns_on_and_restores():
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        with benchmarked_convolutions():
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark is False
        with benchmarked_convolutions(False):
            assert torch.backends.cudnn.benchmark is False
        try:
            with benchmarked_convolutions():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


class _SearchSpy(ae.Generator):
    """Records cuDNN's algorithm-search flag inside fit() and sample()."""

    name = "search-spy"
    mode = "noise"

    class Config(ae.PluginConfig):
        deterministic: bool = False

    seen: list = []

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
        _SearchSpy.seen.append(("fit", torch.backends.cudnn.benchmark))
        self.class_names, self.train_counts = list(train.class_names), train.class_counts()
        return self

    @property
    def image_size(self) -> int:
        return 8

    def sample(self, labels, seeds):
        _SearchSpy.seen.append(("sample", torch.backends.cudnn.benchmark))
        return np.zeros((len(labels), 8, 8, 3), np.uint8)

    def checkpoint_sha256(self) -> str:
        return "0" * 64


def test_fits_and_generation_search_algorithms_unless_deterministic(tmp_path):
    """Every fit and every generate() runs with cuDNN's algorithm search (the reference CycleGAN
    trains with it); a plugin configured ``deterministic`` runs without; the caller's setting is
    restored either way."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        train = tiny_imageset(n_per_class=2, size=8, seed=0)
        for exact in (False, True):
            _SearchSpy.seen = []
            gen = _SearchSpy(deterministic=exact).fit(train, seed=0)
            gen.generate(4, out=tmp_path / f"set{exact}.h5", seed=0, progress=False)
            assert _SearchSpy.seen and all(on is (not exact) for _, on in _SearchSpy.seen), _SearchSpy.seen
            assert {what for what, _ in _SearchSpy.seen} == {"fit", "sample"}
            assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before
