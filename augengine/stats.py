"""Vectorised resampling statistics for classifier evaluation.

Every bootstrap here is expressed as a **weight matrix** ``W`` of shape ``(B, N)``:
``W[b, i]`` is how many times test image ``i`` enters resample ``b``. An ordinary bootstrap
draws images with replacement; a cluster (lesion) bootstrap draws *groups* with replacement
and gives each image the count of its group. Metrics are then weighted sums, so all ``B``
resamples of a confusion matrix are one matrix product, and paired comparisons reuse the
same ``W`` for both arms (the paired bootstrap).

Functions:
    - :func:`bootstrap_weights` — image or cluster bootstrap weights.
    - :func:`confusion_matrices` — weighted confusion matrices ``(B, C, C)``.
    - :func:`metrics_from_confusion` — accuracy, balanced accuracy, per-class precision,
      recall (sensitivity), specificity, F1, macro-F1 (scikit-learn's definitions).
    - :func:`weighted_ovr_auc` — one-vs-rest ROC AUC per class for every resample.
    - :func:`percentile_ci` — percentile interval ignoring undefined (NaN) resamples.
    - :func:`mcnemar_exact` — exact (binomial) McNemar test on paired correctness.
    - :func:`hierarchical_resample` — combine per-seed bootstrap replicates by resampling seeds.
    - :func:`wilcoxon_seeds` — Wilcoxon signed-rank test over paired per-seed values.
"""

from __future__ import annotations

import numpy as np

from augengine.errors import ShapeError

__all__ = [
    "bootstrap_weights",
    "confusion_matrices",
    "metrics_from_confusion",
    "weighted_ovr_auc",
    "percentile_ci",
    "mcnemar_exact",
    "hierarchical_resample",
    "wilcoxon_seeds",
]


def _row_bincount(idx: np.ndarray, n: int) -> np.ndarray:
    """Counts of each value 0..n-1 in every row of ``idx`` (B, K) → (B, n) float32."""
    b = idx.shape[0]
    flat = (idx + np.arange(b, dtype=np.int64)[:, None] * n).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32)


def bootstrap_weights(n: int, n_boot: int = 1000, *, groups=None, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples as multiplicity weights.

    Args:
        n: number of observations (test images).
        n_boot: number of resamples ``B``.
        groups: optional (N,) group ids (e.g. lesion ids). When given, whole groups are drawn
            with replacement (cluster bootstrap): as many draws as there are groups, and each
            image gets its group's count. Images of one lesion are correlated, so this gives
            honest (wider) intervals.
        seed: seed of the NumPy generator.

    Returns:
        float32 array ``W``.

    Shape:
        - output: :math:`(B, N)`; an image bootstrap has rows summing to N.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        return _row_bincount(idx, n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ShapeError(f"bootstrap_weights(groups): expected shape ({n},), got {groups.shape}")
    _, gidx = np.unique(groups, return_inverse=True)
    n_groups = int(gidx.max()) + 1 if n else 0
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    counts = _row_bincount(draws, n_groups)
    return counts[:, gidx.reshape(-1)]


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, weights=None) -> np.ndarray:
    """Weighted confusion matrices, rows = true class, columns = predicted class.

    Args:
        y_true: int (N,) true labels.
        y_pred: int (N,) predicted labels.
        num_classes: C.
        weights: (B, N) resample weights, or ``None`` for the observed data (B = 1).

    Returns:
        float64 array ``(B, C, C)`` (counts when the weights are counts).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"confusion_matrices: y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    cell = y_true * num_classes + y_pred
    if weights is None:
        cm = np.bincount(cell, minlength=num_classes**2).astype(np.float64)[None]
    else:
        w = np.asarray(weights, dtype=np.float32)
        onehot = np.zeros((len(cell), num_classes**2), dtype=np.float32)
        onehot[np.arange(len(cell)), cell] = 1.0
        cm = (w @ onehot).astype(np.float64)
    return cm.reshape(-1, num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Classification metrics for a stack of confusion matrices.

    Definitions follow scikit-learn: precision = TP/(TP+FP) (0 when nothing is predicted as the
    class, as ``zero_division=0``), recall = sensitivity = TP/(TP+FN), specificity =
    TN/(TN+FP), F1 = 2PR/(P+R) (0 when P+R = 0), balanced accuracy = mean recall over the
    classes present in the (resampled) truth, macro-F1 = mean F1 over those classes.
    A class absent from the truth of a resample has NaN recall/F1 there (undefined, never 0).

    Args:
        cm: ``(B, C, C)`` confusion matrices (rows = truth).

    Returns:
        dict of arrays: ``accuracy``, ``balanced_accuracy``, ``macro_f1`` (B,);
        ``precision``, ``recall``, ``specificity``, ``f1`` (B, C); ``support`` (B, C).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(2)
    predicted = cm.sum(1)
    total = cm.sum((1, 2))
    fp = predicted - tp
    fn = support - tp
    tn = total[:, None] - tp - fp - fn
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        precision = np.where(present | (predicted > 0), precision, np.nan)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
        f1 = np.where(present, f1, np.nan)
        accuracy = tp.sum(1) / total
        n_present = present.sum(1)
        balanced = np.where(n_present > 0, np.nansum(recall, 1) / n_present, np.nan)
        macro_f1 = np.where(n_present > 0, np.nansum(f1, 1) / n_present, np.nan)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": balanced,
        "macro_f1": macro_f1,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "support": support,
    }


def weighted_ovr_auc(y_true: np.ndarray, proba: np.ndarray, weights=None) -> np.ndarray:
    """One-vs-rest ROC AUC of every class, for every resample.

    Equals ``sklearn.metrics.roc_auc_score(y_true == k, proba[:, k], sample_weight=w)``
    (ties count one half). Vectorised over resamples with one sort per class.

    Args:
        y_true: int (N,) labels.
        proba: (N, C) scores.
        weights: (B, N) resample weights, or ``None`` (B = 1, unit weights).

    Returns:
        float64 ``(B, C)``; NaN where a resample has no positives or no negatives of a class.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n, c = proba.shape
    # float32 is exact for the integer counts involved (sums < 2**24) and twice as fast
    w = np.ones((1, n), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    out = np.full((w.shape[0], c), np.nan)
    for k in range(c):
        pos = y_true == k
        if not pos.any() or pos.all():
            continue
        order = np.argsort(proba[:, k], kind="mergesort")
        s = proba[order, k]
        p = pos[order]
        ws = w[:, order]
        wneg = ws * (~p)
        cum_excl = np.zeros((w.shape[0], n + 1), dtype=np.float64)
        np.cumsum(wneg, axis=1, dtype=np.float64, out=cum_excl[:, 1:])
        # tie blocks [start, end) of equal scores in sorted order; only positives are needed
        new_block = np.r_[True, s[1:] != s[:-1]]
        block = np.cumsum(new_block) - 1
        starts = np.flatnonzero(new_block)
        ends = np.r_[starts[1:], n]
        pidx = np.flatnonzero(p)
        st, en = starts[block[pidx]], ends[block[pidx]]
        below = cum_excl[:, st]
        tied = cum_excl[:, en] - below
        wpos = ws[:, pidx]
        num = (wpos * (below + 0.5 * tied)).sum(1)
        den = wpos.sum(1, dtype=np.float64) * cum_excl[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, k] = np.where(den > 0, num / den, np.nan)
    return out


def percentile_ci(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap replicates, ignoring NaN (undefined) replicates.

    Args:
        samples: replicates along ``axis``.
        level: coverage, e.g. 0.95.

    Returns:
        ``(low, high)`` arrays (NaN where every replicate is undefined).
    """
    a = (1 - level) / 2
    samples = np.asarray(samples, dtype=np.float64)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanquantile(samples, a, axis=axis)
            hi = np.nanquantile(samples, 1 - a, axis=axis)
    return lo, hi


def mcnemar_exact(correct_a, correct_b) -> dict[str, float | int]:
    """Exact McNemar test: do two classifiers err on the same images at different rates?

    Uses only the discordant pairs: ``b`` = images A gets right and B gets wrong, ``c`` = the
    reverse. Under H0, ``b ~ Binomial(b + c, 1/2)``; the two-sided p-value is
    ``min(1, 2 · P(X ≤ min(b, c)))`` (equal to ``scipy.stats.binomtest(b, b+c).pvalue``).

    Args:
        correct_a: bool (N,) per-image correctness of classifier A.
        correct_b: bool (N,) per-image correctness of classifier B (same images).

    Returns:
        ``{"b": int, "c": int, "p_value": float}`` (p = 1 when there are no discordant pairs).
    """
    from scipy.stats import binom

    ca = np.asarray(correct_a, dtype=bool)
    cb = np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape:
        raise ShapeError(f"mcnemar_exact: shapes {ca.shape} and {cb.shape} differ")
    b = int((ca & ~cb).sum())
    c = int((~ca & cb).sum())
    n = b + c
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))
    return {"b": b, "c": c, "p_value": p}


def hierarchical_resample(replicates: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hierarchical bootstrap over seeds × images.

    ``replicates[s, b]`` is a statistic of seed (model) ``s`` on image resample ``b``. For each
    ``b`` we draw S seeds with replacement and average their values, so the result varies with
    both the test images and the training seed.

    Args:
        replicates: ``(S, B, ...)`` per-seed image-bootstrap replicates.
        seed: seed of the seed draws.

    Returns:
        ``(B, ...)`` replicates of the seed-averaged statistic (NaN-aware mean).
    """
    r = np.asarray(replicates, dtype=np.float64)
    s, b = r.shape[:2]
    if s == 1:
        return r[0]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, s, size=(b, s))
    gathered = r[pick, np.arange(b)[:, None]]  # (B, S, ...)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(gathered, axis=1)


def wilcoxon_seeds(arm_values, baseline_values) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value over paired per-seed values (``None`` if < 2 pairs
    or all differences are zero). With n pairs the smallest attainable p is 2/2**n."""
    from scipy.stats import wilcoxon

    a = np.asarray(arm_values, dtype=np.float64)
    b = np.asarray(baseline_values, dtype=np.float64)
    n = min(len(a), len(b))
    d = a[:n] - b[:n]
    d = d[np.isfinite(d)]
    if len(d) < 2 or np.all(d == 0):
        return None
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
