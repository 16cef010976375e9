"""What a filter's selection becomes on disk: a selection file (real data) or a filtered set.

* Real data → ``selection.json``: the filter's name and config, the target class, the
  dataset fingerprint, and the kept images (ids, indices into the given ImageSet, scores),
  in descending score order. A translator such as ``cyclegan`` takes it as its Y domain.
* A :class:`~augengine.SyntheticSet` → a new SyntheticSet holding the kept images, with the
  scores stored in ``scores`` and the origin recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from augengine.errors import DataError
from augengine.imageset import ImageSet
from augengine.runs import atomic_write_json
from augengine.synthetic import SyntheticSet

__all__ = ["write_selection", "read_selection", "write_filtered_set", "SELECTION_SCHEMA"]

SELECTION_SCHEMA = 1


def write_selection(path: str | Path, images: ImageSet, indices, scores, *, filter_name: str,
                    filter_config: dict[str, Any], target_class: str | None, extra: dict | None = None) -> Path:
    """Write a selection file for ``images[indices]`` (``scores`` are of all N images)."""
    idx = np.asarray(indices, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    record = {
        "schema": SELECTION_SCHEMA,
        "filter": filter_name,
        "filter_config": filter_config,
        "target_class": target_class,
        "n_candidates": int(len(images)),
        "n_selected": int(len(idx)),
        "fingerprint": getattr(images, "table_fingerprint", None),
        "ids": [images.ids[i] for i in idx],
        "indices": idx.tolist(),
        "scores": scores[idx].tolist(),
    }
    record.update(extra or {})
    return atomic_write_json(path, record)


def read_selection(path: str | Path) -> dict[str, Any]:
    """Read a selection file; DataError naming the file and the field when malformed."""
    p = Path(path)
    try:
        rec = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{p}: selection file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from None
    for key in ("schema", "ids", "scores"):
        if key not in rec:
            raise DataError(f"{p}: field {key!r} missing; expected a selection from 'augengine filter'")
    if rec["schema"] != SELECTION_SCHEMA:
        raise DataError(f"{p}: field 'schema' is {rec['schema']!r}, expected {SELECTION_SCHEMA}")
    return rec


def write_filtered_set(source: SyntheticSet, indices, scores, out: str | Path, *, filter_name: str,
                       filter_config: dict[str, Any], force: bool = False, chunk_size: int = 256) -> SyntheticSet:
    """Copy ``source[indices]`` into a new SyntheticSet ``out`` with ``scores[indices]`` stored."""
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise DataError(f"{out}: the filter kept no image of {source.path}")
    scores = np.asarray(scores, dtype=np.float32)
    attrs = {k: v for k, v in source.attrs.items()
             if k not in ("committed", "complete", "created_at", "schema_version", "class_names", "image_size")}
    attrs.update({"filtered_from": str(source.path), "filter": filter_name, "filter_config": filter_config})
    writer = SyntheticSet.create(out, class_names=source.class_names, image_size=source.size, attrs=attrs,
                                 force=force, chunk_size=chunk_size)
    with writer:
        imgs = source.images()
        for s in range(0, len(idx), chunk_size):
            part = idx[s : s + chunk_size]
            writer.append(imgs[part], source.labels[part], seeds=source.seeds[part], scores=scores[part],
                          source_index=None if source.source_index is None else source.source_index[part])
        return writer.close()
