"""The ``benefit`` evaluator: contract kit, metrics against scikit-learn, paired tests, verdicts."""

import re
import time

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import augengine as ae
from augengine.errors import AugengineError, DataError
from augengine.testing import EvaluatorContract, StubClassifier, tiny_imageset

NAMES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


class TestBenefitContract(EvaluatorContract):
    plugin_name = "benefit"
    config = {"n_boot": 200}

    def evaluate_kwargs(self, train, test):
        noisy = StubClassifier(test.class_names, proba_fn=_noisy(test.class_names, 0.4), image_size=test.size)
        return {"classifier": StubClassifier(test.class_names, image_size=test.size), "test": test, "baseline": noisy}


def _noisy(class_names, strength, seed=0):
    """Stub probabilities mixed with random ones (deterministic per image content)."""
    from augengine.testing.data import _palette_proba

    def fn(arr):
        p = _palette_proba(arr, len(class_names))
        rng = np.random.default_rng(int(arr.sum()) % 2**32 + seed)
        q = rng.dirichlet(np.ones(len(class_names)), len(arr))
        return (1 - strength) * p + strength * q

    return fn


class Fixed(StubClassifier):
    """Returns fixed probabilities, whatever the images."""

    def __init__(self, proba, class_names=NAMES):
        super().__init__(class_names, proba_fn=lambda arr: proba, image_size=4)


def _problem(n=400, seed=0, quality=0.4, missing=("SCC",), groups=True):
    rng = np.random.default_rng(seed)
    present = [k for k, c in enumerate(NAMES) if c not in missing]
    y = rng.choice(present, n)
    test = ae.ArrayImageSet(np.zeros((n, 4, 4, 3), np.uint8), y, NAMES,
                            groups=rng.integers(0, n // 2, n) if groups else None)

    def proba(q, s):
        r = np.random.default_rng(s)
        p = r.dirichlet(np.ones(len(NAMES)), n)
        p[np.arange(n), y] += q
        return p / p.sum(1, keepdims=True)

    return test, y, proba(quality, seed + 1), proba(quality * 0.8, seed + 2)


def test_metrics_match_sklearn_and_missing_class_is_undefined():
    test, y, p, _ = _problem()
    res = ae.create_evaluator("benefit", n_boot=300).evaluate(Fixed(p), test, seed=0)
    m = res.metrics["sets"]["test"]
    pred = p.argmax(1)
    labels = [k for k in range(8) if k != 7]
    assert m["overall"]["accuracy"]["value"] == pytest.approx((pred == y).mean())
    assert m["overall"]["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["overall"]["macro_f1"]["value"] == pytest.approx(f1_score(y, pred, labels=labels, average="macro"))
    prec = precision_score(y, pred, labels=labels, average=None, zero_division=0)
    rec = recall_score(y, pred, labels=labels, average=None)
    for i, k in enumerate(labels):
        row = m["per_class"][NAMES[k]]
        assert row["precision"]["value"] == pytest.approx(prec[i])
        assert row["recall"]["value"] == pytest.approx(rec[i]) == pytest.approx(row["sensitivity"]["value"])
        assert row["auc"]["value"] == pytest.approx(roc_auc_score(y == k, p[:, k]))
        for key in ("precision", "recall", "specificity", "f1", "auc"):
            v = row[key]
            assert v["ci_low"] <= v["value"] + 1e-9 and v["value"] - 1e-9 <= v["ci_high"], (NAMES[k], key, v)
    macro = np.mean([roc_auc_score(y == k, p[:, k]) for k in labels])
    assert m["overall"]["macro_auc"]["value"] == pytest.approx(macro)
    scc = m["per_class"]["SCC"]
    assert scc["recall"] is None and scc["auc"] is None and scc["precision"] is None and scc["support"] == 0
    assert any("SCC" in note and "undefined" in note for note in m["notes"])
    assert m["confusion_matrix"]["counts"][7] == [0] * 8
    assert m["confusion_matrix"]["row_normalised"][7] == [None] * 8
    assert sum(map(sum, m["confusion_matrix"]["counts"])) == len(y)
    assert m["bootstrap"] == "lesion" and res.metrics["class_order"][:2] == ["MEL", "NV"]
    table = res.tables["table2_test"]
    assert table.splitlines()[0].split()[:3] == ["Model", "MEL", "NV"] and "n/a/n/a" in table
    assert res.figures["confusion_test"][:4] == b"\x89PNG"
    assert res.verdicts == []


def test_paired_comparison_mcnemar_and_verdict():
    test, y, p_arm, p_base = _problem(n=500, seed=1)
    res = ae.create_evaluator("benefit", n_boot=500).evaluate(Fixed(p_arm), test, baseline=Fixed(p_base), seed=0)
    m = res.metrics["sets"]["test"]
    d = m["difference"]["overall"]["balanced_accuracy"]
    assert d["value"] == pytest.approx(m["overall"]["balanced_accuracy"]["value"] - m["baseline"]["overall"]["balanced_accuracy"]["value"])
    assert d["ci_low"] < d["value"] < d["ci_high"]
    ca, cb = p_arm.argmax(1) == y, p_base.argmax(1) == y
    b, c = int((ca & ~cb).sum()), int((~ca & cb).sum())
    assert (m["mcnemar"]["b"], m["mcnemar"]["c"]) == (b, c)
    assert m["mcnemar"]["p_value"] == pytest.approx(binomtest(b, b + c).pvalue)
    v = res.verdicts[0]
    assert re.fullmatch(r"balanced accuracy [+\u2212]\d\.\d{3} \(95% CI [+\u2212]\d\.\d{3} to [+\u2212]\d\.\d{3}\), "
                        r"McNemar p (= [\d.e-]+|< 0\.001): (evidence of benefit|evidence of harm|no evidence of benefit)", v), v
    expected = "evidence of benefit" if d["ci_low"] > 0 else ("evidence of harm" if d["ci_high"] < 0 else "no evidence")
    assert v.endswith(expected) or expected in v
    assert "baseline" in res.tables["table2_test"]


def test_identical_arms_give_no_evidence():
    test, y, p, _ = _problem(n=300, seed=2)
    res = ae.create_evaluator("benefit", n_boot=300).evaluate(Fixed(p), test, baseline=Fixed(p), seed=0)
    d = res.metrics["sets"]["test"]["difference"]["overall"]["accuracy"]
    assert d == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert res.verdicts[0].endswith("McNemar p = 1: no evidence of benefit")


def test_several_seeds_enter_the_interval_and_the_verdict():
    test, y, _, _ = _problem(n=300, seed=3)
    arms = [Fixed(_problem(n=300, seed=3, quality=q)[2]) for q in (0.5, 0.45, 0.55)]
    bases = [Fixed(_problem(n=300, seed=3, quality=q)[3]) for q in (0.5, 0.45, 0.55)]
    ev = ae.create_evaluator("benefit", n_boot=300)
    multi = ev.evaluate(arms, test, baseline=bases, seed=0)
    single = ev.evaluate(arms[0], test, baseline=bases[0], seed=0)
    m = multi.metrics["sets"]["test"]
    assert m["n_seeds"] == 3 and len(m["overall"]["accuracy"]["per_seed"]) == 3 and len(m["mcnemar"]) == 3
    assert "3 seed pairs" in multi.verdicts[0] and "Wilcoxon p" in multi.verdicts[0]
    w_multi = m["overall"]["balanced_accuracy"]["ci_high"] - m["overall"]["balanced_accuracy"]["ci_low"]
    s = single.metrics["sets"]["test"]["overall"]["balanced_accuracy"]
    assert w_multi > 0 and s["ci_high"] - s["ci_low"] > 0
    assert multi.metrics["n_seeds"] == {"arm": 3, "baseline": 3}


def test_external_sets_reported_apart():
    test, y, p, q = _problem(n=200, seed=4)
    ext = ae.ArrayImageSet(np.zeros((200, 4, 4, 3), np.uint8), y, NAMES)
    res = ae.create_evaluator("benefit", n_boot=200).evaluate(Fixed(p), test, baseline=Fixed(q), external={"clinic2": ext})
    assert set(res.metrics["sets"]) == {"test", "external:clinic2"}
    assert res.metrics["sets"]["external:clinic2"]["bootstrap"] == "image"
    assert len(res.verdicts) == 2 and res.verdicts[1].startswith("external:clinic2: ")
    assert "table2_external_clinic2" in res.tables and "confusion_external_clinic2" in res.figures


def test_external_set_with_another_class_list_is_mapped_by_name():
    """Another clinic's set with only nevi and melanomas, its own class order and spelling."""
    test, y, p, q = _problem(n=200, seed=5)
    rng = np.random.default_rng(0)
    y_ext = rng.integers(0, 2, 200)  # 0 = nv, 1 = Mel in the clinic's own class list
    ext = ae.ArrayImageSet(np.zeros((200, 4, 4, 3), np.uint8), y_ext, ["nv", "Mel"])
    res = ae.create_evaluator("benefit", n_boot=200).evaluate(Fixed(p), test, baseline=Fixed(q),
                                                              external={"clinic2": ext})
    m = res.metrics["sets"]["external:clinic2"]
    y_mapped = np.where(y_ext == 0, NAMES.index("NV"), NAMES.index("MEL"))
    assert m["overall"]["accuracy"]["value"] == pytest.approx((p.argmax(1) == y_mapped).mean())
    assert m["class_counts"]["NV"] == int((y_ext == 0).sum()) and m["class_counts"]["BCC"] == 0
    assert m["per_class"]["BCC"]["recall"] is None and m["per_class"]["BCC"]["support"] == 0  # undefined, not 0
    assert "mapped by name" in m["notes"][0] and "['nv', 'Mel']" in m["notes"][0]
    # a class the classifier does not know is an error that names it
    bad = ae.ArrayImageSet(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 1, 2, 2]), ["NV", "MEL", "SEK"])
    with pytest.raises(DataError, match=r"'external:clinic3'.*\['SEK'\] of this set are not in the class space"):
        ae.create_evaluator("benefit", n_boot=100).evaluate(Fixed(p[:4]), external={"clinic3": bad})


def test_bad_inputs():
    test, y, p, _ = _problem(n=50)
    ev = ae.create_evaluator("benefit", n_boot=100)
    with pytest.raises(AugengineError):
        ev.evaluate(None, test)
    with pytest.raises(DataError, match="class"):
        ev.evaluate(Fixed(p[:, :3], NAMES[:3]), test)
    other = tiny_imageset(n_per_class=2, size=4)
    with pytest.raises(DataError):
        ev.evaluate(Fixed(p), test, baseline=StubClassifier(other.class_names, image_size=4))


def test_all_metrics_on_2500_images_in_under_5_seconds():
    test, y, p, q = _problem(n=2500, seed=5)
    ev = ae.create_evaluator("benefit", n_boot=1000)
    t = time.perf_counter()
    res = ev.evaluate(Fixed(p), test, seed=0)
    elapsed = time.perf_counter() - t
    assert elapsed < 5.0, f"{elapsed:.1f}s"
    assert res.metrics["n_boot"] == 1000
