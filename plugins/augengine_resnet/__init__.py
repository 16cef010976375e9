"""augengine built-in classifier plugin ``resnet``: any timm model with the paper's fastai-style recipe.

Registered through the ``augengine`` entry-point group like any third-party plugin::

    clf = augengine.create_classifier("resnet", arch="resnet18", image_size=64)
"""

import augengine

from augengine_resnet.classifier import ResnetClassifier, ResnetConfig, build_model, load_pretrained
from augengine_resnet.lr_finder import LRFinderResult, lr_range_test, plot_lr_curve

__all__ = [
    "ResnetClassifier",
    "ResnetConfig",
    "build_model",
    "load_pretrained",
    "LRFinderResult",
    "lr_range_test",
    "plot_lr_curve",
]


@augengine.hookimpl
def register_classifiers(register):
    register(ResnetClassifier)
