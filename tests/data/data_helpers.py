"""Helpers for the data-layer tests: tiny on-disk datasets."""


from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
HAM = Path(os.environ.get("AUGENGINE_HAM10000", REPO.parent / "shared" / "data" / "ham10000"))

needs_ham = pytest.mark.skipif(not (HAM / "HAM10000_metadata.csv").exists(), reason=f"HAM10000 not found at {HAM}")


def write_image(path: Path, seed: int, size=(20, 14), mode="RGB", fmt=None) -> Path:
    """A small random image file (seeded)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def make_ham(root: Path, rows: list[tuple[str, str, str]], folder: str = "images") -> Path:
    """HAM10000 layout: rows of (lesion_id, image_id, dx); images written under ``folder``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        for k, (les, img, dx) in enumerate(rows):
            w.writerow([les, img, dx, "histo", "50.0", "male", "back"])
            write_image(root / folder / f"{img}.jpg", k)
    return root


def small_ham_rows(n_per_class: int = 3) -> list[tuple[str, str, str]]:
    rows = []
    k = 0
    for dx in ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"):
        for j in range(n_per_class):
            rows.append((f"HAM_{k // 2:07d}", f"ISIC_{k:07d}", dx))  # lesions of 1-2 images, one class each
            k += 1
    return rows


def make_folder_set(root: Path, classes=("cats", "dogs"), n=3) -> Path:
    for ci, c in enumerate(classes):
        for j in range(n):
            write_image(root / c / f"{c}_{j}.png", 100 * ci + j, fmt="PNG")
    return root
