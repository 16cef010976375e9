"""augengine: a plugin-based GAN augmentation engine for medical images.

The public API (see README "Use from Python")::

    import augengine as ae
    table = ae.load_dataset("demo")
    split = ae.split(table, fractions=(0.8, 0.1, 0.1), group_by="lesion", seed=0)
    gen = ae.create_generator("acgan", image_size=32)

Plugin authors: a plugin imports ``augengine`` (the names in ``__all__`` below) and
:mod:`augengine.plugin_api` (run records, checkpoints, selections, runtime helpers,
statistics), and ``augengine.testing`` in its tests. Every other module is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from augengine.classifier import Classifier
from augengine.config import PluginConfig
from augengine.errors import (
    AugengineError,
    ConfigError,
    DataError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
    ShapeError,
    TrainingDiverged,
)
from augengine.evaluator import Evaluation, Evaluator
from augengine.filter import Filter
from augengine.generator import Generator, image_seeds, plan_labels
from augengine.hookspecs import hookimpl
from augengine.images import check_images, from_model, resize_uint8, to_model
from augengine.imageset import ArrayImageSet, ImageSet
from augengine.registry import (
    create_classifier,
    create_evaluator,
    create_filter,
    create_generator,
    get_plugin_class,
    get_plugin_manager,
    list_classifiers,
    list_evaluators,
    list_filters,
    list_generators,
    list_plugins,
    load_run,
    register_plugin,
    reset_plugins,
)
from augengine.runs import load_checkpoint, save_checkpoint
from augengine.runtime import seed_everything, select_device
from augengine.synthetic import SyntheticSet

from augengine.data import combine, load_dataset, load_split, resample_like, split  # noqa: E402  (data layer)

__all__ = [
    "__version__",
    "ArrayImageSet",
    "AugengineError",
    "Classifier",
    "ConfigError",
    "DataError",
    "Evaluation",
    "Evaluator",
    "Filter",
    "Generator",
    "ImageSet",
    "PluginConfig",
    "PluginError",
    "PluginLoadError",
    "PluginNotFoundError",
    "ShapeError",
    "SyntheticSet",
    "TrainingDiverged",
    "check_images",
    "combine",
    "create_classifier",
    "create_evaluator",
    "create_filter",
    "create_generator",
    "from_model",
    "get_plugin_class",
    "get_plugin_manager",
    "image_seeds",
    "plan_labels",
    "hookimpl",
    "list_classifiers",
    "list_evaluators",
    "list_filters",
    "list_generators",
    "list_plugins",
    "load_checkpoint",
    "load_dataset",
    "load_run",
    "load_split",
    "register_plugin",
    "resample_like",
    "reset_plugins",
    "resize_uint8",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "split",
    "to_model",
]
