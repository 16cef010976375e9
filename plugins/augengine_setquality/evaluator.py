"""The ``set-quality`` evaluator: how good is a synthetic set, measured in the domain's own feature space."""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

import augengine
from augengine import DataError, ImageSet, PluginError
from augengine.plugin_api import ClassifierPass, stats

from augengine_setquality.features import FEATURE_CACHE, ClassifierFeatures, InceptionFeatures
from augengine_setquality.metrics import (
    frechet_distance,
    kernel_distance,
    manifold_statistics,
    memorisation_ratios,
)

__all__ = ["SetQualityConfig", "SetQualityEvaluator"]


class SetQualityConfig(augengine.PluginConfig):
    """Configuration of the ``set-quality`` evaluator."""

    features: Literal["classifier", "inception"] = Field(
        "classifier", description="feature space: the given classifier's penultimate layer, or the FID "
        "Inception-v3 network (torchmetrics' definition, 2048-d; needs inception_weights and torch-fidelity)")
    inception_weights: str | None = Field(None, description="local FID Inception-v3 weights file, a state dict "
                                          "of tensors (features='inception'; nothing is downloaded)")
    device: str = Field("auto", description="device of the Inception network: auto | cpu | cuda")
    nearest_k: int = Field(3, ge=1, description="k of improved precision/recall (Kynkäänniemi et al. 2019)")
    dc_nearest_k: int = Field(5, ge=1, description="k of density/coverage (Naeem et al. 2020)")
    kid_subsets: int = Field(50, ge=1, description="KID: number of random subsets (std over them is reported)")
    kid_subset_size: int = Field(1000, ge=2, description="KID: rows per subset (capped by the set sizes)")
    fd_min_n: int = Field(2000, ge=2, description="below this many images on either side (or below the "
                          "feature dimension + 1) FD is marked unreliable and KID is the number to read")
    copy_ratio: float = Field(0.2, gt=0, description="near-copy: distance to the nearest training image below this "
                              "fraction of that training image's own nearest-neighbour distance")
    memorised_fraction: float = Field(0.05, gt=0, le=1, description="flag the set as memorised when at least this "
                                      "fraction of its images are near-copies")
    grid_pairs: int = Field(8, ge=0, description="closest synthetic/training pairs shown in the figure (0 = none)")
    n_boot: int = Field(1000, ge=0, description="bootstrap resamples for CIs (0 = no CIs)")
    ci_level: float = Field(0.95, gt=0, lt=1, description="CI coverage")
    per_class: bool = Field(True, description="also compute every metric per class")
    reference: bool = Field(True, description="also score the held-out real test set against the training set "
                            "(the reference point every synthetic number should be read against)")
    reverse: bool = Field(True, description="the given real-trained classifier classifies the synthetic images")
    cas: bool = Field(False, description="classification accuracy score: train a classifier on synthetic images "
                      "only and test it on the real test set (costs one classifier training)")
    cas_classifier: str | None = Field(None, description="classifier plugin for CAS (None = the given classifier's)")
    cas_config: dict[str, Any] = Field(default_factory=dict, description="config overrides of the CAS classifier")
    batch_size: int = Field(256, ge=1, description="feature-extraction batch size")
    disk_cache: bool = Field(True, description="cache features under $AUGENGINE_CACHE/features/ (keyed by the "
                             "network's checkpoint hash and the pixels' hash; never written into an input)")


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _clean(obj):
    """NaN/inf → None, numpy scalars → Python (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _finite(obj)
    return obj


def _fmt(x, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


class SetQualityEvaluator(augengine.Evaluator):
    """Synthetic-set quality in a domain classifier's feature space: FD, KID, precision/recall, density/coverage, memorisation, CAS.

    Every number is computed against the real *training* set, in the feature space of the given
    (real-trained) classifier's penultimate layer — no download, no ImageNet features — per class
    and overall, with N shown and bootstrap CIs where a per-image statistic allows one. With
    ``features="inception"`` the feature space is the FID Inception-v3 network as torchmetrics
    defines it, read from a local ``inception_weights`` file (optional extra ``inception``:
    torch-fidelity); the classifier is then optional (it is needed for the reverse view and CAS). When the
    real test set is given, the same numbers for it (held-out real images vs. training) are the
    reference a synthetic set should be read against.

    Small-N honesty: FD is biased upwards roughly ∝ D/N and unstable while N ≤ D, so below
    ``fd_min_n`` images (or below D + 1) on either side an FD is reported but marked unreliable
    and KID (unbiased) is the preferred number; ``fd_at_reference_n`` compares the synthetic set
    at the reference set's N. Because the classifier was trained on the training images, their
    features are tighter than those of unseen images: copies of training images score *better*
    than held-out real images on FD/precision — the memorisation metrics catch exactly that.
    """

    name = "set-quality"

    @classmethod
    def work(cls, config, *, phase, n_images=0, n_synthetic=0, n_train=0, **context):
        """Classifier features of the training, synthetic and test images, and (``reverse``) its predictions
        on the synthetic and test images; the neighbour metrics and bootstraps are not counted, nor an
        Inception network or a CAS fit."""
        if phase != "evaluate":
            return []
        c = cls.Config.model_validate(dict(config))
        n_test = n_images if c.reference else 0
        n = n_train + n_synthetic + n_test + ((n_synthetic + n_test) if c.reverse else 0)
        return [ClassifierPass(n, "set-quality features and predictions")]
    Config = SetQualityConfig

    # -- entry point -------------------------------------------------------------------------
    def evaluate(self, classifier=None, test=None, *, baseline=None, synthetic=None, train=None,
                 external=None, seed: int = 0, **kwargs: Any) -> augengine.Evaluation:
        """Profile ``synthetic`` against ``train`` (and ``test`` as the held-out reference).

        Args:
            classifier: a trained classifier whose ``features`` define the feature space (a list:
                the first is used); optional with ``features="inception"``.
            test: the real test set: reference scores, CAS test set (optional).
            synthetic: the set under evaluation (any ImageSet, usually a SyntheticSet).
            train: the real training set (the reference distribution).
            seed: seed of KID subsets, bootstrap resamples and subsampling.

        Returns:
            :class:`~augengine.Evaluation` with ``metrics`` (``synthetic``/``reference`` blocks
            with ``overall`` and ``per_class`` entries, ``memorisation``, ``reverse``, ``cas``),
            a table, the closest-pairs figure and verdicts.
        """
        cfg = self.config
        if isinstance(classifier, (list, tuple)):
            classifier = classifier[0] if classifier else None
        if classifier is None and cfg.features == "classifier":
            raise DataError("evaluator 'set-quality': needs a trained classifier (classifier=RUN_DIR) "
                            "whose features define the feature space; got none")
        if synthetic is None:
            raise DataError("evaluator 'set-quality': needs a synthetic set (synthetic=SET.h5); got none")
        if train is None:
            raise DataError("evaluator 'set-quality': needs the real training set (train=...); got none")
        if cfg.features == "inception" and not cfg.inception_weights:
            raise DataError("evaluator 'set-quality': features='inception' needs inception_weights=<local weights "
                            "file> (the FID Inception-v3 state dict; nothing is downloaded)")
        names = list(classifier.class_names if classifier is not None else train.class_names)
        sets = {"synthetic": synthetic, "train": train, "test": test}
        for label, s in sets.items():
            if s is None:
                continue
            if not isinstance(s, ImageSet):
                raise DataError(f"evaluator 'set-quality': {label} must be an ImageSet, got {type(s).__name__}")
            if list(s.class_names) != names:
                # another class list (a MEL/NV synthetic set, a 7-class classifier): match classes by name;
                # a class outside the classifier's class space is a one-line error naming it
                sets[label] = s.relabel(names, where=f"evaluator 'set-quality': {label} set")
        synthetic, train, test = sets["synthetic"], sets["train"], sets["test"]
        if len(synthetic) == 0 or len(train) == 0:
            raise DataError(f"evaluator 'set-quality': empty set (synthetic {len(synthetic)}, train {len(train)} images)")

        if cfg.features == "inception":
            space = InceptionFeatures(cfg.inception_weights, image_size=int(synthetic.size or train.size or 64),
                                      device=str(augengine.select_device(cfg.device)))
        else:
            space = ClassifierFeatures(classifier)
        feats = lambda s: FEATURE_CACHE.features(space, s, batch_size=cfg.batch_size, disk=cfg.disk_cache)
        f_train, px_train = feats(train)
        f_syn, px_syn = feats(synthetic)
        use_ref = cfg.reference and test is not None and len(test) > 0
        f_test, _ = feats(test) if use_ref else (None, None)
        dim = int(f_train.shape[1])
        y_train = np.asarray(train.labels, np.int64)
        y_syn = np.asarray(synthetic.labels, np.int64)
        g_train = getattr(train, "groups", None)

        metrics: dict[str, Any] = {
            "n": {"train": len(train), "synthetic": len(synthetic), "test": len(test) if test is not None else 0},
            "feature_space": {**space.describe(), "dim": dim},
            "settings": {"nearest_k": cfg.nearest_k, "dc_nearest_k": cfg.dc_nearest_k, "fd_min_n": cfg.fd_min_n,
                         "copy_ratio": cfg.copy_ratio, "n_boot": cfg.n_boot, "ci_level": cfg.ci_level},
            "class_names": names,
            "notes": [
                "FD is biased upwards at small N (≈ ∝ D/N); compare FDs only at equal N — fd_preferred=false "
                f"marks N < max(fd_min_n={cfg.fd_min_n}, D+1={dim + 1}); read KID there",
                ("features come from a classifier trained on the training images: copies of training images "
                 "look better than held-out real images on FD/precision; see memorisation")
                if space.source == "classifier" else
                ("features come from the FID Inception-v3 network (ImageNet-trained): numbers are comparable with "
                 "other FID/KID values only for the same weights file, image size and N"),
                "overall FD/KID also measure the class mix; synthetic sets are often class-balanced, the "
                "training set is not — per-class numbers compare like with like",
                "precision/density CIs resample synthetic images, recall/coverage CIs resample training images "
                "(by lesion where known), both with the manifolds held fixed",
            ],
        }
        syn_block, syn_overall_stats = self._compare_block(
            f_train, y_train, g_train, f_syn, y_syn, names, seed,
            ref_n=(np.asarray(test.labels, np.int64) if use_ref else None))
        metrics["synthetic"] = syn_block
        ref_stats = None
        if use_ref:
            y_test = np.asarray(test.labels, np.int64)
            metrics["reference"], ref_stats = self._compare_block(f_train, y_train, g_train, f_test, y_test, names,
                                                                  seed + 1, ref_n=None)
        figures: dict[str, bytes] = {}
        metrics["memorisation"], pairs = self._memorisation(syn_overall_stats, ref_stats, y_syn, names,
                                                            getattr(test, "groups", None), seed)
        if pairs is not None and len(pairs[0]) and cfg.grid_pairs > 0:
            figures["closest_pairs"] = self._pairs_figure(px_syn, px_train, *pairs)
        real_on_test = None
        if classifier is not None and test is not None and len(test) and (cfg.reverse or cfg.cas):
            real_on_test = self._classification(classifier.predict(test, batch_size=cfg.batch_size),
                                                np.asarray(test.labels, np.int64), getattr(test, "groups", None),
                                                names, seed + 2)
        if cfg.reverse and classifier is not None:
            pred = classifier.predict(synthetic, batch_size=cfg.batch_size)
            metrics["reverse"] = {
                "description": "the real-trained classifier classifies the synthetic images (per-class recall "
                               "= share of class-c synthetic images it calls c)",
                "synthetic": self._classification(pred, y_syn, None, names, seed + 3),
                "real_test": real_on_test,
            }
        metrics["cas"] = self._cas(classifier, synthetic, test, names, seed, real_on_test)
        metrics = _clean(metrics)
        return augengine.Evaluation(metrics=metrics, tables={"set_quality": self._table(metrics)},
                                    figures=figures, verdicts=self._verdicts(metrics))

    # -- FD/KID/PRDC per block ----------------------------------------------------------------
    def _boot(self, values: np.ndarray, groups, seed: int) -> dict[str, Any]:
        """Mean of a per-sample statistic with a bootstrap percentile CI."""
        values = np.asarray(values, dtype=np.float64)
        out: dict[str, Any] = {"value": float(values.mean()) if len(values) else float("nan")}
        if self.config.n_boot > 0 and len(values) > 1:
            w = stats.bootstrap_weights(len(values), self.config.n_boot, groups=groups, seed=seed)
            with np.errstate(invalid="ignore", divide="ignore"):
                reps = (w @ values) / w.sum(1)
            lo, hi = stats.percentile_ci(reps, self.config.ci_level)
            out["ci"] = [float(lo), float(hi)]
        return out

    def _compare(self, real, fake, groups, seed: int, ref_n: int | None = None):
        cfg = self.config
        n, m, dim = len(real), len(fake), real.shape[1]
        row: dict[str, Any] = {"n_real": n, "n_fake": m}
        row["fd"] = frechet_distance(real, fake) if min(n, m) >= 2 else float("nan")
        row["fd_preferred"] = bool(min(n, m) >= max(cfg.fd_min_n, dim + 1))
        if ref_n is not None and 2 <= ref_n < m:
            pick = np.sort(np.random.default_rng(seed).choice(m, ref_n, replace=False))
            row["fd_at_reference_n"] = {"n_fake": int(ref_n), "fd": frechet_distance(real, fake[pick])}
        row["kid"] = kernel_distance(real, fake, subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=seed)
        row["preferred"] = "fd" if row["fd_preferred"] else "kid"
        st = None
        if n > max(cfg.nearest_k, cfg.dc_nearest_k) and m > cfg.nearest_k:
            st = manifold_statistics(real, fake, k=cfg.nearest_k, k_dc=cfg.dc_nearest_k)
            row["precision"] = self._boot(st.fake_in_real, None, seed + 11)
            row["recall"] = self._boot(st.real_in_fake, groups, seed + 12)
            row["density"] = self._boot(st.density_count / st.k_dc, None, seed + 13)
            row["coverage"] = self._boot(st.real_covered, groups, seed + 14)
        else:
            for key in ("precision", "recall", "density", "coverage"):
                row[key] = {"value": None, "note": f"needs > {max(cfg.nearest_k, cfg.dc_nearest_k)} real and "
                                                   f"> {cfg.nearest_k} synthetic images (have {n} and {m})"}
        return row, st

    def _compare_block(self, f_real, y_real, g_real, f_fake, y_fake, names, seed, ref_n):
        g_real = None if g_real is None else np.asarray(g_real)
        overall, st = self._compare(f_real, f_fake, g_real, seed, None if ref_n is None else len(ref_n))
        block: dict[str, Any] = {"overall": overall}
        if self.config.per_class:
            per: dict[str, Any] = {}
            for c, cname in enumerate(names):
                ri, fi = np.flatnonzero(y_real == c), np.flatnonzero(y_fake == c)
                if len(fi) == 0:
                    continue
                rn = None if ref_n is None else int((ref_n == c).sum())
                per[cname], _ = self._compare(f_real[ri], f_fake[fi], None if g_real is None else g_real[ri],
                                              seed + 100 * (c + 1), rn)
            block["per_class"] = per
        return block, st

    # -- memorisation ---------------------------------------------------------------------------
    def _memorisation(self, st, ref_st, y_syn, names, test_groups, seed):
        cfg = self.config
        if st is None:
            return {"value": None, "note": "too few images for nearest-neighbour statistics"}, None
        ratio = memorisation_ratios(st)
        copy = ratio < cfg.copy_ratio
        frac = self._boot(copy, None, seed + 21)
        out: dict[str, Any] = {
            "description": f"ratio = distance of a synthetic image to its nearest training image / that training "
                           f"image's distance to its own nearest training neighbour (feature space); near-copy: "
                           f"ratio < {cfg.copy_ratio}",
            "n": len(ratio),
            "near_copy_fraction": frac,
            "near_copies": int(copy.sum()),
            "closer_than_real_nn_fraction": float((ratio < 1).mean()),
            "ratio_quantiles": {q: float(np.quantile(ratio, float(q))) for q in ("0.01", "0.05", "0.5")},
            "flagged": bool(frac["value"] >= cfg.memorised_fraction),
            "per_class": {names[c]: {"n": int((y_syn == c).sum()),
                                     "near_copy_fraction": float(copy[y_syn == c].mean())}
                          for c in range(len(names)) if (y_syn == c).any()},
        }
        if ref_st is not None:
            rr = memorisation_ratios(ref_st)
            out["reference_real_test"] = {
                "n": len(rr),
                "near_copy_fraction": self._boot(rr < cfg.copy_ratio,
                                                 None if test_groups is None else np.asarray(test_groups), seed + 22),
                "closer_than_real_nn_fraction": float((rr < 1).mean()),
                "ratio_quantiles": {q: float(np.quantile(rr, float(q))) for q in ("0.01", "0.05", "0.5")},
            }
        k = min(cfg.grid_pairs, len(ratio))
        order = np.argsort(ratio, kind="stable")[:k]
        out["closest_pairs"] = [{"synthetic_index": int(i), "train_index": int(st.nearest_real[i]),
                                 "ratio": float(ratio[i])} for i in order]
        return out, (order, st.nearest_real[order], ratio[order])

    @staticmethod
    def _pairs_figure(px_syn, px_train, syn_idx, train_idx, ratios) -> bytes:
        """Top row: the synthetic images closest to a training image; bottom row: that training image."""
        import torch
        from PIL import Image
        from torchvision.utils import make_grid

        imgs = np.concatenate([px_syn[syn_idx], px_train[train_idx]])
        t = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2)
        grid = make_grid(t, nrow=len(syn_idx), padding=2, pad_value=255).permute(1, 2, 0).numpy()
        im = Image.fromarray(np.ascontiguousarray(grid))
        scale = max(1, 96 // px_syn.shape[1])
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    # -- classification views -------------------------------------------------------------------
    def _classification(self, pred, y, groups, names, seed) -> dict[str, Any]:
        cfg = self.config
        c = len(names)
        m = stats.metrics_from_confusion(stats.confusion_matrices(y, pred, c))
        out: dict[str, Any] = {"n": len(y), "accuracy": {"value": float(m["accuracy"][0])},
                               "balanced_accuracy": {"value": float(m["balanced_accuracy"][0])}}
        rec = m["recall"][0]
        lo = hi = None
        if cfg.n_boot > 0 and len(y) > 1:
            w = stats.bootstrap_weights(len(y), cfg.n_boot, groups=None if groups is None else np.asarray(groups),
                                        seed=seed)
            mb = stats.metrics_from_confusion(stats.confusion_matrices(y, pred, c, weights=w))
            for key in ("accuracy", "balanced_accuracy"):
                a, b = stats.percentile_ci(mb[key], cfg.ci_level)
                out[key]["ci"] = [float(a), float(b)]
            lo, hi = stats.percentile_ci(mb["recall"], cfg.ci_level, axis=0)
        out["per_class_recall"] = {
            names[k]: {"n": int((y == k).sum()), "value": float(rec[k]),
                       **({"ci": [float(lo[k]), float(hi[k])]} if lo is not None else {})}
            for k in range(c) if (y == k).any()
        }
        return out

    def _cas(self, classifier, synthetic, test, names, seed, real_on_test) -> dict[str, Any]:
        cfg = self.config
        if not cfg.cas:
            return {"skipped": "cas=false (set -o cas=true: trains one classifier on the synthetic set)"}
        if test is None or len(test) == 0:
            return {"skipped": "no real test set to score the synthetic-trained classifier on"}
        name = cfg.cas_classifier or (classifier.name if classifier is not None else None)
        if name is None:
            return {"skipped": "no classifier given and cas_classifier not set"}
        if name not in augengine.list_classifiers():
            return {"skipped": f"classifier plugin {name!r} is not installed "
                               f"(installed: {augengine.list_classifiers()})"}
        conf = classifier.config.model_dump() if classifier is not None and name == classifier.name else {}
        conf.update(cfg.cas_config)
        clf = augengine.create_classifier(name, **conf)
        clf.fit(synthetic, seed=seed, progress=False)
        pred = clf.predict(test, batch_size=cfg.batch_size)
        res = self._classification(pred, np.asarray(test.labels, np.int64), getattr(test, "groups", None), names,
                                   seed + 4)
        return {
            "description": "Ravuri & Vinyals 2019: a classifier trained on synthetic images only, tested on the "
                           "real test set; real_trained = the given classifier on the same test set",
            "classifier": name, "config": clf.config.model_dump(mode="json"),
            "synthetic_trained": res, "real_trained": real_on_test,
        }

    # -- presentation ---------------------------------------------------------------------------
    @staticmethod
    def _row(label: str, r: dict) -> str:
        kid = r.get("kid") or {}
        km = kid.get("mean")
        kid_s = "—" if km is None else f"{km * 1e3:.2f}±{(kid.get('std') or 0) * 1e3:.2f}"
        fd = _fmt(r.get("fd"), ".4g") + ("" if r.get("fd_preferred") else "*")

        def ci(key):
            v = r.get(key) or {}
            return _fmt(v.get("value"), ".2f")

        return (f"{label:<14}{r['n_real']:>7}{r['n_fake']:>7}{fd:>10}{kid_s:>13}"
                f"{ci('precision'):>7}{ci('recall'):>7}{ci('density'):>7}{ci('coverage'):>7}")

    def _table(self, m: dict) -> str:
        head = (f"{'':<14}{'N_real':>7}{'N_set':>7}{'FD':>10}{'KID×1e3':>13}{'prec':>7}{'rec':>7}"
                f"{'dens':>7}{'cov':>7}")
        fs = m["feature_space"]
        where = (f"classifier {fs['classifier']!r}" if fs.get("source") == "classifier"
                 else "the FID Inception-v3 network")
        lines = [f"set quality in the feature space of {where} (D={fs['dim']}, "
                 f"{fs['image_size']} px); real = training set, N = images per side", ""]
        blocks = [("synthetic vs train", m["synthetic"])]
        if "reference" in m:
            blocks.append(("held-out real test vs train (reference)", m["reference"]))
        for title, block in blocks:
            lines += [title, head, self._row("overall", block["overall"])]
            for cname, r in block.get("per_class", {}).items():
                lines.append(self._row(cname, r))
            lines.append("")
        mem = m["memorisation"]
        if mem.get("near_copy_fraction"):
            f = mem["near_copy_fraction"]
            s = f"memorisation: {mem['near_copies']}/{mem['n']} near-copies ({_fmt(100 * f['value'], '.1f')}%"
            if f.get("ci"):
                s += f", CI {_fmt(100 * f['ci'][0], '.1f')}–{_fmt(100 * f['ci'][1], '.1f')}%"
            s += f"), median ratio {_fmt(mem['ratio_quantiles']['0.5'], '.2f')}"
            ref = mem.get("reference_real_test")
            if ref:
                s += (f"; held-out real: {_fmt(100 * ref['near_copy_fraction']['value'], '.1f')}% near-copies, "
                      f"median ratio {_fmt(ref['ratio_quantiles']['0.5'], '.2f')}")
            lines.append(s)
        rev = m.get("reverse")
        if rev:
            syn = rev["synthetic"]
            s = (f"real-trained classifier on synthetic images: accuracy {_fmt(syn['accuracy']['value'])}, "
                 f"per-class recall " + ", ".join(f"{k} {_fmt(v['value'], '.2f')}"
                                                  for k, v in syn["per_class_recall"].items()))
            lines.append(s)
        cas = m.get("cas") or {}
        if "synthetic_trained" in cas:
            st, rt = cas["synthetic_trained"], cas.get("real_trained") or {}
            lines.append(f"CAS (trained on synthetic, tested on real): balanced accuracy "
                         f"{_fmt(st['balanced_accuracy']['value'])} vs real-trained "
                         f"{_fmt((rt.get('balanced_accuracy') or {}).get('value'))}")
        lines.append("* FD at N below max(fd_min_n, D+1): biased upwards, read KID")
        return "\n".join(lines)

    def _verdicts(self, m: dict) -> list[str]:
        out = []
        mem = m["memorisation"]
        if mem.get("flagged"):
            out.append(f"MEMORISED: {mem['near_copies']} of {mem['n']} synthetic images are near-copies of training "
                       f"images (ratio < {self.config.copy_ratio}); see the closest_pairs figure")
        o = m["synthetic"]["overall"]
        kid = o["kid"]
        s = (f"synthetic vs train (N={o['n_fake']} vs {o['n_real']}): FD {_fmt(o['fd'], '.4g')}"
             f"{'' if o['fd_preferred'] else ' (small N, biased)'}, KID×1e3 "
             f"{_fmt(None if kid['mean'] is None else kid['mean'] * 1e3, '.2f')}, "
             f"precision {_fmt((o.get('precision') or {}).get('value'), '.2f')}, "
             f"recall {_fmt((o.get('recall') or {}).get('value'), '.2f')}")
        if "reference" in m:
            r = m["reference"]["overall"]
            rk = r["kid"]["mean"]
            s += (f"; held-out real (N={r['n_fake']}): FD {_fmt(r['fd'], '.4g')}, KID×1e3 "
                  f"{_fmt(None if rk is None else rk * 1e3, '.2f')}")
        out.append(s)
        cas = m.get("cas") or {}
        if "synthetic_trained" in cas:
            st = cas["synthetic_trained"]["balanced_accuracy"]
            out.append(f"CAS: balanced accuracy {_fmt(st['value'])} trained on synthetic only")
        return out
