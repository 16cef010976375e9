"""The base every plugin class derives from (one subclass per kind)."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from augengine.config import PluginConfig, config_fields, validate_config

__all__ = ["Plugin"]


class Plugin:
    """Common base of generators, filters, classifiers and evaluators.

    A plugin class sets ``name`` (unique within its kind, e.g. ``"acgan"``) and ``Config``
    (a :class:`~augengine.config.PluginConfig` subclass). The first line of the class
    docstring is the one-line description shown by ``augengine plugins``.

    Args:
        config: a ``Config`` instance or a mapping; ``None`` means defaults.
        **overrides: individual fields, applied on top of ``config``.
    """

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | dict[str, Any] | None = None, **overrides: Any):
        if isinstance(config, PluginConfig):
            config = config.model_dump()
        data = dict(config or {})
        data.update(overrides)
        self.config = validate_config(self.Config, data, owner=f"{self.kind} {self.name!r}")

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.kind}:{cls.name}"

    @classmethod
    def description(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @classmethod
    def config_fields(cls) -> list[dict[str, Any]]:
        return config_fields(cls.Config)

    def __repr__(self) -> str:
        return f"<{self.qualified_name()} {self.config!r}>"
