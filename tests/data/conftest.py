"""Fixtures for the data-layer tests: a private cache folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test uses a cache folder of its own session (never ~/.cache)."""
    d = tmp_path_factory.getbasetemp() / "aecache"
    monkeypatch.setenv("AUGENGINE_CACHE", str(d))
    return d
