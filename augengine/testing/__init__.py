"""augengine.testing: the contract test kit and tiny test data for plugin authors.

Subclass a contract in your plugin's tests (pytest collects ``Test*`` classes)::

    from augengine.testing import GeneratorContract

    class TestMyGan(GeneratorContract):
        plugin_name = "my-gan"
        config = {"image_size": 16, "iterations": 3}

The test data (``tiny_imageset``, ``StubClassifier``) needs no pytest; the contracts are
imported on first use (they are pytest test classes), so ``import augengine.testing`` works in
a project that does not have pytest installed.
"""

from __future__ import annotations

from typing import Any

from augengine.testing.data import StubClassifier, tiny_imageset

_CONTRACTS = ("GeneratorContract", "FilterContract", "ClassifierContract", "EvaluatorContract",
              "assert_weights_only_loadable")

__all__ = [*_CONTRACTS, "StubClassifier", "tiny_imageset"]


def __getattr__(name: str) -> Any:
    if name in _CONTRACTS:
        try:
            from augengine.testing import contracts
        except ImportError as e:
            raise ImportError(f"augengine.testing.{name} needs pytest (pip install pytest): {e}") from e
        return getattr(contracts, name)
    raise AttributeError(f"module 'augengine.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
