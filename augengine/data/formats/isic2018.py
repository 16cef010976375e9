"""ISIC 2018 Task 3 (lesion diagnosis) in the layout of its download page.

Each part (``Training``, ``Validation``, ``Test``) is a ground-truth CSV
``ISIC2018_Task3_<Part>_GroundTruth.csv`` (header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, one-hot
floats) beside its image folder ``ISIC2018_Task3_<Part>_Input/ISIC_*.jpg``. The CSV may also lie
in the folder its zip extracts to, ``ISIC2018_Task3_<Part>_GroundTruth/``. The path is the folder
holding one or several parts (or one part's CSV); ``part`` picks some of them.

Class space: MEL, NV, BCC, AK, BKL, DF, VASC (ISIC order; ``AKIEC`` → ``AK``). Lesion ids come
from ``ISIC2018_Task3_Training_LesionGroupings.csv`` (columns ``image,lesion_id,…``) or from a
``HAM10000_metadata.csv`` beside the CSVs; images without one form their own group. Without
either, the table knows no lesions and says so (HAM10000 has several images per lesion).
"""

from __future__ import annotations

import re
from pathlib import Path

from augengine.data.formats.onehot import onehot_label
from augengine.data.table import (
    HAM_CSV,
    ImageTable,
    Problem,
    _attach_files,
    _index_images,
    _read_csv,
)
from augengine.errors import DataError

__all__ = ["PARTS", "COLUMNS", "detect", "load", "find_parts"]

PARTS = ("Training", "Validation", "Test")
COLUMNS = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
TO_ISIC = {"MEL": "MEL", "NV": "NV", "BCC": "BCC", "AKIEC": "AK", "BKL": "BKL", "DF": "DF", "VASC": "VASC"}
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"]
_CSV_RE = re.compile(r"^ISIC2018_Task3_(Training|Validation|Test)_GroundTruth\.csv$")


def gt_name(part: str) -> str:
    return f"ISIC2018_Task3_{part}_GroundTruth.csv"


def input_name(part: str) -> str:
    return f"ISIC2018_Task3_{part}_Input"


def find_parts(root: Path) -> dict[str, Path]:
    """Part → its ground-truth CSV, looked for in ``root`` and in ``root/ISIC2018_Task3_<Part>_GroundTruth/``."""
    out = {}
    for part in PARTS:
        for cand in (root / gt_name(part), root / f"ISIC2018_Task3_{part}_GroundTruth" / gt_name(part)):
            if cand.is_file():
                out[part] = cand
                break
    return out


def detect(path: Path) -> bool:
    """``path`` is an ISIC 2018 Task 3 folder (or one of its ground-truth CSVs)."""
    if path.is_file():
        return bool(_CSV_RE.match(path.name))
    return bool(find_parts(path))


def _parse_parts(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    by_lower = {p.lower(): p for p in PARTS}
    bad = [n for n in names if n.lower() not in by_lower]
    if bad or not names:
        raise DataError(f"isic2018 option part: expected one or more of {', '.join(PARTS)} (comma-separated); "
                        f"got {text!r}")
    return [by_lower[n.lower()] for n in names]


def _lesion_ids(root: Path, csv_dirs: list[Path]) -> tuple[dict[str, str], list[str]]:
    """image → lesion id from the official groupings CSVs and/or HAM10000's metadata; (map, files used)."""
    lesion: dict[str, str] = {}
    used = []
    seen = set()
    for d in (root, *csv_dirs):
        for part in PARTS:
            p = d / f"ISIC2018_Task3_{part}_LesionGroupings.csv"
            if p.is_file() and p.resolve() not in seen:
                seen.add(p.resolve())
                lesion.update(_lesion_column(p, "image"))
                used.append(p.name)
    ham = root / HAM_CSV
    if ham.is_file():
        for image, lesion_id in _lesion_column(ham, "image_id").items():
            lesion.setdefault(image, lesion_id)
        used.append(ham.name)
    return lesion, used


def load(path: Path, *, part=None) -> ImageTable:
    """Read ISIC 2018 Task 3 ground truth (see the module docstring).

    Args:
        path: the folder holding the parts, or one ``ISIC2018_Task3_<Part>_GroundTruth.csv``.
        part: ``Training``, ``Validation``, ``Test`` or several comma-separated (default: every part found).

    Raises:
        DataError: no ground-truth CSV, a part without its ``_Input`` folder, a wrong header,
            a row that is not one-hot.
    """
    wanted = _parse_parts(part)
    if path.is_file():
        m = _CSV_RE.match(path.name)
        if not m:
            raise DataError(f"{path}: not an ISIC 2018 Task 3 ground-truth file; expected a name like "
                            f"{gt_name('Test')}")
        parts = {m.group(1): path}
        root = path.parent
        if root.name == f"ISIC2018_Task3_{m.group(1)}_GroundTruth" and not (root / input_name(m.group(1))).is_dir():
            root = root.parent
    else:
        root = path
        parts = find_parts(root)
        m = re.match(r"^ISIC2018_Task3_(Training|Validation|Test)_GroundTruth$", root.name)
        if m and not (root / input_name(m.group(1))).is_dir() and (root.parent / input_name(m.group(1))).is_dir():
            root = root.parent  # pointed at the folder the ground-truth zip extracts to
    if not parts:
        raise DataError(f"{root}: no ISIC 2018 Task 3 ground truth; expected {gt_name('Training')} (or the "
                        "Validation/Test one) beside its _Input folder")
    if wanted is not None:
        missing = [p for p in wanted if p not in parts]
        if missing:
            raise DataError(f"{root}: isic2018 option part asks for {', '.join(missing)}; found only "
                            f"{', '.join(parts)} ({', '.join(gt_name(p) for p in missing)} missing)")
        parts = {p: parts[p] for p in PARTS if p in wanted}
    problems: list[Problem] = []
    ids, labels, raw, paths, sources, csv_dirs = [], [], [], [], [], []
    expected = ["image", *COLUMNS]
    for part, csv_path in parts.items():
        folder = root / input_name(part)
        if not folder.is_dir():
            raise DataError(f"{csv_path}: its images are missing: expected the folder {input_name(part)}/ "
                            f"(ISIC_*.jpg, from {input_name(part)}.zip) under {root}")
        header, rows = _read_csv(csv_path)
        if sorted(header) != sorted(expected):
            raise DataError(f"{csv_path}: header must be {','.join(expected)} (ISIC 2018 Task 3 ground truth); "
                            f"found {','.join(header)}")
        cols = [header.index(c) for c in COLUMNS]
        part_ids = []
        for n, r in enumerate(rows):
            if len(r) != len(header):
                raise DataError(f"{csv_path} row {n + 2}: expected {len(header)} fields, found {len(r)}")
            image = r[header.index("image")].strip()
            col = onehot_label(csv_path, n + 2, image, [r[c] for c in cols], COLUMNS)
            part_ids.append(image)
            labels.append(CLASSES.index(TO_ISIC[col]))
            raw.append(col)
        index, _ = _index_images(root, (input_name(part),), include_root=False)
        p_paths, p_sources = _attach_files(root, csv_path, part_ids, index, problems, "image", where=folder)
        ids += part_ids
        paths += p_paths
        sources += p_sources
        csv_dirs.append(csv_path.parent)
    for part in PARTS:
        if part not in parts and (root / input_name(part)).is_dir() and wanted is None:
            problems.append(Problem("unlabelled_part", "warning", input_name(part),
                                    f"{root / input_name(part)}: images without ground truth ({gt_name(part)} not "
                                    "found); not loaded"))
    lesion, used = _lesion_ids(root, csv_dirs)
    groups = None
    groups_from = None
    if used:
        groups = [lesion.get(i) or i for i in ids]
        n_known = sum(i in lesion for i in ids)
        groups_from = f"lesion_id of {' and '.join(used)} ({n_known:,} of {len(ids):,} images; the others are their own group)"
    elif "Training" in parts:
        problems.append(Problem("no_groups", "warning", parts["Training"].name,
                                f"{root}: no lesion ids (ISIC2018_Task3_Training_LesionGroupings.csv or {HAM_CSV} "
                                "not found beside the ground truth); HAM10000 holds several images of one lesion, "
                                "so a split may put one lesion in two parts"))
    return ImageTable(root=root, format="isic2018", class_names=CLASSES, labels=labels, paths=paths, ids=ids,
                      groups=groups, sources=sources, raw_labels=raw, problems=problems,
                      meta={"labels_from": f"one-hot columns {','.join(COLUMNS)} of "
                                           f"{', '.join(p.name for p in parts.values())}",
                            "groups_from": groups_from, "group_kind": "lesion", "parts": list(parts)})


def _lesion_column(path: Path, image_col: str) -> dict[str, str]:
    """image → lesion_id of a CSV with columns ``image_col`` and ``lesion_id`` (rows without a lesion id skipped)."""
    header, rows = _read_csv(path)
    if image_col not in header or "lesion_id" not in header:
        raise DataError(f"{path}: header must contain columns {image_col}, lesion_id; found {','.join(header)}")
    ii, li = header.index(image_col), header.index("lesion_id")
    return {r[ii].strip(): r[li].strip() for r in rows if len(r) > max(ii, li) and r[li].strip()}

