"""What a filter's selection becomes on disk: a selection file (real data) or a filtered set.

* Real data → ``selection.json`` (``"schema": "augengine.selection/1"``): the filter's name
  and config, the target class, the data fingerprint, and the kept images (``ids``,
  ``indices`` into the candidate ImageSet, ``scores``) in descending score order. A
  translator such as ``cyclegan`` takes it (``-o selection=sel.json``) as its Y domain.
* A :class:`~augengine.SyntheticSet` → a new SyntheticSet holding the kept images, with the
  scores stored in ``scores`` and the input's provenance carried over.

One format for every filter and every consumer: build with :func:`selection_record`, write
with :func:`write_selection`, read (checked) with :func:`read_selection`.
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

__all__ = ["SELECTION_SCHEMA", "selection_record", "write_selection", "read_selection", "write_filtered_set"]

SELECTION_SCHEMA = "augengine.selection/1"
_REQUIRED = ("schema", "ids", "target_class")


def selection_record(images: ImageSet, indices, scores, *, filter_name: str, filter_config: dict[str, Any],
                     target_class: str | None, **extra: Any) -> dict[str, Any]:
    """The selection of ``images[indices]`` as a JSON-able record (``scores`` are of all N images)."""
    idx = np.asarray(indices, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if target_class is not None:
        target_class = images.class_names[images.class_index(target_class)]
    record = {
        "schema": SELECTION_SCHEMA,
        "filter": filter_name,
        "config": filter_config,
        "target_class": target_class,
        "n_candidates": int(len(images)) if target_class is None
        else int((images.labels == images.class_index(target_class)).sum()),
        "n_kept": int(len(idx)),
        "ids": [images.ids[i] for i in idx],
        "indices": idx.tolist(),
        "scores": [float(v) for v in scores[idx]],
        "data_fingerprint": images.fingerprint(),
    }
    record.update(extra)
    return record


def write_selection(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a selection record atomically; DataError when a required field is missing."""
    for key in _REQUIRED:
        if key not in record:
            raise DataError(f"write_selection({path}): the record has no field {key!r}")
    return atomic_write_json(path, record)


def read_selection(path: str | Path) -> dict[str, Any]:
    """Read and check a selection file; DataError naming the file and the field when malformed."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: selection file not found (make one with 'augengine filter path-rank')")
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not a selection file: not valid JSON ({e})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("ids"), list) or "target_class" not in rec:
        raise DataError(f"{p}: not a selection file (expected JSON with fields 'ids' and 'target_class')")
    if rec.get("schema") != SELECTION_SCHEMA:
        raise DataError(f"{p}: field 'schema' is {rec.get('schema')!r}, expected {SELECTION_SCHEMA!r}")
    return rec


def write_filtered_set(source: ImageSet, indices, scores, out: str | Path, *, filter_name: str,
                       filter_config: dict[str, Any], filter_info: dict[str, Any] | None = None,
                       force: bool = False, chunk_size: int = 256) -> SyntheticSet:
    """Copy ``source[indices]`` into a new SyntheticSet ``out`` with ``scores[indices]`` stored.

    Labels, per-image seeds and ``source_index`` of the kept images carry over, and so do the
    source set's attributes (generator, config, checkpoint hash), plus ``filter``,
    ``filter_config``, ``filter_info`` and ``filtered_from``.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise DataError(f"{out}: the filter kept no image of {getattr(source, 'path', 'the input')}")
    scores = np.asarray(scores, dtype=np.float32)
    attrs = {k: v for k, v in dict(getattr(source, "attrs", {}) or {}).items()
             if k not in ("committed", "complete", "created_at", "schema_version", "class_names", "image_size")}
    attrs.update({"filtered_from": str(getattr(source, "path", "")), "filter": filter_name,
                  "filter_config": filter_config, "filter_info": filter_info or {}, "n_planned": int(len(idx))})
    seeds = getattr(source, "seeds", None)
    src_index = getattr(source, "source_index", None)
    images = source.images()
    writer = SyntheticSet.create(out, class_names=source.class_names, image_size=images.shape[1], attrs=attrs,
                                 force=force, chunk_size=chunk_size)
    with writer:
        for s in range(0, len(idx), chunk_size):
            part = idx[s : s + chunk_size]
            writer.append(images[part], source.labels[part], seeds=None if seeds is None else seeds[part],
                          scores=scores[part], source_index=None if src_index is None else src_index[part])
        return writer.close()
