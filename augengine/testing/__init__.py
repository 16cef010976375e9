"""augengine.testing: the contract test kit and tiny test data for plugin authors.

Subclass a contract in your plugin's tests (pytest collects ``Test*`` classes)::

    from augengine.testing import GeneratorContract

    class TestMyGan(GeneratorContract):
        plugin_name = "my-gan"
        config = {"image_size": 16, "iterations": 3}
"""

from augengine.testing.contracts import (
    ClassifierContract,
    EvaluatorContract,
    FilterContract,
    GeneratorContract,
    assert_weights_only_loadable,
)
from augengine.testing.data import StubClassifier, tiny_imageset

__all__ = [
    "GeneratorContract",
    "FilterContract",
    "ClassifierContract",
    "EvaluatorContract",
    "assert_weights_only_loadable",
    "StubClassifier",
    "tiny_imageset",
]
