"""``data inspect`` on every format: mappings stated, problems summarised by kind, totals never dropped;
the --format/--csv/... options on commands that take --data."""

from __future__ import annotations

import json
import shutil

import click
from click.testing import CliRunner

from augengine.cli import main
from augengine.cli.common import data_options, load_data_split
from augengine.data.inspect import format_report, inspect_dataset, summarize_problems

from data_helpers import make_folder_set, write_image
from layouts import make_clinic_csv, make_isic2018, make_isic2020, make_ph2


def test_inspect_states_every_mapping(tmp_path):
    make_isic2018(tmp_path / "i18", parts=("Test",))
    rep = inspect_dataset(tmp_path / "i18", progress=False)
    assert {"from": "AKIEC", "to": "AK", "images": 2} in rep["label_mapping"]
    assert {"from": "MEL", "to": "MEL", "images": 2} in rep["label_mapping"]
    assert rep["labels_from"].startswith("one-hot columns MEL,NV,BCC,AKIEC") and rep["usable"]
    text = format_report(rep)
    assert "  AK          2   ← AKIEC\n" in text and "labels    one-hot columns" in text

    rep = inspect_dataset(make_isic2020(tmp_path / "i20"), progress=False)
    assert rep["group_kind"] == "patient" and rep["n_lesions"] == 8
    bkl = {m["from"] for m in rep["label_mapping"] if m["to"] == "BKL"}
    assert bkl == {"seborrheic keratosis", "solar lentigo", "lentigo NOS", "lichenoid keratosis"}
    text = format_report(rep)
    assert "patients  8" in text and "UNK" in text and "1 note on diagnosis 'unknown'" in text

    rep = inspect_dataset(make_ph2(tmp_path / "ph2"), progress=False)
    assert {(m["from"], m["to"]) for m in rep["label_mapping"]} == {
        ("0 (common nevus)", "NV"), ("1 (atypical nevus)", "NV"), ("2 (melanoma)", "MEL")}
    assert "1 atypical nevus → NV" in rep["labels_from"] and rep["modes"] == {"RGB": 9}

    rep = inspect_dataset(make_clinic_csv(tmp_path / "c"), csv="export.csv", image_col="file", label_col="dx",
                          group_col="patient", progress=False)
    assert rep["format"] == "csv" and rep["group_kind"] == "group" and rep["n_lesions"] == 5
    assert {"from": "basal cell carcinoma", "to": "BCC", "images": 1} in rep["label_mapping"]
    assert "groups    5" in format_report(rep)


def test_problems_summarised_by_kind_and_totals_kept(tmp_path):
    root = make_folder_set(tmp_path / "f", n=3)
    shutil.copy(root / "cats" / "cats_0.png", root / "dogs" / "copy_of_cat.png")
    shutil.copy(root / "cats" / "cats_1.png", root / "dogs" / "copy_of_cat_1.png")
    shutil.copy(root / "dogs" / "dogs_1.png", root / "dogs" / "dogs_1b.png")
    (root / "dogs" / "broken.png").write_bytes(b"junk")
    write_image(root / "dogs" / "gray.png", 5, mode="L")
    rep = inspect_dataset(root, progress=False)
    summary = {s["kind"]: s for s in rep["problem_summary"]}
    assert summary["duplicate"]["text"] == "3 duplicate groups (byte-identical files): 2 across classes, 1 within a class"
    assert summary["unreadable"]["severity"] == "error" and summary["unreadable"]["text"] == "1 unreadable file"
    assert rep["problem_summary"][0]["severity"] == "error"  # errors first
    assert sum(s["count"] for s in rep["problem_summary"]) == len(rep["problems"]) == 5
    text = format_report(rep, max_problems=2)
    lines = text.splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("problems")))
    assert lines[start] == "problems  1 errors, 4 warnings"
    assert "3 duplicate groups" in lines[start + 1] + lines[start + 2] + lines[start + 3]
    assert "first 2 of 5 problems" in text and "… 3 more" in text and "totals above" in text
    assert summarize_problems([]) == []


def test_cli_inspect_and_split_take_format_options(tmp_path):
    make_isic2020(tmp_path / "i20")
    r = CliRunner().invoke(main, ["data", "inspect", str(tmp_path / "i20"), "-o", "labels=binary", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["class_counts"] == {"MEL": 5, "benign": 15} and rep["labels_from"].startswith("column target")
    root = make_clinic_csv(tmp_path / "c")
    r = CliRunner().invoke(main, ["data", "inspect", str(root), "--csv", "export.csv", "--image-col", "file",
                                  "--label-col", "diagnosis"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "column 'diagnosis' (label_col) not found; columns present: file, dx, patient" in r.output
    out = tmp_path / "split.json"
    r = CliRunner().invoke(main, ["data", "split", "--csv", str(root / "export.csv"), "--image-col", "file",
                                  "--label-col", "dx", "--group-col", "patient", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["dataset"]["format"] == "csv" and d["group_by"] == "lesion" and len(d["assignment"]) == 6
    r = CliRunner().invoke(main, ["data", "inspect", str(root), "-o", "nonsense"])
    assert r.exit_code == 2 and "expected KEY=VALUE" in r.output


def test_data_option_plumbing_for_commands_with_data(tmp_path):
    """Every command with --data (fit, filter, evaluate) reads it through data_options + load_data_split."""
    seen = {}

    @click.command()
    @data_options
    def cmd(data, split_path, split_seed):
        table, sp = load_data_split(data, split_path, split_seed)
        seen["table"], seen["split"] = table, sp

    root = make_clinic_csv(tmp_path / "c")
    r = CliRunner().invoke(cmd, ["--data", str(root), "--csv", "export.csv", "--image-col", "file", "--label-col", "dx",
                                 "--group-col", "patient"])
    assert r.exit_code == 0, r.output
    assert seen["table"].format == "csv" and seen["table"].num_groups == 5
    make_isic2020(tmp_path / "i20")
    r = CliRunner().invoke(cmd, ["--data", str(tmp_path / "i20"), "--data-option", "unknown=drop"])
    assert r.exit_code == 0, r.output
    assert "UNK" not in seen["table"].class_names and seen["split"].straddling == 0
