"""Loaders: HAM10000, ISIC 2019, class folders, MedMNIST .npz, the demo set; bad input."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

import augengine as ae
from augengine.data import ISIC_CLASSES, ImageTable, detect_format, load_dataset, scan_dataset
from augengine.errors import DataError

from data_helpers import HAM, make_folder_set, make_ham, needs_ham, small_ham_rows, write_image


@needs_ham
def test_real_ham10000_listing():
    t = load_dataset(HAM)
    assert t.format == "ham10000" and len(t) == 10015
    raw = Counter(t.raw_labels)
    assert raw == {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}
    assert t.class_counts() == {"MEL": 1113, "NV": 6705, "BCC": 514, "AK": 327, "BKL": 1099, "DF": 115, "VASC": 142}
    assert t.num_groups == 7470
    assert t.class_names == [c for c in ISIC_CLASSES if c != "SCC"]


def test_demo_set_is_default_and_small():
    t = load_dataset()
    assert t.format == "demo" and load_dataset("demo").fingerprint == t.fingerprint
    assert t.root.stat().st_size < 6e6
    counts = t.class_counts()
    assert max(counts.values()) <= 250 and min(counts.values()) > 0
    assert t.class_names == ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"]
    # whole lesions only, one class per lesion
    by_lesion = {}
    for g, lab in zip(t.groups, t.labels):
        assert by_lesion.setdefault(g, lab) == lab
    x = t.image_set(np.arange(10), size=32).images()
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.uint8 and x.std() > 10
    assert "CC BY-NC-SA 4.0" in (t.root.parent / "LICENSE").read_text()
    from augengine.datasets import describe_demo

    assert "doi:10.1038/sdata.2018.161" in describe_demo().replace("https://doi.org/", "doi:")


def test_ham_layout_and_parts(tmp_path):
    rows = small_ham_rows()
    root = make_ham(tmp_path / "ham", rows[:10], folder="HAM10000_images_part_1")
    make_ham(tmp_path / "tmp2", rows[10:], folder="x")  # write the remaining images, then move them to part_2
    (root / "HAM10000_images_part_2").mkdir()
    for p in (tmp_path / "tmp2" / "x").iterdir():
        p.rename(root / "HAM10000_images_part_2" / p.name)
    with open(root / "HAM10000_metadata.csv", "a", newline="") as f:
        csv.writer(f).writerows([[*r, "histo", "1", "m", "b"] for r in rows[10:]])
    t = load_dataset(root)
    assert len(t) == 21 and set(t.sources) == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert t.row(0)["class"] == "MEL" and t.row(9)["raw_label"] == "akiec" and t.row(9)["class"] == "AK"
    assert t.groups[0] == t.groups[1] != t.groups[2]


def _isic(root, rows, header=None, meta=None):
    root.mkdir(parents=True, exist_ok=True)
    header = header or ["image", *ISIC_CLASSES, "UNK"]
    with open(root / "ISIC_2019_Training_GroundTruth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for name, onehot in rows:
            w.writerow([name, *onehot])
            write_image(root / "ISIC_2019_Training_Input" / f"{name}.jpg", int(name.split("_")[1]))
    if meta:
        with open(root / "ISIC_2019_Training_Metadata.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
            w.writerows([[i, 50, "back", l, "male"] for i, l in meta])
    return root


def _onehot(k, n=9):
    return ["1.0" if j == k else "0.0" for j in range(n)]


def test_isic2019_with_metadata(tmp_path):
    rows = [(f"ISIC_{i:07d}", _onehot(i % 8)) for i in range(16)]
    meta = [(f"ISIC_{i:07d}", f"BCN_{i // 2:07d}" if i < 12 else "") for i in range(16)]
    t = load_dataset(_isic(tmp_path / "isic", rows, meta=meta))
    assert t.format == "isic2019" and t.class_names == ISIC_CLASSES
    assert t.class_counts() == {c: 2 for c in ISIC_CLASSES}
    assert t.num_groups == 6 + 4  # images without lesion id are their own group
    t2 = load_dataset(_isic(tmp_path / "isic2", rows))
    assert t2.groups is None


def test_class_folders_and_medmnist(tmp_path):
    t = load_dataset(make_folder_set(tmp_path / "f", classes=("b_dogs", "a_cats")))
    assert t.format == "folder" and t.class_names == ["a_cats", "b_dogs"] and len(t) == 6
    assert t.ids[0] == "a_cats/a_cats_0.png" and t.groups is None
    rng = np.random.default_rng(0)
    p = tmp_path / "dermamnist.npz"
    np.savez(p, train_images=rng.integers(0, 255, (14, 28, 28, 3), dtype=np.uint8),
             train_labels=np.arange(14).reshape(-1, 1) % 7,
             test_images=rng.integers(0, 255, (7, 28, 28, 3), dtype=np.uint8), test_labels=np.arange(7).reshape(-1, 1))
    m = load_dataset(p)
    assert m.format == "medmnist" and len(m) == 21 and m.class_names[4] == "MEL"
    assert m.image_set(size=16).images().shape == (21, 16, 16, 3)
    assert detect_format(tmp_path / "f") == "folder" and detect_format(p) == "medmnist"


# -- bad input: one line naming file, field, expectation ---------------------------------
def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "nope")
    assert "nope" in _one_line(e) and "no such file or folder" in str(e.value)


def test_csv_wrong_header(tmp_path):
    root = make_ham(tmp_path / "h", small_ham_rows(1))
    (root / "HAM10000_metadata.csv").write_text("lesion,image,diagnosis\nHAM_1,ISIC_0000000,mel\n")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert "HAM10000_metadata.csv" in msg and "lesion_id" in msg and "header" in msg
    isic = _isic(tmp_path / "i", [("ISIC_1", _onehot(0))], header=["image", "MEL", "NV"])
    with pytest.raises(DataError, match="header must be image,MEL,NV"):
        load_dataset(isic)


def test_label_outside_class_space(tmp_path):
    rows = small_ham_rows(1)
    rows[2] = (rows[2][0], rows[2][1], "scc")
    with pytest.raises(DataError) as e:
        load_dataset(make_ham(tmp_path / "h", rows))
    assert "row 4" in _one_line(e) and "field dx is 'scc'" in str(e.value)
    with pytest.raises(DataError, match="UNK is outside the class space"):
        load_dataset(_isic(tmp_path / "i", [("ISIC_1", _onehot(8))]))
    p = tmp_path / "x.npz"
    np.savez(p, train_images=np.zeros((2, 8, 8, 3), np.uint8), train_labels=np.array([0, 9]),
             class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"train_labels\[1\] is 9; expected a label in 0..1"):
        load_dataset(p)


@pytest.mark.parametrize("onehot, found", [(["0.0"] * 9, "found 0"), (_onehot(1)[:3] + ["1.0"] + ["0.0"] * 5, "found 2")])
def test_onehot_rows(tmp_path, onehot, found):
    root = _isic(tmp_path / "i", [("ISIC_0", _onehot(0)), ("ISIC_1", onehot)])
    with pytest.raises(DataError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert "ISIC_2019_Training_GroundTruth.csv row 3" in msg and "exactly one 1.0" in msg and found in msg


def test_missing_and_empty_image_files(tmp_path):
    rows = small_ham_rows(1)
    root = make_ham(tmp_path / "h", rows)
    (root / "images" / "ISIC_0000002.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "image_id 'ISIC_0000002'" in _one_line(e) and "not found" in str(e.value)
    write_image(root / "images" / "ISIC_0000002.jpg", 0)
    (root / "images" / "ISIC_0000003.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"ISIC_0000003.jpg: empty file \(0 bytes\)"):
        load_dataset(root)
    # an extra file is only a warning
    write_image(root / "images" / "ISIC_0000003.jpg", 3)
    write_image(root / "images" / "extra.jpg", 9)
    t = load_dataset(root)
    assert [p.kind for p in t.problems] == ["unlisted"]


def test_empty_class(tmp_path):
    root = make_folder_set(tmp_path / "f")
    (root / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "class 'empty' holds no images" in _one_line(e)
    t = scan_dataset(root)
    assert [p.kind for p in t.problems] == ["empty_class"]


def test_table_checks_columns():
    with pytest.raises(DataError, match="image id 'a' appears more than once"):
        ImageTable(root=".", format="folder", class_names=["x"], labels=[0, 0], paths=["a", "b"], ids=["a", "a"])
    assert ae.load_dataset is load_dataset
