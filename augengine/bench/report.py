"""Results of a bench directory: ``results.jsonl`` rows, the paper's tables, verdicts, ``report.html``.

Everything here reads only the output directory (``plan.json``, ``bench.json`` and the unit
directories), so ``augengine report DIR`` works on a directory filled by several processes or nodes, and on
a partly finished one (it reports what is there).

``report.html`` is one self-contained file: figures are inline base64 PNGs (matplotlib and
PIL), styles are inline, and there are no scripts.
"""

from __future__ import annotations

import base64
import html
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from augengine.bench.distribution import view_html, view_lines
from augengine.bench.results import amount_text, done_record, read_plan, results_rows, unit_dir

__all__ = ["results_rows", "tables_text", "verdict_lines", "write_report", "find_metric"]

_EXCLUDE = {"delta", "diff", "difference", "baseline", "gain", "change", "p_value", "pvalue", "p", "improvement",
            "relative", "n", "support", "count", "std"}


def find_metric(flat: dict[str, dict], *tokens: str, exclude: tuple[str, ...] = ()) -> dict | None:
    """The metric whose dotted key holds all ``tokens`` (case-insensitive), not delta/baseline ones.

    ``find_metric(m, "accuracy")`` skips ``balanced_accuracy``; ``find_metric(m, "recall", "MEL")``
    finds ``per_class.MEL.recall`` or ``recall.MEL``. The shortest matching key wins.
    """
    want = [t.lower() for t in tokens]
    best = None
    for key, v in flat.items():
        toks = [t.lower() for t in key.split(".")]
        if any(t in _EXCLUDE or t in exclude for t in toks):
            continue
        if all(w in toks for w in want):
            if best is None or len(key) < len(best[0]):
                best = (key, v)
    return best[1] if best else None


def _fmt(v: dict | None, ci: bool = True) -> str:
    if v is None or v.get("value") is None or not np.isfinite(v["value"]):
        return "–"
    s = f"{v['value']:.3f}"
    c = v.get("ci")
    if ci and c and c[0] is not None and c[1] is not None and np.isfinite(c[0]) and np.isfinite(c[1]):
        s += f" ({c[0]:.3f}–{c[1]:.3f})"
    return s


def _clf_rows(rows, test_set="test", role: tuple[str, ...] = ("baseline", "arm")):
    """Classifier rows of ``test_set`` with a role in ``role`` (rows without one are baseline or arm rows)."""
    def role_of(r):
        return r.get("role") or ("baseline" if r["arm"] == "baseline" else "arm")

    return [r for r in rows if r["kind"] == "classifier" and r["test_set"] == test_set and role_of(r) in role]


def _paired(rows, r: dict, role: str) -> dict | None:
    """The ``role`` row (control / comparison) of arm row ``r`` (same arm, amount, seed, test set, evaluator)."""
    return next((x for x in rows if x.get("role") == role and x["arm"] == r["arm"] and x["amount"] == r["amount"]
                 and x["generator_seed"] == r["generator_seed"] and x["test_set"] == r["test_set"]
                 and x["evaluator"] == r["evaluator"]), None)


def _class_names(out: Path) -> list[str]:
    for u in read_plan(out):
        if u["kind"] == "split":
            d = done_record(out, u)
            if d:
                return d["result"]["class_names"]
    return []


def table2(rows, class_names: list[str], test_set: str = "test") -> tuple[list[str], list[list[str]]]:
    """Paper Table 2: per model (baseline, arm-amount) precision/recall per class and accuracy, with CIs."""
    header = ["Model"] + [f"{c} P/R" for c in class_names] + ["Accuracy", "Balanced acc."]
    body = []
    for r in _clf_rows(rows, test_set):
        if r["generator_seed"] not in (None, min((x["generator_seed"] for x in rows if x["generator_seed"] is not None),
                                                 default=None)):
            continue
        m = r["metrics"]
        name = "baseline (real only)" if r["arm"] == "baseline" else f"{r['arm']}-{r['amount_label']} (+{r['amount_count']})"
        cells = [name]
        for c in class_names:
            p, rc = find_metric(m, "precision", c), find_metric(m, "recall", c)
            cells.append(f"{_fmt(p)} / {_fmt(rc)}")
        cells += [_fmt(find_metric(m, "accuracy", exclude=("balanced",))), _fmt(find_metric(m, "balanced_accuracy"))]
        body.append(cells)
    return header, body


def table3(rows, focus: str, test_set: str = "test") -> tuple[list[str], list[list[str]]]:
    """Paper Table 3: rows = amounts, column groups = arms: accuracy, precision and recall of ``focus``."""
    rs = [r for r in _clf_rows(rows, test_set)]
    arms = []
    for r in rs:
        if r["arm"] != "baseline" and r["arm"] not in arms:
            arms.append(r["arm"])
    header = ["Num. gen."] + [f"{a}: {k}" for a in arms for k in ("acc.", f"{focus} prec", f"{focus} recall")]
    amounts = []
    for r in rs:
        if r["arm"] != "baseline" and r["amount_label"] not in [a[0] for a in amounts]:
            amounts.append((r["amount_label"], r["amount_count"]))
    body = []

    def cells(r):
        if r is None:
            return ["–"] * 3
        m = r["metrics"]
        return [_fmt(find_metric(m, "accuracy", exclude=("balanced",))), _fmt(find_metric(m, "precision", focus)),
                _fmt(find_metric(m, "recall", focus))]

    gmin = min((r["generator_seed"] for r in rs if r["generator_seed"] is not None), default=None)
    for lab, count in amounts:
        row, ctrl = [f"{count} ({lab})"], [f"{count} ({lab}) resampled real"]
        for a in arms:
            r = next((x for x in rs if x["arm"] == a and x["amount_label"] == lab and x["generator_seed"] == gmin), None)
            row += cells(r)
            ctrl += cells(_paired(rows, r, "control") if r is not None else None)
        body.append(row)
        if any(c != "–" for c in ctrl[1:]):  # the arms' resampling controls: same class counts, real images
            body.append(ctrl)
    base = next((x for x in rs if x["arm"] == "baseline"), None)
    body.append(["baseline (0)"] + cells(base) * len(arms))
    return header, body


def _text_table(header, body) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(b) for b in body)])


def _test_sets(rows) -> list[str]:
    out = []
    for r in rows:
        if r["kind"] == "classifier" and r["test_set"] not in out:
            out.append(r["test_set"])
    return out


def tables_text(rows, cfg, class_names: list[str] | None = None) -> str:
    """Tables 2 and 3 for every test set, as plain text (values with 95% CIs in parentheses)."""
    parts = []
    names = class_names or _classes_for(rows, [])
    for ts in _test_sets(rows):
        parts.append(f"Table 2 ({ts}): precision / recall per class, accuracy (95% CI)\n"
                     + _text_table(*table2(rows, names, ts)))
        parts.append(f"Table 3 ({ts}): accuracy, {cfg.focus_class} precision and recall by amount (95% CI)\n"
                     + _text_table(*table3(rows, cfg.focus_class, ts)))
    return "\n\n".join(parts) + "\n"


def _classes_for(rows, fallback: list[str]) -> list[str]:
    """Class names in the order they appear in metric keys (``…<class>.recall`` or ``recall.<class>``)."""
    seen: list[str] = []
    for r in rows:
        for k in r["metrics"]:
            toks = k.split(".")
            for i, t in enumerate(toks):
                if t.lower() == "recall":
                    cand = toks[i - 1] if i > 0 and toks[i - 1].isupper() else (toks[i + 1] if i + 1 < len(toks) else None)
                    if cand and cand.isupper() and cand not in seen:
                        seen.append(cand)
        if seen:
            break
    return seen or fallback


def verdict_lines(rows) -> list[str]:
    """One line per arm × amount against the baseline, grouped by test set (the evaluator's verdicts)."""
    lines = []
    for ts in _test_sets(rows):
        lines.append(f"[{ts}]" + (" (in-distribution test split)" if ts == "test" else " (external test set)"))
        for r in _clf_rows(rows, ts):
            if r["arm"] == "baseline":
                continue
            who = f"{r['arm']} +{r['amount_count']} ({r['amount_label']}, gen seed {r['generator_seed']})"
            if r["verdicts"]:
                lines.append(f"  {who}: {r['verdicts'][0]}")
                lines += [f"      {v}" for v in r["verdicts"][1:]]
            else:
                lines.append(f"  {who}: {r['evaluator']} gave no verdict")
            cmp_ = _paired(rows, r, "comparison")
            if cmp_ is not None:  # the same arm against its resampling control, paired by classifier seed
                vs = cmp_["verdicts"] or [f"{cmp_['evaluator']} gave no verdict"]
                lines.append(f"  {who} vs resampling: {vs[0]}")
                lines += [f"      {v}" for v in vs[1:]]
    return lines + view_lines(rows)  # with external sets: each arm on the test split beside them


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return _img(buf.getvalue())


def _img(png: bytes, alt: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _grid_png(rows_of_images: list[np.ndarray], scale: int = 2) -> bytes:
    """Rows of uint8 K×S×S×3 images → one PNG (rows padded to the longest, 2-px white gaps).

    Tiled with NumPy rather than torchvision's ``make_grid``: importing torchvision costs
    seconds, and a fully cached bench must finish in a few.
    """
    from PIL import Image

    from augengine.images import resize_uint8

    s = max(r.shape[1] for r in rows_of_images if len(r))
    k = max(len(r) for r in rows_of_images)
    pad = 2
    grid = np.full((len(rows_of_images) * (s + pad) + pad, k * (s + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows_of_images):
        r = np.asarray(r)
        if len(r) and r.shape[1] != s:
            r = resize_uint8(r, s)
        for j, im in enumerate(r):
            y, x = pad + i * (s + pad), pad + j * (s + pad)
            grid[y:y + s, x:x + s] = im
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


#: the set-quality columns a reader needs: (header, metric key under ``synthetic.``/``reference.``)
QUALITY_COLUMNS = (("FD", "overall.fd"), ("KID ×10³ ± std", "overall.kid"), ("precision", "overall.precision"),
                   ("recall", "overall.recall"), ("density", "overall.density"), ("coverage", "overall.coverage"))
_QUALITY_NOTE = ("<p>In the evaluator's feature space, against the real training images; the last row is the "
                 "held-out real test split measured the same way (what real images score). FD is biased at small "
                 "N: read KID. Every other metric is in <code>results.jsonl</code>.</p>")


def _near_copies(m: dict, prefix: str) -> str:
    count, frac, n = (m.get(f"{prefix}.{k}") for k in ("near_copies", "near_copy_fraction", "n"))
    if count is not None and count.get("value") is not None:
        return f"{count['value']:.0f}"
    if frac is not None and n is not None and frac.get("value") is not None and n.get("value") is not None:
        return f"{frac['value'] * n['value']:.0f}"
    return "–"


def quality_table(q: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The report's set-quality table: one row per synthetic set (and a held-out real reference row) with
    readable columns — N, FD, KID ± std, precision, recall, density, coverage, near-copies."""
    def cells(m: dict, side: str) -> list[str]:
        out = []
        for head, key in QUALITY_COLUMNS:
            v = m.get(f"{side}.{key}")
            if head.startswith("KID"):
                sd = m.get(f"{side}.{key}.std")
                out.append("–" if v is None or v.get("value") is None else
                           f"{v['value'] * 1e3:.2f}" + (f" ± {sd['value'] * 1e3:.2f}" if sd and sd.get("value") is not None else ""))
            else:
                out.append(_fmt(v))
        return out

    def num(v: dict | None) -> str:
        return "–" if v is None or v.get("value") is None else f"{v['value']:.0f}"

    header = ["arm", "amount", "N", *(h for h, _ in QUALITY_COLUMNS), "near-copies"]
    body = [[r["arm"], r["amount_label"], num(r["metrics"].get("n.synthetic")), *cells(r["metrics"], "synthetic"),
             _near_copies(r["metrics"], "memorisation")] for r in q]
    ref = next((r["metrics"] for r in q if "reference.overall.fd" in r["metrics"]), None)
    if ref is not None:
        body.append(["held-out real test (reference)", "", num(ref.get("n.test")), *cells(ref, "reference"),
                     _near_copies(ref, "memorisation.reference_real_test")])
    return header, body


def _html_table(header, body) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in header)
    b = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{h}</tr>{b}</table>"


def _plots(rows, focus: str) -> list[str]:
    from matplotlib.figure import Figure

    out = []
    specs = [("balanced accuracy", ("balanced_accuracy",), ()), ("accuracy", ("accuracy",), ("balanced",)),
             (f"{focus} recall", ("recall", focus), ()), (f"{focus} precision", ("precision", focus), ())]
    for ts in _test_sets(rows):
        rs = _clf_rows(rows, ts)
        gmin = min((r["generator_seed"] for r in rs if r["generator_seed"] is not None), default=None)
        fig = Figure(figsize=(16, 3.6))
        axes = fig.subplots(1, 4)
        base = next((r for r in rs if r["arm"] == "baseline"), None)
        arms = []
        for r in rs:
            if r["arm"] != "baseline" and r["arm"] not in arms:
                arms.append(r["arm"])
        for ax, (title, toks, excl) in zip(axes, specs):
            xs_all = [r["amount_count"] for r in rs if r["arm"] != "baseline"] or [0, 1]
            if base is not None:
                v = find_metric(base["metrics"], *toks, exclude=excl)
                if v is not None:
                    ax.axhline(v["value"], color="k", lw=1.2, label="baseline")
                    if v.get("ci") and None not in v["ci"]:
                        ax.axhspan(v["ci"][0], v["ci"][1], color="k", alpha=0.08)
            for i, arm in enumerate(arms):
                pts = sorted((r["amount_count"], find_metric(r["metrics"], *toks, exclude=excl))
                             for r in rs if r["arm"] == arm and r["generator_seed"] == gmin)
                pts = [(x, v) for x, v in pts if v is not None]
                if not pts:
                    continue
                x = np.array([p[0] for p in pts], float)
                y = np.array([p[1]["value"] for p in pts], float)
                ax.plot(x, y, "o-", color=f"C{i}", label=arm)
                ctrl = sorted((r["amount_count"], find_metric(c["metrics"], *toks, exclude=excl))
                              for r in rs if r["arm"] == arm and r["generator_seed"] == gmin
                              for c in [_paired(rows, r, "control")] if c is not None)
                ctrl = [(cx, cv) for cx, cv in ctrl if cv is not None]
                if ctrl:  # the arm's resampling control (same class counts, real images): dashed
                    ax.plot([p[0] for p in ctrl], [p[1]["value"] for p in ctrl], "s--", color=f"C{i}", alpha=0.8,
                            label=f"{arm}: resampled real")
                cis = [p[1].get("ci") for p in pts]
                if all(c and None not in c for c in cis):
                    ax.fill_between(x, [c[0] for c in cis], [c[1] for c in cis], color=f"C{i}", alpha=0.2)
            ax.set_title(f"{title} ({ts})")
            ax.set_xlabel("synthetic images added")
            ax.set_xlim(min(xs_all) * 0.9 - 1, max(xs_all) * 1.05 + 1)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        out.append(_png(fig))
    return out


def _confusions(out: Path, plan: list[dict]) -> list[str]:
    from matplotlib.figure import Figure

    parts = []
    for u in plan:
        if u["kind"] != "eval" or u["meta"].get("role") == "comparison":  # an arm vs its control: the arm's matrix
            continue
        d = unit_dir(out, u) / "eval"
        if not d.is_dir():
            continue
        title = f"{u['meta']['arm']} {amount_text(u['meta']['amount'])} — {u['meta']['test_set']}"
        pngs = sorted(p for p in d.glob("*.png") if "confusion" in p.name.lower())
        if pngs:
            parts += [f"<figure>{_img(p.read_bytes(), p.stem, 420)}<figcaption>{html.escape(title)}</figcaption></figure>"
                      for p in pngs[:2]]
            continue
        mj = d / "metrics.json"
        cm = None
        if mj.exists():
            cm = _find_matrix(json.loads(mj.read_text()).get("metrics", {}))
        if cm is not None:
            fig = Figure(figsize=(3.4, 3.0))
            ax = fig.subplots()
            ax.imshow(cm, cmap="Blues")
            for (i, j), v in np.ndenumerate(cm):
                ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(title, fontsize=8)
            parts.append(f"<figure>{_png(fig)}</figure>")
    return parts


def _find_matrix(m: Any):
    if isinstance(m, dict):
        for k, v in m.items():
            if "confusion" in str(k).lower():
                a = np.asarray(v.get("value", v) if isinstance(v, dict) else v, dtype=float)
                if a.ndim == 2 and a.shape[0] == a.shape[1]:
                    return a
                if a.ndim == 3 and a.shape[1] == a.shape[2]:
                    return a.sum(0)
            r = _find_matrix(v)
            if r is not None:
                return r
    return None


def _samples(out: Path, plan: list[dict]) -> list[str]:
    from augengine.synthetic import SyntheticSet

    real: dict[str, np.ndarray] = {}
    class_names: list[str] = []
    for u in plan:
        if u["kind"] == "split" and (unit_dir(out, u) / "real_samples.npz").exists():
            with np.load(unit_dir(out, u) / "real_samples.npz") as z:
                real = {k: z[k] for k in z.files}
            class_names = (done_record(out, u) or {}).get("result", {}).get("class_names", [])
    parts = []
    finals: dict[str, dict] = {}
    for u in plan:  # the largest set of each arm (first generator seed)
        if u["kind"] in ("synth", "filtered") and done_record(out, u):
            a = u["meta"]["arm"]
            prev = finals.get(a)
            if prev is None or u["kind"] == "filtered" or (prev["kind"] == u["kind"] and
                                                           (done_record(out, u)["result"]["n"] > done_record(out, prev)["result"]["n"])):
                finals[a] = u
    for arm, u in finals.items():
        s = SyntheticSet.open(unit_dir(out, u) / "set.h5")
        imgs = s.images()
        rows_html = []
        for c, name in enumerate(s.class_names):
            idx = np.flatnonzero(s.labels == c)[:8]
            if not len(idx):
                continue
            r = real.get(str(c), np.zeros((0, imgs.shape[1], imgs.shape[1], 3), np.uint8))
            grid = _grid_png([imgs[idx], r[:8]] if len(r) else [imgs[idx]])
            rows_html.append(f"<div class='cls'><b>{html.escape(name)}</b> — top: synthetic ({(s.labels == c).sum()} "
                             f"in set), bottom: real training images<br>{_img(grid, name)}</div>")
        parts.append(f"<h3>{html.escape(arm)} — {html.escape(Path(s.path).parent.name)} ({len(s)} images, "
                     f"{u['kind']})</h3>" + "".join(rows_html))
    _ = class_names
    return parts


def _selections(out: Path, plan: list[dict]) -> list[str]:
    parts = []
    for u in plan:
        if u["kind"] not in ("select", "filtered"):
            continue
        d = unit_dir(out, u)
        done = done_record(out, u)
        if done is None or not (d / "preview.npz").exists():
            continue
        with np.load(d / "preview.npz") as z:
            kept, rej = z["kept"], z["rejected"]
            ks, rs = z["kept_scores"], z["rejected_scores"]
        res = done["result"]
        what = ("real training images of class " + str(u["spec"].get("target_class"))
                if u["kind"] == "select" else "generated images")
        rows = [r for r in (kept, rej) if len(r) and r.shape[1] > 1]
        grid = _img(_grid_png(rows), "selection") if rows else ""
        parts.append(
            f"<h3>{html.escape(u['spec']['filter'])} on {html.escape(u['meta']['arm'])} ({u['kind']})</h3>"
            f"<p>kept {res.get('n_selected', res.get('n'))} of {res.get('n_candidates')} {html.escape(what)}; "
            f"config {html.escape(json.dumps(u['spec']['config']))}. Top row: best kept (scores "
            f"{', '.join(f'{x:.3f}' for x in ks)}); bottom row: best rejected (scores "
            f"{', '.join(f'{x:.3f}' for x in rs)}).</p>{grid}")
    return parts


def _failures(out: Path) -> list[str]:
    parts = []
    for d in sorted((out / "units").glob("*.failed")) if (out / "units").exists() else []:
        info = json.loads((d / "failed.json").read_text()) if (d / "failed.json").exists() else {}
        log = (d / "log.txt").read_text(errors="replace") if (d / "log.txt").exists() else ""
        tail = "\n".join(log.replace("\r", "\n").splitlines()[-80:])
        parts.append(f"<h3>{html.escape(d.name)}</h3><p class='err'>{html.escape(info.get('error', ''))}</p>"
                     f"<pre>{html.escape(tail)}</pre>")
    return parts


def _disk_use(out: Path, plan: list[dict]) -> str:
    """Measured disk use of the output directory, per unit kind (finished units of the plan)."""
    from augengine.bench.disk import dir_bytes, human_bytes

    per: dict[str, list[int]] = {}
    dropped = 0
    for u in plan:
        d = done_record(out, u)
        if d is not None:
            per.setdefault(u["kind"], []).append(d.get("disk_bytes", dir_bytes(unit_dir(out, u))))
            dropped += int(d.get("resume_state_dropped_bytes", 0))
    body = [[k, str(len(v)), human_bytes(sum(v)), human_bytes(sum(v) / len(v))] for k, v in sorted(per.items())]
    total = dir_bytes(out)
    return (f"<p>{html.escape(human_bytes(total))} in the output directory; resume state dropped from finished "
            f"units: {html.escape(human_bytes(dropped))}</p>"
            + _html_table(["unit kind", "finished units", "disk", "per unit"], body))


def _git(cwd: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def engine_provenance(pkg_dir: Path | None = None) -> dict[str, str]:
    """The engine that wrote the report: ``augengine_version`` always; ``engine_git_commit`` when the
    engine runs from a git checkout of its own repository; when its files sit inside another project's
    repository (vendored, or installed into that project's tree), that commit as ``host_git_commit``,
    never under the engine's name.

    Args:
        pkg_dir: the ``augengine`` package folder (default: the one imported).
    """
    from importlib import metadata

    import augengine

    pkg_dir = Path(augengine.__file__).parent if pkg_dir is None else Path(pkg_dir)
    try:
        out = {"augengine_version": metadata.version("augengine")}
    except metadata.PackageNotFoundError:
        out = {"augengine_version": getattr(augengine, "__version__", "unknown")}
    top, commit = _git(pkg_dir, "rev-parse", "--show-toplevel"), _git(pkg_dir, "rev-parse", "HEAD")
    if top and commit:
        project = Path(top) / "pyproject.toml"
        own = (Path(top).resolve() / "augengine" == pkg_dir.resolve() and project.is_file()
               and 'name = "augengine"' in project.read_text(errors="replace"))
        out["engine_git_commit" if own else "host_git_commit"] = commit
    return out


_CSS = """body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1500px}
h1{font-size:22px}h2{border-bottom:2px solid #36c;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #bbb;padding:3px 6px;text-align:left}
th{background:#e8eef8}pre{background:#f4f4f4;padding:8px;font-size:11px;overflow:auto;max-height:400px}
.verdict{font-family:monospace;font-size:13px;background:#f3f8ee;border-left:4px solid #4a4;padding:8px;white-space:pre-wrap}
.err{color:#b00;font-weight:bold}.ok{color:#070}figure{display:inline-block;margin:4px}.cls{margin:6px 0}
"""


_CONTROL_NOTE = (
    "<p>Each synthetic arm has two verdicts per test set: against the baseline (real images only) and "
    "<b>against resampling</b>, its control arm: the same class counts as the arm added, drawn with replacement "
    "from the real training images, trained with the same classifier config and seeds (paired by classifier "
    "seed). Adding images of a class also teaches the classifier to predict that class, and resampling does that "
    "for free: a benefit over the baseline that is not a benefit over resampling is explained by the class counts "
    "alone. Table 3 shows the controls as “resampled real” rows, the plots as dashed lines.</p>")


def write_report(out: str | Path) -> Path:
    """Write ``OUT/report.html`` (self-contained) from what the directory holds; returns its path."""
    from augengine.bench.config import BenchConfig
    from augengine.runs import atomic_write_text

    out = Path(out)
    rec = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else {}
    cfg = BenchConfig.model_validate(rec.get("config", {}))
    plan = read_plan(out)
    rows = results_rows(out)
    n_done = sum(1 for u in plan if done_record(out, u) is not None)
    failures = _failures(out)
    times = []
    for u in plan:
        d = done_record(out, u)
        if d is not None:
            times.append([u["kind"], u["label"], f"{d['seconds']:.1f}", u["key"][:12]])
    status = (f"<p class='{'err' if failures else 'ok'}'>{n_done} of {len(plan)} units finished"
              + (f", {len(failures)} failed" if failures else "") + "</p>")
    s = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>augengine bench report</title>"
         f"<style>{_CSS}</style></head><body>",
         f"<h1>augengine bench — {html.escape(str(out.resolve()))}</h1>", status,
         "<h2>Verdicts</h2>",
         *([_CONTROL_NOTE] if any(r.get("role") == "comparison" for r in rows) else []),
         f"<div class='verdict'>{html.escape(chr(10).join(verdict_lines(rows)) or 'no evaluations finished yet')}</div>"]
    view = view_html(rows)  # the in- vs out-of-distribution view (external sets only)
    if view:
        s.append(view)
    try:
        plots = _plots(rows, cfg.focus_class)
    except Exception as e:  # noqa: BLE001
        plots = [f"<p class='err'>plots failed: {html.escape(str(e))}</p>"]
    s += ["<h2>Metrics vs. amount (95% CI bands)</h2>", *plots]
    names = _class_names(out) or _classes_for(rows, [])
    for ts in _test_sets(rows):
        s += [f"<h2>Table 2 layout — {html.escape(ts)}</h2><p>precision / recall per class (95% CI)</p>",
              _html_table(*table2(rows, names, ts)),
              f"<h2>Table 3 layout — {html.escape(ts)}</h2>", _html_table(*table3(rows, cfg.focus_class, ts))]
    q = [r for r in rows if r["kind"] == "synthetic-set"]
    if q:
        s += ["<h2>Synthetic set quality</h2>", _QUALITY_NOTE, _html_table(*quality_table(q))]
    s += ["<h2>Confusion matrices</h2>", *(_confusions(out, plan) or ["<p>none available</p>"])]
    try:
        samples = _samples(out, plan)
    except Exception as e:  # noqa: BLE001
        samples = [f"<p class='err'>sample grids failed: {html.escape(str(e))}</p>"]
    s += ["<h2>Synthetic samples beside real images</h2>", *(samples or ["<p>no synthetic sets yet</p>"])]
    s += ["<h2>Filter selections (path-rank)</h2>", *(_selections(out, plan) or ["<p>no filter in this bench</p>"])]
    s += ["<h2>Failures</h2>", *(failures or ["<p class='ok'>none</p>"])]
    split_info = next((done_record(out, u)["result"] for u in plan if u["kind"] == "split" and done_record(out, u)), {})
    prov = {"config": rec.get("config"), "versions": rec.get("versions"), "engine": engine_provenance(),
            "data": {k: split_info.get(k) for k in ("fingerprint", "info", "counts", "external")},
            "report_written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    s += ["<h2>Disk use</h2>", _disk_use(out, plan)]
    s += ["<h2>Provenance</h2>", f"<pre>{html.escape(json.dumps(prov, indent=2, default=str))}</pre>",
          "<h3>Time per unit</h3>", _html_table(["kind", "unit", "seconds", "key"], times),
          "</body></html>"]
    return atomic_write_text(out / "report.html", "\n".join(s))
