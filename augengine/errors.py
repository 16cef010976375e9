"""Exceptions of the engine.

Every error a user can cause is an :class:`AugengineError`: its message is one line that
names the thing (file, plugin, field), what was found and what was expected. The CLI prints
that line alone (``-v`` adds the traceback).
"""

from __future__ import annotations


class AugengineError(Exception):
    """Base class of every user-facing error (one-line message)."""


class ConfigError(AugengineError, ValueError):
    """A plugin or bench configuration has an unknown key or a value of the wrong type."""


class PluginNotFoundError(AugengineError, LookupError):
    """No plugin of that kind and name is registered."""


class PluginLoadError(AugengineError, ImportError):
    """A plugin failed to import or to register (or two plugins claim the same name)."""


class DataError(AugengineError, ValueError):
    """Input data (files, CSV, labels, splits, HDF5 sets) is missing or malformed."""


class ShapeError(AugengineError, ValueError):
    """An array crossing a public boundary has the wrong shape, dtype or value range."""


class PluginError(AugengineError, RuntimeError):
    """A plugin raised or returned something that breaks its contract."""


class TrainingDiverged(AugengineError, FloatingPointError):
    """A loss became NaN or infinite; the message names the step."""
