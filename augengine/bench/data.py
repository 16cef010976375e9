"""The real data of a bench (splits, external test sets, identity) and its per-process cache.

Every process that runs units (the bench itself, a ``--jobs`` worker, a Ray worker) loads the
data once through :func:`load_data` and keeps it for the units it runs next.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from augengine.bench.config import BenchConfig

__all__ = ["BenchData", "default_loader", "load_data"]


@dataclasses.dataclass
class BenchData:
    """The real data of a bench: splits, external test sets, identity.

    Attributes:
        train, val, test: ImageSets of the split.
        external: name → external test ImageSet.
        fingerprint: identity of the real data and split settings (hash).
        external_fingerprints: name → identity of each external set.
        split: the data layer's Split (saved as split.json when present), or None.
        info: provenance (format, root, counts).
    """

    train: Any
    val: Any
    test: Any
    external: dict[str, Any]
    fingerprint: str
    external_fingerprints: dict[str, str]
    split: Any = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def default_loader(cfg: BenchConfig) -> BenchData:
    """Load ``cfg.data`` and its split through :mod:`augengine.data` (the public data API)."""
    import augengine as ae
    import augengine.data as D

    table = ae.load_dataset(cfg.data)
    if cfg.split.file:
        split = ae.load_split(cfg.split.file, table)
    else:
        split = ae.split(table, fractions=cfg.split.fractions, group_by=cfg.split.group_by, seed=cfg.split.seed)
    from augengine.naming import dataset_names

    external, ext_fp = {}, {}
    # each external set is named by a safe, unique slug of its spec's display name (folder, spreadsheet
    # or given name; + a short hash when two sets share it): it becomes part of unit folder names
    for p, name in zip(cfg.test_data, dataset_names(cfg.test_data)):
        t = D.load_dataset(p)
        external[name] = t.image_set()
        ext_fp[name] = t.fingerprint
    fp = getattr(split, "sha256", None)
    fp = fp() if callable(fp) else table.fingerprint
    info = {"data": cfg.data, "format": getattr(table, "format", None), "root": str(getattr(table, "root", "")),
            "table_fingerprint": table.fingerprint, "n_images": len(table)}
    return BenchData(split.train, split.val, split.test, external, fp, ext_fp, split=split, info=info)


_CACHE: dict[str, BenchData] = {}


def load_data(cfg: BenchConfig, loader: Callable[[BenchConfig], BenchData]) -> BenchData:
    """``loader(cfg)``, cached in this process for the last (config, loader) asked for."""
    k = json.dumps(cfg.canonical(), sort_keys=True) + repr(loader)
    if k not in _CACHE:
        _CACHE.clear()
        _CACHE[k] = loader(cfg)
    return _CACHE[k]
