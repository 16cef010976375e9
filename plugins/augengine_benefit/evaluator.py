"""The ``benefit`` evaluator: does a classifier (trained with synthetic images) beat its baseline?

Metrics (scikit-learn definitions, see :mod:`augengine.stats`): per-class precision and recall
(the paper's Table 2), accuracy, macro-F1, per-class sensitivity and specificity, balanced
accuracy, one-vs-rest ROC AUC per class and macro, the confusion matrix. Every number has a
bootstrap confidence interval over test images — over lesions when the test set knows them.
Against a baseline, every metric gets a paired difference with a paired-bootstrap CI on the same
resamples, McNemar's exact test on per-image correctness, and a one-line verdict. With several
seeds per arm, the seeds are resampled too (hierarchical bootstrap) and a Wilcoxon test over
paired seeds is reported.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from augengine.plugin_api import slug, unique_slugs

import augengine
from augengine import DataError, PluginError
from augengine.plugin_api import ClassifierPass, stats

__all__ = ["BenefitEvaluator", "BenefitConfig"]

OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
PER_CLASS = ("precision", "recall", "sensitivity", "specificity", "f1", "auc")
LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
    "macro_auc": "macro AUC",
}
FIRST = ("MEL", "NV")


class BenefitConfig(augengine.PluginConfig):
    """Configuration of the ``benefit`` evaluator."""

    n_boot: int = Field(1000, ge=100, description="bootstrap resamples (>= 1000 for reported CIs)")
    level: float = Field(0.95, gt=0.5, lt=1, description="confidence level of the intervals")
    primary: Literal["balanced_accuracy", "accuracy", "macro_f1", "macro_auc"] = Field(
        "balanced_accuracy", description="metric of the verdict line"
    )
    group_bootstrap: bool = Field(True, description="resample lesions (test.groups) instead of images when known")
    batch_size: int = Field(256, ge=1, description="prediction batch size")


def _fmt(x: float) -> str:
    """Signed 3-decimal number with a true minus sign."""
    return f"{x:+.3f}".replace("-", "\u2212")


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "= n/a"
    return f"= {p:.2g}" if p >= 0.001 else "< 0.001"


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


class _Replicates:
    """Point estimates and bootstrap replicates of all metrics for one classifier on one set."""

    def __init__(self, y: np.ndarray, proba: np.ndarray, weights: np.ndarray, num_classes: int):
        pred = proba.argmax(1)
        self.correct = pred == y
        self.point = self._metrics(y, pred, proba, None, num_classes)
        self.boot = self._metrics(y, pred, proba, weights, num_classes)
        self.cm = stats.confusion_matrices(y, pred, num_classes)[0]

    @staticmethod
    def _metrics(y, pred, proba, w, c) -> dict[str, np.ndarray]:
        m = stats.metrics_from_confusion(stats.confusion_matrices(y, pred, c, w))
        auc = stats.weighted_ovr_auc(y, proba, w)
        m["auc"] = auc
        m["sensitivity"] = m["recall"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m["macro_auc"] = np.nanmean(auc, axis=1)
        return m


class BenefitEvaluator(augengine.Evaluator):
    """Per-class precision/recall, balanced accuracy, AUC with bootstrap CIs; paired tests against a baseline."""

    name = "benefit"
    Config = BenefitConfig

    @classmethod
    def work(cls, config, *, phase, n_images=0, n_classifiers=1, **context):
        """Each classifier (arm and baseline fits) predicts the test set once; the bootstrap is not counted."""
        return [ClassifierPass(n_images * n_classifiers, "benefit predictions")] if phase == "evaluate" else []

    # -- public ---------------------------------------------------------------------------
    def evaluate(self, classifier=None, test=None, *, baseline=None, synthetic=None, train=None,
                 external: dict | None = None, seed: int = 0, names: tuple[str, str] = ("arm", "baseline"),
                 **kwargs: Any) -> augengine.Evaluation:
        """Evaluate ``classifier`` (one or a list of seeds) on ``test`` and each ``external`` set.

        Args:
            classifier: a trained classifier, a run directory, or a list of them (one per seed).
            test: the in-distribution test :class:`~augengine.ImageSet`.
            baseline: classifier(s) trained without synthetic data; enables paired comparison.
            external: name → ImageSet of external test sets (metrics and verdicts reported apart).
            train: the real training set (optional): images of a test set that are training images
                (equal sha256 of the decoded uint8 pixels at the set's size) are counted in
                ``train_overlap`` and flagged in the notes and the verdict line.
            seed: bootstrap seed (the same seed gives the same intervals).
            names: row labels of the arm and the baseline in the tables. A baseline named other
                than ``"baseline"`` is named in the verdict too: ``("synthetic images",
                "resampling")`` gives "balanced accuracy +0.012 vs resampling (95% CI …): no
                evidence that synthetic images beat resampling" (the bench's resampling control).

        Returns:
            :class:`~augengine.Evaluation` with ``metrics["sets"][name]`` per test set, tables
            ``table2_<set>`` (paper layout), ``summary_<set>``, figures ``confusion_<set>`` and
            one verdict per set when a baseline is given. ``<set>`` is ``test`` or
            ``external_<slug of the name>`` (:func:`augengine.naming.unique_slugs`: one safe file-name
            component, unique among the sets).
        """
        if kwargs:
            raise PluginError(f"evaluator 'benefit': unexpected arguments {sorted(kwargs)}")
        arms = self._as_list(classifier, "classifier")
        bases = self._as_list(baseline, "baseline") if baseline is not None else []
        if test is None and not external:
            raise DataError("evaluator 'benefit': no test set given (test=... or external={...})")
        sets = {}
        if test is not None:
            sets["test"] = test
        for k, v in (external or {}).items():
            sets[f"external:{k}"] = v
        # file names of tables and figures: a safe, unique slug of each set's name (a path given as
        # a name never reaches the file system)
        stems = {"test": "test"} if test is not None else {}
        stems.update({f"external:{k}": f"external_{s}" for k, s in unique_slugs([str(k) for k in external or {}]).items()})
        class_names = list(getattr(arms[0], "class_names", None) or next(iter(sets.values())).class_names)
        for clf in arms + bases:
            if list(clf.class_names) != class_names:
                raise DataError(f"evaluator 'benefit': classifiers disagree on the class space: {clf.class_names} vs {class_names}")
        mapped = {}
        for k, s in list(sets.items()):
            if list(s.class_names) != class_names:
                # another class list (an external clinic's MEL/NV-only set): match classes by name
                sets[k] = s.relabel(class_names, where=f"evaluator 'benefit': set {k!r}")
                mapped[k] = list(s.class_names)
        order = [c for c in FIRST if c in class_names] + [c for c in class_names if c not in FIRST]

        out = augengine.Evaluation(metrics={
            "n_boot": self.config.n_boot, "level": self.config.level, "seed": seed, "primary": self.config.primary,
            "class_names": class_names, "class_order": order,
            "n_seeds": {"arm": len(arms), "baseline": len(bases)}, "sets": {},
        })
        train_hashes: dict[int, set[bytes]] = {}
        for set_name, s in sets.items():
            overlap = self._train_overlap(s, train, train_hashes) if train is not None else None
            res, tables, fig, verdict = self._evaluate_set(set_name, s, arms, bases, class_names, order, seed, names,
                                                            mapped, stems[set_name], overlap)
            out.metrics["sets"][set_name] = res
            out.tables.update(tables)
            out.figures[f"confusion_{stems[set_name]}"] = fig
            prefix = "" if set_name == "test" else f"{set_name}: "
            if verdict:
                out.verdicts.append(prefix + verdict)
            elif overlap and overlap["n"]:
                out.verdicts.append(prefix + self._overlap_line(overlap))
        return out

    # -- overlap with the training images ---------------------------------------------------
    @staticmethod
    def _train_overlap(s, train, cache: dict[int, set[bytes]]) -> dict[str, Any]:
        """Images of ``s`` that are training images: equal content hashes, where the content is
        the decoded uint8 RGB pixels at the set's size (so a byte-identical file, or the same
        pixels in another lossless file, counts; a re-encoded JPEG does not)."""
        if not isinstance(train, augengine.ImageSet):
            raise DataError(f"evaluator 'benefit': train must be an ImageSet, got {type(train).__name__}")
        size = int(s.size or train.size or 64)
        if size not in cache:
            cache[size] = {hashlib.sha256(row.tobytes()).digest() for row in train.images(size)}
        known = cache[size]
        hit = np.fromiter((hashlib.sha256(row.tobytes()).digest() in known for row in s.images(size)),
                          dtype=bool, count=len(s))
        ids = [s.ids[i] for i in np.flatnonzero(hit)[:20]]
        return {"n": int(hit.sum()), "of": int(len(s)), "ids": ids,
                "content_hash": f"sha256 of the decoded uint8 RGB pixels at {size} px"}

    @staticmethod
    def _overlap_line(overlap) -> str:
        return (f"WARNING: {overlap['n']} of {overlap['of']} images of this set are training images (identical "
                "pixels): its metrics are inflated")

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _as_list(x, what) -> list:
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        xs = [augengine.load_run(c, kind="classifier") if isinstance(c, (str, Path)) else c for c in xs]
        if not xs or any(c is None or not hasattr(c, "predict_proba") for c in xs):
            raise PluginError(f"evaluator 'benefit': {what} must be a trained classifier or a list of them")
        return xs

    def _evaluate_set(self, set_name, s, arms, bases, class_names, order, seed, names, mapped=(), stem=None,
                      overlap=None):
        cfg = self.config
        c = len(class_names)
        y = np.asarray(s.labels, dtype=np.int64)
        n = len(y)
        if n == 0:
            raise DataError(f"evaluator 'benefit': set {set_name!r} is empty")
        groups = s.groups if (cfg.group_bootstrap and s.groups is not None) else None
        w = stats.bootstrap_weights(n, cfg.n_boot, groups=groups, seed=seed)
        arm_r = [_Replicates(y, self._proba(clf, s, c), w, c) for clf in arms]
        base_r = [_Replicates(y, self._proba(clf, s, c), w, c) for clf in bases]
        counts = np.bincount(y, minlength=c)
        notes = []
        missing = [class_names[k] for k in range(c) if counts[k] == 0]
        if missing:
            notes.append(
                f"{', '.join(missing)}: no test images, so precision, recall/sensitivity, F1 and AUC of "
                f"{'this class are' if len(missing) == 1 else 'these classes are'} undefined (null) and left out of "
                "balanced accuracy, macro-F1 and macro AUC"
            )
        res: dict[str, Any] = {
            "n_images": n,
            "n_groups": None if s.groups is None else int(len(np.unique(s.groups))),
            "bootstrap": "lesion" if groups is not None else "image",
            "class_counts": {k: int(v) for k, v in zip(class_names, counts)},
            "n_seeds": len(arms),
        }
        arm_summary, arm_boot = self._summarise(arm_r, class_names, counts, seed + 1)
        res.update(arm_summary)
        res["confusion_matrix"] = self._confusion(arm_r, class_names)
        if set_name in mapped:
            notes.insert(0, f"class list {mapped[set_name]} mapped by name onto the classifier's {list(class_names)}")
        if overlap is not None:
            res["train_overlap"] = overlap
            if overlap["n"]:
                notes.insert(0, self._overlap_line(overlap) + f" (content hash: {overlap['content_hash']})")
        res["notes"] = notes
        verdict = None
        if base_r:
            # equal seed counts are paired by seed: the same seed draws in both hierarchical resamples
            base_seed = (seed + 1) if len(arms) == len(bases) else seed + 2
            base_summary, base_boot = self._summarise(base_r, class_names, counts, base_seed)
            res["baseline"] = base_summary
            res["baseline"]["confusion_matrix"] = self._confusion(base_r, class_names)
            res["difference"] = self._difference(arm_summary, base_summary, arm_boot, base_boot, class_names, counts)
            if len(arms) == 1 and len(bases) == 1:
                res["mcnemar"] = stats.mcnemar_exact(arm_r[0].correct, base_r[0].correct)
            else:
                res["mcnemar"] = [stats.mcnemar_exact(a.correct, b.correct) for a, b in zip(arm_r, base_r)]
                res["wilcoxon"] = {
                    m: stats.wilcoxon_seeds([r.point[m][0] for r in arm_r], [r.point[m][0] for r in base_r])
                    for m in OVERALL
                }
            verdict = self._verdict(res, len(arms), len(bases), names)
            if overlap and overlap["n"]:
                verdict += f"; {self._overlap_line(overlap)}"
            res["verdict"] = verdict
        stem = stem or slug(set_name.replace(":", "_"))
        tables = {
            f"table2_{stem}": self._table2(res, order, names),
            f"summary_{stem}": self._summary_table(res, order, names),
        }
        fig = self._confusion_png(res["confusion_matrix"], class_names, f"{set_name} ({names[0]})")
        return res, tables, fig, verdict

    def _proba(self, clf, s, c) -> np.ndarray:
        p = np.asarray(clf.predict_proba(s, batch_size=self.config.batch_size), dtype=np.float64)
        if p.shape != (len(s), c):
            raise PluginError(f"evaluator 'benefit': predict_proba returned shape {p.shape}, expected {(len(s), c)}")
        return p

    def _summarise(self, reps: Sequence[_Replicates], class_names, counts, seed):
        """Point values (mean over seeds) and CIs (hierarchical over seeds when > 1)."""
        lo_q = self.config.level
        boot, point = {}, {}
        for m in OVERALL + PER_CLASS + ("support",):
            per_seed_boot = np.stack([r.boot[m] for r in reps])
            boot[m] = stats.hierarchical_resample(per_seed_boot, seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                point[m] = np.nanmean(np.stack([r.point[m][0] for r in reps]), axis=0)
        out = {"overall": {}, "per_class": {}}
        for m in OVERALL:
            lo, hi = stats.percentile_ci(boot[m], lo_q)
            out["overall"][m] = {"value": _num(point[m]), "ci_low": _num(lo), "ci_high": _num(hi)}
            if len(reps) > 1:
                out["overall"][m]["per_seed"] = [_num(r.point[m][0]) for r in reps]
        for k, name in enumerate(class_names):
            row: dict[str, Any] = {"support": int(counts[k])}
            for m in PER_CLASS:
                if counts[k] == 0 and m != "specificity":
                    row[m] = None  # undefined: the class has no test images
                    continue
                lo, hi = stats.percentile_ci(boot[m][:, k], lo_q)
                row[m] = {"value": _num(point[m][k]), "ci_low": _num(lo), "ci_high": _num(hi)}
            out["per_class"][name] = row
        return out, boot

    def _difference(self, arm, base, arm_boot, base_boot, class_names, counts):
        lo_q = self.config.level
        diff: dict[str, Any] = {"overall": {}, "per_class": {}}
        for m in OVERALL:
            d = arm_boot[m] - base_boot[m]
            lo, hi = stats.percentile_ci(d, lo_q)
            a, b = arm["overall"][m]["value"], base["overall"][m]["value"]
            diff["overall"][m] = {"value": None if a is None or b is None else a - b, "ci_low": _num(lo), "ci_high": _num(hi)}
        for k, name in enumerate(class_names):
            row = {}
            for m in PER_CLASS:
                if arm["per_class"][name][m] is None:
                    row[m] = None
                    continue
                lo, hi = stats.percentile_ci(arm_boot[m][:, k] - base_boot[m][:, k], lo_q)
                a, b = arm["per_class"][name][m]["value"], base["per_class"][name][m]["value"]
                row[m] = {"value": None if a is None or b is None else a - b, "ci_low": _num(lo), "ci_high": _num(hi)}
            diff["per_class"][name] = row
        return diff

    def _verdict(self, res, n_arm, n_base, names=("arm", "baseline")) -> str:
        m = self.config.primary
        d = res["difference"]["overall"][m]
        if d["value"] is None or d["ci_low"] is None:
            return f"{LABELS[m]}: undefined on this set, no verdict"
        arm, ref = names
        if ref == "baseline":
            vs = ""
            concl = ("evidence of benefit" if d["ci_low"] > 0 else "evidence of harm" if d["ci_high"] < 0
                     else "no evidence of benefit")
        else:  # another reference (the bench's resampling control): the verdict names both
            vs = f" vs {ref}"
            concl = (f"evidence that {arm} beat {ref}" if d["ci_low"] > 0 else f"evidence that {ref} beats {arm}"
                     if d["ci_high"] < 0 else f"no evidence that {arm} beat {ref}")
        pct = int(round(self.config.level * 100))
        if n_arm == 1 and n_base == 1:
            p = res["mcnemar"]["p_value"]
            return (f"{LABELS[m]} {_fmt(d['value'])}{vs} ({pct}% CI {_fmt(d['ci_low'])} to {_fmt(d['ci_high'])}), "
                    f"McNemar p {_fmt_p(p)}: {concl}")
        wp = res["wilcoxon"][m]
        pairs = min(n_arm, n_base)
        return (f"{LABELS[m]} {_fmt(d['value'])}{vs} ({pct}% CI {_fmt(d['ci_low'])} to {_fmt(d['ci_high'])}, "
                f"hierarchical bootstrap over seeds and {res['bootstrap']}s), Wilcoxon p {_fmt_p(wp)} over {pairs} "
                f"seed pairs: {concl} (rests on {n_arm} arm and {n_base} {ref} seeds)")

    @staticmethod
    def _confusion(reps, class_names):
        counts = np.stack([r.cm for r in reps])
        mean = counts.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = mean.sum(1, keepdims=True)
            norm = np.where(rows > 0, mean / np.where(rows > 0, rows, 1), np.nan)
        out = {
            "labels": list(class_names),
            "counts": counts[0].astype(int).tolist(),
            "row_normalised": [[_num(v) for v in row] for row in norm],
        }
        if len(reps) > 1:
            out["counts_per_seed"] = counts.astype(int).tolist()
            out["note"] = "counts: first seed; row_normalised: mean over seeds"
        return out

    # -- presentation ---------------------------------------------------------------------
    @staticmethod
    def _cell(v) -> str:
        return "n/a" if v is None or v["value"] is None else f"{v['value']:.3f}"

    def _table2(self, res, order, names) -> str:
        """Paper Table 2: precision/recall per class, then accuracy."""
        header = ["Model"] + order + ["Accuracy"]
        rows = []
        blocks = [(names[0], res)] + ([(names[1], res["baseline"])] if "baseline" in res else [])
        for label, r in blocks:
            pc = r["per_class"]
            rows.append([label] + [f"{self._cell(pc[c]['precision'])}/{self._cell(pc[c]['recall'])}" for c in order]
                        + [self._cell(r["overall"]["accuracy"])])
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        line = lambda cells: "  ".join(str(x).ljust(w) for x, w in zip(cells, widths))  # noqa: E731
        return "\n".join([line(header)] + [line(r) for r in rows] + ["(precision/recall per class; n/a = class absent from the set)"])

    def _summary_table(self, res, order, names) -> str:
        def ci(v):
            if v is None or v["value"] is None:
                return "n/a"
            lo = "n/a" if v["ci_low"] is None else f"{v['ci_low']:.3f}"
            hi = "n/a" if v["ci_high"] is None else f"{v['ci_high']:.3f}"
            return f"{v['value']:.3f} [{lo}, {hi}]"

        pct = int(round(self.config.level * 100))
        lines = [f"n = {res['n_images']} images, {pct}% CIs by {res['bootstrap']} bootstrap ({self.config.n_boot} resamples), "
                 f"{res['n_seeds']} seed(s)"]
        cols = [names[0]] + ([names[1], "difference"] if "baseline" in res else [])
        srcs = [res] + ([res["baseline"], res["difference"]] if "baseline" in res else [])
        rows = [[LABELS[m]] + [ci(s["overall"][m]) for s in srcs] for m in OVERALL]
        for c in order:
            for m, lab in (("sensitivity", "sens"), ("specificity", "spec"), ("auc", "AUC")):
                rows.append([f"{c} {lab}"] + [ci(s["per_class"][c][m]) for s in srcs])
        header = ["metric"] + cols
        widths = [max(len(x) for x in col) for col in zip(header, *rows)]
        fmt = lambda cells: "  ".join(x.ljust(w) for x, w in zip(cells, widths))  # noqa: E731
        lines += [fmt(header)] + [fmt(r) for r in rows]
        if res.get("verdict"):
            lines.append(res["verdict"])
        lines += [f"note: {n}" for n in res.get("notes", [])]
        return "\n".join(lines)

    @staticmethod
    def _confusion_png(cm, class_names, title) -> bytes:
        from matplotlib.figure import Figure

        counts = np.asarray(cm["counts"])
        norm = np.array([[np.nan if v is None else v for v in row] for row in cm["row_normalised"]], dtype=float)
        c = len(class_names)
        fig = Figure(figsize=(1.0 + 0.7 * c, 0.8 + 0.6 * c), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(np.nan_to_num(norm), vmin=0, vmax=1, cmap="Blues")
        for i in range(c):
            for j in range(c):
                v = norm[i, j]
                ax.text(j, i, f"{counts[i, j]}\n{'' if np.isnan(v) else f'{v:.2f}'}", ha="center", va="center",
                        fontsize=7, color="white" if (not np.isnan(v) and v > 0.5) else "black")
        ax.set_xticks(range(c), class_names, rotation=45, fontsize=8)
        ax.set_yticks(range(c), class_names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        fig.subplots_adjust(left=0.18, bottom=0.18, right=0.97, top=0.92)  # tight_layout would draw twice
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
