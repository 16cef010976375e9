"""PH2 (Mendonça et al. 2013, Hospital Pedro Hispano) in the layout of its archive.

``PH2_dataset.txt`` (a table of ``||``-separated fields: ``Name``, ``Histological Diagnosis``,
``Clinical Diagnosis`` (0 = common nevus, 1 = atypical nevus, 2 = melanoma), then the dermoscopic
criteria; a legend follows the table) or ``PH2_dataset.xlsx`` (read only when ``openpyxl`` is
installed), with the images at ``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp``.
The path is that folder (``PH2Dataset/``) or the folder above it.

Classes: common nevus and atypical nevus → NV, melanoma → MEL (the PH2 clinical diagnosis; its
atypical nevi are benign). PH2 knows no lesion ids beyond one image per case.
"""

from __future__ import annotations

import re
from pathlib import Path

from augengine.data.table import ImageTable, Problem
from augengine.errors import DataError

__all__ = ["CODES", "detect", "load", "find_root"]

TXT = "PH2_dataset.txt"
XLSX = "PH2_dataset.xlsx"
IMAGES = "PH2 Dataset images"
CODES = {"0": ("common nevus", "NV"), "1": ("atypical nevus", "NV"), "2": ("melanoma", "MEL")}
CLASSES = ["MEL", "NV"]
_CASE = re.compile(r"^IMD\d+$")


def find_root(path: Path) -> Path | None:
    """The folder holding ``PH2_dataset.txt``/``.xlsx``: ``path`` itself or ``path/PH2Dataset``."""
    if path.is_file():
        return path.parent if path.name in (TXT, XLSX) else None
    for d in (path, path / "PH2Dataset"):
        if (d / TXT).is_file() or (d / XLSX).is_file():
            return d
    return None


def detect(path: Path) -> bool:
    return find_root(path) is not None


def _norm(s: str) -> str:
    return " ".join(s.strip().lower().split())


def _read_txt(p: Path) -> list[tuple[int, str, str]]:
    """(line number, case name, clinical diagnosis code) per data row of PH2_dataset.txt."""
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from None
    header = None
    out = []
    for k, line in enumerate(lines, 1):
        if not line.lstrip().startswith("||"):
            continue
        fields = [_norm(f) for f in line.split("||")]
        if header is None:
            if "name" not in fields or "clinical diagnosis" not in fields:
                raise DataError(f"{p} line {k}: header must contain fields Name and Clinical Diagnosis "
                                f"(||-separated); found {', '.join(f for f in fields if f)}")
            header = (fields.index("name"), fields.index("clinical diagnosis"))
            continue
        raw = [f.strip() for f in line.split("||")]
        if len(raw) <= max(header):
            raise DataError(f"{p} line {k}: expected at least {max(header) + 1} ||-separated fields, found {len(raw)}")
        out.append((k, raw[header[0]], raw[header[1]]))
    if header is None:
        raise DataError(f"{p}: no table header; expected a line like '|| Name || Histological Diagnosis || "
                        "Clinical Diagnosis || …'")
    return out


def _read_xlsx(p: Path) -> list[tuple[int, str, str]]:
    """(row number, case name, clinical diagnosis code) from PH2_dataset.xlsx (needs openpyxl).

    The sheet's header row holds ``Name`` (or ``Image Name``) and either a ``Clinical Diagnosis``
    column of codes 0/1/2, or three columns ``Common Nevus``, ``Atypical Nevus``, ``Melanoma``
    marked with an ``X`` (the header may span two rows).
    """
    try:
        import openpyxl
    except ImportError:
        raise DataError(f"{p}: reading .xlsx needs the package openpyxl, which is not installed; install it "
                        f"(pip install openpyxl) or put {TXT} (the same table as text, in the PH2 archive) "
                        "beside it") from None
    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 - any parse failure is a data error
        raise DataError(f"{p}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    rows = [[("" if v is None else str(v)).strip() for v in r] for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    for h, r in enumerate(rows):
        cells = [_norm(c) for c in r]
        name_col = next((j for j, c in enumerate(cells) if c in ("name", "image name")), None)
        if name_col is None:
            continue
        below = [_norm(c) for c in rows[h + 1]] if h + 1 < len(rows) else []
        both = [a or b for a, b in zip(cells, below + [""] * (len(cells) - len(below)))]
        out = []
        if all(k in both for k in ("common nevus", "atypical nevus", "melanoma")):
            marks = [both.index(k) for k in ("common nevus", "atypical nevus", "melanoma")]
            for n, row in enumerate(rows[h + 1:], h + 2):
                if len(row) <= name_col or not _CASE.match(row[name_col]):
                    continue
                hit = [str(code) for code, j in enumerate(marks) if j < len(row) and row[j].strip().lower() == "x"]
                out.append((n, row[name_col], hit[0] if len(hit) == 1 else ",".join(hit) or ""))
            return out
        if "clinical diagnosis" in cells:
            j = cells.index("clinical diagnosis")
            for n, row in enumerate(rows[h + 1:], h + 2):
                if len(row) > name_col and _CASE.match(row[name_col]):
                    v = row[j] if j < len(row) else ""
                    out.append((n, row[name_col], v[:-2] if v.endswith(".0") else v))
            return out
        raise DataError(f"{p} row {h + 1}: expected a Clinical Diagnosis column (0/1/2) or the columns Common Nevus, "
                        f"Atypical Nevus, Melanoma beside {r[name_col]!r}; found {', '.join(c for c in r if c)}")
    raise DataError(f"{p}: no header row with a Name (or Image Name) column; expected the PH2 table")


def load(path: Path) -> ImageTable:
    """Read PH2 (see the module docstring).

    Raises:
        DataError: no table, wrong header, a clinical diagnosis other than 0/1/2, a case listed twice,
            the .xlsx without openpyxl (and no .txt beside it).
    """
    root = find_root(path)
    if root is None:
        raise DataError(f"{path}: no PH2 table; expected {TXT} (or {XLSX}) beside '{IMAGES}/'")
    table_file = root / TXT if (root / TXT).is_file() else root / XLSX
    entries = _read_txt(table_file) if table_file.suffix == ".txt" else _read_xlsx(table_file)
    if not entries:
        raise DataError(f"{table_file}: the table lists no cases; expected rows like '|| IMD003 || … || 0 || …'")
    if not (root / IMAGES).is_dir():
        raise DataError(f"{table_file}: its images are missing: expected the folder '{IMAGES}/' (IMDxxx/"
                        f"IMDxxx_Dermoscopic_Image/IMDxxx.bmp) under {root}")
    where = "line" if table_file.suffix == ".txt" else "row"
    problems: list[Problem] = []
    ids, labels, raw, paths, sources, seen = [], [], [], [], [], {}
    for k, name, code in entries:
        if not _CASE.match(name):
            raise DataError(f"{table_file} {where} {k}: field Name is {name!r}; expected a case name like IMD003")
        if code not in CODES:
            raise DataError(f"{table_file} {where} {k} (case {name}): field Clinical Diagnosis is {code!r}; expected "
                            "0 (common nevus), 1 (atypical nevus) or 2 (melanoma)")
        if name in seen:
            raise DataError(f"{table_file} {where} {k}: case {name} is listed twice (also {where} {seen[name]})")
        seen[name] = k
        word, cls = CODES[code]
        rel = f"{IMAGES}/{name}/{name}_Dermoscopic_Image/{name}.bmp"
        f = root / rel
        sources.append(IMAGES if f.is_file() else "missing")
        if not f.is_file():
            problems.append(Problem("missing", "error", rel, f"{table_file.name} {where} {k}: case {name}: image file "
                                                             f"not found (expected {f})"))
        elif f.stat().st_size == 0:
            problems.append(Problem("empty_file", "error", rel, f"{f}: empty file (0 bytes); expected an image"))
        ids.append(name)
        labels.append(CLASSES.index(cls))
        raw.append(f"{code} ({word})")
        paths.append(rel)
    listed = set(ids)
    for d in sorted((root / IMAGES).iterdir()):
        if d.is_dir() and _CASE.match(d.name) and d.name not in listed:
            problems.append(Problem("unlisted", "warning", f"{IMAGES}/{d.name}",
                                    f"{d}: case folder present but not listed in {table_file.name}; ignored"))
    present = [c for c in CLASSES if CLASSES.index(c) in set(labels)]
    remap = {CLASSES.index(c): i for i, c in enumerate(present)}
    return ImageTable(root=root, format="ph2", class_names=present, labels=[remap[v] for v in labels], paths=paths,
                      ids=ids, groups=None, sources=sources,
                      raw_labels=raw, problems=problems,
                      meta={"labels_from": f"column Clinical Diagnosis of {table_file.name} (0 common nevus, "
                                           "1 atypical nevus → NV; 2 melanoma → MEL)"})
