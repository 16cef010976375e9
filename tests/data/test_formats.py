"""Loaders of public sets in their shipped layouts (ISIC 2018 Task 3, ISIC 2020, PH2) and any spreadsheet."""

from __future__ import annotations

import csv
import importlib.util
import warnings

import pytest

from augengine.data import DataWarning, detect_format, load_dataset, scan_dataset, split
from augengine.errors import ConfigError, DataError

from data_helpers import make_folder_set, make_ham, small_ham_rows, write_image
from layouts import ISIC2018_COLS, isic2020_rows, make_clinic_csv, make_isic2018, make_isic2020, make_ph2


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# -- ISIC 2018 Task 3 ----------------------------------------------------------------------
def test_isic2018_whole_folder(tmp_path):
    root = make_isic2018(tmp_path / "ISIC2018")
    assert detect_format(root) == "isic2018"
    t = load_dataset(root)
    assert t.format == "isic2018" and len(t) == 42
    assert t.class_names == ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"]
    assert t.class_counts() == {c: 6 for c in t.class_names}
    ak = [i for i in range(len(t)) if t.row(i)["class"] == "AK"]
    assert {t.raw_labels[i] for i in ak} == {"AKIEC"}
    assert set(t.sources) == {f"ISIC2018_Task3_{p}_Input" for p in ("Training", "Validation", "Test")}
    # 14 training images in 7 lesions of 2, the other 28 their own group
    assert t.num_groups == 7 + 28 and "LesionGroupings" in t.meta["groups_from"]
    x = t.image_set(size=8).images()
    assert x.shape == (42, 8, 8, 3)


def test_isic2018_one_part(tmp_path):
    root = make_isic2018(tmp_path / "t", parts=("Test",), csv_in_subfolder=True)
    for path in (root, root / "ISIC2018_Task3_Test_GroundTruth",
                 root / "ISIC2018_Task3_Test_GroundTruth" / "ISIC2018_Task3_Test_GroundTruth.csv"):
        t = load_dataset(path)
        assert t.format == "isic2018" and len(t) == 14 and t.groups is None and t.meta["parts"] == ["Test"]
    full = make_isic2018(tmp_path / "all")
    t = load_dataset(full, options={"part": "test,validation"})
    assert len(t) == 28 and t.meta["parts"] == ["Validation", "Test"]
    with pytest.raises(DataError, match="option part: expected one or more of Training, Validation, Test"):
        load_dataset(full, options={"part": "train"})
    with pytest.raises(DataError, match="format isic2018 takes the options part"):
        load_dataset(full, options={"labels": "binary"})


def test_isic2018_no_lesion_ids_is_reported(tmp_path):
    t = scan_dataset(make_isic2018(tmp_path / "t", parts=("Training",), groupings=False))
    assert t.groups is None and [p.kind for p in t.problems] == ["no_groups"]


def test_isic2018_bad_input(tmp_path):
    root = make_isic2018(tmp_path / "t", parts=("Test",))
    gt = root / "ISIC2018_Task3_Test_GroundTruth.csv"
    # missing image
    (root / "ISIC2018_Task3_Test_Input" / "ISIC_0000003.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "row 5: image 'ISIC_0000003'" in _one_line(e) and "ISIC2018_Task3_Test_Input" in str(e.value)
    write_image(root / "ISIC2018_Task3_Test_Input" / "ISIC_0000003.jpg", 3, size=(8, 8))
    # unknown label: a row with no 1.0
    text = gt.read_text().splitlines()
    bad = text[:3] + ["ISIC_0000002,0.0,0.0,0.0,0.0,0.0,0.0,0.0"] + text[4:]
    gt.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "row 4 (image ISIC_0000002): expected exactly one 1.0 among MEL,NV,BCC,AKIEC" in _one_line(e)
    # wrong header (ISIC 2019 names: AK instead of AKIEC)
    gt.write_text("\n".join(["image,MEL,NV,BCC,AK,BKL,DF,VASC"] + text[1:]) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "header must be image,MEL,NV,BCC,AKIEC,BKL,DF,VASC" in _one_line(e) and "found image,MEL,NV,BCC,AK," in str(e.value)
    # the images folder is missing
    gt.write_text("\n".join(text) + "\n")
    (root / "ISIC2018_Task3_Test_Input").rename(root / "elsewhere")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "expected the folder ISIC2018_Task3_Test_Input/" in _one_line(e)


# -- ISIC 2020 -----------------------------------------------------------------------------
def test_isic2020_diagnosis_classes(tmp_path):
    root = make_isic2020(tmp_path / "isic2020")
    assert detect_format(root) == "isic2020"
    t = load_dataset(root)
    assert t.format == "isic2020" and len(t) == 20
    assert t.class_names == ["MEL", "NV", "BKL", "UNK"]
    assert t.class_counts() == {"MEL": 5, "NV": 6, "BKL": 4, "UNK": 5}
    bkl = {t.raw_labels[i] for i in range(len(t)) if t.row(i)["class"] == "BKL"}
    assert bkl == {"seborrheic keratosis", "solar lentigo", "lentigo NOS", "lichenoid keratosis"}
    assert t.num_groups == 8 and t.meta["group_kind"] == "patient"
    assert [p.kind for p in t.problems] == ["unknown_diagnosis"] and "5 of 20 images" in t.problems[0].message
    drop = load_dataset(root, options={"unknown": "drop"})
    assert len(drop) == 15 and "UNK" not in drop.class_names and "left out" in drop.meta["notes"][0]
    binary = load_dataset(root, options={"labels": "binary"})
    assert binary.class_names == ["MEL", "benign"] and binary.class_counts() == {"MEL": 5, "benign": 15}
    assert binary.fingerprint != t.fingerprint


def test_isic2020_rare_classes_and_jpeg_train(tmp_path):
    rows = isic2020_rows() + [("ISIC_9100000", "IP_0000009", "atypical melanocytic proliferation", "0"),
                              ("ISIC_9100001", "IP_0000009", "cafe-au-lait macule", "0")]
    t = load_dataset(make_isic2020(tmp_path / "k", rows, image_dir="jpeg/train"))
    assert t.class_names == ["MEL", "NV", "BKL", "AMP", "CALM", "UNK"]
    assert set(t.sources) == {"jpeg/train"}


def test_isic2020_patient_never_in_two_splits(tmp_path):
    """IP_0000001 has nevus and melanoma images: the split keeps the patient whole."""
    rows = []
    for p in range(40):
        for j, (diag, tgt) in enumerate([("nevus", "0"), ("melanoma", "1") if p % 3 == 0 else ("nevus", "0"),
                                         ("unknown", "0")]):
            rows.append((f"ISIC_{9200000 + 3 * p + j:07d}", f"IP_{p:07d}", diag, tgt))
    t = load_dataset(make_isic2020(tmp_path / "p", rows))
    for seed in range(3):
        sp = split(t, (0.6, 0.2, 0.2), seed=seed)
        assert sp.group_by == "lesion" and sp.straddling == 0
        where = {}
        for g, a in zip(t.groups.tolist(), sp.assignment.tolist()):
            assert where.setdefault(g, a) == a
        assert len(set(where.values())) == 3  # patients do reach all three splits
    mixed = [i for i, g in enumerate(t.groups) if g == "IP_0000000"]
    assert {t.row(i)["class"] for i in mixed} == {"NV", "MEL", "UNK"}
    assert len({sp.assignment[i] for i in mixed}) == 1


def test_isic2020_bad_input(tmp_path):
    rows = isic2020_rows()
    rows[3] = (rows[3][0], rows[3][1], "blue nevus", "0")
    with pytest.raises(DataError) as e:
        load_dataset(make_isic2020(tmp_path / "a", rows))
    msg = _one_line(e)
    assert "train.csv row 5" in msg and "field diagnosis is 'blue nevus'" in msg and "'solar lentigo'" in msg
    root = make_isic2020(tmp_path / "b")
    (root / "train" / f"{rows[0][0]}.jpg").unlink()
    with pytest.raises(DataError, match=r"train.csv row 2: image_name 'ISIC_9000000': image file not found"):
        load_dataset(root)
    text = (root / "train.csv").read_text().replace("image_name,patient_id", "image,patient", 1)
    (root / "train.csv").write_text(text)
    with pytest.raises(DataError) as e:
        load_dataset(root, format="isic2020")
    assert "missing image_name, patient_id" in _one_line(e)
    with pytest.raises(DataError, match="option labels: expected diagnosis or binary"):
        load_dataset(make_isic2020(tmp_path / "c"), options={"labels": "target"})


def test_isic2020_train_csv_of_another_layout_is_not_isic2020(tmp_path):
    make_folder_set(tmp_path / "f")
    (tmp_path / "f" / "train.csv").write_text("file,label\ncats/cats_0.png,cats\n")
    assert detect_format(tmp_path / "f") == "folder"


# -- PH2 -----------------------------------------------------------------------------------
def test_ph2(tmp_path):
    root = make_ph2(tmp_path / "PH2Dataset")
    for path in (root, tmp_path, root / "PH2_dataset.txt"):
        assert detect_format(path) == "ph2"
    t = load_dataset(tmp_path)
    assert t.format == "ph2" and t.class_names == ["MEL", "NV"] and t.class_counts() == {"MEL": 3, "NV": 6}
    nv = {t.raw_labels[i] for i in range(len(t)) if t.row(i)["class"] == "NV"}
    assert nv == {"0 (common nevus)", "1 (atypical nevus)"}
    assert t.paths[0] == "PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp"
    assert t.image_set(size=8).images().shape == (9, 8, 8, 3)


def test_ph2_bad_input(tmp_path):
    root = make_ph2(tmp_path / "a", codes={"IMD002": "0", "IMD003": "3", "IMD004": "2"})
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "PH2_dataset.txt line 3 (case IMD003): field Clinical Diagnosis is '3'" in _one_line(e)
    root = make_ph2(tmp_path / "b")
    (root / "PH2 Dataset images" / "IMD004" / "IMD004_Dermoscopic_Image" / "IMD004.bmp").unlink()
    with pytest.raises(DataError, match="case IMD004: image file not found"):
        load_dataset(root)
    txt = root / "PH2_dataset.txt"
    txt.write_text(txt.read_text().replace("Clinical Diagnosis ||", "Diagnosis ||", 1))
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert "header must contain fields Name and Clinical Diagnosis" in _one_line(e)


@pytest.mark.skipif(importlib.util.find_spec("openpyxl") is not None, reason="openpyxl is installed")
def test_ph2_xlsx_without_openpyxl_says_so(tmp_path):
    root = make_ph2(tmp_path / "PH2Dataset")
    (root / "PH2_dataset.txt").unlink()
    (root / "PH2_dataset.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert "PH2_dataset.xlsx" in msg and "openpyxl" in msg and "PH2_dataset.txt" in msg


# -- any spreadsheet -----------------------------------------------------------------------
def test_spreadsheet(tmp_path):
    root = make_clinic_csv(tmp_path / "clinic")
    t = load_dataset(root, csv="export.csv", image_col="file", label_col="dx", group_col="patient")
    assert t.format == "csv" and t.class_names == ["MEL", "NV", "BCC"]
    assert t.class_counts() == {"MEL": 2, "NV": 3, "BCC": 1}
    assert t.paths == ["photos/a1.png", "photos/a2.png", "photos/2024/b1.png", "photos/2024/b2.png",
                       "photos/c1.png", "photos/c2.png"]
    assert t.groups.tolist() == ["P1", "P1", "P2", "P3", "photos/c1.png", "P4"]
    assert "mapped onto ISIC names" in t.meta["labels_from"]
    same = load_dataset(root / "export.csv", format="csv", image_col="file", label_col="dx", group_col="patient")
    assert same.fingerprint == t.fingerprint
    kept = load_dataset(root, csv="export.csv", image_col="file", label_col="dx", options={"labels": "as-written"})
    assert kept.class_names == ["Melanoma", "basal cell carcinoma", "melanoma", "nevus"] and kept.groups is None


def test_spreadsheet_own_labels_onehot_and_unlisted(tmp_path):
    for k, name in enumerate(("x1", "x2", "x3")):
        write_image(tmp_path / "img" / f"{name}.jpg", k, size=(8, 8))
    write_image(tmp_path / "img" / "extra.jpg", 9, size=(8, 8))
    (tmp_path / "own.csv").write_text("id\tgrade\nimg/x1.jpg\tlow\nimg/x2.jpg\thigh\nimg/x3.jpg\tlow\n")
    t = load_dataset(tmp_path / "own.csv", image_col="id", label_col="grade")
    assert t.class_names == ["high", "low"] and "kept as written" in t.meta["labels_from"]
    assert [p.kind for p in t.problems] == ["unlisted"] and "extra.jpg" in t.problems[0].message
    (tmp_path / "hot.csv").write_text("image,MEL,NV,AKIEC\nx1,1.0,0.0,0.0\nx2,0.0,0.0,1.0\nx3,0,1,0\n")
    t = load_dataset(tmp_path / "hot.csv", image_col="image", label_col="MEL,NV,AKIEC", root=tmp_path / "img")
    assert t.class_names == ["MEL", "NV", "AK"] and t.raw_labels == ["MEL", "AKIEC", "NV"]


def test_spreadsheet_bad_input(tmp_path):
    root = make_clinic_csv(tmp_path / "c", delimiter=",")
    csv_path = root / "export.csv"
    with pytest.raises(DataError) as e:
        load_dataset(root, csv="export.csv", image_col="filename", label_col="dx")
    msg = _one_line(e)
    assert "export.csv" in msg and "column 'filename' (image_col) not found" in msg and "columns present: file, dx, patient" in msg
    with pytest.raises(DataError, match="column 'diagnosis' \\(label_col\\) not found; columns present: file, dx"):
        load_dataset(root, csv="export.csv", image_col="file", label_col="diagnosis")
    with pytest.raises(DataError, match="format csv needs label_col"):
        load_dataset(root, csv="export.csv", image_col="file")
    (root / "photos" / "c1.png").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(root, csv="export.csv", image_col="file", label_col="dx")
    assert "export.csv row 6: file 'photos/c1.png': file not found" in _one_line(e)
    write_image(root / "photos" / "c1.png", 1, size=(8, 8), fmt="PNG")
    with open(csv_path, "a", newline="") as f:
        csv.writer(f).writerow(["photos/a1.png", "nevus", "P9"])
    with pytest.raises(DataError, match="row 8: image 'photos/a1.png' is listed twice \\(also row 2\\)"):
        load_dataset(root, csv="export.csv", image_col="file", label_col="dx")
    with pytest.raises(DataError, match="image_col: apply to format csv only"):
        load_dataset(root, format="folder", image_col="file")


def test_dataset_spec_forms(tmp_path):
    root = make_clinic_csv(tmp_path / "clinic")
    spec = {"path": str(root), "csv": "export.csv", "image_col": "file", "label_col": "dx"}
    t = load_dataset(spec)
    assert t.format == "csv" and len(t) == 6
    (tmp_path / "clinic.toml").write_text('path = "clinic"\ncsv = "clinic/export.csv"\nimage_col = "file"\n'
                                          'label_col = "dx"\ngroup_col = "patient"\n')
    t2 = load_dataset(tmp_path / "clinic.toml")
    assert t2.num_groups == 5 and t2.root == root.resolve()
    with pytest.raises(ConfigError, match="unknown config key 'label_column'"):
        load_dataset({"csv": "x.csv", "label_column": "dx"})
    i20 = make_isic2020(tmp_path / "i20")
    assert load_dataset({"path": str(i20), "options": {"labels": "binary"}}).class_names == ["MEL", "benign"]


# -- a likely misread: one class folder and a CSV beside it --------------------------------
def test_single_class_folder_with_csv_beside_warns(tmp_path):
    root = make_isic2018(tmp_path / "t", parts=("Test",))
    (root / "ISIC2018_Task3_Test_GroundTruth.csv").rename(root / "labels.csv")
    t = scan_dataset(root)
    assert t.format == "folder" and t.class_names == ["ISIC2018_Task3_Test_Input"]
    (p,) = t.problems
    assert p.kind == "csv_beside_folder" and p.severity == "warning"
    assert "labels.csv" in p.message and "names 14 of its 14 images (column image)" in p.message
    assert f"label_col={','.join(ISIC2018_COLS)}" in p.message and "--format csv --csv" in p.message
    with pytest.warns(DataWarning, match="labels.csv beside it names 14"):
        load_dataset(root)
    # following the advice loads the labels
    t2 = load_dataset(root, csv="labels.csv", image_col="image", label_col=",".join(ISIC2018_COLS),
                      root=root / "ISIC2018_Task3_Test_Input")
    assert t2.class_counts() == {c: 2 for c in ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"]}
    # pointing at the image folder itself: the error names the CSV too
    with pytest.raises(DataError, match="no class folders found.*labels.csv beside it names 14"):
        load_dataset(root / "ISIC2018_Task3_Test_Input")


def test_no_warning_without_a_matching_csv(tmp_path):
    root = make_folder_set(tmp_path / "f", classes=("only",), n=3)
    (root / "notes.csv").write_text("name,comment\nsomething_else.png,x\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = load_dataset(root)
    assert t.problems == []
    two = make_folder_set(tmp_path / "g", classes=("a", "b"), n=2)
    (two / "meta.csv").write_text("file\na_0\n")
    assert scan_dataset(two).problems == []


def test_folder_holding_two_layouts_says_which_was_not_read(tmp_path):
    root = make_ham(tmp_path / "ham", small_ham_rows(1))
    make_isic2018(root, parts=("Test",))
    t = scan_dataset(root)
    assert t.format == "ham10000"
    other = [p for p in t.problems if p.kind == "other_format"]
    assert len(other) == 1 and "also holds the files of format isic2018" in other[0].message and "format=isic2018" in other[0].message
    with pytest.warns(DataWarning, match="also holds the files of format isic2018"):
        load_dataset(root)
    assert load_dataset(root, format="isic2018").format == "isic2018"  # asked for: no warning about ham10000
