"""Hook specifications: how a plugin package tells augengine what it provides.

A plugin package is a module (or package) exposed under the entry-point group
``augengine`` in its ``pyproject.toml``::

    [project.entry-points.augengine]
    my_plugin = "my_plugin_package"

and implements one or more of the hooks below with :data:`augengine.hookimpl`. Each hook
receives a ``register`` callback; call it once per plugin class. This is the callback style
of simonw/llm. Example::

    import augengine

    @augengine.hookimpl
    def register_generators(register):
        register(MyGenerator)
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

PROJECT_NAME = "augengine"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_generators(register: Callable[[type], None]) -> None:
    """Register generator plugin classes.

    Call ``register(cls)`` for each class, where ``cls`` subclasses
    :class:`augengine.Generator`, sets a unique ``name`` (e.g. ``"acgan"``), a ``Config``
    (pydantic model deriving from :class:`augengine.PluginConfig`, with an ``image_size``
    field), and ``mode`` — ``"noise"`` (implement ``sample(labels, seeds)``) or
    ``"translate"`` (implement ``translate(images, labels)``) — plus ``fit``, ``save`` and
    ``load``. Images cross the boundary as uint8 N×H×W×3 (see :mod:`augengine.images`).

    :param register: callback taking one generator class.
    """


@hookspec
def register_filters(register: Callable[[type], None]) -> None:
    """Register filter plugin classes.

    Call ``register(cls)`` for each class, where ``cls`` subclasses :class:`augengine.Filter`,
    sets ``name`` and ``Config``, and implements ``score(images, classifier=, target_class=)``
    (one float per image, higher = kept first) and ``select(...)`` (indices kept).

    :param register: callback taking one filter class.
    """


@hookspec
def register_classifiers(register: Callable[[type], None]) -> None:
    """Register classifier plugin classes.

    Call ``register(cls)`` for each class, where ``cls`` subclasses
    :class:`augengine.Classifier`, sets ``name`` and ``Config`` (with ``image_size``), and
    implements ``fit``, ``predict_proba`` (N×C float), ``features`` (N×D float), ``save`` and
    ``load`` (checkpoints readable with ``torch.load(..., weights_only=True)``).

    :param register: callback taking one classifier class.
    """


@hookspec
def register_evaluators(register: Callable[[type], None]) -> None:
    """Register evaluator plugin classes.

    Call ``register(cls)`` for each class, where ``cls`` subclasses
    :class:`augengine.Evaluator`, sets ``name`` and ``Config``, and implements
    ``evaluate(classifier, test, baseline=, synthetic=, train=, external=)`` returning an
    :class:`augengine.Evaluation` (metrics with stable keys, tables, figures, verdicts).

    :param register: callback taking one evaluator class.
    """
