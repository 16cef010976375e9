"""Splits: Table 1 of the paper, lesion grouping, determinism, split files."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

import augengine as ae
from augengine.data import ISIC_CLASSES, DataWarning, allocate, default_split, load_dataset, load_split, scan_dataset, split
from augengine.errors import DataError

from data_helpers import HAM, make_ham, needs_ham, small_ham_rows

TOTALS = {"NV": 12875, "MEL": 4522, "BCC": 3323, "BKL": 2624, "AK": 867, "SCC": 628, "VASC": 253, "DF": 239}
TABLE1 = {  # train, val, test (Nik et al. 2020, Table 1)
    "NV": (10300, 1287, 1288), "MEL": (3618, 452, 452), "BCC": (2658, 332, 333), "BKL": (2099, 262, 263),
    "AK": (694, 87, 86), "SCC": (502, 63, 63), "VASC": (202, 26, 25), "DF": (191, 24, 24),
}


def test_isic2019_csv_reproduces_table1(tmp_path):
    """A generated ISIC 2019 ground-truth CSV with the real class totals, split with grouping off."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.concatenate([np.full(n, ISIC_CLASSES.index(c)) for c, n in TOTALS.items()]))
    with open(tmp_path / "ISIC_2019_Training_GroundTruth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *ISIC_CLASSES, "UNK"])
        for i, lab in enumerate(labels):
            w.writerow([f"ISIC_{i:07d}"] + ["1.0" if j == lab else "0.0" for j in range(9)])
    table = scan_dataset(tmp_path)  # listing only: the images themselves are not needed for a split
    assert table.format == "isic2019" and len(table) == 25331
    for seed in (0, 1, 2):
        counts = split(table, (0.8, 0.1, 0.1), group_by="none", seed=seed).counts()
        for c, (tr, va, te) in TABLE1.items():
            got = (counts["train"][c], counts["val"][c], counts["test"][c])
            assert all(abs(g - e) <= 1 for g, e in zip(got, (tr, va, te))), (c, got)
        assert sum(counts["train"].values()) == 20264 and sum(counts["test"].values()) == 2534


def test_allocate_exact_and_tiny():
    a = allocate([TOTALS[c] for c in TABLE1], (0.8, 0.1, 0.1), seed=0)
    assert a.tolist() == [list(v) for v in TABLE1.values()]
    b = allocate([1, 2, 3], (0.8, 0.1, 0.1))
    assert (b.sum(1) == [1, 2, 3]).all() and (b >= 0).all()


@needs_ham
def test_ham_lesion_grouped_split_has_no_shared_lesion():
    table = load_dataset(HAM)
    sp = split(table, group_by="auto", seed=0)
    assert sp.group_by == "lesion" and sp.straddling == 0
    sets = [set(table.groups[sp.indices(n)].tolist()) for n in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    counts = sp.counts()
    for c, n in table.class_counts().items():  # as close to 80/10/10 as lesions allow
        assert abs(counts["train"][c] - 0.8 * n) <= max(3, 0.02 * n), (c, counts["train"][c], n)
        assert abs(counts["test"][c] - 0.1 * n) <= max(3, 0.02 * n)
    with pytest.warns(DataWarning, match=r"\d+ of 7470 lesions have images in more than one split"):
        ungrouped = split(table, group_by="none", seed=0)
    assert ungrouped.straddling > 100


def test_split_deterministic_and_roundtrip(tmp_path):
    table = load_dataset(make_ham(tmp_path / "h", small_ham_rows(6)))
    a, b, c = (split(table, seed=s) for s in (0, 0, 1))
    assert (a.assignment == b.assignment).all() and not (a.assignment == c.assignment).all()
    assert a.straddling == 0 and len(a.train) + len(a.val) + len(a.test) == len(table)
    path = a.save(tmp_path / "split.json")
    d = json.loads(path.read_text())
    assert d["dataset"]["fingerprint"] == table.fingerprint and d["seed"] == 0 and d["fractions"] == [0.8, 0.1, 0.1]
    assert set(d["assignment"]) == set(table.ids)
    again = load_split(path, table)
    assert (again.assignment == a.assignment).all() and again.train.ids == a.train.ids
    assert a.train.images().shape == (len(a.train), 64, 64, 3)
    # default split: made once, then read back from the cache folder
    d1 = default_split(table, seed=3)
    d2 = default_split(table, seed=3)
    assert (d1.assignment == d2.assignment).all()


def test_split_file_for_another_dataset(tmp_path):
    t1 = load_dataset(make_ham(tmp_path / "h1", small_ham_rows(2)))
    t2 = load_dataset(make_ham(tmp_path / "h2", small_ham_rows(3)))
    path = split(t1).save(tmp_path / "s.json")
    with pytest.raises(DataError) as e:
        load_split(path, t2)
    msg = str(e.value)
    assert "\n" not in msg and "s.json" in msg and "dataset.fingerprint" in msg and "another dataset" in msg
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json: not a JSON split file"):
        load_split(tmp_path / "bad.json", t1)


@pytest.mark.parametrize("fractions, expect", [((0.8, 0.1, 0.2), "summing to 1"), ((0.5, 0.5), "three numbers"),
                                               ("0.8,x,0.1", "comma-separated"), ((0.0, 0.5, 0.5), "train > 0")])
def test_bad_fractions(fractions, expect):
    table = ae.load_dataset("demo")
    with pytest.raises(DataError, match=expect) as e:
        split(table, fractions)
    assert str(e.value).startswith("fractions:")


def test_group_by_lesion_needs_lesions(tmp_path):
    from data_helpers import make_folder_set

    t = load_dataset(make_folder_set(tmp_path / "f", n=5))
    with pytest.raises(DataError, match="has no lesion ids"):
        split(t, group_by="lesion")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sp = split(t, (0.6, 0.2, 0.2), group_by="auto", seed=0)
    assert sp.group_by == "none" and sp.straddling is None
    assert sp.counts()["train"] == {"cats": 3, "dogs": 3}
