"""Safe, unique, readable names for data sets that users name by path.

An external test set is given as a path (``--test-data /data/ph2``, ``../../x``, ``a/ham`` and
``b/ham``). Its name becomes part of output file names and bench unit folders, so it must be a
plain file-name component (no separator, no ``..``), unique among the sets of one run, and still
readable in a report. :func:`set_names` turns paths into such names: the slug of the folder (or
file) name, plus a short hash of the resolved path when two different sets would otherwise share
a name. :func:`unique_slugs` does the same for arbitrary labels (e.g. the keys of an
``external={...}`` mapping given from Python).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from augengine.errors import DataError

__all__ = ["slug", "is_safe_stem", "set_label", "set_names", "dataset_names", "unique_slugs", "short_hash"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_LEN = 48


def short_hash(text: str, n: int = 8) -> str:
    """First ``n`` hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def slug(text: str, max_len: int = MAX_LEN) -> str:
    """``text`` as one safe file-name component: runs of characters other than letters, digits,
    ``.``, ``_``, ``+``, ``-`` become ``-``; no leading dot or dash; at most ``max_len``
    characters; ``"set"`` when nothing is left. ``"/data/ph2"`` → ``"data-ph2"``."""
    s = _UNSAFE.sub("-", str(text)).strip("-.")
    s = s[:max_len].rstrip("-.")
    return s or "set"


def is_safe_stem(name: str) -> bool:
    """True when ``name`` is one plain file-name component (what :func:`slug` returns)."""
    return bool(name) and name not in (".", "..") and _UNSAFE.search(name) is None and not name.startswith(("-", "."))


def set_label(path: str | Path) -> str:
    """The readable name of a data set given by path: its folder or file name (file suffix
    dropped), ``"demo"`` for the built-in set; ``"/data/ph2/"`` → ``"ph2"``."""
    text = str(path)
    if text == "demo":
        return "demo"
    p = Path(text).expanduser()
    name = p.name if p.name not in ("", ".", "..") else p.resolve().name
    if p.suffix and not p.is_dir():
        name = p.stem
    return name or "root"


def _resolved(path: str | Path) -> str:
    text = str(path)
    return text if text == "demo" else str(Path(text).expanduser().resolve())


def unique_slugs(labels: Sequence[str], keys: Sequence[str] | None = None) -> dict[str, str]:
    """Map each label to a safe, unique name: ``slug(label)``, plus ``-<hash of its key>`` for
    every label whose slug another (different) key shares.

    Args:
        labels: readable names (e.g. folder names), one per item.
        keys: the identity of each item (e.g. resolved paths); default: the labels themselves.

    Returns:
        key → safe name (the same order as ``keys``).

    Raises:
        DataError: the same key is given twice.
    """
    keys = list(labels if keys is None else keys)
    if len(keys) != len(labels):
        raise ValueError("unique_slugs: labels and keys differ in length")
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            raise DataError(f"data set {k!r} is given twice")
        seen.add(k)
    base = {k: slug(lab) for k, lab in zip(keys, labels)}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    out: dict[str, str] = {}
    for k in keys:
        b = base[k]
        out[k] = b if counts[b] == 1 else f"{slug(b, MAX_LEN - 9)}-{short_hash(k)}"
    if len(set(out.values())) != len(out):  # a hashed name equal to another plain one: hash them all
        out = {k: f"{slug(base[k], MAX_LEN - 9)}-{short_hash(k)}" for k in keys}
    return out


def set_names(paths: Iterable[str | Path]) -> dict[str, str]:
    """Safe, unique names for data sets given by path.

    Args:
        paths: data set paths as the user typed them (``"demo"`` allowed).

    Returns:
        path as given (``str``) → name: ``slug(set_label(path))``, with ``-<8 hex digits of the
        resolved path's SHA-256>`` appended when two different sets share that slug.
        ``["/data/ph2"]`` → ``{"/data/ph2": "ph2"}``; ``["a/ham", "b/ham"]`` → ``ham-1f2e…``,
        ``ham-9c0d…``.

    Raises:
        DataError: one set is given twice (two spellings of the same resolved path).
    """
    given = [str(p) for p in paths]
    resolved = [_resolved(p) for p in given]
    dup = {r for r in resolved if resolved.count(r) > 1}
    if dup:
        same = [g for g, r in zip(given, resolved) if r in dup]
        raise DataError(f"data sets {', '.join(map(repr, same))} are the same set ({sorted(dup)[0]}); give it once")
    by_key = unique_slugs([set_label(p) for p in given], resolved)
    return {g: by_key[r] for g, r in zip(given, resolved)}


def dataset_names(values: Sequence) -> list[str]:
    """Safe, unique names for data sets given by path or by dataset spec (a bench's ``test_data``).

    Args:
        values: paths, dataset spec tables (mappings) or :class:`~augengine.data.spec.DatasetSpec` objects.

    Returns:
        one name per value, in order: the slug of the spec's ``display_name`` (its ``name``, else
        the spreadsheet's stem for format csv, else the folder or file name — for a plain path the
        name :func:`set_names` gives), with ``-<8 hex digits>`` of the set's identity (resolved
        paths, format, columns, options) appended when two different sets share that slug.

    Raises:
        DataError: one set is given twice (the same identity).
    """
    from augengine.data.spec import spec_from

    specs = [spec_from(v, owner=f"data set {i}") for i, v in enumerate(values)]
    labels = [s.display_name for s in specs]
    keys = []
    for s in specs:
        ident = {k: (_resolved(v) if k in ("path", "csv", "root") and v is not None else v)
                 for k, v in s.model_dump(mode="json", exclude={"name"}).items()}
        plain = s.model_dump(exclude={"path", "name"}) == type(s)().model_dump(exclude={"path", "name"})
        keys.append(ident["path"] if plain else json.dumps(ident, sort_keys=True))  # a path: as set_names
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in seen:
            raise DataError(f"data sets {seen[k]} and {i} ({labels[i]!r}) are the same set; give it once")
        seen[k] = i
    by_key = unique_slugs(labels, keys)
    return [by_key[k] for k in keys]
