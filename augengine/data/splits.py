"""Stratified train/val/test splits, grouped by lesion where the data knows lesions.

Allocation rule (reproduces the per-class counts of the paper's Table 1 on ISIC 2019 exactly):
the paper split stratified 80/20 and then split the 20 % stratified in half, as two calls of
scikit-learn's ``train_test_split(..., stratify=y)``. So:

1. ``n_rest = ceil(N · (1 - f_train))`` images leave the training set, ``n_train = N - n_rest``;
   class ``c`` gets ``floor(n_c · n_train / N)`` training images plus one for the classes with the
   largest remainders until the total is reached (ties broken by the seed).
2. Of the ``r_c`` remaining images of each class, validation gets the same largest-remainder share
   of ``n_val = n_rest - ceil(n_rest · f_test / (f_val + f_test))``; test gets the rest.

With grouping (``group_by="lesion"``, or ``"auto"`` on data with lesion ids), these per-class
counts are targets: the lesions of each class (a lesion's class is the majority label of its
images) are placed whole, largest first, into the split furthest below its target, so no lesion
is in two splits and per-class counts are as close to the fractions as the lesion sizes allow.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from augengine.errors import DataError

if TYPE_CHECKING:
    from augengine.data.table import ImageTable

__all__ = ["Split", "split", "load_split", "default_split", "parse_fractions", "allocate", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "val", "test")
SPLIT_FILE_VERSION = 1


def parse_fractions(fractions) -> tuple[float, float, float]:
    """Validate (train, val, test) fractions: three numbers ≥ 0, train > 0, summing to 1.

    Accepts a sequence or a string ``"0.8,0.1,0.1"``.
    """
    raw = fractions
    if isinstance(fractions, str):
        try:
            fractions = [float(x) for x in fractions.split(",")]
        except ValueError:
            raise DataError(f"fractions: expected three comma-separated numbers like 0.8,0.1,0.1; got {raw!r}") from None
    try:
        fr = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):
        raise DataError(f"fractions: expected three numbers (train, val, test); got {raw!r}") from None
    if len(fr) != 3:
        raise DataError(f"fractions: expected three numbers (train, val, test); got {len(fr)}: {raw!r}")
    if any(not math.isfinite(x) or x < 0 for x in fr) or fr[0] <= 0:
        raise DataError(f"fractions: expected train > 0 and val, test >= 0; got {fr}")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise DataError(f"fractions: expected numbers summing to 1; got {','.join(f'{x:g}' for x in fr)} (sum {sum(fr):g})")
    return fr  # type: ignore[return-value]


def _ceil(x: float) -> int:
    return int(math.ceil(round(x, 9)))


def _largest_remainder(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts`` (floor + largest remainders, seeded ties)."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0 or total == 0:
        return np.zeros_like(counts)
    quota = counts * (total / n)
    base = np.floor(quota + 1e-9).astype(np.int64)
    base = np.minimum(base, counts)
    left = total - int(base.sum())
    rem = quota - base
    order = np.lexsort((rng.random(len(counts)), -np.round(rem, 9)))
    for c in order:
        if left <= 0:
            break
        if base[c] < counts[c]:
            base[c] += 1
            left -= 1
    return base


def allocate(class_counts, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Per-class (train, val, test) counts by the two-stage rule of the module docstring.

    Args:
        class_counts: images per class (K,).
        fractions: (train, val, test).
        seed: breaks ties between equal remainders.

    Returns:
        int64 array K×3.
    """
    fr = parse_fractions(fractions)
    counts = np.asarray(class_counts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    n_rest = _ceil(n * (1.0 - fr[0])) if fr[1] + fr[2] > 0 else 0
    train = _largest_remainder(counts, n - n_rest, rng)
    rest = counts - train
    if fr[1] + fr[2] > 0:
        n_test = _ceil(n_rest * fr[2] / (fr[1] + fr[2]))
        val = _largest_remainder(rest, n_rest - n_test, rng)
    else:
        val = np.zeros_like(rest)
    return np.stack([train, val, rest - val], axis=1)


class Split:
    """A train/val/test split of an :class:`~augengine.data.ImageTable`.

    Attributes:
        table: the table.
        assignment: int8 array (N,): 0 train, 1 val, 2 test, per table row.
        seed, fractions, group_by: how it was made (``group_by`` resolved to ``lesion`` or ``none``).
        straddling: number of lesions with images in more than one split (``None`` if lesions unknown).
        train, val, test: :class:`~augengine.data.TableImageSet` views (size ``size``).
    """

    def __init__(self, table, assignment, *, seed: int, fractions, group_by: str, size: int = 64):
        self.table = table
        self.assignment = np.asarray(assignment, dtype=np.int8)
        if self.assignment.shape != (len(table),):
            raise DataError(f"split: assignment has shape {self.assignment.shape}; expected ({len(table)},)")
        self.seed = int(seed)
        self.fractions = tuple(float(x) for x in fractions)
        self.group_by = group_by
        self.size = int(size)
        self.straddling = _straddling(table, self.assignment)
        digest = self.sha256()
        for k, name in enumerate(SPLIT_NAMES):
            part = table.image_set(np.flatnonzero(self.assignment == k), size=self.size)
            part.split_sha256 = digest  # recorded by classifier fits, checked by evaluations
            setattr(self, name, part)

    def indices(self, name: str) -> np.ndarray:
        """Table rows of split ``name`` (``train``, ``val`` or ``test``)."""
        return np.flatnonzero(self.assignment == SPLIT_NAMES.index(name))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split, images per class."""
        out = {}
        for k, name in enumerate(SPLIT_NAMES):
            c = np.bincount(self.table.labels[self.assignment == k], minlength=self.table.num_classes)
            out[name] = {cn: int(v) for cn, v in zip(self.table.class_names, c)}
        return out

    def to_dict(self) -> dict:
        t = self.table
        return {
            "augengine_split": SPLIT_FILE_VERSION,
            "dataset": {"fingerprint": t.fingerprint, "format": t.format, "root": str(t.root), "n_images": len(t),
                        "class_names": t.class_names},
            "seed": self.seed,
            "fractions": list(self.fractions),
            "group_by": self.group_by,
            "straddling_lesions": self.straddling,
            "counts": self.counts(),
            "assignment": {i: SPLIT_NAMES[a] for i, a in zip(t.ids, self.assignment.tolist())},
        }

    def save(self, path: str | Path) -> Path:
        """Write the split file (JSON) atomically; returns its path."""
        from augengine.runs import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    def sha256(self) -> str:
        """Hash of the split (dataset fingerprint + assignment), for provenance records."""
        h = hashlib.sha256(self.table.fingerprint.encode())
        h.update(self.assignment.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"Split(train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, seed={self.seed}, "
                f"fractions={self.fractions}, group_by={self.group_by!r})")


def _straddling(table, assignment) -> int | None:
    if table.groups is None:
        return None
    seen: dict = defaultdict(set)
    for g, a in zip(table.groups.tolist(), assignment.tolist()):
        seen[g].add(a)
    return sum(len(v) > 1 for v in seen.values())


def split(table: "ImageTable", fractions: Sequence[float] | str = (0.8, 0.1, 0.1), group_by: str = "auto", seed: int = 0,
          *, size: int = 64) -> Split:
    """Stratified (and, where lesions are known, lesion-grouped) train/val/test split.

    Args:
        table: an :class:`~augengine.data.ImageTable`.
        fractions: (train, val, test), summing to 1.
        group_by: ``auto`` (by lesion when known), ``lesion`` (required) or ``none``.
        seed: the same seed gives the same split.
        size: image size of the returned sets.

    Returns:
        a :class:`Split`. With grouping off on data that knows lesions, a :class:`DataWarning`
        says how many lesions straddle splits (also in ``Split.straddling``).
    """
    from augengine.data.cache import DataWarning

    fr = parse_fractions(fractions)
    if group_by not in ("auto", "lesion", "none"):
        raise DataError(f"group_by: expected auto, lesion or none; got {group_by!r}")
    if group_by == "lesion" and table.groups is None:
        raise DataError(f"{table.root}: group_by lesion: the dataset ({table.format}) has no lesion ids; "
                        "use --group-by none (or auto)")
    grouped = table.groups is not None and group_by in ("auto", "lesion")
    rng = np.random.default_rng(seed)
    labels = table.labels
    k = table.num_classes
    counts = np.bincount(labels, minlength=k)
    targets = allocate(counts, fr, seed)
    assignment = np.full(len(table), -1, dtype=np.int8)
    if not grouped:
        for c in range(k):
            idx = np.flatnonzero(labels == c)
            idx = idx[rng.permutation(len(idx))]
            t, v, _ = targets[c]
            assignment[idx[:t]] = 0
            assignment[idx[t: t + v]] = 1
            assignment[idx[t + v:]] = 2
    else:
        members: dict = defaultdict(list)
        for i, g in enumerate(table.groups.tolist()):
            members[g].append(i)
        by_class: dict[int, list] = defaultdict(list)
        for g, rows in members.items():
            lab = Counter(labels[rows].tolist()).most_common()
            best = min(c for c, n in lab if n == lab[0][1])
            by_class[best].append(rows)
        have = np.zeros((k, 3), dtype=np.int64)
        frac = np.asarray(fr)
        for c in range(k):
            groups = by_class.get(c, [])
            order = rng.permutation(len(groups))
            groups = sorted((groups[j] for j in order), key=len, reverse=True)  # stable: random among equal sizes
            tgt = np.asarray(targets[c], dtype=np.float64)
            for rows in groups:
                deficit = tgt - have[c]
                # the split furthest below target (ties: larger fraction first, i.e. train)
                s = int(np.lexsort((-frac, -deficit))[0])
                assignment[rows] = s
                for r in rows:
                    have[labels[r], s] += 1
    result = Split(table, assignment, seed=seed, fractions=fr, group_by="lesion" if grouped else "none", size=size)
    if not grouped and table.groups is not None and result.straddling:
        warnings.warn(f"{table.root}: grouping is off; {result.straddling} of {table.num_groups} lesions have images "
                      "in more than one split (use --group-by lesion to avoid leakage)", DataWarning, stacklevel=2)
    return result


def load_split(path: str | Path, table: "ImageTable", *, size: int = 64) -> Split:
    """Read a split file written by :meth:`Split.save` for ``table``.

    Raises:
        DataError: the file is missing or malformed, or was made for another dataset
            (fingerprint mismatch), or does not assign every image of ``table``.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a JSON split file ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(d, dict) or d.get("augengine_split") != SPLIT_FILE_VERSION:
        raise DataError(f"{path}: field augengine_split is {d.get('augengine_split') if isinstance(d, dict) else None!r}; "
                        f"expected {SPLIT_FILE_VERSION} (a file written by 'augengine data split')")
    for key in ("dataset", "seed", "fractions", "group_by", "assignment"):
        if key not in d:
            raise DataError(f"{path}: field {key} missing; expected a file written by 'augengine data split'")
    fp = d["dataset"].get("fingerprint") if isinstance(d["dataset"], dict) else None
    if fp != table.fingerprint:
        raise DataError(f"{path}: field dataset.fingerprint is {str(fp)[:12]}…, expected {table.fingerprint[:12]}… "
                        f"(split made for another dataset: {d['dataset'].get('root')!r}, not {str(table.root)!r})")
    amap = d["assignment"]
    codes = {n: i for i, n in enumerate(SPLIT_NAMES)}
    try:
        assignment = np.array([codes[amap[i]] for i in table.ids], dtype=np.int8)
    except KeyError as e:
        raise DataError(f"{path}: field assignment lacks image {e.args[0]!r} or names an unknown split; "
                        "expected train/val/test for every image") from None
    return Split(table, assignment, seed=d["seed"], fractions=d["fractions"], group_by=d["group_by"], size=size)


def default_split(table, seed: int = 0, *, size: int = 64) -> Split:
    """The data's default split (80/10/10, lesion-grouped where known), made once and cached on disk."""
    from augengine.data.cache import cache_dir

    path = cache_dir() / "splits" / f"{table.format}-{table.fingerprint[:24]}-seed{int(seed)}.json"
    if path.exists():
        try:
            return load_split(path, table, size=size)
        except DataError:
            pass  # stale or damaged: remake
    s = split(table, (0.8, 0.1, 0.1), "auto", seed, size=size)
    try:
        s.save(path)
    except OSError:
        pass
    return s
