"""The resampling control arm (issue 16): beside every synthetic arm, the same class counts as real
training images drawn with replacement; verdicts against the baseline and against the control."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import augengine as ae
from augengine.bench import Bench
from augengine.bench.config import validate_bench_config
from augengine.errors import ConfigError

import benchkit  # noqa: E402  (tests/bench on sys.path via conftest)
import controlkit  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    for mod in (benchkit, controlkit):
        if not ae.get_plugin_manager().is_registered(mod):
            ae.register_plugin(mod)
    yield


def _cfg(**over):
    d = {"data": "rare-mel", "image_size": 16, "amounts": [12], "classifier_seeds": [0, 1], "generator_seeds": [0],
         "classifier": {"name": "count-prior"}, "evaluators": [{"name": "benefit", "config": {"n_boot": 200}}],
         "set_quality": "off", "plugin_modules": ["benchkit", "controlkit"],
         "arms": [{"name": "copies", "generator": "copy-real", "config": {"classes": ["MEL"]}}]}
    d.update(over)
    return validate_bench_config(d)


def _bench(out, **over) -> Bench:
    return Bench(_cfg(**over), out, loader=controlkit.rare_mel_loader, progress=False)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def _done(unit_dir: Path) -> dict:
    return json.loads((unit_dir / "done.json").read_text())["result"]


def test_copies_of_real_images_beat_the_baseline_but_not_resampling(tmp_path):
    """A synthetic set of copies of real MEL images carries nothing beyond its class counts: the baseline
    never predicts the rare MEL, so the arm 'benefits' against it, and not against its resampling control."""
    out = tmp_path / "b"
    b = _bench(out)
    dry = b.dry_run()  # before the set exists its control is pending: 1 resample + 2 fits + 2 evaluations
    assert "controls (resample): up to 5 more units for 1 synthetic sets not made yet" in dry, dry
    s = b.run()
    assert s.exit_code == 0 and s.done == s.total == len(b.plan().units)
    kinds = sorted(u.kind for u in b.plan().units)
    assert kinds.count("resample") == 1 and kinds.count("clffit") == 2 + 2 + 2 and kinds.count("eval") == 1 + 1 + 2
    rows = _rows(out)
    by_role = {r["role"]: r for r in rows}
    assert set(by_role) == {"baseline", "arm", "control", "comparison"}
    arm, ctrl, cmp_ = by_role["arm"], by_role["control"], by_role["comparison"]
    assert ctrl["arm"] == cmp_["arm"] == "copies" and ctrl["amount"] == 12 and ctrl["class_counts"] == {"MEL": 12}
    assert ctrl["amount_count"] == arm["amount_count"] == 12 and ctrl["classifier_seeds"] == [0, 1]
    # the paired differences (arm − control) are in the comparison row
    d = cmp_["differences"]["sets.test.difference.overall.balanced_accuracy"]
    assert d["ci"][0] <= d["value"] <= d["ci"][1]
    assert arm["verdicts"][0].startswith("balanced accuracy +0.") and ": evidence of benefit" in arm["verdicts"][0]
    assert "evidence of benefit" in ctrl["verdicts"][0]  # resampling alone does the same
    assert " vs resampling (95% CI" in cmp_["verdicts"][0], cmp_["verdicts"]
    assert cmp_["verdicts"][0].endswith("no evidence that synthetic images beat resampling (rests on 2 arm and 2 "
                                        "resampling seeds)"), cmp_["verdicts"]
    verdicts = (out / "verdicts.txt").read_text()
    assert "copies +12 (12, gen seed 0): balanced accuracy +" in verdicts
    assert "copies +12 (12, gen seed 0) vs resampling: balanced accuracy " in verdicts
    assert "no evidence that synthetic images beat resampling" in verdicts
    tables = (out / "tables.txt").read_text()
    assert "12 (12) resampled real" in tables
    html = (out / "report.html").read_text()
    assert "against resampling" in html and "vs resampling" in html and "resampled real" in html
    # a second run has nothing to do (the control units are planned from the cached set at once)
    s2 = _bench(out).run()
    assert s2.ran == 0 and s2.exit_code == 0 and (out / "results.jsonl").read_text() == "".join(
        json.dumps(r, sort_keys=True) + "\n" for r in rows)


def test_control_adds_exactly_the_arms_class_counts_reproducibly_and_is_shared(tmp_path):
    arms = [{"name": "mel-a", "generator": "copy-real", "config": {"classes": ["MEL"]}},
            {"name": "mel-b", "generator": "copy-real", "config": {"classes": ["MEL"], "label": "other"}},
            {"name": "all", "generator": "copy-real", "class_distribution": "uniform"}]
    out = tmp_path / "a"
    b = _bench(out, arms=arms, amounts=[6, 9], classifier_seeds=[0, 1, 2])
    assert b.run().exit_code == 0
    units = b.plan().units
    synth = {(u.meta["arm"], u.meta["amount"]): _done(b.unit_dir(u)) for u in units if u.kind == "synth"}
    resample = [u for u in units if u.kind == "resample"]
    # mel-a and mel-b add the same counts: one control per amount for both; 'all' has its own
    assert len(resample) == 4
    rows = [r for r in _rows(out) if r["role"] == "control"]
    assert len(rows) == 6  # a control row per arm and amount
    real = controlkit.rare_mel_loader(b.cfg).train
    for u in resample:
        rec = json.loads((b.unit_dir(u) / "resample.json").read_text())
        drawn = real.subset(rec["indices"]).class_counts()
        assert {k: v for k, v in drawn.items() if v} == rec["counts"] == u.spec["counts"]
    for (arm, amount), res in synth.items():
        want = {k: v for k, v in res["class_counts"].items() if v}
        row = next(r for r in rows if r["arm"] == arm and r["amount"] == amount)
        assert row["class_counts"] == want and sum(want.values()) == amount
        assert next(u for u in resample if u.spec["counts"] == want).spec["seed"] == 0
    # every classifier seed of a control trains on the same draw: one resample unit feeds all of them
    fits = [u for u in units if u.kind == "clffit" and u.meta["arm"] == "resampled real"]
    assert len(fits) == 4 * 3 and all(len({u.deps[1] for u in fits if u.meta["counts"] == r.spec["counts"]}) == 1
                                      for r in resample)
    # reproducible: another directory draws the same images; another generator seed draws others
    b2 = _bench(tmp_path / "b", arms=arms[:1], amounts=[6], classifier_seeds=[0])
    assert b2.run().exit_code == 0
    r1 = next(u for u in resample if u.spec["counts"] == {"MEL": 6})
    r2 = next(u for u in b2.plan().units if u.kind == "resample")
    assert r2.key == r1.key
    assert (b2.unit_dir(r2) / "resample.json").read_text() == (b.unit_dir(r1) / "resample.json").read_text()
    b3 = _bench(tmp_path / "c", arms=arms[:1], amounts=[6], classifier_seeds=[0], generator_seeds=[1])
    assert b3.run().exit_code == 0
    r3 = next(u for u in b3.plan().units if u.kind == "resample")
    i1 = json.loads((b.unit_dir(r1) / "resample.json").read_text())["indices"]
    i3 = json.loads((b3.unit_dir(r3) / "resample.json").read_text())["indices"]
    assert r3.spec["counts"] == {"MEL": 6} and i3 != i1


def test_controls_off_and_config_errors(tmp_path):
    b = _bench(tmp_path / "off", controls=[])
    assert b.run().exit_code == 0
    assert not [u for u in b.plan().units if u.kind == "resample"] and "controls (" not in b.dry_run()
    assert {r["role"] for r in _rows(tmp_path / "off")} == {"baseline", "arm"}
    assert "vs resampling" not in (tmp_path / "off" / "verdicts.txt").read_text()
    with pytest.raises(ConfigError, match="controls"):
        _cfg(controls=["bootstrap"])
    with pytest.raises(ConfigError, match="controls: duplicates"):
        _cfg(controls=["resample", "resample"])
    from augengine.bench import load_bench_config

    for preset in ("quick", "paper-exp1", "paper-exp2"):
        assert load_bench_config(preset=preset).controls == ["resample"]


def test_cli_fit_resample_like(tmp_path):
    """``augengine fit CLASSIFIER --resample-like SET.h5``: the set's class counts as real images."""
    from click.testing import CliRunner

    from augengine.cli import main

    try:
        ae.load_dataset("demo")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"data layer not ready: {e}")
    w = ae.SyntheticSet.create(tmp_path / "s.h5", class_names=["NV", "MEL"], image_size=8)
    import numpy as np

    w.append(np.zeros((7, 8, 8, 3), np.uint8), np.array([1, 1, 1, 1, 1, 0, 0]))
    w.close()
    runner = CliRunner()
    args = ["fit", "mean-colour", "--data", "demo", "-o", "image_size=8", "--resample-like", str(tmp_path / "s.h5")]
    r = runner.invoke(main, args + ["--out", str(tmp_path / "r1"), "--seed", "1"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "r1" / "run.json").read_text())["resample_like"]
    assert rec["class_counts"] == {"MEL": 5, "NV": 2} and rec["seed"] == 0
    r = runner.invoke(main, args + ["--out", str(tmp_path / "r2"), "--amount", "3"])
    assert r.exit_code != 0 and "--resample-like: not with --synthetic/--amount" in r.output


def test_benefit_names_its_reference_in_the_verdict():
    """The ``benefit`` evaluator words a comparison with a named reference (the bench's resampling control)."""
    data = controlkit.rare_mel_loader(None)
    fits = {}
    for extra in (0, 12):
        clf = controlkit.CountPriorClassifier(controlkit.CountPriorConfig())
        fits[extra] = clf.fit(data.train, synthetic=[ae.resample_like(data.train, {"MEL": extra})] if extra else [])
    ev = ae.create_evaluator("benefit", n_boot=200)
    worse = ev.evaluate(fits[0], data.test, baseline=fits[12], names=("synthetic images", "resampling")).verdicts[0]
    assert worse.startswith("balanced accuracy \u22120.") and " vs resampling (95% CI" in worse, worse
    assert "McNemar p" in worse and worse.endswith("evidence that resampling beats synthetic images"), worse
    better = ev.evaluate(fits[12], data.test, baseline=fits[0], names=("synthetic images", "resampling")).verdicts[0]
    assert better.endswith(": evidence that synthetic images beat resampling"), better
    plain = ev.evaluate(fits[12], data.test, baseline=fits[0]).verdicts[0]  # against the baseline: as before
    assert plain.endswith(": evidence of benefit") and " vs " not in plain, plain
