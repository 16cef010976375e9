"""Engine tests start from a freshly discovered plugin registry (and leave one behind)."""

import pytest

import augengine as ae


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.delenv("AUGENGINE_LOAD_PLUGINS", raising=False)
    ae.reset_plugins()
    yield
    ae.reset_plugins()
