"""The bench's in- vs out-of-distribution view (issue 14): dataset spec tables as bench data and test
sets, their names, ``bench --csv …``, and each arm's verdict on the test split beside an external
clinic set in ``verdicts.txt`` and ``report.html`` (agreement in sign, confusion matrices, the
share of the set put into classes it does not contain)."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import augengine as ae
from augengine.bench.config import load_bench_config, validate_bench_config
from augengine.bench.data import default_loader
from augengine.bench.distribution import (ABSENT_SHARE_WARN, absent_class_share, agreement_lines, confusion_summary,
                                          primary_estimates, shift_lines, sign_agreement, view_lines)
from augengine.errors import ConfigError, DataError
from augengine.naming import dataset_names
from augengine.testing import tiny_imageset

import benchkit  # noqa: E402  (tests/bench on sys.path via conftest)


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    if not ae.get_plugin_manager().is_registered(benchkit):
        ae.register_plugin(benchkit)
    yield


# ---------------------------------------------------------------------------------------------
# the judgements
# ---------------------------------------------------------------------------------------------
def d(v, lo, hi):
    return {"value": v, "ci": [lo, hi]}


def test_sign_agreement_phrases():
    ok, text = sign_agreement([("test", d(0.03, 0.01, 0.05)), ("clinic2", d(-0.01, -0.04, 0.02))])
    assert ok is False and text == "verdicts disagree in sign — the benefit on test does not carry to clinic2"
    ok, text = sign_agreement([("test", d(0.03, 0.01, 0.05)), ("clinic2", d(0.02, -0.01, 0.05))])
    assert ok is True and text == "verdicts agree in sign: a gain on every set (CI excludes 0 on test only)"
    ok, text = sign_agreement([("test", d(-0.02, -0.03, -0.01)), ("a", d(0.01, -0.02, 0.03)), ("b", d(-0.01, -0.2, 0.1))])
    assert ok is False and text == "verdicts disagree in sign — the loss on test does not carry to a"
    ok, text = sign_agreement([("test", d(0.0, -0.1, 0.1)), ("a", d(0.05, -0.1, 0.2))])
    assert ok is False and "no change on test, but a gain on a" in text
    ok, text = sign_agreement([("test", d(0.01, 0, 0.02)), ("a", None), ("b", d(0.02, 0.01, 0.03))])
    assert ok is True and text.endswith("(undefined on a)")
    assert sign_agreement([("test", d(0.01, 0, 0.02)), ("a", {"value": None, "ci": None})])[0] is None
    # no in-distribution result yet: the first defined set is the reference
    ok, text = sign_agreement([("a", d(0.02, 0.0, 0.04)), ("b", d(-0.02, -0.04, 0.0))])
    assert ok is False and "the benefit on a does not carry to b" in text


def test_absent_class_share_and_threshold():
    # rows = true class, columns = predicted; the set holds MEL and NV only
    cm = {"labels": ["MEL", "NV", "BKL", "DF"], "counts": [[6, 1, 3, 0], [1, 7, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]}
    a = absent_class_share(cm)
    assert a["absent"] == ["BKL", "DF"] and a["n"] == 20
    assert a["share"] == pytest.approx(5 / 20) and a["by_class"] == {"BKL": pytest.approx(0.2), "DF": pytest.approx(0.05)}
    assert a["shift"] is (5 / 20 >= ABSENT_SHARE_WARN)
    cm_low = {"labels": ["MEL", "NV", "BKL"], "counts": [[9, 0, 1], [0, 10, 0], [0, 0, 0]]}
    assert absent_class_share(cm_low)["share"] == pytest.approx(0.05) and not absent_class_share(cm_low)["shift"]
    assert absent_class_share({"labels": ["A", "B"], "counts": [[1, 1], [0, 2]]}) is None  # every class present
    assert absent_class_share(None) is None
    rows = [_row("baseline", "clinic2", cm), _row("noise", "clinic2", cm_low)]
    (line,) = shift_lines(rows)
    assert line.startswith("clinic2 holds no BKL, DF images, yet 1 of 2 classifiers put 25 % of its 20 images there")
    assert "most into BKL" in line and line.endswith("a shift, not noise — clinic2 differs from the training "
                                                     "distribution (threshold 20 %)")
    assert shift_lines(rows, threshold=0.3) == []


def test_confusion_summary_reads_the_arm_matrix_not_the_baseline():
    metrics = {"primary": "balanced_accuracy", "sets": {"test": {
        "overall": {}, "confusion_matrix": {"labels": ["MEL", "NV"], "counts": [[1, 0], [0, 1]],
                                            "counts_per_seed": [[[1, 0], [0, 1]], [[0, 1], [0, 1]]]},
        "baseline": {"confusion_matrix": {"labels": ["MEL", "NV"], "counts": [[9, 9], [9, 9]]}}}}}
    c = confusion_summary(metrics)
    assert c == {"labels": ["MEL", "NV"], "counts": [[0.5, 0.5], [0.0, 1.0]], "n_seeds": 2}
    assert confusion_summary({"accuracy": {"value": 1.0}}) is None
    assert confusion_summary({"confusion": [[1, 2], [3, 4]]})["labels"] == ["0", "1"]


def test_primary_estimates_of_both_metric_layouts():
    benefit = {"sets.test.overall.balanced_accuracy": d(0.7, 0.6, 0.8),
               "sets.test.baseline.overall.balanced_accuracy": d(0.6, 0.5, 0.7),
               "sets.test.difference.overall.balanced_accuracy": d(0.1, 0.0, 0.2),
               "sets.test.difference.per_class.MEL.recall": d(0.3, 0.1, 0.5)}
    assert primary_estimates({"metrics": benefit, "primary": "balanced_accuracy"}) == (d(0.7, 0.6, 0.8), d(0.1, 0.0, 0.2))
    tiny = {"balanced_accuracy": d(0.5, 0.4, 0.6), "delta_balanced_accuracy": d(-0.1, -0.2, 0.0), "accuracy": d(1, 1, 1)}
    assert primary_estimates({"metrics": tiny}) == (d(0.5, 0.4, 0.6), d(-0.1, -0.2, 0.0))


def _row(arm, test_set, confusion=None, diff=None, role=None, amount=6):
    r = {"kind": "classifier", "evaluator": "benefit", "arm": arm, "amount": None if arm == "baseline" else amount,
         "amount_label": "0" if arm == "baseline" else str(amount), "amount_count": 0 if arm == "baseline" else amount,
         "generator_seed": None if arm == "baseline" else 0, "test_set": test_set, "primary": "balanced_accuracy",
         "metrics": {} if diff is None else {"sets.test.difference.overall.balanced_accuracy": diff},
         "confusion": confusion, "verdicts": []}
    if role:
        r["role"] = role
    return r


def test_agreement_lines_per_arm_and_vs_resampling():
    rows = [_row("baseline", "test"), _row("baseline", "clinic2"),
            _row("noise", "test", diff=d(0.03, 0.01, 0.05)), _row("noise", "clinic2", diff=d(-0.01, -0.04, 0.02)),
            _row("noise", "test", diff=d(0.01, -0.01, 0.03), role="comparison"),
            _row("noise", "clinic2", diff=d(0.02, 0.0, 0.04), role="comparison"),
            {**_row("noise", None), "kind": "synthetic-set"}]  # a set-quality row: no test set, not a model
    assert agreement_lines(rows) == [
        "noise +6 (6, gen seed 0) vs baseline: balanced accuracy test +0.030 [+0.010, +0.050], clinic2 "
        "\u22120.010 [\u22120.040, +0.020]: verdicts disagree in sign — the benefit on test does not carry to clinic2",
        "noise +6 (6, gen seed 0) vs resampling: balanced accuracy test +0.010 [\u22120.010, +0.030], clinic2 "
        "+0.020 [+0.000, +0.040]: verdicts agree in sign: a gain on every set"]
    assert view_lines(rows)[0].startswith("[in- vs out-of-distribution] balanced accuracy difference per set")
    other = [{**r, "evaluator": "tiny-benefit"} for r in rows[:4]]  # two evaluators: each line names its own
    lines = agreement_lines(rows + other)
    assert len(lines) == 3 and lines[0].startswith("benefit: noise +6") and lines[2].startswith("tiny-benefit: noise +6")
    assert view_lines([r for r in rows if r["test_set"] == "test"]) == []  # no external set: no view


# ---------------------------------------------------------------------------------------------
# configs, names, loading
# ---------------------------------------------------------------------------------------------
def test_config_data_tables_are_validated_and_recorded_without_defaults():
    cfg = validate_bench_config({"data": {"format": "csv", "csv": "l.csv", "image_col": "f", "label_col": "dx",
                                          "options": {}},
                                 "test_data": ["../ph2", {"path": "isic", "format": "auto"},
                                               {"path": "isic2020", "options": {"labels": "binary"}}]})
    rec = cfg.canonical()
    assert rec["data"] == {"format": "csv", "csv": "l.csv", "image_col": "f", "label_col": "dx"}
    assert rec["test_data"] == ["../ph2", "isic", {"path": "isic2020", "options": {"labels": "binary"}}]
    assert validate_bench_config(rec).canonical() == rec  # the record reads back as the same config
    with pytest.raises(ConfigError, match=r"'data'.*unknown config key 'pth'.*did you mean 'path'"):
        validate_bench_config({"data": {"pth": "x"}})
    with pytest.raises(ConfigError, match=r"'test_data'.*item 1 .*'csv'"):
        validate_bench_config({"test_data": ["a", {"format": "csv", "csv": 3}]})
    # --format/--csv/... apply to --data, or to the config's data without it
    c = load_bench_config(data="/clinic", dataset_args={"format": "auto", "csv": "x.csv", "image_col": "f",
                                                         "label_col": "dx", "options": {"labels": "as-written"}})
    assert c.data == {"path": "/clinic", "csv": "x.csv", "image_col": "f", "label_col": "dx",
                      "options": {"labels": "as-written"}}
    assert load_bench_config(data="/clinic", dataset_args={"format": "auto"}).data == "/clinic"


def test_external_names_unique_and_safe(tmp_path):
    for p in ("a/clinic", "b/clinic", "ph2"):
        (tmp_path / p).mkdir(parents=True)
    vals = [str(tmp_path / "a/clinic"), str(tmp_path / "b/clinic"), str(tmp_path / "ph2"),
            {"format": "csv", "csv": str(tmp_path / "export 2024.csv")}, {"path": str(tmp_path / "a"), "name": "PH2/x"},
            {"path": str(tmp_path / "ph2"), "options": {"labels": "binary"}}]
    names = dataset_names(vals)
    assert names[0].startswith("clinic-") and names[1].startswith("clinic-") and names[0] != names[1]
    assert names[3] == "export-2024" and names[4] == "PH2-x"
    assert names[2].startswith("ph2-") and names[5].startswith("ph2-") and names[2] != names[5]
    assert len(set(names)) == len(names) and all("/" not in n for n in names)
    with pytest.raises(DataError, match="same set"):
        dataset_names([str(tmp_path / "ph2"), {"path": str(tmp_path / "ph2") + "/"}])
    # a dataset spec file (--test-data clinic.toml) is named as its table would be: the spreadsheet's stem
    (tmp_path / "clinic.toml").write_text('format = "csv"\ncsv = "export.csv"\nimage_col = "f"\nlabel_col = "dx"\n')
    assert dataset_names([str(tmp_path / "clinic.toml")]) == ["export"]


# ---------------------------------------------------------------------------------------------
# a whole bench with an external clinic set
# ---------------------------------------------------------------------------------------------
def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _make_data(root: Path) -> tuple[Path, Path]:
    """A spreadsheet training set (MEL, NV, BKL) and an external clinic set of class folders MEL/ and NV/
    whose MEL/ folder holds images that look like the training set's BKL (a shift)."""
    s = tiny_imageset(12, 16, seed=1)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "dx", "lesion"])
        for i, (img, y) in enumerate(zip(s.images(), s.labels)):
            _png(root / "img" / f"im{i:03d}.png", img)
            w.writerow([f"img/im{i:03d}.png", s.class_names[y], s.groups[i]])
    e = tiny_imageset(6, 16, seed=7)
    clinic = root / "sites" / "clinic2"
    for i, (img, y) in enumerate(zip(e.images(), e.labels)):
        if e.class_names[y] == "NV":
            _png(clinic / "NV" / f"n{i}.png", img)
        elif e.class_names[y] == "BKL":
            _png(clinic / "MEL" / f"m{i}.png", img)
    return root / "labels.csv", clinic


@pytest.fixture(scope="module")
def clinic_bench(tmp_path_factory):
    from click.testing import CliRunner

    from augengine.cli import main

    root = tmp_path_factory.mktemp("view")
    labels, clinic = _make_data(root)
    toml = root / "b.toml"
    toml.write_text('image_size = 16\namounts = [12]\nclassifier_seeds = [0]\ngenerator_seeds = [0]\n'
                    'set_quality = "off"\ncontrols = []\nplugin_modules = ["benchkit"]\n'
                    '[split]\nfractions = [0.5, 0.25, 0.25]\n[classifier]\nname = "mean-colour"\n'
                    '[[evaluators]]\nname = "benefit"\nconfig = { n_boot = 100 }\n'
                    '[[arms]]\nname = "noise"\ngenerator = "example-noise"\n')
    out = root / "b"
    r = CliRunner().invoke(main, ["bench", str(toml), "--data", str(root), "--csv", str(labels), "--image-col", "file",
                                  "--label-col", "dx", "--group-col", "lesion", "--test-data", str(clinic),
                                  "--out", str(out), "--no-progress"])
    return out, r


def test_bench_with_an_external_set_reports_the_view(clinic_bench):
    out, r = clinic_bench
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "bench.json").read_text())["config"]
    assert rec["data"]["csv"].endswith("labels.csv") and rec["data"]["group_col"] == "lesion"
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {(x["arm"], x["test_set"]) for x in rows} == {(a, s) for a in ("baseline", "noise") for s in ("test", "clinic2")}
    ext = next(x for x in rows if x["arm"] == "noise" and x["test_set"] == "clinic2")
    assert ext["primary"] == "balanced_accuracy" and ext["confusion"]["labels"] == ["MEL", "NV", "BKL"]
    share = absent_class_share(ext["confusion"])
    assert share["absent"] == ["BKL"] and share["share"] >= ABSENT_SHARE_WARN  # MEL/ holds BKL-looking images

    verdicts = (out / "verdicts.txt").read_text()
    lines = verdicts.splitlines()
    assert "[clinic2] (external test set)" in lines
    i = lines.index("[clinic2] (external test set)")
    assert lines[i + 1].startswith("  noise +12 (12, gen seed 0): balanced accuracy ")  # the external verdict line
    agree = next(x for x in lines if x.startswith("  noise +12 (12, gen seed 0) vs baseline: balanced accuracy test "))
    assert ", clinic2 " in agree and ("verdicts agree in sign" in agree or "verdicts disagree in sign" in agree)
    shift = next(x for x in lines if x.startswith("  clinic2 holds no BKL images, yet "))
    assert "a shift, not noise" in shift
    assert r.output.count("[in- vs out-of-distribution]") == 1  # the CLI prints verdicts.txt

    report = (out / "report.html").read_text()
    assert "<h2>In- vs out-of-distribution</h2>" in report and "Confusion matrices — clinic2" in report
    assert html.escape(agree.strip()) in report and html.escape(shift.strip()) in report
    assert "predicted as classes the set does not contain (shaded) — a shift, not noise" in report


def test_default_loader_names_external_sets_from_their_specs(clinic_bench, tmp_path):
    out, _ = clinic_bench
    root = out.parent
    other = tmp_path / "elsewhere" / "clinic2"  # a second folder of the same name
    third = tmp_path / "x3"
    for d_ in (other, third):
        for c in ("MEL", "NV"):
            for i in range(2):
                _png(d_ / c / f"{c}{i}.png", np.full((16, 16, 3), 40 * i + 60, np.uint8))
    cfg = validate_bench_config({
        "data": {"format": "csv", "csv": str(root / "labels.csv"), "image_col": "file", "label_col": "dx"},
        "test_data": [str(root / "sites" / "clinic2"), str(other), {"path": str(third), "name": "site B"}]})
    data = default_loader(cfg)
    names = list(data.external)
    assert names[0].startswith("clinic2-") and names[1].startswith("clinic2-") and names[2] == "site-B"
    assert len(data.external[names[1]]) == 4 and set(data.external_fingerprints) == set(names)
