"""The in- vs out-of-distribution view of a bench: each arm's verdict on the test split beside every external set.

Synthetic images may help on the training distribution and not on another clinic's images (or
the reverse: Bissoto et al. 2021 found GAN augmentation helps mostly away from it). For every
arm this view puts the evaluator's primary metric (with its CI) and its difference against the
reference (baseline, or the resampling control) on the test split and on each external set side
by side, and says in one line whether the verdicts agree in sign across the sets::

    acgan +40 (x0.25, gen seed 0) vs baseline: balanced accuracy test +0.030 [+0.010, +0.050],
    clinic2 −0.010 [−0.040, +0.020]: verdicts disagree in sign — the benefit on test does not carry to clinic2

An external set that lacks some of the classifier's classes (a MEL/NV clinic set) shows a shift
when the classifiers put a large share of it (:data:`ABSENT_SHARE_WARN` or more) into classes it
does not contain: that is the set differing from the training distribution, not noise.

Everything here reads result rows (:func:`augengine.bench.results.results_rows`): the evaluator's
flattened metrics, its ``primary`` metric name and the confusion matrix of each row
(:func:`confusion_summary`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ABSENT_SHARE_WARN", "confusion_summary", "primary_name", "primary_estimates", "sign_agreement",
           "absent_class_share", "view_lines", "view_html"]

#: a classifier that puts this share of an external set (or more) into classes the set does not
#: contain is reported as a shift of the set away from the training distribution
ABSENT_SHARE_WARN = 0.20

_DIFF = ("difference", "delta", "diff")
_SKIP = {"baseline", "per_class", "reference", "control"}


# ---------------------------------------------------------------------------------------------
# what a row holds
# ---------------------------------------------------------------------------------------------
def confusion_summary(metrics: Any) -> dict[str, Any] | None:
    """The arm's confusion matrix in an evaluator's (raw, nested) metrics, or None.

    Finds the first value under a key containing ``confusion`` (outside ``baseline`` and
    difference subtrees): a mapping with ``labels`` and ``counts`` (the ``benefit`` evaluator's;
    ``counts_per_seed`` when several seeds are averaged) or a bare square matrix.

    Returns:
        ``{"labels": [...], "counts": C×C floats (rows: true class, columns: predicted; the mean
        over seeds when several), "n_seeds": int}``.
    """
    found = _find_confusion(metrics)
    if found is None:
        return None
    labels = None
    if isinstance(found, dict):
        labels = found.get("labels")
        per_seed = found.get("counts_per_seed")
        raw = per_seed if per_seed is not None else found.get("counts", found.get("value"))
    else:
        raw = found
    try:
        a = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        return None
    if a.ndim == 3 and a.shape[1] == a.shape[2] and len(a):
        n_seeds, a = len(a), a.mean(0)
    elif a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0]:
        n_seeds = 1
    else:
        return None
    if not (isinstance(labels, list) and len(labels) == a.shape[0]):
        labels = [str(i) for i in range(a.shape[0])]
    return {"labels": [str(x) for x in labels], "counts": a.tolist(), "n_seeds": n_seeds}


def _find_confusion(m: Any):
    if not isinstance(m, dict):
        return None
    for k, v in m.items():
        if "confusion" in str(k).lower():
            return v
    for k, v in m.items():
        kl = str(k).lower()
        if kl in _SKIP or any(t in kl for t in _DIFF):
            continue
        r = _find_confusion(v)
        if r is not None:
            return r
    return None


def primary_name(row: dict[str, Any]) -> str:
    """The metric a row's verdict is about: the evaluator's ``primary`` when it names one, else
    balanced accuracy when the row has it, else accuracy."""
    p = row.get("primary")
    if isinstance(p, str) and p:
        return p
    names = {k.lower().split(".")[-1] for k in row.get("metrics", {})}
    return "balanced_accuracy" if "balanced_accuracy" in names else "accuracy"


def _metric(flat: dict[str, dict], name: str, difference: bool) -> dict | None:
    """``name``'s entry in flattened metrics: the shortest key ending in it (or ``delta_<name>`` …)
    that is (``difference``) or is not under a difference, outside baseline and per-class keys."""
    name = name.lower()
    best = None
    for key, v in flat.items():
        toks = key.lower().split(".")
        last = toks[-1]
        prefixed = next((d for d in _DIFF if last == f"{d}_{name}"), None)
        if last != name and prefixed is None:
            continue
        if any(t in _SKIP for t in toks[:-1]):
            continue
        is_diff = prefixed is not None or any(t in _DIFF for t in toks[:-1])
        if is_diff != difference:
            continue
        if best is None or len(key) < len(best[0]):
            best = (key, v)
    return best[1] if best else None


def primary_estimates(row: dict[str, Any]) -> tuple[dict | None, dict | None]:
    """(value, difference) of the row's primary metric: ``{"value": v, "ci": [lo, hi] | None}`` or None."""
    name = primary_name(row)
    flat = row.get("metrics", {})
    return _metric(flat, name, False), _metric(flat, name, True)


# ---------------------------------------------------------------------------------------------
# the two judgements
# ---------------------------------------------------------------------------------------------
def _sign(v: dict | None) -> int | None:
    if v is None or v.get("value") is None or not np.isfinite(v["value"]):
        return None
    return int(np.sign(v["value"]))


def _evidence(v: dict) -> bool:
    ci = v.get("ci")
    return bool(ci and ci[0] is not None and ci[1] is not None and (ci[0] > 0 or ci[1] < 0))


def sign_agreement(per_set: Sequence[tuple[str, dict | None]], reference: str = "test") -> tuple[bool | None, str]:
    """Whether the differences on several sets agree in sign, as a phrase.

    Args:
        per_set: (set name, difference ``{"value", "ci"}`` or None when undefined or missing), the
            in-distribution set first.
        reference: the set the others are judged against (the first defined one when absent).

    Returns:
        (True / False / None when fewer than two sets have a defined difference, the phrase):
        ``"verdicts agree in sign: a gain on every set"``, ``"verdicts disagree in sign — the
        benefit on test does not carry to clinic2"`` …; undefined sets are named.
    """
    defined = [(n, v) for n, v in per_set if _sign(v) is not None]
    undefined = [n for n, v in per_set if _sign(v) is None]
    tail = f" (undefined on {', '.join(undefined)})" if undefined else ""
    if len(defined) < 2:
        return None, "fewer than two sets with a defined difference: nothing to compare" + tail
    ref_name, ref = next(((n, v) for n, v in defined if n == reference), defined[0])
    rs = _sign(ref)
    others = [(n, v) for n, v in defined if n != ref_name]
    off = [(n, v) for n, v in others if _sign(v) != rs]
    if not off:
        what = {1: "a gain", -1: "a loss", 0: "no change"}[rs]
        text = f"verdicts agree in sign: {what} on every set"
        ev = [n for n, v in defined if _evidence(v)]
        if rs != 0 and 0 < len(ev) < len(defined):
            text += f" (CI excludes 0 on {', '.join(ev)} only)"
        return True, text + tail
    names = ", ".join(n for n, _ in off)
    if rs > 0:
        text = f"verdicts disagree in sign — the benefit on {ref_name} does not carry to {names}"
    elif rs < 0:
        text = f"verdicts disagree in sign — the loss on {ref_name} does not carry to {names}"
    else:
        parts = [f"{'a gain' if _sign(v) > 0 else 'a loss'} on {n}" for n, v in off]
        text = f"verdicts disagree in sign — no change on {ref_name}, but {', '.join(parts)}"
    return False, text + tail


def absent_class_share(confusion: dict[str, Any] | None) -> dict[str, Any] | None:
    """How much of a set a classifier puts into classes the set does not contain.

    Args:
        confusion: :func:`confusion_summary`'s dict (rows: true class, columns: predicted).

    Returns:
        None when the set contains every class (or no matrix); else ``{"absent": [classes with no
        image in the set], "n": images, "share": predicted into them ÷ n, "by_class": {class:
        share}, "shift": share >= ABSENT_SHARE_WARN}``.
    """
    if not confusion:
        return None
    a = np.asarray(confusion["counts"], dtype=float)
    labels = list(confusion["labels"])
    support = a.sum(1)
    n = float(support.sum())
    absent = [i for i in range(len(labels)) if support[i] == 0]
    if not absent or n <= 0:
        return None
    into = a[:, absent].sum(0)
    share = float(into.sum() / n)
    return {"absent": [labels[i] for i in absent], "n": int(round(n)), "share": share,
            "by_class": {labels[i]: float(x / n) for i, x in zip(absent, into)},
            "shift": share >= ABSENT_SHARE_WARN}


# ---------------------------------------------------------------------------------------------
# grouping rows
# ---------------------------------------------------------------------------------------------
def _role(r: dict) -> str:
    return r.get("role") or ("baseline" if r["arm"] == "baseline" else "arm")


def _who(r: dict) -> str:
    if _role(r) == "baseline":
        return "baseline"
    who = f"{r['arm']} +{r['amount_count']} ({r['amount_label']}, gen seed {r['generator_seed']})"
    return who + {"control": ": resampled real", "comparison": " vs resampling"}.get(_role(r), "")


def _sets(rows) -> list[str]:
    """Test sets of classifier rows: the test split first, then the external sets in row order."""
    clf = [r for r in rows if r.get("kind", "classifier") == "classifier" and r.get("test_set")]
    out = ["test"] if any(r["test_set"] == "test" for r in clf) else []
    for r in clf:
        if r["test_set"] not in out:
            out.append(r["test_set"])
    return out


def _groups(rows) -> list[tuple[dict, dict[str, dict]]]:
    """(first row, test set → row) per model (evaluator, role, arm, amount, generator seed)."""
    groups: dict[tuple, tuple[dict, dict[str, dict]]] = {}
    for r in rows:
        if r.get("kind", "classifier") != "classifier":
            continue
        k = (r["evaluator"], _role(r), r["arm"], repr(r["amount"]), r["generator_seed"])
        groups.setdefault(k, (r, {}))[1].setdefault(r["test_set"], r)
    return list(groups.values())


def _signed(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.3f}".replace("-", "\u2212")


def _plain(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _with_ci(v: dict | None, fmt) -> str:
    if v is None or v.get("value") is None:
        return "n/a"
    ci = v.get("ci")
    if ci and ci[0] is not None and ci[1] is not None:
        return f"{fmt(v['value'])} [{fmt(ci[0])}, {fmt(ci[1])}]"
    return fmt(v["value"])


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def _has_external(rows) -> bool:
    return any(r.get("kind", "classifier") == "classifier" and r["test_set"] != "test" for r in rows)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


# ---------------------------------------------------------------------------------------------
# text (verdicts.txt) and HTML (report.html)
# ---------------------------------------------------------------------------------------------
def agreement_lines(rows) -> list[str]:
    """One line per arm (and per arm vs its resampling control): the difference with CI on each
    set, then whether the verdicts agree in sign."""
    sets = _sets(rows)
    several = len({r["evaluator"] for r in rows if r.get("kind", "classifier") == "classifier"}) > 1
    lines = []
    for first, by_set in _groups(rows):
        if _role(first) in ("baseline", "control") or len(by_set) < 2:
            continue
        per = [(s, primary_estimates(by_set[s])[1] if s in by_set else None) for s in sets]
        _, phrase = sign_agreement(per)
        shown = ", ".join(f"{s} {_with_ci(v, _signed)}" for s, v in per if v is not None)
        who = _who(first) if _role(first) == "comparison" else f"{_who(first)} vs baseline"
        by = f"{first['evaluator']}: " if several else ""  # several evaluators: say whose verdicts
        lines.append(f"{by}{who}: {_label(primary_name(first))} {shown}: {phrase}")
    return lines


def shift_lines(rows, threshold: float = ABSENT_SHARE_WARN) -> list[str]:
    """One line per external set that a classifier puts ``threshold`` or more of into classes it lacks."""
    lines = []
    for s in _sets(rows):
        if s == "test":
            continue
        found = []
        for r in rows:
            if r["test_set"] != s or _role(r) not in ("baseline", "arm", "control") \
                    or r.get("kind", "classifier") != "classifier":
                continue
            a = absent_class_share(r.get("confusion"))
            if a is not None:
                found.append((r, a))
        hits = [(r, a) for r, a in found if a["share"] >= threshold]
        if not hits:
            continue
        absent = hits[0][1]["absent"]
        lo, hi = min(a["share"] for _, a in hits), max(a["share"] for _, a in hits)
        span = _pct(lo) if round(100 * lo) == round(100 * hi) else f"{100 * lo:.0f}–{_pct(hi)}"
        who = "; ".join(f"{_who(r)} {_pct(a['share'])}" for r, a in hits[:4]) + (
            f"; … {len(hits) - 4} more" if len(hits) > 4 else "")
        top = max(hits[0][1]["by_class"].items(), key=lambda kv: kv[1])[0]
        most = f"; most into {top}" if len(absent) > 1 else ""
        lines.append(f"{s} holds no {', '.join(absent)} images, yet {len(hits)} of {len(found)} classifiers put {span} "
                     f"of its {hits[0][1]['n']} images there ({who}{most}): a shift, not noise — "
                     f"{s} differs from the training distribution (threshold {_pct(threshold)})")
    return lines


def view_lines(rows) -> list[str]:
    """The view for ``verdicts.txt``: a header, the agreement lines, the shift lines ([] without external sets)."""
    if not _has_external(rows):
        return []
    metric = _label(primary_name(next(r for r in rows if r.get("kind", "classifier") == "classifier")))
    out = [f"[in- vs out-of-distribution] {metric} difference per set (95% CI): test split beside "
           f"{', '.join(s for s in _sets(rows) if s != 'test')}"]
    out += [f"  {x}" for x in agreement_lines(rows)] or ["  no arm has results on two sets yet"]
    out += [f"  {x}" for x in shift_lines(rows)]
    return out


def _html_table(header: list[str], body: list[list[str]], shade: set[int] = frozenset()) -> str:
    shaded = ' style="background:#fde8e8"'
    h = "".join(f"<th{shaded if j in shade else ''}>{html.escape(x)}</th>" for j, x in enumerate(header))
    b = "".join("<tr>" + "".join(f"<td{shaded if j in shade else ''}>{html.escape(c)}</td>" for j, c in enumerate(row))
                + "</tr>" for row in body)
    return f"<table><tr>{h}</tr>{b}</table>"


def side_by_side(rows) -> tuple[list[str], list[list[str]]]:
    """A table: one row per model (baseline, arms, controls, arm vs control), per set the primary
    metric with its CI and the difference against the row's reference with its CI."""
    sets = _sets(rows)
    header = ["model"] + [f"{s}: {x}" for s in sets for x in ("value (95% CI)", "difference (95% CI)")]
    body = []
    for first, by_set in _groups(rows):
        cells = [_who(first) + ("" if _role(first) in ("baseline", "comparison") else " (vs baseline)")]
        for s in sets:
            r = by_set.get(s)
            val, diff = primary_estimates(r) if r is not None else (None, None)
            cells += [("–" if r is None or _role(r) == "comparison" else _with_ci(val, _plain)),
                      ("–" if r is None or _role(r) == "baseline" else _with_ci(diff, _signed))]
        body.append(cells)
    return header, body


def _confusion_html(r: dict) -> str:
    c = r.get("confusion")
    if not c:
        return ""
    a = np.asarray(c["counts"], dtype=float)
    labels = c["labels"]
    present = [i for i in range(len(labels)) if a[i].sum() > 0]
    absent = {j + 1 for j in range(len(labels)) if a[j].sum() == 0}
    body = [[labels[i]] + [f"{a[i, j]:.1f}".rstrip("0").rstrip(".") for j in range(len(labels))] for i in present]
    share = absent_class_share(c)
    cap = f"{html.escape(_who(r))} — {html.escape(r['test_set'])}"
    if c.get("n_seeds", 1) > 1:
        cap += f" (mean over {c['n_seeds']} seeds)"
    if share is not None:
        cap += (f"; {_pct(share['share'])} predicted as classes the set does not contain (shaded)"
                + (" — a shift, not noise" if share["shift"] else ""))
    table = _html_table(["true \u2193 predicted \u2192", *labels], body, absent)
    return f"<figure>{table}<figcaption>{cap}</figcaption></figure>"


_NOTE = ("<p>The test split (the training distribution) beside every external set, for each arm: the primary "
         "metric with its 95% CI and its difference against the arm's reference with its CI, then one line per arm "
         "saying whether the verdicts agree in sign across the sets. A benefit on the test split that does not "
         "carry to an external set is a benefit on the training distribution only. Each external set's confusion "
         "matrices follow (rows: true class, columns: predicted); columns of classes the set does not contain are "
         "shaded: a large share there ({pct} or more) is the set differing from the training data — a shift, not "
         "noise.</p>")


def view_html(rows) -> str:
    """The view as an HTML section for ``report.html`` ("" without external sets)."""
    if not _has_external(rows):
        return ""
    parts = ["<h2>In- vs out-of-distribution</h2>", _NOTE.format(pct=_pct(ABSENT_SHARE_WARN)),
             _html_table(*side_by_side(rows))]
    lines = agreement_lines(rows) + shift_lines(rows)
    if lines:
        parts.append(f"<div class='verdict'>{html.escape(chr(10).join(lines))}</div>")
    for s in _sets(rows):
        if s == "test":
            continue
        figs = [_confusion_html(r) for r in rows if r["test_set"] == s and _role(r) in ("baseline", "arm", "control")
                and r.get("kind", "classifier") == "classifier"]
        figs = [f for f in figs if f]
        parts.append(f"<h3>Confusion matrices — {html.escape(s)}</h3>" + ("".join(figs) or "<p>none available</p>"))
    return "\n".join(parts)
