"""``deterministic=true``: deterministic kernels during the fit only, everything restored after;
without it, fits and generation run with cuDNN's algorithm search."""

from __future__ import annotations

import os

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


def test_fits_and_generation_search_algorithms_unless_deterministic(tmp_path, spy_generator):
    """Every fit and every generate() runs with cuDNN's algorithm search (the reference CycleGAN
    trains with it); a plugin configured ``deterministic`` runs without; the caller's setting is
    restored either way."""
    Spy = spy_generator(lambda: torch.backends.cudnn.benchmark)
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        train = tiny_imageset(n_per_class=2, size=8, seed=0)
        for exact in (False, True):
            Spy.seen = []
            gen = Spy(deterministic=exact).fit(train, seed=0)
            gen.generate(4, out=tmp_path / f"set{exact}.h5", seed=0, progress=False)
            assert Spy.seen and all(on is (not exact) for _, on in Spy.seen), Spy.seen
            assert {what for what, _ in Spy.seen} == {"fit", "sample"}
            assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before
