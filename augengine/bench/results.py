"""The results of a bench directory: one row per finished evaluation, metrics flattened.

Reads only the output directory (``plan.json`` and the unit directories), so it works on a
directory filled by many processes or nodes, and on a partly finished one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from augengine.bench.distribution import confusion_summary

__all__ = ["results_rows", "flatten_metrics", "read_plan", "unit_dir", "done_record", "amount_text", "EVAL_KINDS"]

#: unit kinds whose results are rows of results.jsonl, and the row kind each gives
EVAL_KINDS = {"eval": "classifier", "quality": "synthetic-set"}


def read_plan(out: Path) -> list[dict[str, Any]]:
    """The units of ``OUT/plan.json`` (as JSON dicts); [] when absent."""
    p = out / "plan.json"
    return json.loads(p.read_text()) if p.exists() else []


def unit_dir(out: Path, u) -> Path:
    """The finished directory of unit ``u`` (a :class:`~augengine.bench.graph.Unit` or its JSON dict);
    in a directory written by an older version, its folder under the old name when only that exists."""
    from augengine.bench.graph import Unit

    unit = Unit.from_json(u) if isinstance(u, dict) else u
    d = Path(out) / "units" / unit.dirname
    if not d.exists():
        old = d.with_name(unit.legacy_dirname)
        if old.exists():
            return old
    return d


def done_record(out: Path, u: dict[str, Any]) -> dict[str, Any] | None:
    """``done.json`` of unit ``u``, or None when it is not finished."""
    p = unit_dir(out, u) / "done.json"
    return json.loads(p.read_text()) if p.exists() else None


def amount_text(a) -> str:
    """An amount as the tables show it (``"0"`` for the baseline)."""
    from augengine.bench.config import amount_label

    return "0" if a is None else amount_label(a)


def results_rows(out: str | Path, plan=None) -> list[dict[str, Any]]:
    """One row per finished evaluation (arm, amount, seeds, test set, every metric with its CI, verdicts).

    ``role`` says what a row is: ``baseline``; ``arm`` (a synthetic arm vs the baseline);
    ``control`` (the arm's resampling control vs the baseline: the same class counts, real images;
    ``arm`` names the synthetic arm it controls for, ``class_counts`` what it added); ``comparison``
    (the arm vs its control, paired by classifier seed: its metrics hold the paired differences,
    also under ``differences``). A control shared by arms that add the same counts has a row per arm.
    """
    out = Path(out)
    units = read_plan(out) if plan is None else [u.to_json() for u in plan.units]
    by_key = {u["key"]: u for u in units}
    rows = []
    for u in units:
        if u["kind"] not in EVAL_KINDS:
            continue
        done = done_record(out, u)
        if done is None:
            continue
        res = done["result"]
        m = u["meta"]
        if m.get("role") == "control":
            continue  # one row per arm it controls for, with that arm's comparison (below)
        count = 0
        for k in u["deps"]:
            d = by_key.get(k)
            if d and d["kind"] == "clffit" and d["meta"]["arm"] == m["arm"]:
                dd = done_record(out, d)
                count = dd["result"].get("amount_count", 0) if dd else count
                break
            if d and d["kind"] in ("synth", "filtered"):
                dd = done_record(out, d)
                count = dd["result"].get("n", 0) if dd else count
        rows.append({
            "kind": EVAL_KINDS[u["kind"]],
            "evaluator": m["evaluator"],
            "arm": m["arm"],
            "amount": m["amount"],
            "amount_label": amount_text(m["amount"]),
            "amount_count": count,
            "generator_seed": m.get("generator_seed"),
            "classifier_seeds": m.get("classifier_seeds"),
            "test_set": m.get("test_set"),
            "metrics": flatten_metrics(res.get("metrics", {})),
            # the verdict's metric and the arm's confusion matrix (the in- vs out-of-distribution view)
            "primary": res.get("metrics", {}).get("primary") if isinstance(res.get("metrics"), dict) else None,
            "confusion": confusion_summary(res.get("metrics", {})),
            "verdicts": res.get("verdicts", []),
            "unit": u["key"][:12],
            "role": m.get("role") or ("baseline" if m["arm"] == "baseline" else "arm"),
        })
        if m.get("role") == "comparison":
            row = rows.pop()
            row["reference"] = m.get("reference")
            row["class_counts"] = m.get("counts")
            row["differences"] = {k: v for k, v in row["metrics"].items()
                                  if {"difference", "delta", "diff"} & set(k.lower().replace("_", ".").split("."))}
            ctrl = _control_row(out, units, u, m, row)
            if ctrl is not None:
                rows.append(ctrl)
            rows.append(row)
    return rows


def _control_row(out: Path, units: list[dict[str, Any]], cmp_unit: dict[str, Any], m: dict[str, Any],
                 cmp_row: dict[str, Any]) -> dict[str, Any] | None:
    """The row of the control evaluation that ``cmp_unit`` (arm vs control) compares with, for that arm."""
    ctrl_fits = cmp_unit["deps"][cmp_unit["spec"]["n_arm"]:]
    ev = next((v for v in units if v["kind"] == "eval" and v["meta"].get("role") == "control"
               and v["meta"]["test_set"] == m["test_set"] and v["meta"]["evaluator"] == m["evaluator"]
               and v["deps"][: v["spec"]["n_arm"]] == ctrl_fits), None)
    done = done_record(out, ev) if ev is not None else None
    if done is None:
        return None
    res = done["result"]
    return {**{k: cmp_row[k] for k in ("kind", "evaluator", "arm", "amount", "amount_label", "generator_seed",
                                       "classifier_seeds", "test_set")},
            "amount_count": int(sum((ev["meta"].get("counts") or {}).values())),
            "metrics": flatten_metrics(res.get("metrics", {})), "verdicts": res.get("verdicts", []),
            "unit": ev["key"][:12], "role": "control", "control": "resample", "class_counts": ev["meta"].get("counts")}


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
_VALUE_KEYS = ("value", "mean", "estimate", "point")


def _ci_of(d: dict) -> list[float] | None:
    for k in ("ci", "ci95", "interval"):
        v = d.get(k)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return [None if x is None else float(x) for x in v]
    for lo, hi in (("ci_low", "ci_high"), ("low", "high"), ("lo", "hi"), ("lower", "upper")):
        if lo in d and hi in d:
            return [d[lo], d[hi]]
    return None


def flatten_metrics(m: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Nested metrics → ``{"a.b.c": {"value": v, "ci": [lo, hi] | None}}`` (numbers only).

    A dict holding a value key (value/mean/estimate/point) is one metric; its CI is read from
    ``ci``/``ci95`` (a pair) or ``ci_low``/``ci_high`` (or low/high).
    """
    out: dict[str, dict[str, Any]] = {}
    if isinstance(m, dict):
        vk = next((k for k in _VALUE_KEYS if k in m and isinstance(m[k], (int, float)) and not isinstance(m[k], bool)), None)
        if vk is not None:
            out[prefix or vk] = {"value": float(m[vk]), "ci": _ci_of(m)}
            for k, v in m.items():  # other numbers beside the value (e.g. p_value, n)
                if k != vk and k not in ("ci", "ci95", "ci_low", "ci_high", "low", "high", "lo", "hi", "lower", "upper"):
                    out.update(flatten_metrics(v, f"{prefix}.{k}" if prefix else k))
            return out
        for k, v in m.items():
            out.update(flatten_metrics(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(m, bool):
        return out
    elif isinstance(m, (int, float)):
        out[prefix] = {"value": float(m), "ci": None}
    return out
