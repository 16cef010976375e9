"""Build the built-in demo set from HAM10000: ``python -m augengine.datasets.build_demo [HAM_PATH]``.

Selection (deterministic, seed 0): per class, whole lesions in a seeded random order are added
while the class stays at most ``--per-class`` (250) images; classes with fewer images are kept
whole (VASC, DF). Images are resized to 64×64 (bicubic, squashed like the decoded cache's default)
and stored as JPEG (quality 92, no chroma subsampling) in one ``.npz`` with labels, lesion ids,
image ids and the original ``dx`` codes. ``HAM_PATH`` defaults to ``$AUGENGINE_HAM10000`` or
``../shared/data/ham10000`` relative to the repository.
"""

from __future__ import annotations

import argparse
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from augengine.data.cache import decode_image
from augengine.data.table import demo_path, load_dataset


def default_ham_path() -> Path:
    env = os.environ.get("AUGENGINE_HAM10000")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ham10000"


def select(table, per_class: int = 250, seed: int = 0) -> np.ndarray:
    """Row indices of the demo subset: whole lesions, at most ``per_class`` images per class."""
    rng = np.random.default_rng(seed)
    lesions: dict = defaultdict(list)
    for i, g in enumerate(table.groups.tolist()):
        lesions[g].append(i)
    chosen = []
    for c in range(table.num_classes):
        groups = sorted((g for g, rows in lesions.items() if table.labels[rows[0]] == c))
        total = sum(len(lesions[g]) for g in groups)
        if total <= per_class:
            chosen += [r for g in groups for r in lesions[g]]
            continue
        n = 0
        for j in rng.permutation(len(groups)):
            rows = lesions[groups[j]]
            if n + len(rows) <= per_class:
                chosen += rows
                n += len(rows)
            if n == per_class:
                break
    return np.array(sorted(chosen), dtype=np.int64)


def build(ham: Path, out: Path, per_class: int = 250, size: int = 64, quality: int = 92, seed: int = 0) -> Path:
    table = load_dataset(ham, format="ham10000")
    idx = select(table, per_class, seed)
    blobs = []
    for i in idx:
        arr, _, _, _ = decode_image(table.source(i), size, "bicubic", "resize")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality, subsampling=0, optimize=True)
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, jpeg=np.concatenate(blobs), offsets=offsets, labels=table.labels[idx],
             class_names=np.array(table.class_names), image_ids=np.array([table.ids[i] for i in idx]),
             lesion_ids=np.array([table.groups[i] for i in idx]), dx=np.array([table.raw_labels[i] for i in idx]),
             image_size=np.int64(size))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ham", nargs="?", type=Path, default=None, help="HAM10000 folder")
    ap.add_argument("--out", type=Path, default=demo_path())
    ap.add_argument("--per-class", type=int, default=250)
    ap.add_argument("--quality", type=int, default=92)
    args = ap.parse_args(argv)
    out = build(args.ham or default_ham_path(), args.out, per_class=args.per_class, quality=args.quality)
    t = load_dataset(out, format="demo")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(t)} images, {t.num_groups} lesions, {t.class_counts()}")


if __name__ == "__main__":
    main()
