"""Likely misreads: a folder read as class folders while a CSV beside it holds the labels.

A class-folder dataset with one class is rarely what the user meant: usually the folder is the
image folder of a labelled set (``ISIC2018_Task3_Test_Input/`` beside its ground-truth CSV) and
the labels are in a spreadsheet. :func:`csv_beside_folder` finds such a CSV and says how to load it.
"""

from __future__ import annotations

import os
from pathlib import Path

from augengine.data.formats.spreadsheet import read_table
from augengine.data.formats.vocabulary import to_isic
from augengine.data.table import IMAGE_EXTENSIONS, Problem
from augengine.errors import DataError

__all__ = ["csv_beside_folder", "image_stems"]

_MAX_BYTES = 200 * 2**20


def image_stems(folder: Path) -> set[str]:
    """File names without extension of the images directly in ``folder``."""
    out = set()
    with os.scandir(folder) as it:
        for e in it:
            if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS):
                out.add(e.name.rsplit(".", 1)[0])
    return out


def _label_guess(header: list[str], rows, skip: int) -> str:
    onehot = [h for h in header if to_isic(h) is not None]
    if len(onehot) >= 2:
        return ",".join(onehot)
    for j, h in enumerate(header):
        if j == skip:
            continue
        vals = {r[j].strip() for _, r in rows[:2000] if len(r) > j and r[j].strip()}
        if vals and all(to_isic(v) is not None for v in vals):
            return h
    return "COLUMN"


def csv_beside_folder(root: Path, folder: Path, what: str) -> Problem | None:
    """A warning when a ``.csv`` in ``root`` names images of ``folder`` (``what`` describes the folder).

    Returns:
        the :class:`Problem` (kind ``csv_beside_folder``), or ``None`` when no CSV names them.
    """
    stems = image_stems(folder) if folder.is_dir() else set()
    if not stems:
        return None
    best = None
    for csv_path in sorted(root.glob("*.csv")):
        try:
            if csv_path.stat().st_size > _MAX_BYTES:
                continue
            header, rows, _ = read_table(csv_path)
        except (DataError, OSError):
            continue
        for j, h in enumerate(header):
            names = {Path(r[j].strip().replace("\\", "/")).stem for _, r in rows if len(r) > j and r[j].strip()}
            hits = len(names & stems)
            if hits and (best is None or hits > best[0]):
                best = (hits, csv_path, h, header, rows, j)
    if best is None:
        return None
    hits, csv_path, col, header, rows, j = best
    label = _label_guess(header, rows, j)
    return Problem("csv_beside_folder", "warning", csv_path.name,
                   f"{root}: read as class folders, but {what}, and {csv_path.name} beside it names {hits:,} of its "
                   f"{len(stems):,} images (column {col}): the labels are probably in that CSV; load it as format "
                   f"csv with csv={csv_path.name}, image_col={col}, label_col={label}, root={folder.name} (command "
                   f"line: --format csv --csv {csv_path} --image-col {col} --label-col {label} --root {folder}; "
                   f"columns: {', '.join(header)})")
