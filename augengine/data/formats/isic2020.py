"""ISIC 2020 (SIIM-ISIC melanoma challenge) in the layouts it ships.

``train.csv`` (Kaggle; header ``image_name,patient_id,sex,age_approx,anatom_site_general_challenge,
diagnosis,benign_malignant,target``) or ``ISIC_2020_Training_GroundTruth[_v2].csv`` (the ISIC
archive's copy, same columns, ``_v2`` adds ``lesion_id``), with the JPEGs in ``train/``,
``jpeg/train/``, ``ISIC_2020_Training_JPEG/`` or ``ISIC_2020_Training_JPEG/train/``.

Labels (``labels`` option):

* ``diagnosis`` (default): the ``diagnosis`` column mapped onto ISIC names — nevus → NV,
  melanoma → MEL, seborrheic keratosis / lentigo NOS / solar lentigo / lichenoid keratosis → BKL
  (the benign keratosis-like group of ISIC 2018/2019, which holds solar lentigines and lichen-planus
  like keratoses), atypical melanocytic proliferation → its own class ``AMP``, cafe-au-lait macule
  → its own class ``CALM`` (neither has an ISIC 2019 class), unknown → its own class ``UNK``
  (benign lesions without a specific diagnosis: most of the set; reported). ``unknown="drop"``
  leaves the ``unknown`` rows out.
* ``binary``: the ``target`` column, 1 → ``MEL``, 0 → ``benign``.

Groups are patients (``patient_id``), which is stricter than lesions: no patient is in two splits.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from augengine.data.formats.vocabulary import order_classes
from augengine.data.table import ImageTable, Problem, _attach_files, _index_images, _read_csv
from augengine.errors import DataError

__all__ = ["DIAGNOSIS_TO_CLASS", "detect", "load", "find_csv"]

CSV_NAMES = ("train.csv", "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
IMAGE_DIRS = ("train", "jpeg/train", "ISIC_2020_Training_JPEG", "ISIC_2020_Training_JPEG/train")
NEED = ("image_name", "patient_id", "diagnosis", "target")
DIAGNOSIS_TO_CLASS = {
    "nevus": "NV",
    "melanoma": "MEL",
    "seborrheic keratosis": "BKL",
    "lentigo nos": "BKL",
    "solar lentigo": "BKL",
    "lichenoid keratosis": "BKL",
    "atypical melanocytic proliferation": "AMP",
    "cafe-au-lait macule": "CALM",
    "unknown": "UNK",
}
BINARY = {"1": "MEL", "0": "benign"}


def _header(p: Path) -> list[str]:
    try:
        with open(p, encoding="utf-8-sig", errors="replace") as f:
            return [h.strip() for h in f.readline().split(",")]
    except OSError:
        return []


def find_csv(root: Path) -> Path | None:
    """The ISIC 2020 ground-truth CSV in ``root`` (a ``train.csv`` only when its header is ISIC 2020's)."""
    for name in CSV_NAMES:
        p = root / name
        if p.is_file() and all(c in _header(p) for c in ("image_name", "patient_id")):
            return p
    return None


def detect(path: Path) -> bool:
    if path.is_file():
        return path.name in CSV_NAMES and all(c in _header(path) for c in ("image_name", "patient_id"))
    return find_csv(path) is not None


def load(path: Path, *, labels: str = "diagnosis", unknown: str = "class") -> ImageTable:
    """Read ISIC 2020 ground truth (see the module docstring).

    Args:
        path: the folder (or its ``train.csv``).
        labels: ``diagnosis`` (default) or ``binary`` (``target``: MEL vs benign).
        unknown: with ``labels="diagnosis"``: ``class`` (default; ``unknown`` rows form class UNK)
            or ``drop`` (leave them out).

    Raises:
        DataError: wrong header, a diagnosis outside the ISIC 2020 vocabulary, a target not 0/1,
            no image folder.
    """
    if labels not in ("diagnosis", "binary"):
        raise DataError(f"isic2020 option labels: expected diagnosis or binary; got {labels!r}")
    if unknown not in ("class", "drop"):
        raise DataError(f"isic2020 option unknown: expected class or drop; got {unknown!r}")
    if path.is_file():
        root, csv_path = path.parent, path
    else:
        root, csv_path = path, find_csv(path)
        if csv_path is None:  # asked for explicitly: a CSV of that name with another header is named below
            csv_path = next((path / n for n in CSV_NAMES if (path / n).is_file()), None)
        if csv_path is None:
            raise DataError(f"{path}: no ISIC 2020 ground truth; expected train.csv (columns "
                            f"{','.join(NEED)}, …) beside train/ or jpeg/train/")
    header, rows = _read_csv(csv_path)
    missing = [c for c in NEED if c not in header]
    if missing:
        raise DataError(f"{csv_path}: header must contain columns {', '.join(NEED)} (ISIC 2020); missing "
                        f"{', '.join(missing)} (found {','.join(header)})")
    col = {c: header.index(c) for c in header}
    dirs = tuple(d for d in IMAGE_DIRS if (root / d).is_dir())
    if not dirs:
        raise DataError(f"{csv_path}: its images are missing: expected a folder {' or '.join(IMAGE_DIRS[:2])}/ "
                        f"(ISIC_*.jpg) under {root}")
    problems: list[Problem] = []
    ids, raw, names, patients, row_numbers = [], [], [], [], []
    conflicts, dropped = [], 0
    for n, r in enumerate(rows):
        if len(r) < len(header):
            raise DataError(f"{csv_path} row {n + 2}: expected {len(header)} fields, found {len(r)}")
        image = r[col["image_name"]].strip()
        diag = r[col["diagnosis"]].strip()
        target = r[col["target"]].strip()
        if target not in BINARY:
            raise DataError(f"{csv_path} row {n + 2} (image {image}): field target is {target!r}; expected 0 or 1")
        if labels == "binary":
            cls = BINARY[target]
            written = f"target {target}"
        else:
            cls = DIAGNOSIS_TO_CLASS.get(diag.lower())
            if cls is None:
                raise DataError(f"{csv_path} row {n + 2} (image {image}): field diagnosis is {diag!r}; expected one "
                                f"of {', '.join(repr(d) for d in DIAGNOSIS_TO_CLASS)} (the ISIC 2020 diagnoses); "
                                "labels=binary reads target instead")
            if (diag.lower() == "melanoma") != (target == "1"):
                conflicts.append(f"{image} (diagnosis {diag}, target {target})")
            if cls == "UNK" and unknown == "drop":
                dropped += 1
                continue
            written = diag
        ids.append(image)
        raw.append(written)
        names.append(cls)
        patients.append(r[col["patient_id"]].strip() or image)
        row_numbers.append(n + 2)
    if conflicts:
        problems.append(Problem("label_conflict", "warning", csv_path.name,
                                f"{csv_path}: {len(conflicts)} rows whose diagnosis and target disagree (melanoma "
                                f"is target 1); labels follow {labels}: {', '.join(conflicts[:5])}"
                                + (f", … ({len(conflicts) - 5} more)" if len(conflicts) > 5 else "")))
    if not ids:
        raise DataError(f"{csv_path}: no rows left to load (all {len(rows)} rows have diagnosis unknown and "
                        "unknown=drop)")
    class_names = ["MEL", "benign"] if labels == "binary" else order_classes(names)
    n_unk = sum(c == "UNK" for c in names)
    if n_unk:
        problems.append(Problem("unknown_diagnosis", "warning", csv_path.name,
                                f"{csv_path}: {n_unk:,} of {len(ids):,} images have diagnosis 'unknown' (benign, no "
                                "specific diagnosis) and form class UNK; unknown=drop leaves them out, "
                                "labels=binary reads target (MEL vs benign)"))
    index, _ = _index_images(root, dirs, include_root=False)
    paths, sources = _attach_files(root, csv_path, ids, index, problems, "image_name",
                                   where=root / dirs[0], row_numbers=row_numbers)
    cls_index = {c: i for i, c in enumerate(class_names)}
    by_patient: dict[str, set] = {}
    for p, c in zip(patients, names):
        by_patient.setdefault(p, set()).add(c)
    mixed = sum(len(v) > 1 for v in by_patient.values())
    notes = []
    if dropped:
        notes.append(f"{dropped:,} rows with diagnosis unknown left out (unknown=drop)")
    if mixed:
        notes.append(f"{mixed:,} patients have images of several classes; each patient stays whole in one split")
    sizes = Counter(patients)
    return ImageTable(root=root, format="isic2020", class_names=class_names, labels=[cls_index[c] for c in names],
                      paths=paths, ids=ids, groups=patients, sources=sources, raw_labels=raw, problems=problems,
                      meta={"labels_from": (f"column target of {csv_path.name} (1 → MEL, 0 → benign)"
                                            if labels == "binary" else f"column diagnosis of {csv_path.name}"),
                            "groups_from": f"patient_id of {csv_path.name} ({len(sizes):,} patients, up to "
                                           f"{max(sizes.values())} images each)",
                            "group_kind": "patient", "notes": notes, "options": {"labels": labels, "unknown": unknown}})
