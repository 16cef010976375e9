"""augengine.stats against scikit-learn / scipy on fixed inputs, and coverage by simulation."""

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from augengine import stats
from augengine.errors import ShapeError


def _data(n=300, c=4, seed=0, round_to=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    p = rng.dirichlet(np.ones(c), n)
    p[np.arange(n), y] += 0.3
    p = np.round(p / p.sum(1, keepdims=True), round_to)  # rounding makes ties
    return y, p


def test_image_bootstrap_weights():
    w = stats.bootstrap_weights(50, 200, seed=3)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, stats.bootstrap_weights(50, 200, seed=3))
    assert not np.array_equal(w, stats.bootstrap_weights(50, 200, seed=4))
    assert abs(w.mean() - 1.0) < 1e-6 and 0.8 < w.var() < 1.2  # multinomial(n, 1/n): var ≈ 1


def test_cluster_bootstrap_gives_one_weight_per_group():
    groups = np.array(["a", "a", "b", "c", "c", "c", "d"])
    w = stats.bootstrap_weights(7, 100, groups=groups, seed=0)
    for g in np.unique(groups):
        cols = w[:, groups == g]
        assert (cols == cols[:, :1]).all()
    # as many group draws as groups: per row the group counts sum to 4
    assert (w[:, [0, 2, 3, 6]].sum(1) == 4).all()
    with pytest.raises(ShapeError):
        stats.bootstrap_weights(7, 10, groups=groups[:3])


def test_metrics_match_sklearn_with_weights():
    y, p = _data()
    pred = p.argmax(1)
    w = stats.bootstrap_weights(len(y), 5, seed=1)
    m = stats.metrics_from_confusion(stats.confusion_matrices(y, pred, 4, w))
    for b in range(5):
        sw = w[b]
        assert m["accuracy"][b] == pytest.approx(accuracy_score(y, pred, sample_weight=sw))
        assert m["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(y, pred, sample_weight=sw))
        assert m["macro_f1"][b] == pytest.approx(f1_score(y, pred, average="macro", sample_weight=sw))
        np.testing.assert_allclose(m["precision"][b], precision_score(y, pred, average=None, sample_weight=sw))
        np.testing.assert_allclose(m["recall"][b], recall_score(y, pred, average=None, sample_weight=sw))
    cm = stats.confusion_matrices(y, pred, 4)[0]
    np.testing.assert_array_equal(cm, confusion_matrix(y, pred, labels=range(4)))
    # specificity of class 0 by hand: TN / (TN + FP)
    neg = y != 0
    assert stats.metrics_from_confusion(cm[None])["specificity"][0, 0] == pytest.approx((pred[neg] != 0).mean())


def test_absent_class_is_nan_not_zero():
    y = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 0])
    m = stats.metrics_from_confusion(stats.confusion_matrices(y, pred, 3))
    assert np.isnan(m["recall"][0, 2]) and np.isnan(m["f1"][0, 2]) and np.isnan(m["precision"][0, 2])
    # balanced accuracy averages over the classes present (as scikit-learn does)
    assert m["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(y, pred))
    auc = stats.weighted_ovr_auc(y, np.eye(3)[pred])
    assert np.isnan(auc[0, 2]) and np.isfinite(auc[0, :2]).all()


def test_auc_matches_sklearn_with_ties_and_weights():
    y, p = _data(round_to=1)
    w = stats.bootstrap_weights(len(y), 4, seed=2)
    auc = stats.weighted_ovr_auc(y, p, w)
    for b in range(4):
        for k in range(4):
            assert auc[b, k] == pytest.approx(roc_auc_score(y == k, p[:, k], sample_weight=w[b]), abs=1e-9)
    plain = stats.weighted_ovr_auc(y, p)[0]
    np.testing.assert_allclose(plain, [roc_auc_score(y == k, p[:, k]) for k in range(4)], atol=1e-9)


@pytest.mark.parametrize("b,c", [(0, 0), (5, 0), (1, 9), (12, 7), (30, 45)])
def test_mcnemar_exact_matches_binomtest(b, c):
    a = np.r_[np.ones(b, bool), np.zeros(c, bool), np.ones(4, bool), np.zeros(3, bool)]
    bb = np.r_[np.zeros(b, bool), np.ones(c, bool), np.ones(4, bool), np.zeros(3, bool)]
    r = stats.mcnemar_exact(a, bb)
    assert (r["b"], r["c"]) == (b, c)
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert r["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_hand_checked():
    # b=1, c=9: p = 2 * (C(10,0) + C(10,1)) / 2**10 = 22/1024
    r = stats.mcnemar_exact(np.r_[np.ones(1), np.zeros(9)].astype(bool), np.r_[np.zeros(1), np.ones(9)].astype(bool))
    assert r["p_value"] == pytest.approx(22 / 1024)


def test_percentile_ci_ignores_undefined():
    x = np.r_[np.arange(100.0), np.full(10, np.nan)]
    lo, hi = stats.percentile_ci(x, 0.9)
    assert lo == pytest.approx(np.percentile(np.arange(100.0), 5)) and hi == pytest.approx(np.percentile(np.arange(100.0), 95))


def test_hierarchical_adds_seed_variance():
    rng = np.random.default_rng(0)
    per_seed = rng.normal(0, 0.01, (1, 500)) + np.array([[0.6], [0.7], [0.8]])  # seeds differ a lot
    h = stats.hierarchical_resample(per_seed, seed=0)
    assert h.shape == (500,)
    assert h.std() > 3 * per_seed[0].std()
    np.testing.assert_array_equal(stats.hierarchical_resample(per_seed[:1]), per_seed[0])


def test_wilcoxon_seeds_matches_scipy():
    a, b = [0.71, 0.69, 0.74, 0.70, 0.73], [0.70, 0.70, 0.71, 0.66, 0.72]
    assert stats.wilcoxon_seeds(a, b) == pytest.approx(wilcoxon(np.subtract(a, b)).pvalue)
    assert stats.wilcoxon_seeds([0.5], [0.4]) is None


def test_bootstrap_interval_coverage_is_near_nominal():
    """Accuracy of a classifier with true accuracy 0.8 on n=150 images: the 95% image-bootstrap
    interval covers 0.8 in ~95% of simulated test sets; with correlated lesion groups the
    cluster bootstrap keeps that coverage while the image bootstrap falls short."""
    rng = np.random.default_rng(0)
    n, sims, true = 150, 300, 0.8
    w_img = stats.bootstrap_weights(n, 500, seed=1)
    cover = 0
    for _ in range(sims):
        correct = (rng.random(n) < true).astype(np.float32)
        lo, hi = stats.percentile_ci(w_img @ correct / n)
        cover += lo <= true <= hi
    assert 0.90 <= cover / sims <= 0.985

    groups = np.repeat(np.arange(n // 5), 5)  # 5 images per lesion, same correctness
    w_cl = stats.bootstrap_weights(n, 500, groups=groups, seed=2)
    cover_cl = cover_img = 0
    for _ in range(sims):
        correct = np.repeat(rng.random(n // 5) < true, 5).astype(np.float32)
        lo, hi = stats.percentile_ci((w_cl @ correct) / w_cl.sum(1))
        cover_cl += lo <= true <= hi
        lo, hi = stats.percentile_ci(w_img @ correct / n)
        cover_img += lo <= true <= hi
    assert 0.88 <= cover_cl / sims <= 0.99
    assert cover_img / sims < 0.8  # ignoring lesions gives overconfident intervals


def test_paired_bootstrap_difference_coverage():
    """Two correlated classifiers with true accuracies 0.80 and 0.75: the paired CI of the
    difference covers 0.05 near the nominal rate and is narrower than an unpaired one."""
    rng = np.random.default_rng(5)
    n, sims = 200, 300
    w = stats.bootstrap_weights(n, 500, seed=3)
    cover, width_paired, width_unpaired = 0, [], []
    w2 = stats.bootstrap_weights(n, 500, seed=4)
    for _ in range(sims):
        u = rng.random(n)
        a = (u < 0.80).astype(np.float32)
        b = (u < 0.75).astype(np.float32)  # B is right only where A is right: strongly paired
        d = (w @ a - w @ b) / n
        lo, hi = stats.percentile_ci(d)
        cover += lo <= 0.05 <= hi
        width_paired.append(hi - lo)
        lo2, hi2 = stats.percentile_ci((w @ a - w2 @ b) / n)
        width_unpaired.append(hi2 - lo2)
    assert 0.88 <= cover / sims <= 0.99
    assert np.mean(width_paired) < 0.6 * np.mean(width_unpaired)
