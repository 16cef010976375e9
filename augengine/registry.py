"""Plugin discovery and the timm-style factories.

Plugins are found through the entry-point group ``augengine`` (built-ins included) and
registered with a pluggy :class:`~pluggy.PluginManager` whose hooks are in
:mod:`augengine.hookspecs`. ``AUGENGINE_LOAD_PLUGINS`` (comma-separated entry-point names;
set but empty = none) limits what loads; a name in it that no installed package provides is
reported (a :class:`PluginWarning` and a broken entry naming the known entry points). A plugin
that fails to import or register, or that implements a hook augengine does not define (a
misspelt ``register_generator``, found by pluggy's ``check_pending``), never breaks the engine:
it is listed as broken with its error, and asking for it repeats that error.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
import threading
import warnings
from importlib import metadata
from typing import Any

import pluggy

from augengine import hookspecs
from augengine.classifier import Classifier
from augengine.errors import DataError, PluginLoadError, PluginNotFoundError
from augengine.evaluator import Evaluator
from augengine.filter import Filter
from augengine.generator import Generator
from augengine.runs import read_run_record

__all__ = [
    "KINDS",
    "PluginInfo",
    "PluginWarning",
    "get_plugin_manager",
    "get_registry",
    "reset_plugins",
    "register_plugin",
    "resolve_name",
    "get_plugin_class",
    "list_plugins",
    "create_generator",
    "create_filter",
    "create_classifier",
    "create_evaluator",
    "list_generators",
    "list_filters",
    "list_classifiers",
    "list_evaluators",
    "load_run",
]

ENTRY_POINT_GROUP = "augengine"
KINDS: dict[str, tuple[str, type]] = {
    "generator": ("register_generators", Generator),
    "filter": ("register_filters", Filter),
    "classifier": ("register_classifiers", Classifier),
    "evaluator": ("register_evaluators", Evaluator),
}


class PluginWarning(UserWarning):
    """A plugin-loading problem that does not stop the engine (e.g. an unknown name in AUGENGINE_LOAD_PLUGINS)."""


def hook_names() -> list[str]:
    """The hooks a plugin may implement (those of :mod:`augengine.hookspecs`)."""
    return sorted(hook for hook, _ in KINDS.values())


def check_hooks(pm: pluggy.PluginManager, plugin: object, plugin_name: str) -> None:
    """Unregister ``plugin`` and raise PluginLoadError when it implements a hook no spec defines.

    Uses pluggy's :meth:`~pluggy.PluginManager.check_pending` (run right after registering, so
    anything pending belongs to this plugin); the message names the unknown hook(s), the closest
    known hook and every known one.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        unknown = sorted(hc.name for hc in (pm.get_hookcallers(plugin) or []) if not hc.has_spec())
        pm.unregister(plugin)
        known = hook_names()
        hints = [f"{u!r} → {m[0]!r}" for u in unknown if (m := difflib.get_close_matches(u, known, n=1))]
        msg = f"plugin {plugin_name!r} implements unknown hook(s) {', '.join(map(repr, unknown))}"
        if hints:
            msg += f" (did you mean {', '.join(hints)}?)"
        raise PluginLoadError(f"{msg}; known hooks: {', '.join(known)}") from None


@dataclasses.dataclass
class PluginInfo:
    """One registered plugin class, or one broken plugin package (``error`` set)."""

    kind: str | None
    name: str | None
    cls: type | None
    package: str
    version: str
    entry_point: str | None
    error: str | None = None

    @property
    def description(self) -> str:
        return self.cls.description() if self.cls is not None else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "entry_point": self.entry_point,
            "status": "broken" if self.error else "ok",
        }
        if self.error:
            out["error"] = self.error
        if self.cls is not None:
            out["description"] = self.description
            out["config"] = self.cls.config_fields()
            if self.kind == "generator":
                out["mode"] = getattr(self.cls, "mode", "noise")
        return out


class _Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.sources: dict[str, tuple[str, str, str | None]] = {}  # pluggy name -> (package, version, ep)
        self.load_errors: list[PluginInfo] = []
        self.classes: dict[tuple[str, str], PluginInfo] = {}
        self.conflicts: dict[tuple[str, str], str] = {}
        self.register_errors: list[PluginInfo] = []

    # -- discovery --------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        allowed = os.environ.get("AUGENGINE_LOAD_PLUGINS")
        allow = None if allowed is None else {s.strip() for s in allowed.split(",") if s.strip()}
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        unknown = sorted(allow - {ep.name for ep in eps}) if allow else []
        if unknown:
            msg = (f"AUGENGINE_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which no installed package "
                   f"provides; known entry points: {', '.join(sorted({ep.name for ep in eps})) or '(none)'}")
            warnings.warn(msg, PluginWarning, stacklevel=4)
            for name in unknown:
                self.load_errors.append(PluginInfo(None, None, None, "AUGENGINE_LOAD_PLUGINS", "", name, error=msg))
        for ep in eps:
            if allow is not None and ep.name not in allow:
                continue
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else ep.value
            version = dist.version if dist is not None else ""
            if self.pm.has_plugin(ep.name):
                continue
            try:
                obj = ep.load()
                self.pm.register(obj, name=ep.name)
                check_hooks(self.pm, obj, ep.name)
                self.sources[ep.name] = (package, version, ep.name)
            except PluginLoadError as e:
                self.load_errors.append(PluginInfo(None, None, None, package, version, ep.name, error=str(e)))
            except Exception as e:  # noqa: BLE001 - a broken plugin must not break the engine
                self.load_errors.append(
                    PluginInfo(None, None, None, package, version, ep.name,
                               error=f"failed to load entry point {ep.name} = {ep.value}: {type(e).__name__}: {e}")
                )

    def collect(self) -> None:
        self.classes.clear()
        self.conflicts.clear()
        self.register_errors.clear()
        for kind, (hookname, base) in KINDS.items():
            hook = getattr(self.pm.hook, hookname)
            for impl in hook.get_hookimpls():
                package, version, ep = self.sources.get(impl.plugin_name, (impl.plugin_name, "", None))
                found: list[type] = []
                try:
                    impl.function(register=found.append)
                except Exception as e:  # noqa: BLE001
                    self.register_errors.append(
                        PluginInfo(kind, None, None, package, version, ep,
                                   error=f"{hookname}() raised {type(e).__name__}: {e}")
                    )
                    continue
                for cls in found:
                    if not (isinstance(cls, type) and issubclass(cls, base)) or not getattr(cls, "name", ""):
                        self.register_errors.append(
                            PluginInfo(kind, getattr(cls, "name", None), None, package, version, ep,
                                       error=f"{hookname}() registered {cls!r}: expected a subclass of "
                                             f"augengine.{base.__name__} with a non-empty name")
                        )
                        continue
                    key = (kind, cls.name)
                    info = PluginInfo(kind, cls.name, cls, package, version, ep)
                    if key in self.classes and self.classes[key].cls is not cls:
                        other = self.classes[key]
                        self.conflicts[key] = (
                            f"{kind} {cls.name!r} is registered by two packages: "
                            f"{other.package} ({other.cls.__module__}.{other.cls.__qualname__}) and "
                            f"{package} ({cls.__module__}.{cls.__qualname__})"
                        )
                        continue
                    self.classes[key] = info

    # -- queries ----------------------------------------------------------------------------
    def infos(self) -> list[PluginInfo]:
        rows = [i for k, i in sorted(self.classes.items()) if k not in self.conflicts]
        rows += [
            PluginInfo(k[0], k[1], None, self.classes[k].package, self.classes[k].version,
                       self.classes[k].entry_point, error=msg)
            for k, msg in sorted(self.conflicts.items())
        ]
        return rows + self.load_errors + self.register_errors

    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, n) in self.classes if k == kind and (k, n) not in self.conflicts)


_LOCK = threading.RLock()
_REGISTRY: _Registry | None = None


def get_registry() -> _Registry:
    """The process-wide registry (entry points loaded on first use)."""
    global _REGISTRY
    with _LOCK:
        if _REGISTRY is None:
            reg = _Registry()
            reg.load_entry_points()
            reg.collect()
            _REGISTRY = reg
        return _REGISTRY


def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy PluginManager holding every loaded plugin module."""
    return get_registry().pm


def reset_plugins() -> None:
    """Forget everything loaded; the next call discovers plugins again (honours AUGENGINE_LOAD_PLUGINS)."""
    global _REGISTRY
    with _LOCK:
        _REGISTRY = None


def register_plugin(obj: Any, name: str | None = None) -> None:
    """Register a plugin module/object in this process (for embedding and tests, no entry point needed).

    Raises:
        PluginLoadError: ``obj`` implements a hook augengine does not define (e.g. a misspelt
            ``register_generator``); it is not registered.
    """
    reg = get_registry()
    with _LOCK:
        name = reg.pm.register(obj, name=name)
        check_hooks(reg.pm, obj, name or getattr(obj, "__name__", str(obj)))
        if name is not None:
            reg.sources[name] = (getattr(obj, "__name__", str(name)), "", name)
        reg.collect()


def resolve_name(name: str, kind: str | None = None) -> tuple[str, str]:
    """``"acgan"`` or ``"generator:acgan"`` → ``(kind, name)``; one-line error when unknown."""
    reg = get_registry()
    if ":" in name and name.split(":", 1)[0] in KINDS:
        k, n = name.split(":", 1)
        if kind is not None and k != kind:
            raise PluginNotFoundError(f"{name!r} names a {k}, but a {kind} is expected here")
        kind = k
        name = n
    kinds = [kind] if kind else list(KINDS)
    hits = [(k, n) for k in kinds for n in reg.names(k) if n == name]
    if not hits:
        hits = [(k, n) for k in kinds for n in reg.names(k) if n.lower() == name.lower()]
    for k in kinds:
        if (k, name) in reg.conflicts:
            raise PluginLoadError(reg.conflicts[(k, name)])
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise PluginNotFoundError(f"{name!r} is ambiguous: " + ", ".join(f"{k}:{n}" for k, n in hits))
    # not found: a broken package of that name repeats its error
    norm = name.lower().replace("-", "_").replace("+", "_")
    for info in reg.load_errors + reg.register_errors:
        if info.entry_point and info.entry_point.lower().replace("-", "_") == norm:
            raise PluginLoadError(f"{kind or 'plugin'} {name!r}: package {info.package} is broken: {info.error}")
    label = f"{kind}s" if kind else "plugins"
    known = [n if kind else f"{k}:{n}" for k in kinds for n in reg.names(k)]
    close = difflib.get_close_matches(name, [n for k in kinds for n in reg.names(k)], n=1)
    msg = f"unknown {kind or 'plugin'} {name!r}; known {label}: {', '.join(known) or '(none installed)'}"
    if close:
        msg += f"; closest match: {close[0]!r}"
    broken = reg.load_errors + reg.register_errors
    if broken:
        msg += "; broken plugin packages: " + ", ".join(sorted({b.package for b in broken})) + " (see 'augengine plugins')"
    raise PluginNotFoundError(msg)


def get_plugin_class(kind: str | None, name: str) -> type:
    """The class registered as ``kind:name`` (``kind`` may be None to search all kinds)."""
    k, n = resolve_name(name, kind)
    return get_registry().classes[(k, n)].cls


def list_plugins(kind: str | None = None, pattern: str = "*") -> list[PluginInfo]:
    """Every plugin (broken ones included) of ``kind``, whose name matches ``pattern`` (fnmatch)."""
    return [i for i in get_registry().infos()
            if (kind is None or i.kind in (kind, None)) and fnmatch.fnmatch(i.name or i.entry_point or "", pattern)]


def _create(kind: str, name: str, config: dict[str, Any]):
    cls = get_plugin_class(kind, name)
    return cls(**config)


def _list(kind: str, pattern: str) -> list[str]:
    return [n for n in get_registry().names(kind) if fnmatch.fnmatch(n, pattern)]


def create_generator(name: str, **config: Any) -> Generator:
    """Build the generator plugin ``name`` with ``config`` (validated; ConfigError on unknown keys)."""
    return _create("generator", name, config)


def create_filter(name: str, **config: Any) -> Filter:
    """Build the filter plugin ``name`` with ``config``."""
    return _create("filter", name, config)


def create_classifier(name: str, **config: Any) -> Classifier:
    """Build the classifier plugin ``name`` with ``config``."""
    return _create("classifier", name, config)


def create_evaluator(name: str, **config: Any) -> Evaluator:
    """Build the evaluator plugin ``name`` with ``config``."""
    return _create("evaluator", name, config)


def list_generators(pattern: str = "*") -> list[str]:
    """Names of the registered generators matching ``pattern`` (fnmatch, e.g. ``"*gan*"``)."""
    return _list("generator", pattern)


def list_filters(pattern: str = "*") -> list[str]:
    """Names of the registered filters matching ``pattern``."""
    return _list("filter", pattern)


def list_classifiers(pattern: str = "*") -> list[str]:
    """Names of the registered classifiers matching ``pattern``."""
    return _list("classifier", pattern)


def list_evaluators(pattern: str = "*") -> list[str]:
    """Names of the registered evaluators matching ``pattern``."""
    return _list("evaluator", pattern)


def load_run(run_dir: str | os.PathLike, kind: str | None = None, device: str | None = None) -> Any:
    """Reopen the plugin saved in ``run_dir``: its run record names the plugin, the registry
    finds the class, the class's ``load`` reads the checkpoint.

    Args:
        run_dir: a run directory written by a plugin's ``fit``/``save``.
        kind: expected kind (``"generator"``, ``"classifier"``, …); another kind is a DataError.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (the plugin's recorded choice).
    """
    record = read_run_record(run_dir)
    if kind is not None and record.get("kind") != kind:
        raise DataError(f"{run_dir}: holds a {record.get('kind')} run ({record.get('name')}), expected a {kind}")
    if record.get("status") == "started":
        raise DataError(f"{run_dir}: the {record.get('kind')} '{record.get('name')}' run there has not finished "
                        "its first checkpoint; continue its fit with resume=True")
    cls = get_plugin_class(record["kind"], record["name"])
    return cls.load(run_dir, device=device)
