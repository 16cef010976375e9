"""External test sets named by path: every output stays directly inside --out, under a safe,
unique, readable name (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import augengine as ae
from augengine.errors import DataError, PluginError
from augengine.naming import is_safe_stem, set_label, set_names, slug, unique_slugs


def test_slug_and_set_label():
    assert slug("/data/ph2") == "data-ph2" and slug("../../../x") == "x" and slug("") == "set"
    assert slug("külső klinika") == "k-ls-klinika" and is_safe_stem(slug("a/../b"))
    assert set_label("/data/ph2/") == "ph2" and set_label("demo") == "demo" and set_label("sets/ph2.npz") == "ph2"
    for bad in ("..", ".", "a/b", "", "-x", ".hidden", "a b"):
        assert not is_safe_stem(bad), bad


def test_set_names_are_safe_unique_and_readable(tmp_path, monkeypatch):
    (tmp_path / "a" / "ham").mkdir(parents=True)
    (tmp_path / "b" / "ham").mkdir(parents=True)
    (tmp_path / "ph2").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    names = set_names([str(tmp_path / "ph2"), "ham", "../b/ham"])
    assert names[str(tmp_path / "ph2")] == "ph2"
    assert names["ham"] != names["../b/ham"] and all(n.startswith("ham-") for n in (names["ham"], names["../b/ham"]))
    assert all(is_safe_stem(n) for n in names.values())
    # stable: the same paths give the same names
    assert set_names([str(tmp_path / "ph2"), "ham", "../b/ham"]) == names
    with pytest.raises(DataError, match="are the same set"):
        set_names(["ham", str(tmp_path / "a" / "ham")])
    assert unique_slugs(["x", "x/"], keys=["k1", "k2"])["k1"] != unique_slugs(["x", "x/"], keys=["k1", "k2"])["k2"]


def test_benefit_file_names_from_path_like_keys_stay_inside_out(tmp_path):
    from augengine.testing import StubClassifier, tiny_imageset

    test = tiny_imageset(n_per_class=6, size=16, seed=0)
    clf = StubClassifier(test.class_names, image_size=16)
    ext = {"/data/ph2": tiny_imageset(n_per_class=4, size=16, seed=1),
           "../../../x": tiny_imageset(n_per_class=4, size=16, seed=2),
           "../../x": tiny_imageset(n_per_class=4, size=16, seed=3)}
    res = ae.create_evaluator("benefit", n_boot=100).evaluate(clf, test, external=ext)
    assert set(res.metrics["sets"]) == {"test", *(f"external:{k}" for k in ext)}  # readable names kept
    stems = [n for n in res.tables if n.startswith("summary_")]
    assert len(stems) == 4 and all(is_safe_stem(n) for n in (*res.tables, *res.figures))
    out = tmp_path / "deep" / "out"
    res.save(out)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parent == out for p in written) and len(written) == 2 * 4 + 4 + 1


def test_evaluation_save_refuses_a_path_as_a_name(tmp_path):
    bad = ae.Evaluation(metrics={}, tables={"summary_external_/data/ph2": "t"})
    with pytest.raises(PluginError, match="not a plain file name"):
        bad.save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _folder_set(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for cls in ("MEL", "NV"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / cls / f"{cls}{i}.png")
    return root


@pytest.fixture(scope="module")
def clf_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("clf") / "run"
    split = ae.split(ae.load_dataset("demo"), fractions=(0.8, 0.1, 0.1), group_by="lesion", seed=0)
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, batch_size=64, lr=1e-3,
                               precision="fp32", early_stopping_patience=None)
    clf.fit(split.train, run_dir=run, seed=0, progress=False)
    clf.save(run)
    return run


def test_cli_evaluate_external_paths_stay_inside_out(tmp_path, monkeypatch, clf_run):
    from augengine.cli import main

    _folder_set(tmp_path / "a" / "ham", 1)
    _folder_set(tmp_path / "b" / "ham", 2)
    _folder_set(tmp_path / "x", 3)
    nested = tmp_path / "w" / "n1" / "n2"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    args = ["evaluate", "benefit", "--classifier", str(clf_run), "--out", "o2", "-o", "n_boot=100",
            "--test-data", "../../../x", "--test-data", str(tmp_path / "a" / "ham"), "--test-data", "../../../b/ham"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    out = nested / "o2"
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents
               and not p.suffix == ".png" and clf_run not in p.parents]
    assert outside == []  # nothing written next to the data or above --out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert all("/" not in w for w in written)
    summaries = [w for w in written if w.startswith("summary_")]
    assert len(summaries) == 4 and "summary_external_x.txt" in summaries
    assert len([w for w in summaries if w.startswith("summary_external_ham-")]) == 2  # two sets, two names
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(m["external_sets"].values()) == {"../../../x", str(tmp_path / "a" / "ham"), "../../../b/ham"}
    assert {f"external:{k}" for k in m["external_sets"]} | {"test"} == set(m["sets"])
