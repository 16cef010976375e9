"""Typed plugin configuration: defaults < TOML file < ``-o key=value`` overrides.

Every plugin declares a pydantic model with ``extra="forbid"`` (subclass
:class:`PluginConfig`). Values given as ``-o key=value`` are parsed as TOML literals
(``-o lr=2e-4``, ``-o betas=[0.5,0.999]``, ``-o name="x"``; a bare word that is not a TOML
literal is taken as a string), dotted keys address nested fields (``-o optim.lr=1e-3``).
Values typed by a user (TOML files, overrides) are validated strictly: ``-o iterations="300"`` or
``-o spectral_norm="yes"`` is an error, not a silent conversion (an integer is still a float).
Errors are :class:`~augengine.errors.ConfigError` with one line naming the plugin, the key
and what is expected.
"""

from __future__ import annotations

import difflib
import json
import typing
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from augengine.errors import ConfigError

__all__ = [
    "PluginConfig",
    "parse_override",
    "parse_overrides",
    "load_toml",
    "merge",
    "validate_config",
    "config_fields",
]


class PluginConfig(BaseModel):
    """Base of every plugin config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def parse_value(text: str) -> Any:
    """Parse one override value as a TOML literal, falling back to the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` → ``(["a", "b"], 1)``. ConfigError when there is no ``=``."""
    if "=" not in item:
        raise ConfigError(f"-o {item!r}: expected key=value (e.g. -o image_size=64)")
    key, _, value = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"-o {item!r}: the key before '=' is empty")
    return key.split("."), parse_value(value.strip())


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a=1", "b.c=x"]`` into ``{"a": 1, "b": {"c": "x"}}``."""
    out: dict[str, Any] = {}
    for item in items:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"-o {item!r}: {part!r} is both a value and a table")
        node[path[-1]] = value
    return out


def load_toml(path: str | Path, table: str | None = None) -> dict[str, Any]:
    """Read a TOML file (optionally one table of it); ConfigError naming the file on failure."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    if table is not None:
        data = data.get(table, data)
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``override`` win."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _closest(word: str, choices: Iterable[str]) -> str:
    m = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {m[0]!r}?" if m else ""


_TYPE_HINTS = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
               "string_type": "a string"}


def _union_error(errs: list[dict[str, Any]]) -> tuple[tuple, str] | None:
    """pydantic reports a union (``bool | Literal["auto"]``) as one error per member, each with the
    member's tag appended to ``loc``: join them into one (field loc, "a or b") pair."""
    first = errs[0]
    loc = first["loc"]
    if len(loc) < 2 or not isinstance(loc[-1], str):
        return None
    same = [e for e in errs if len(e["loc"]) == len(loc) and e["loc"][:-1] == loc[:-1] and e["input"] == first["input"]]
    if len(same) < 2 or len({e["type"] for e in same}) < 2:
        return None
    msgs = []
    for e in same:
        m = e["msg"]
        m = m[len("Input should be "):] if m.startswith("Input should be ") else m
        if m not in msgs:
            msgs.append(m)
    return loc[:-1], "input should be " + " or ".join(msgs)


def format_validation_error(owner: str, model: type[BaseModel], err: ValidationError) -> str:
    """One line naming ``owner``, the key, what was expected and what was given."""
    errs = err.errors()
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    if first["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        return f"{owner}: unknown config key {loc!r} (known keys: {', '.join(known)}){_closest(str(first['loc'][-1]), known)}"
    if first["type"] == "missing":
        return f"{owner}: config key {loc!r} is required"
    got = first.get("input")
    msg = first["msg"]
    union = _union_error(errs)
    if union is not None:
        loc = ".".join(str(p) for p in union[0])
        msg = union[1]
    if msg.lower().startswith("value error, "):
        msg = msg[len("value error, "):]
    line = f"{owner}: config key {loc!r}: {msg[0].lower() + msg[1:]}, got {got!r}"
    if isinstance(got, str) and first["type"] in _TYPE_HINTS and union is None:
        line += f" (a string: values are typed; write {_TYPE_HINTS[first['type']]} without quotes)"
    return line


def _check_plain(data: Any, path: str = "") -> None:
    """Values typed in TOML or on the command line are JSON-like; TOML dates are not config values."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            _check_plain(v, f"{path}.{k}" if path else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            _check_plain(v, f"{path}.{i}")
    elif data is not None and not isinstance(data, (str, int, float, bool)):
        raise ConfigError(f"config key {path!r}: a {type(data).__name__} value is not a config value, got {data!r}")


def validate_config(model: type[BaseModel], data: Mapping[str, Any] | BaseModel | None, owner: str, *,
                    strict: bool = False) -> BaseModel:
    """Build ``model`` from ``data``; ConfigError (one line naming ``owner`` and the key) on failure.

    Args:
        model: the pydantic config class.
        data: a mapping, a model instance or ``None`` (defaults).
        owner: who the config belongs to, for messages (``"generator 'acgan'"``).
        strict: the values were typed by a user (TOML file, ``key=value`` overrides): no
            coercion between types — ``"300"`` is not an integer, ``"yes"`` not a boolean, ``3.0``
            not an integer; an integer is still a valid float, a list a valid tuple and a string a
            valid path (pydantic's strict JSON mode).
    """
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        if strict:
            data = dict(data or {})
            try:
                _check_plain(data)
            except ConfigError as e:
                raise ConfigError(f"{owner}: {e}") from None
            return model.model_validate_json(json.dumps(data, allow_nan=True), strict=True)
        return model.model_validate(dict(data or {}))
    except ValidationError as e:
        raise ConfigError(format_validation_error(owner, model, e)) from None


def config_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Describe a config model's fields: name, type, default, description (for ``plugins``)."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if typing.get_origin(ann) is None and isinstance(ann, type):
            tname = ann.__name__
        else:
            tname = str(ann).replace("typing.", "").replace("pathlib.", "")
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump()
        rows.append(
            {
                "name": name,
                "type": tname,
                "default": default,
                "required": field.is_required(),
                "description": field.description or "",
            }
        )
    return rows
