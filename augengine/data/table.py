"""``ImageTable``: one row per image of a dataset on disk, and the loaders that build it.

A table knows *where* each image is (a file under :attr:`ImageTable.root`, or an entry of a
bundled archive), its integer label, the class space, the lesion (group) id where the dataset
knows it, an image id and the part of the dataset it came from. It never holds decoded pixels
itself: :meth:`ImageTable.image_set` hands out :class:`TableImageSet` views whose pixels come
from the decoded HDF5 cache (:mod:`augengine.data.cache`).

Formats (``format="auto"`` picks one from what ``path`` holds):

* ``ham10000``: ``HAM10000_metadata.csv`` + ``images/`` (or ``HAM10000_images_part_1/_part_2``).
* ``isic2019``: ``ISIC_2019_Training_GroundTruth.csv`` + ``ISIC_2019_Training_Input/``; the optional
  ``ISIC_2019_Training_Metadata.csv`` supplies lesion ids.
* ``isic2018``, ``isic2020``, ``ph2``, ``csv`` (any spreadsheet): :mod:`augengine.data.formats`.
* ``folder``: ``root/<class>/*.jpg|png|…`` (torchvision's ImageFolder layout, own class names); one
  class folder with a CSV beside it that names its images is reported (``csv_beside_folder``).
* ``medmnist``: a MedMNIST-style ``.npz`` (``train_images``, ``train_labels``, ``val_…``, ``test_…``).
* ``demo``: the built-in demo set (``augengine/datasets/data/demo64.npz``).

Class space: the ISIC 2019 classes in ISIC order (MEL, NV, BCC, AK, BKL, DF, VASC, SCC), restricted
to the classes the *source* defines. ISIC 2019 has all 8; HAM10000 (and the demo set derived from it)
has no SCC, so its class space is the 7 classes MEL, NV, BCC, AK, BKL, DF, VASC. Labels are matched by
*name* wherever sets are joined, so HAM-trained and ISIC-trained pieces stay compatible, and no class
is ever empty (an empty class is an error).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augengine.errors import DataError
from augengine.imageset import ImageSet

__all__ = [
    "ISIC_CLASSES",
    "HAM_DX_TO_ISIC",
    "IMAGE_EXTENSIONS",
    "FORMATS",
    "ImageTable",
    "Problem",
    "TableImageSet",
    "detect_format",
    "load_dataset",
    "scan_dataset",
    "demo_path",
]

ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
HAM_DX_TO_ISIC = {"mel": "MEL", "nv": "NV", "bcc": "BCC", "akiec": "AK", "bkl": "BKL", "df": "DF", "vasc": "VASC"}
HAM_CLASSES = [c for c in ISIC_CLASSES if c in HAM_DX_TO_ISIC.values()]
# DermaMNIST label order (MedMNIST v2 INFO["dermamnist"]["label"]), mapped onto ISIC names.
DERMAMNIST_CLASSES = ["AK", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
FORMATS = ("auto", "ham10000", "isic2019", "isic2018", "isic2020", "ph2", "csv", "folder", "medmnist", "demo")

HAM_CSV = "HAM10000_metadata.csv"
HAM_IMAGE_DIRS = ("images", "HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")
ISIC_GT_CSV = "ISIC_2019_Training_GroundTruth.csv"
ISIC_META_CSV = "ISIC_2019_Training_Metadata.csv"
ISIC_IMAGE_DIRS = ("ISIC_2019_Training_Input",)
MEDMNIST_PARTS = ("train", "val", "test")


def demo_path() -> Path:
    """Path of the bundled demo archive (``augengine/datasets/data/demo64.npz``)."""
    return Path(__file__).resolve().parent.parent / "datasets" / "data" / "demo64.npz"


@dataclass(frozen=True)
class Problem:
    """One problem found while reading a dataset.

    Attributes:
        kind: ``missing``, ``empty_file``, ``unlisted``, ``unreadable``, ``truncated``, ``converted``,
            ``duplicate``, ``duplicate_across_classes``, ``empty_class``, ``bad_row``.
        severity: ``error`` (the set is unusable as it is) or ``warning`` (handled).
        file: the file concerned (relative to the dataset root where possible).
        message: one line naming the file, field, what was expected and what was found.
    """

    kind: str
    severity: str
    file: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "severity": self.severity, "file": self.file, "message": self.message}


class ImageTable:
    """One row per image: location, label, class space, lesion id, image id, source.

    Build with :func:`load_dataset`. Columns are parallel sequences of length ``len(table)``.

    Attributes:
        root: dataset root (folder, or the ``.npz`` archive for ``medmnist``/``demo``).
        format: one of ``ham10000``, ``isic2019``, ``isic2018``, ``isic2020``, ``ph2``, ``csv``, ``folder``,
            ``medmnist``, ``demo``.
        class_names: the class space (index = label value).
        labels: int64 array (N,).
        paths: file of each image relative to ``root`` (``archive:<key>[i]`` for embedded images).
        ids: unique image ids (N,) (HAM/ISIC image id, relative path for folders).
        groups: object array (N,) of lesion ids, or ``None`` when the dataset knows none.
        sources: the part of the dataset each image came from (image folder, npz part).
        raw_labels: the label as written in the source (``akiec``, ``AK``, folder name, ``3``).
        problems: warnings found while loading (errors raise instead).
        meta: provenance: ``labels_from`` (where labels come from and how they were mapped),
            ``groups_from``, ``group_kind`` (``lesion``, ``patient`` or ``group``), ``notes``.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        format: str,
        class_names: list[str],
        labels,
        paths: list[str],
        ids: list[str],
        groups=None,
        sources: list[str] | None = None,
        raw_labels: list[str] | None = None,
        embedded: Any = None,
        problems: list[Problem] | None = None,
        meta: dict[str, Any] | None = None,
    ):
        self.root = Path(root)
        self.format = format
        self.class_names = list(class_names)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.paths = list(paths)
        self.ids = list(ids)
        n = len(self.labels)
        self.groups = None if groups is None else np.asarray(groups, dtype=object)
        self.sources = list(sources) if sources is not None else [format] * n
        self.raw_labels = list(raw_labels) if raw_labels is not None else [self.class_names[i] for i in self.labels]
        self.problems = list(problems or [])
        self.meta = dict(meta or {})
        self._embedded = embedded  # list of encoded bytes (demo) or uint8 array (medmnist)
        self._decoded: dict[tuple, np.ndarray] = {}
        self._stamp: str | None = None
        for name, col in (("paths", self.paths), ("ids", self.ids), ("sources", self.sources)):
            if len(col) != n:
                raise DataError(f"{self.root}: ImageTable column {name} has {len(col)} rows, expected {n}")
        if self.groups is not None and len(self.groups) != n:
            raise DataError(f"{self.root}: ImageTable column groups has {len(self.groups)} rows, expected {n}")
        if len(set(self.ids)) != n:
            dup = next(i for i, k in Counter(self.ids).items() if k > 1)
            raise DataError(f"{self.root}: image id {dup!r} appears more than once; expected unique image ids")

    # -- basics -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(len(self.labels))

    def __repr__(self) -> str:
        return f"ImageTable(format={self.format!r}, root={str(self.root)!r}, n={len(self)}, classes={self.class_counts()})"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_groups(self) -> bool:
        """Whether the dataset knows lesion (group) ids."""
        return self.groups is not None

    @property
    def num_groups(self) -> int | None:
        """Number of distinct lesions, or ``None`` when unknown."""
        return None if self.groups is None else len(set(self.groups.tolist()))

    def class_counts(self) -> dict[str, int]:
        """Images per class (all classes of the class space)."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {c: int(k) for c, k in zip(self.class_names, counts)}

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (path, label, class, group, id, source)."""
        return {
            "path": self.paths[i],
            "label": int(self.labels[i]),
            "class": self.class_names[self.labels[i]],
            "raw_label": self.raw_labels[i],
            "group": None if self.groups is None else self.groups[i],
            "id": self.ids[i],
            "source": self.sources[i],
        }

    def index_of(self) -> dict[str, int]:
        """Map image id → row index."""
        return {k: i for i, k in enumerate(self.ids)}

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the table's identity: format, class space, and every (id, label, group).

        It does not depend on where the dataset lies, so a copied dataset keeps its split files;
        the decoded cache additionally checks :attr:`source_stamp` for changed files.
        """
        fp = self.__dict__.get("_fingerprint")
        if fp is None:
            h = hashlib.sha256()
            h.update(json.dumps([self.format, self.class_names]).encode())
            groups = self.groups if self.groups is not None else [None] * len(self)
            for i, lab, g in zip(self.ids, self.labels.tolist(), groups):
                h.update(f"{i}\x1f{lab}\x1f{g}\x1e".encode())
            fp = self.__dict__["_fingerprint"] = h.hexdigest()
        return fp

    @property
    def source_stamp(self) -> str:
        """Hash of (path, size, mtime) of every source file; changes when a file is edited."""
        if self._stamp is None:
            h = hashlib.sha256(self.fingerprint.encode())
            if self._embedded is not None:
                st = self.root.stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            else:
                for p in self.paths:
                    try:
                        st = os.stat(self.root / p)
                        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
                    except OSError:
                        h.update(f"{p}:missing\n".encode())
            self._stamp = h.hexdigest()
        return self._stamp

    # -- pixels -------------------------------------------------------------------------
    def source(self, i: int):
        """What the decoder reads for row ``i``: a file path, encoded bytes, or a uint8 array."""
        if self._embedded is None:
            return str(self.root / self.paths[i])
        return self._embedded[i]

    def decoded(self, size: int = 64, *, interpolation: str = "bicubic", crop: str = "resize",
                progress: bool = True) -> np.ndarray:
        """All images decoded to uint8 N×S×S×3 (from the on-disk cache; built once).

        Shape:
            - output: :math:`(N, S, S, 3)` uint8.
        """
        from augengine.data.cache import decoded_images

        key = (int(size), interpolation, crop)
        if key not in self._decoded:
            while len(self._decoded) >= 2:  # keep the two most recent sizes in memory
                self._decoded.pop(next(iter(self._decoded)))
            self._decoded[key] = decoded_images(self, int(size), interpolation=interpolation, crop=crop,
                                                progress=progress)
        return self._decoded[key]

    def image_set(self, indices=None, size: int = 64, *, interpolation: str = "bicubic",
                  crop: str = "resize") -> "TableImageSet":
        """An :class:`~augengine.ImageSet` over rows ``indices`` (all rows by default)."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        return TableImageSet(self, idx, size=size, interpolation=interpolation, crop=crop)


class TableImageSet(ImageSet):
    """Rows of an :class:`ImageTable` as an :class:`~augengine.ImageSet`.

    ``images(size)`` slices the decoded cache of the whole table (held in memory, read from
    the HDF5 cache once), so it never decodes a JPEG after the cache exists.

    Args:
        table: the table.
        indices: row indices (int array).
        size: default image size of :meth:`images` and ``__getitem__``.
        interpolation, crop: cache variant (see :func:`augengine.data.cache.decoded_images`).
    """

    def __init__(self, table: ImageTable, indices, size: int = 64, *, interpolation: str = "bicubic",
                 crop: str = "resize"):
        self.table = table
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(table)):
            raise DataError(f"{table.root}: row indices must lie in 0..{len(table) - 1}")
        self.class_names = list(table.class_names)
        self.labels = table.labels[self.indices]
        self.groups = None if table.groups is None else table.groups[self.indices]
        self.ids = [table.ids[i] for i in self.indices]
        self.size = int(size)
        self.interpolation = interpolation
        self.crop = crop

    def _load(self, size):
        size = int(size or self.size)
        return self.table.decoded(size, interpolation=self.interpolation, crop=self.crop)[self.indices]


# ---------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------
def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected a CSV header line")
    header = [h.strip() for h in rows[0]]
    return header, [r for r in rows[1:] if any(c.strip() for c in r)]


def _index_images(root: Path, dirs: tuple[str, ...], *, include_root: bool = True
                  ) -> tuple[dict[str, tuple[str, str, int]], list[str]]:
    """Map image stem → (relative path, folder, size in bytes) over ``dirs`` (and root itself)."""
    found: dict[str, tuple[str, str, int]] = {}
    used = []
    for d in (*dirs, ".") if include_root else dirs:
        folder = root / d
        if not folder.is_dir():
            continue
        used.append(d)
        with os.scandir(folder) as it:
            for e in it:
                if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS):
                    stem = e.name.rsplit(".", 1)[0]
                    rel = e.name if d == "." else f"{d}/{e.name}"
                    found.setdefault(stem, (rel, d, e.stat().st_size))
    return found, used


def _attach_files(root: Path, csv_path: Path, ids: list[str], index, problems: list[Problem], field: str,
                  *, where: Path | None = None, ext: str = ".jpg", row_numbers: list[int] | None = None):
    paths, sources = [], []
    for n, image_id in enumerate(ids):
        hit = index.get(image_id)
        if hit is None:
            row = row_numbers[n] if row_numbers is not None else n + 2
            problems.append(Problem("missing", "error", image_id,
                                    f"{csv_path.name} row {row}: {field} {image_id!r}: image file not found "
                                    f"under {where or root} (expected {image_id}{ext})"))
            paths.append(f"{image_id}{ext}")
            sources.append("missing")
            continue
        rel, d, nbytes = hit
        if nbytes == 0:
            problems.append(Problem("empty_file", "error", rel, f"{root / rel}: empty file (0 bytes); expected an image"))
        paths.append(rel)
        sources.append(d)
    listed = set(ids)
    for stem, (rel, _, _) in sorted(index.items()):
        if stem not in listed:
            problems.append(Problem("unlisted", "warning", rel,
                                    f"{root / rel}: image present but not listed in {csv_path.name}; ignored"))
    return paths, sources


def _load_ham(root: Path) -> ImageTable:
    csv_path = root / HAM_CSV
    header, rows = _read_csv(csv_path)
    need = ("lesion_id", "image_id", "dx")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{csv_path}: header must contain columns {', '.join(need)}; "
                        f"missing {', '.join(missing)} (found {','.join(header)})")
    col = {c: header.index(c) for c in need}
    problems: list[Problem] = []
    ids, lesions, labels, raw = [], [], [], []
    cls = {c: i for i, c in enumerate(HAM_CLASSES)}
    for n, r in enumerate(rows):
        if len(r) < len(header):
            raise DataError(f"{csv_path} row {n + 2}: expected {len(header)} fields, found {len(r)}")
        dx = r[col["dx"]].strip()
        if dx not in HAM_DX_TO_ISIC:
            raise DataError(f"{csv_path} row {n + 2}: field dx is {dx!r}; expected one of "
                            f"{', '.join(HAM_DX_TO_ISIC)} (the HAM10000 class space)")
        ids.append(r[col["image_id"]].strip())
        lesions.append(r[col["lesion_id"]].strip() or r[col["image_id"]].strip())
        labels.append(cls[HAM_DX_TO_ISIC[dx]])
        raw.append(dx)
    index, _ = _index_images(root, HAM_IMAGE_DIRS)
    paths, sources = _attach_files(root, csv_path, ids, index, problems, "image_id")
    return ImageTable(root=root, format="ham10000", class_names=HAM_CLASSES, labels=labels, paths=paths, ids=ids,
                      groups=lesions, sources=sources, raw_labels=raw, problems=problems,
                      meta={"metadata_csv": csv_path.name, "labels_from": f"column dx of {csv_path.name}",
                            "groups_from": f"lesion_id of {csv_path.name}", "group_kind": "lesion"})


def _load_isic2019(root: Path) -> ImageTable:
    csv_path = root / ISIC_GT_CSV
    header, rows = _read_csv(csv_path)
    expected = ["image", *ISIC_CLASSES]
    if header[: len(expected)] != expected or header[len(expected):] not in ([], ["UNK"]):
        raise DataError(f"{csv_path}: header must be {','.join(expected)},UNK; found {','.join(header)}")
    extra = header[len(expected):]
    ids, labels = [], []
    for n, r in enumerate(rows):
        if len(r) != len(header):
            raise DataError(f"{csv_path} row {n + 2}: expected {len(header)} fields, found {len(r)}")
        try:
            vals = [float(v) for v in r[1:]]
        except ValueError:
            raise DataError(f"{csv_path} row {n + 2}: one-hot fields must be 0.0 or 1.0; found {','.join(r[1:])}") from None
        if any(v not in (0.0, 1.0) for v in vals):
            raise DataError(f"{csv_path} row {n + 2}: one-hot fields must be 0.0 or 1.0; found {','.join(r[1:])}")
        ones = [h for h, v in zip(header[1:], vals) if v == 1.0]
        if len(ones) != 1:
            raise DataError(f"{csv_path} row {n + 2} (image {r[0]}): expected exactly one 1.0 among "
                            f"{','.join(header[1:])}; found {len(ones)}")
        if ones[0] in extra:
            raise DataError(f"{csv_path} row {n + 2} (image {r[0]}): label {ones[0]} is outside the class space "
                            f"{','.join(ISIC_CLASSES)}")
        ids.append(r[0].strip())
        labels.append(ISIC_CLASSES.index(ones[0]))
    groups = None
    meta_path = root / ISIC_META_CSV
    if meta_path.exists():
        mh, mrows = _read_csv(meta_path)
        if "image" not in mh or "lesion_id" not in mh:
            raise DataError(f"{meta_path}: header must contain columns image, lesion_id; found {','.join(mh)}")
        ii, li = mh.index("image"), mh.index("lesion_id")
        lesion = {r[ii].strip(): r[li].strip() for r in mrows if len(r) > max(ii, li)}
        groups = [lesion.get(i) or i for i in ids]  # images without a lesion id form their own group
    problems: list[Problem] = []
    index, _ = _index_images(root, ISIC_IMAGE_DIRS)
    paths, sources = _attach_files(root, csv_path, ids, index, problems, "image")
    return ImageTable(root=root, format="isic2019", class_names=ISIC_CLASSES, labels=labels, paths=paths, ids=ids,
                      groups=groups, sources=sources, raw_labels=[ISIC_CLASSES[i] for i in labels],
                      problems=problems, meta={"metadata_csv": meta_path.name if groups is not None else None,
                                               "labels_from": f"one-hot columns of {csv_path.name}",
                                               "groups_from": (f"lesion_id of {meta_path.name} (images without one "
                                                               "are their own group)") if groups is not None else None,
                                               "group_kind": "lesion"})


def _load_folder(root: Path) -> ImageTable:
    from augengine.data.formats.hints import csv_beside_folder

    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        hint = csv_beside_folder(root.parent, root, f"{root.name} holds images and no class folders")
        raise DataError(f"{root}: no class folders found; expected root/<class>/*.jpg|png (ImageFolder layout), "
                        f"{HAM_CSV}, {ISIC_GT_CSV}, train.csv (ISIC 2020), PH2_dataset.txt, an ISIC 2018 Task 3 "
                        "ground-truth CSV or a .npz file"
                        + (f"; {hint.message.split(': ', 1)[1]}" if hint else ""))
    paths, labels, problems = [], [], []
    for ci, c in enumerate(classes):
        files = []
        for dirpath, dirnames, filenames in os.walk(root / c):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.lower().endswith(IMAGE_EXTENSIONS) and not fn.startswith("."):
                    rel = os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/")
                    files.append(rel)
                    if os.path.getsize(root / rel) == 0:
                        problems.append(Problem("empty_file", "error", rel, f"{root / rel}: empty file (0 bytes); expected an image"))
        if not files:
            problems.append(Problem("empty_class", "error", c,
                                    f"{root / c}: class {c!r} holds no images; expected at least one "
                                    f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS[:3])} file"))
        paths += files
        labels += [ci] * len(files)
    if len(classes) == 1:
        hint = csv_beside_folder(root, root / classes[0], f"it holds a single class folder {classes[0]!r}")
        if hint is not None:
            problems.append(hint)
    return ImageTable(root=root, format="folder", class_names=classes, labels=labels, paths=paths, ids=list(paths),
                      groups=None, sources=[p.split("/", 1)[0] for p in paths],
                      raw_labels=[p.split("/", 1)[0] for p in paths], problems=problems,
                      meta={"labels_from": "class folder names (root/<class>/…), as written"})


def _load_medmnist(path: Path) -> ImageTable:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any failure to parse is a data error
        raise DataError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    with z:
        parts = [p for p in MEDMNIST_PARTS if f"{p}_images" in z.files]
        if not parts:
            raise DataError(f"{path}: expected arrays train_images/train_labels (MedMNIST layout); found {', '.join(z.files)}")
        images, labels, ids, sources = [], [], [], []
        for p in parts:
            if f"{p}_labels" not in z.files:
                raise DataError(f"{path}: array {p}_labels missing; expected one label per image of {p}_images")
            im = z[f"{p}_images"]
            lab = z[f"{p}_labels"]
            if im.dtype != np.uint8 or im.ndim not in (3, 4) or (im.ndim == 4 and im.shape[-1] not in (1, 3, 4)):
                raise DataError(f"{path}: array {p}_images must be uint8 N×H×W or N×H×W×C, got {im.dtype} {im.shape}")
            if lab.ndim == 2 and lab.shape[1] > 1:
                raise DataError(f"{path}: array {p}_labels has shape {lab.shape}; expected single-label (N,) or (N,1)")
            lab = lab.reshape(-1).astype(np.int64)
            if len(lab) != len(im):
                raise DataError(f"{path}: array {p}_labels has {len(lab)} rows, expected {len(im)} (one per image)")
            images.append(im)
            labels.append(lab)
            ids += [f"{p}:{i}" for i in range(len(im))]
            sources += [p] * len(im)
        class_names = [str(c) for c in z["class_names"]] if "class_names" in z.files else None
    labels_all = np.concatenate(labels)
    names_from = "its class_names array"
    if class_names is None and "dermamnist" in path.name.lower():
        class_names = list(DERMAMNIST_CLASSES)
        names_from = "DermaMNIST's label order (" + ", ".join(f"{i} → {c}" for i, c in enumerate(class_names)) + ")"
    if class_names is None:
        class_names = [str(i) for i in range(int(labels_all.max()) + 1 if len(labels_all) else 0)]
        names_from = "the label numbers (no class_names array)"
    bad = (labels_all < 0) | (labels_all >= len(class_names))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {ids[j].split(':')[0]}_labels[{ids[j].split(':')[1]}] is {labels_all[j]}; expected a "
                        f"label in 0..{len(class_names) - 1} (classes {', '.join(class_names)})")
    counts = np.bincount(labels_all, minlength=len(class_names))
    problems = [Problem("empty_class", "error", c, f"{path}: class {c!r} (label {k}) has no images; expected at least one")
                for k, c in enumerate(class_names) if counts[k] == 0]
    arr = images[0] if len(images) == 1 else np.concatenate(images)
    return ImageTable(root=path, format="medmnist", class_names=class_names, labels=labels_all,
                      paths=[f"archive:{i}" for i in ids], ids=ids, groups=None, sources=sources,
                      raw_labels=[str(v) for v in labels_all.tolist()], embedded=arr, problems=problems,
                      meta={"labels_from": f"arrays {', '.join(p + '_labels' for p in parts)} of {path.name}; "
                                           f"class names from {names_from}"})


def _load_demo(path: Path | None = None) -> ImageTable:
    path = Path(path) if path is not None else demo_path()
    if not path.exists():
        raise DataError(f"{path}: the built-in demo set is missing; build it with "
                        "'python -m augengine.datasets.build_demo PATH_TO_HAM10000'")
    with np.load(path, allow_pickle=False) as z:
        need = ("jpeg", "offsets", "labels", "class_names", "image_ids", "lesion_ids", "dx")
        missing = [k for k in need if k not in z.files]
        if missing:
            raise DataError(f"{path}: demo archive lacks arrays {', '.join(missing)}; rebuild it with "
                            "'python -m augengine.datasets.build_demo'")
        data = z["jpeg"]
        off = z["offsets"]
        blobs = [data[off[i]: off[i + 1]].tobytes() for i in range(len(off) - 1)]
        table = ImageTable(root=path, format="demo", class_names=[str(c) for c in z["class_names"]],
                           labels=z["labels"], paths=[f"archive:{i}" for i in z["image_ids"]],
                           ids=[str(i) for i in z["image_ids"]], groups=[str(g) for g in z["lesion_ids"]],
                           sources=["demo"] * len(blobs), raw_labels=[str(d) for d in z["dx"]], embedded=blobs,
                           meta={"labels_from": f"HAM10000 dx codes stored in {path.name}",
                                 "groups_from": "HAM10000 lesion_id", "group_kind": "lesion"})
    return table


FORMAT_OPTIONS = {"isic2018": ("part",), "isic2020": ("labels", "unknown"), "csv": ("labels",)}


def _public_layouts(p: Path) -> list[str]:
    """The public layouts (ISIC 2018 Task 3, ISIC 2020, PH2) whose files ``p`` (a file or folder) holds, in that order."""
    from augengine.data.formats import isic2018, isic2020, ph2

    return [name for name, mod in (("isic2018", isic2018), ("isic2020", isic2020), ("ph2", ph2)) if mod.detect(p)]


def _structured_layouts(folder: Path) -> list[str]:
    """Every structured format whose files ``folder`` holds, in the order :func:`detect_format` prefers them."""
    return ([name for name, csv in (("ham10000", HAM_CSV), ("isic2019", ISIC_GT_CSV)) if (folder / csv).exists()]
            + _public_layouts(folder))


def detect_format(path: str | Path) -> str:
    """Which loader fits ``path`` (DataError when none does or it does not exist)."""
    if str(path) == "demo":
        return "demo"
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; expected a dataset folder, a .npz file or 'demo'")
    if p.is_file():
        if p.suffix == ".npz":
            return "demo" if p.resolve() == demo_path() else "medmnist"
        if p.name == HAM_CSV:
            return "ham10000"
        if p.name == ISIC_GT_CSV:
            return "isic2019"
        found = _public_layouts(p)
        if found:
            return found[0]
        hint = (" (any other spreadsheet: format csv with csv=, image_col=, label_col=)"
                if p.suffix.lower() in (".csv", ".tsv", ".txt") else "")
        raise DataError(f"{p}: unknown dataset file; expected a folder, a MedMNIST .npz, {HAM_CSV}, {ISIC_GT_CSV}, "
                        f"an ISIC 2018 Task 3 ground-truth CSV, ISIC 2020 train.csv or PH2_dataset.txt{hint}")
    found = _structured_layouts(p)
    if found:
        return found[0]
    npz = sorted(p.glob("*.npz"))
    subdirs = [e for e in os.scandir(p) if e.is_dir() and not e.name.startswith(".")]
    if len(npz) == 1 and not subdirs:
        return "medmnist"
    return "folder"


def _resolve_request(path, format, csv, image_col, label_col, group_col, root, options):
    """Normalise load_dataset's arguments: a spec (mapping, DatasetSpec, .toml file) or a path plus keywords."""
    from augengine.data.spec import DatasetSpec, spec_from

    if isinstance(path, (dict, DatasetSpec)) or (isinstance(path, (str, Path)) and str(path).endswith(".toml")
                                                 and Path(path).expanduser().is_file()):
        spec = spec_from(path)
        kw = spec.kwargs()
        given = {k: v for k, v in dict(format=format, csv=csv, image_col=image_col, label_col=label_col,
                                       group_col=group_col, root=root, options=options).items()
                 if v is not None and not (k == "format" and v == "auto")}
        kw.update(given)
        return spec.path, kw
    return path, dict(format=format, csv=csv, image_col=image_col, label_col=label_col, group_col=group_col,
                      root=root, options=options)


def scan_dataset(path="demo", *, format: str = "auto", csv: str | Path | None = None, image_col: str | None = None,
                 label_col=None, group_col: str | None = None, root: str | Path | None = None,
                 options: dict[str, Any] | None = None) -> ImageTable:
    """Read a dataset's listing without raising on per-file problems (they are in ``table.problems``).

    Takes the arguments of :func:`load_dataset`. Structural problems (missing folder, wrong CSV
    header, labels outside the class space) still raise :class:`~augengine.DataError`.
    """
    path, kw = _resolve_request(path, format, csv, image_col, label_col, group_col, root, options)
    format, csv, image_col, label_col, group_col, root = (kw[k] for k in ("format", "csv", "image_col", "label_col",
                                                                          "group_col", "root"))
    options = dict(kw["options"] or {})
    if format not in FORMATS:
        raise DataError(f"format: expected one of {', '.join(FORMATS)}; got {format!r}")
    csv_args = {k: v for k, v in dict(csv=csv, image_col=image_col, label_col=label_col, group_col=group_col,
                                      root=root).items() if v}
    if csv_args and format == "auto":
        format = "csv"
    if format == "csv":
        return _load_spreadsheet(path, csv, image_col, label_col, group_col, root, options)
    if csv_args:
        raise DataError(f"{', '.join(csv_args)}: apply to format csv only (format is {format})")
    fmt = detect_format(path) if format == "auto" else format
    table = _scan_format(path, fmt, options)
    if format == "auto" and table.format == fmt and Path(path).is_dir():
        others = [f for f in _also_detected(Path(path)) if f != fmt]
        for f in others:
            table.problems.append(Problem("other_format", "warning", f,
                                          f"{path}: read as {fmt}, but it also holds the files of format {f}, which are not "
                                          f"loaded; load them with format={f} (command line: --format {f})"))
    return table


def _also_detected(p: Path) -> list[str]:
    """Every structured format whose files ``p`` holds (more than one: all but the one read are reported)."""
    found = _structured_layouts(p)
    return found if len(found) > 1 else []


def _scan_format(path, fmt: str, options: dict[str, Any]) -> ImageTable:
    allowed = FORMAT_OPTIONS.get(fmt, ())
    bad = [k for k in options if k not in allowed]
    if bad:
        raise DataError(f"option {bad[0]!r}: format {fmt} takes "
                        + (f"the options {', '.join(allowed)}" if allowed else "no options")
                        + f" (given {', '.join(f'{k}={v}' for k, v in options.items())})")
    if fmt == "demo":
        return _load_demo(None if str(path) == "demo" else Path(path))
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; expected a dataset folder, a .npz file or 'demo'")
    p = p.resolve()
    if fmt in ("ham10000", "isic2019") and p.is_file():
        p = p.parent
    if fmt == "ham10000":
        return _load_ham(p)
    if fmt == "isic2019":
        return _load_isic2019(p)
    if fmt in ("isic2018", "isic2020", "ph2"):
        import importlib

        return importlib.import_module(f"augengine.data.formats.{fmt}").load(p, **options)
    if fmt == "medmnist":
        if p.is_dir():
            npz = sorted(p.glob("*.npz"))
            if len(npz) != 1:
                raise DataError(f"{p}: expected exactly one .npz file for format medmnist; found {len(npz)}")
            p = npz[0]
        return _load_medmnist(p)
    if not p.is_dir():
        raise DataError(f"{p}: not a folder; format folder expects root/<class>/*.jpg")
    return _load_folder(p)


def _load_spreadsheet(path, csv, image_col, label_col, group_col, root, options) -> ImageTable:
    from augengine.data.formats import spreadsheet

    bad = [k for k in options if k not in FORMAT_OPTIONS["csv"]]
    if bad:
        raise DataError(f"option {bad[0]!r}: format csv takes the options {', '.join(FORMAT_OPTIONS['csv'])}")
    base = None if path is None or str(path) == "demo" else Path(path).expanduser()
    if csv is None:
        if base is not None and base.is_file():
            csv = base
        else:
            raise DataError(f"format csv needs csv= the spreadsheet file (given path {path!r})")
    csv_path = Path(csv).expanduser()
    if not csv_path.is_absolute() and not csv_path.exists() and base is not None and base.is_dir() \
            and (base / csv_path).is_file():
        csv_path = base / csv_path
    if root is None and base is not None and base.is_dir():
        root = base
    return spreadsheet.load(csv_path, image_col=image_col, label_col=label_col, group_col=group_col, root=root,
                            **options)


def load_dataset(path="demo", *, format: str = "auto", csv: str | Path | None = None, image_col: str | None = None,
                 label_col=None, group_col: str | None = None, root: str | Path | None = None,
                 options: dict[str, Any] | None = None) -> ImageTable:
    """Load a dataset listing as an :class:`ImageTable`.

    Args:
        path: dataset folder, ``.npz`` file, ``"demo"`` (the built-in demo set, the default), or a
            dataset spec: a :class:`~augengine.data.spec.DatasetSpec`, a mapping of its keys, or a
            ``.toml`` file of them (how bench configs name a spreadsheet).
        format: ``auto`` (detect) or one of ``ham10000``, ``isic2019``, ``isic2018``, ``isic2020``,
            ``ph2``, ``csv``, ``folder``, ``medmnist``, ``demo``.
        csv: format ``csv``: the spreadsheet file (relative paths also tried under ``path``).
        image_col: format ``csv``: column of image paths (relative to ``root``) or names.
        label_col: format ``csv``: column of class names, or several one-hot columns (list or ``"A,B,C"``).
        group_col: format ``csv``: optional column of lesion/patient ids; a split keeps each whole.
        root: format ``csv``: folder the image paths are relative to (default ``path`` when it is a
            folder, else the CSV's folder).
        options: format options: ``isic2020``: ``labels`` (``diagnosis``/``binary``), ``unknown``
            (``class``/``drop``); ``isic2018``: ``part`` (``Training``, ``Validation``, ``Test``,
            comma-separated); ``csv``: ``labels`` (``auto``/``as-written``).

    Returns:
        The table; warnings (e.g. unlisted files) are kept in ``table.problems``; a likely misread
        (a one-class folder set with a CSV naming its images beside it; a folder that also holds
        another format's files) is also a :class:`DataWarning`.

    Raises:
        DataError: one line naming the file, the field and what was expected, for the first
            problem that makes the dataset unusable (missing/empty image file, empty class, …).
    """
    import warnings

    from augengine.data.cache import DataWarning

    table = scan_dataset(path, format=format, csv=csv, image_col=image_col, label_col=label_col,
                         group_col=group_col, root=root, options=options)
    errors = [p for p in table.problems if p.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more problems; run 'augengine data inspect {path}')" if len(errors) > 1 else ""
        raise DataError(errors[0].message + more)
    for p in table.problems:
        if p.kind in ("csv_beside_folder", "other_format"):
            warnings.warn(p.message, DataWarning, stacklevel=2)
    return table
