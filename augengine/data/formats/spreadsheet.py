"""Any labelled spreadsheet: a CSV with named image, label and (optional) group columns.

``load(csv, image_col=…, label_col=…, group_col=…, root=…)``. The delimiter is sniffed among
``,`` ``;`` tab and ``|`` (spreadsheet exports in many locales use ``;``). An image cell is a path
relative to ``root`` (default: the CSV's folder), with or without its extension, or an absolute
path; a bare name is also found anywhere under ``root`` when exactly one file has that name.
``label_col`` names one column of class names, or several columns (a list, or comma-separated)
holding a one-hot encoding (the column whose value is 1 is the label, as in ISIC ground truth).

Labels (``labels`` option): ``auto`` (default) maps them onto ISIC names when *every* label is a
known word or code (``melanoma``, ``nv``, ``AKIEC`` …; see :mod:`.vocabulary`), and otherwise
keeps them as written; ``as-written`` always keeps them. ``data inspect`` states which happened.
"""

from __future__ import annotations

import csv as _csv
import os
from collections import Counter
from pathlib import Path

from augengine.data.formats.onehot import onehot_label
from augengine.data.formats.vocabulary import order_classes, to_isic
from augengine.data.table import IMAGE_EXTENSIONS, ImageTable, Problem
from augengine.errors import DataError

__all__ = ["load", "read_table", "columns_of"]

DELIMITERS = ",;\t|"


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    """(header, [(row number, fields)], delimiter) of a delimited text file; blank rows skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file (save the spreadsheet as CSV UTF-8)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise DataError(f"{path}: empty file or blank first line; expected a header line naming the columns")
    counts = {d: first.count(d) for d in DELIMITERS}
    delim = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    if counts[delim] == 0:
        delim = ","
    rows = list(_csv.reader(text.splitlines(), delimiter=delim))
    header = [h.strip() for h in rows[0]]
    body = [(n + 2, r) for n, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    return header, body, delim


def columns_of(value) -> list[str]:
    """A column argument as a list of names (``"A,B"`` or ``["A", "B"]`` → two columns)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


class _Finder:
    """Resolves image cells to files under ``root`` (relative path, path without extension, or unique name)."""

    def __init__(self, root: Path):
        self.root = root
        self._by_rel: dict[str, str] | None = None
        self._by_stem: dict[str, list[str]] = {}

    def _scan(self):
        self._by_rel = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.lower().endswith(IMAGE_EXTENSIONS) and not fn.startswith("."):
                    rel = os.path.relpath(os.path.join(dirpath, fn), self.root).replace(os.sep, "/")
                    self._by_rel[rel] = rel
                    self._by_rel.setdefault(rel.rsplit(".", 1)[0], rel)
                    for key in (fn, fn.rsplit(".", 1)[0]):
                        self._by_stem.setdefault(key, []).append(rel)

    def all_images(self) -> set[str]:
        if self._by_rel is None:
            self._scan()
        return {v for v in self._by_rel.values()}

    def find(self, cell: str) -> tuple[str | None, str | None]:
        """(path relative to root or absolute, error text)."""
        p = Path(cell)
        if p.is_absolute():
            if p.is_file():
                try:
                    return p.resolve().relative_to(self.root).as_posix(), None
                except ValueError:
                    return str(p), None
            return None, "file not found"
        cell = cell.replace("\\", "/")
        if cell.startswith("./"):
            cell = cell[2:]
        if (self.root / cell).is_file():
            return cell, None
        if self._by_rel is None:
            self._scan()
        if cell in self._by_rel:
            return self._by_rel[cell], None
        hits = self._by_stem.get(cell.rsplit("/", 1)[-1], [])
        if len(hits) == 1:
            return hits[0], None
        if len(hits) > 1:
            return None, f"matches {len(hits)} files ({', '.join(hits[:3])}); give the path relative to the root"
        return None, "file not found"


def load(csv: str | Path, *, image_col: str | None = None, label_col=None, group_col: str | None = None,
         root: str | Path | None = None, labels: str = "auto") -> ImageTable:
    """Read a labelled spreadsheet (see the module docstring).

    Args:
        csv: the CSV file.
        image_col: column of image paths or names.
        label_col: column of class names, or several columns of a one-hot encoding.
        group_col: optional column of group ids (lesion or patient): a split keeps each group whole.
        root: folder the image paths are relative to (default: the CSV's folder).
        labels: ``auto`` (map onto ISIC names when every label is known) or ``as-written``.

    Raises:
        DataError: a missing argument, a column not in the header (names the file, the column and
            the columns present), an empty cell, an image listed twice, a one-hot row without exactly one 1.
    """
    csv_path = Path(csv).expanduser()
    if labels not in ("auto", "as-written"):
        raise DataError(f"csv option labels: expected auto or as-written; got {labels!r}")
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file; format csv needs csv= a spreadsheet saved as CSV")
    csv_path = csv_path.resolve()
    header, rows, delim = read_table(csv_path)
    present = ", ".join(h for h in header) or "(none)"
    if not image_col:
        raise DataError(f"{csv_path}: format csv needs image_col (the column of image files); columns present: {present}")
    label_cols = columns_of(label_col)
    if not label_cols:
        raise DataError(f"{csv_path}: format csv needs label_col (the column of class names, or the one-hot columns); "
                        f"columns present: {present}")
    for arg, cols in (("image_col", [image_col]), ("label_col", label_cols), ("group_col", columns_of(group_col))):
        if arg == "group_col" and len(cols) > 1:
            raise DataError(f"{csv_path}: group_col must name one column; got {group_col!r}")
        for c in cols:
            if c not in header:
                raise DataError(f"{csv_path}: column {c!r} ({arg}) not found; columns present: {present}")
    img_root = Path(root).expanduser().resolve() if root is not None else csv_path.parent
    if not img_root.is_dir():
        raise DataError(f"{img_root}: root is not a folder; expected the folder the {image_col} paths are relative to")
    ci = header.index(image_col)
    li = [header.index(c) for c in label_cols]
    gi = header.index(group_col) if group_col else None
    finder = _Finder(img_root)
    problems: list[Problem] = []
    ids, raw, paths, sources, groups, first_row = [], [], [], [], [], {}
    for n, r in rows:
        if len(r) < len(header):
            raise DataError(f"{csv_path} row {n}: expected {len(header)} fields ({delim!r}-separated), found {len(r)}")
        cell = r[ci].strip()
        if not cell:
            raise DataError(f"{csv_path} row {n}: column {image_col!r} is empty; expected an image file name")
        if cell in first_row:
            raise DataError(f"{csv_path} row {n}: image {cell!r} is listed twice (also row {first_row[cell]}); "
                            "expected one row per image")
        first_row[cell] = n
        if len(li) == 1:
            lab = r[li[0]].strip()
            if not lab:
                raise DataError(f"{csv_path} row {n} (image {cell}): column {label_cols[0]!r} is empty; "
                                "expected a class name")
        else:
            lab = onehot_label(csv_path, n, cell, [r[j] for j in li], label_cols)
        rel, err = finder.find(cell)
        if rel is None:
            problems.append(Problem("missing", "error", cell, f"{csv_path.name} row {n}: {image_col} {cell!r}: {err} "
                                                              f"under {img_root}"))
            rel, src = cell, "missing"
        else:
            src = rel.rsplit("/", 1)[0] if "/" in rel else "."
            if (img_root / rel).stat().st_size == 0:
                problems.append(Problem("empty_file", "error", rel,
                                        f"{img_root / rel}: empty file (0 bytes); expected an image"))
        ids.append(cell)
        raw.append(lab)
        paths.append(rel)
        sources.append(src)
        if gi is not None:
            groups.append(r[gi].strip() or cell)
    if not ids:
        raise DataError(f"{csv_path}: no data rows below the header; expected one row per image")
    mapped = {w: to_isic(w) for w in set(raw)}
    unknown_words = sorted(w for w, c in mapped.items() if c is None)
    if labels == "auto" and not unknown_words:
        names = [mapped[w] for w in raw]
        how = "mapped onto ISIC names (every label is a known word or code)"
    else:
        names = list(raw)
        how = ("kept as written (labels=as-written)" if labels == "as-written" else
               f"kept as written (not all are ISIC words: {', '.join(repr(w) for w in unknown_words[:5])}"
               + (" …" if len(unknown_words) > 5 else "") + ")")
    class_names = order_classes(names)
    cls_index = {c: i for i, c in enumerate(class_names)}
    if len(class_names) < 2:
        problems.append(Problem("single_class", "warning", csv_path.name,
                                f"{csv_path}: every row has label {class_names[0]!r} in {', '.join(label_cols)}; "
                                "a classifier needs two classes or more (is it the right label column?)"))
    listed = set(p for p, s in zip(paths, sources) if s != "missing")
    unlisted = sorted(finder.all_images() - listed)
    if unlisted:
        problems.append(Problem("unlisted", "warning", unlisted[0],
                                f"{img_root}: {len(unlisted):,} images under the root are not listed in "
                                f"{csv_path.name}; ignored: {', '.join(unlisted[:5])}"
                                + (f", … ({len(unlisted) - 5} more)" if len(unlisted) > 5 else "")))
    groups_from = None
    if gi is not None:
        sizes = Counter(groups)
        groups_from = (f"column {group_col} of {csv_path.name} ({len(sizes):,} groups, up to {max(sizes.values())} "
                       "images each)")
    label_what = (f"column {label_cols[0]}" if len(label_cols) == 1 else f"one-hot columns {','.join(label_cols)}")
    return ImageTable(root=img_root, format="csv", class_names=class_names, labels=[cls_index[c] for c in names],
                      paths=paths, ids=ids, groups=groups if gi is not None else None, sources=sources,
                      raw_labels=raw, problems=problems,
                      meta={"labels_from": f"{label_what} of {csv_path.name}, {how}", "groups_from": groups_from,
                            "group_kind": "group", "csv": str(csv_path), "image_col": image_col,
                            "label_col": label_cols if len(label_cols) > 1 else label_cols[0], "group_col": group_col})
