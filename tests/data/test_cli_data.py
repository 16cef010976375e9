"""``augengine data inspect`` and ``augengine data split``."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from augengine.cli import main
from augengine.data.inspect import inspect_dataset

from data_helpers import HAM, make_folder_set, make_ham, needs_ham, small_ham_rows, write_image


def test_inspect_duplicates_across_classes(tmp_path):
    root = make_folder_set(tmp_path / "f", n=3)
    shutil.copy(root / "cats" / "cats_0.png", root / "dogs" / "copy_of_cat.png")
    shutil.copy(root / "dogs" / "dogs_1.png", root / "dogs" / "dogs_1b.png")
    write_image(root / "dogs" / "gray.png", 5, mode="L")
    rep = inspect_dataset(root, progress=False)
    kinds = [p["kind"] for p in rep["problems"]]
    assert sorted(kinds) == ["converted", "duplicate", "duplicate_across_classes"] and rep["usable"]
    across = next(p for p in rep["problems"] if p["kind"] == "duplicate_across_classes")["message"]
    assert "cats/cats_0.png (cats)" in across and "dogs/copy_of_cat.png (dogs)" in across
    r = CliRunner().invoke(main, ["data", "inspect", str(root), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["class_counts"] == {"cats": 3, "dogs": 6}
    r = CliRunner().invoke(main, ["data", "inspect", str(root), "--strict"])
    assert r.exit_code == 1 and "different classes" in r.output


def test_inspect_unusable_exits_nonzero(tmp_path):
    root = make_folder_set(tmp_path / "f", n=2)
    (root / "cats" / "cats_1.png").write_bytes(b"junk")
    (root / "dogs" / "dogs_0.png").write_bytes(b"")
    (root / "birds").mkdir()
    rep = inspect_dataset(root, progress=False)
    assert not rep["usable"]
    assert sorted(p["kind"] for p in rep["problems"]) == ["empty_class", "empty_file", "unreadable"]
    r = CliRunner().invoke(main, ["data", "inspect", str(root)])
    assert r.exit_code == 1 and "UNUSABLE" in r.output and "cats_1.png: not an image" in r.output
    r = CliRunner().invoke(main, ["data", "inspect", str(tmp_path / "missing")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "no such file or folder" in r.output


def test_split_command(tmp_path):
    root = make_ham(tmp_path / "h", small_ham_rows(10))
    out = tmp_path / "split.json"
    r = CliRunner().invoke(main, ["data", "split", str(root), "--out", str(out), "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert "no lesion is in two splits" in r.output
    d = json.loads(out.read_text())
    assert d["seed"] == 2 and d["group_by"] == "lesion" and len(d["assignment"]) == 70
    before = out.read_text()
    r = CliRunner().invoke(main, ["data", "split", str(root), "--out", str(out), "--group-by", "none"])
    assert r.exit_code == 2 and "exists already" in r.output and "--force" in r.output and "force=True" not in r.output
    assert out.read_text() == before  # an existing split file is kept
    r = CliRunner().invoke(main, ["data", "split", str(root), "--out", str(out), "--group-by", "none", "--force"])
    assert r.exit_code == 0 and "lesions have images in more than one split" in r.output
    r = CliRunner().invoke(main, ["data", "split", "demo", "--out", str(out), "--fractions", "0.8,0.1,0.2"])
    assert r.exit_code == 2 and "fractions: expected numbers summing to 1" in r.output


@needs_ham
def test_inspect_real_ham10000_counts():
    """The numbers the issue asks for (reads and hashes all 10,015 JPEGs once, no cache)."""
    rep = inspect_dataset(HAM, progress=False)
    assert rep["format"] == "ham10000" and rep["n_images"] == 10015 and rep["n_lesions"] == 7470
    assert rep["class_counts"] == {"MEL": 1113, "NV": 6705, "BCC": 514, "AK": 327, "BKL": 1099, "DF": 115, "VASC": 142}
    assert rep["source_labels"]["AK"] == ["akiec"] and rep["usable"]
    assert rep["sizes"] == {"200x150": 10015}
