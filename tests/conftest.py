"""Shared test setup: every test session uses a private decoded-image cache (never ~/.cache)."""

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    d = tmp_path_factory.getbasetemp() / "aecache"
    monkeypatch.setenv("AUGENGINE_CACHE", str(d))
    return d


@pytest.fixture(scope="session", autouse=True)
def one_intra_op_thread():
    """The tests train tiny models: one intra-op thread is faster for them and immune to OpenMP
    spin-waits when the 2-core machine is busy (and runs are bit-reproducible across processes)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
