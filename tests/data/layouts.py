"""Tiny generated copies of public dataset layouts (real file, folder and column names; 8×8 images)."""

from __future__ import annotations

import csv
from pathlib import Path

from data_helpers import write_image

ISIC2018_COLS = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def _w(path: Path, header, rows, delimiter=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def make_isic2018(root: Path, parts=("Training", "Validation", "Test"), n_per_class=2, groupings=True,
                  csv_in_subfolder=False) -> Path:
    """ISIC 2018 Task 3: <Part>_GroundTruth.csv (one-hot floats) beside <Part>_Input/ISIC_*.jpg."""
    k = 0
    for part in parts:
        rows = []
        for c in range(len(ISIC2018_COLS)):
            for _ in range(n_per_class):
                name = f"ISIC_{k:07d}"
                rows.append([name, *("1.0" if j == c else "0.0" for j in range(len(ISIC2018_COLS)))])
                write_image(root / f"ISIC2018_Task3_{part}_Input" / f"{name}.jpg", k, size=(8, 8))
                k += 1
        folder = root / f"ISIC2018_Task3_{part}_GroundTruth" if csv_in_subfolder else root
        _w(folder / f"ISIC2018_Task3_{part}_GroundTruth.csv", ["image", *ISIC2018_COLS], rows)
        if part == "Training" and groupings:
            _w(folder / "ISIC2018_Task3_Training_LesionGroupings.csv", ["image", "lesion_id", "diagnosis_confirm_type"],
               [[r[0], f"HAM_{i // 2:07d}", "histopathology"] for i, r in enumerate(rows)])
    return root


def make_isic2020(root: Path, rows=None, image_dir="train", csv_name="train.csv") -> Path:
    """ISIC 2020: train.csv (Kaggle columns) + train/ (or jpeg/train/). rows: (image, patient, diagnosis, target)."""
    if rows is None:
        rows = isic2020_rows()
    header = ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge", "diagnosis",
              "benign_malignant", "target"]
    out = []
    for k, (img, pat, diag, target) in enumerate(rows):
        out.append([img, pat, "male", "45.0", "torso", diag, "malignant" if target == "1" else "benign", target])
        write_image(root / image_dir / f"{img}.jpg", 500 + k, size=(8, 8))
    _w(root / csv_name, header, out)
    return root


def isic2020_rows():
    """8 patients; IP_0000001 has both nevus and melanoma images; 'unknown' and a solar lentigo too."""
    rows = []
    k = 0
    plan = {
        "IP_0000001": [("nevus", "0"), ("nevus", "0"), ("melanoma", "1")],
        "IP_0000002": [("melanoma", "1"), ("melanoma", "1")],
        "IP_0000003": [("nevus", "0"), ("unknown", "0"), ("unknown", "0")],
        "IP_0000004": [("unknown", "0"), ("seborrheic keratosis", "0")],
        "IP_0000005": [("nevus", "0"), ("solar lentigo", "0")],
        "IP_0000006": [("melanoma", "1"), ("unknown", "0")],
        "IP_0000007": [("nevus", "0"), ("lentigo NOS", "0"), ("unknown", "0")],
        "IP_0000008": [("nevus", "0"), ("melanoma", "1"), ("lichenoid keratosis", "0")],
    }
    for pat, items in plan.items():
        for diag, t in items:
            rows.append((f"ISIC_{9000000 + k:07d}", pat, diag, t))
            k += 1
    return rows


PH2_HEADER = ("||   Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry || Pigment Network || "
              "Dots/Globules || Streaks || Regression Areas || Blue-Whitish Veil || White | Red | Light-Brown | "
              "Dark-Brown | Blue-Gray | Black ||")


def make_ph2(root: Path, codes=None) -> Path:
    """PH2: PH2_dataset.txt (||-separated, legend below) + PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp."""
    codes = codes or {f"IMD{k:03d}": str(k % 3) for k in (2, 3, 4, 6, 7, 8, 9, 10, 11)}
    lines = [PH2_HEADER]
    for k, (name, code) in enumerate(codes.items()):
        histo = "Melanoma" if code == "2" else ""
        lines.append(f"|| {name}     || {histo:<22} ||          {code}         ||     0     ||       T        "
                     "||       A      ||    A    ||        A        ||         A        ||  X |   |  X |   |   |   ||")
        write_image(root / "PH2 Dataset images" / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp", 900 + k,
                    size=(8, 8), fmt="BMP")
        write_image(root / "PH2 Dataset images" / name / f"{name}_lesion" / f"{name}_lesion.bmp", 950 + k,
                    size=(8, 8), fmt="BMP")
    lines += ["", "", "Legends:", "", "Clinical Diagnosis:", "  0 - Common Nevus;", "  1 - Atypical Nevus;",
              "  2 - Melanoma."]
    root.mkdir(parents=True, exist_ok=True)
    (root / "PH2_dataset.txt").write_text("\n".join(lines) + "\n")
    return root


def make_clinic_csv(root: Path, delimiter=";") -> Path:
    """A clinic's export: export.csv (file;dx;patient) with images in photos/ and photos/2024/."""
    rows = []
    for k, (name, dx, pat) in enumerate([("photos/a1.png", "melanoma", "P1"), ("photos/a2", "nevus", "P1"),
                                         ("photos/2024/b1.png", "nevus", "P2"), ("b2.png", "Melanoma", "P3"),
                                         ("photos/c1.png", "nevus", ""), ("photos/c2.png", "basal cell carcinoma", "P4")]):
        fn = name if name.endswith(".png") else name + ".png"
        if "/" not in fn:
            fn = f"photos/2024/{fn}"
        write_image(root / fn, 700 + k, size=(8, 8), fmt="PNG")
        rows.append([name, dx, pat])
    _w(root / "export.csv", ["file", "dx", "patient"], rows, delimiter=delimiter)
    return root
