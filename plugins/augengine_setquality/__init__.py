"""augengine built-in evaluator plugin ``set-quality``: synthetic-set quality without downloads.

Fréchet distance and KID, improved precision/recall, density/coverage, memorisation and the
classification accuracy score, all in the feature space of a classifier trained on the real
data::

    ev = augengine.create_evaluator("set-quality")
    res = ev.evaluate(classifier, split.test, synthetic=synth, train=split.train)
"""

import augengine

from augengine_setquality.evaluator import SetQualityConfig, SetQualityEvaluator
from augengine_setquality.features import FEATURE_CACHE, FeatureCache
from augengine_setquality.metrics import (
    frechet_distance,
    kernel_distance,
    manifold_statistics,
    memorisation_ratios,
)

__all__ = [
    "SetQualityConfig",
    "SetQualityEvaluator",
    "FeatureCache",
    "FEATURE_CACHE",
    "frechet_distance",
    "kernel_distance",
    "manifold_statistics",
    "memorisation_ratios",
]


@augengine.hookimpl
def register_evaluators(register):
    register(SetQualityEvaluator)
