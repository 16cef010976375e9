"""Set-quality numbers for a synthetic set and for a held-out real set (the reference point).

Full run (HAM10000 at 64 px, an ACGAN set, a resnet run trained on the same split)::

    python benchmarks/setquality.py --classifier runs/resnet64 --set sets/acgan64.h5 \\
        --data ../shared/data/ham10000 --split split.json --size 64 --out setquality.json

prints FD/KID/precision/recall/density/coverage (overall and per class) for the synthetic set vs
the training split and for the held-out real test split vs the training split, plus memorisation,
and writes everything (with the command, CPU model and timings) as JSON.

``--quick`` (< 1 min, smoke check): the built-in demo set, a resnet18 trained 2 epochs at 32 px,
and two "sets": the real validation split (a held-out real set, should look like the test
reference) and copies of 60 training images (must be flagged as memorised).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import augengine as ae
from augengine.runtime import cpu_model  # noqa: E402




def row(label: str, o: dict) -> dict:
    g = lambda k: (o.get(k) or {}).get("value")  # noqa: E731
    return {"set": label, "n_real": o["n_real"], "n_set": o["n_fake"], "fd": o["fd"],
            "fd_preferred": o["fd_preferred"], "kid": o["kid"]["mean"], "kid_std": o["kid"]["std"],
            "precision": g("precision"), "recall": g("recall"), "density": g("density"), "coverage": g("coverage")}


def print_rows(rows: list[dict]) -> None:
    f = lambda x, s=".3f": "—" if x is None else format(x, s)  # noqa: E731
    print(f"{'set':<34}{'N_real':>7}{'N_set':>7}{'FD':>10}{'KID×1e3':>14}{'prec':>7}{'rec':>7}{'dens':>7}{'cov':>7}"
          f"{'copies%':>9}")
    for r in rows:
        kid = "—" if r["kid"] is None else f"{r['kid'] * 1e3:.2f}±{(r['kid_std'] or 0) * 1e3:.2f}"
        fd = f(r["fd"], ".4g") + ("" if r["fd_preferred"] else "*")
        cp = "—" if r.get("near_copy_fraction") is None else f"{100 * r['near_copy_fraction']:.1f}"
        print(f"{r['set']:<34}{r['n_real']:>7}{r['n_set']:>7}{fd:>10}{kid:>14}{f(r['precision'], '.2f'):>7}"
              f"{f(r['recall'], '.2f'):>7}{f(r['density'], '.2f'):>7}{f(r['coverage'], '.2f'):>7}{cp:>9}")
    print("* FD below the reliable N (KID is the number to read there)")


def evaluate_rows(ev, clf, split, synthetic, label: str, seed: int):
    t = time.perf_counter()
    res = ev.evaluate(clf, split.test, synthetic=synthetic, train=split.train, seed=seed)
    secs = time.perf_counter() - t
    m = res.metrics
    mem = m["memorisation"]
    r = row(label, m["synthetic"]["overall"])
    r["near_copy_fraction"] = mem["near_copy_fraction"]["value"]
    rows = [r]
    if "reference" in m:
        ref = row("held-out real test (reference)", m["reference"]["overall"])
        ref["near_copy_fraction"] = mem["reference_real_test"]["near_copy_fraction"]["value"]
        rows.append(ref)
    return res, rows, secs


def quick(args) -> dict:
    table = ae.load_dataset("demo")
    split = ae.split(table, fractions=(0.8, 0.1, 0.1), group_by="lesion", seed=args.seed, size=32)
    if "resnet" in ae.list_classifiers():
        clf = ae.create_classifier("resnet", arch="resnet10t", image_size=32, epochs=1, lr=1e-3, batch_size=64,
                                   device=args.device)
        clf.fit(split.train, seed=args.seed, progress=False)
    else:  # pragma: no cover - without the resnet plugin
        from augengine.testing import StubClassifier

        clf = StubClassifier(split.train.class_names, image_size=32)
    ev = ae.create_evaluator("set-quality", kid_subsets=20, n_boot=200)
    out, all_rows = {}, []
    res, rows, secs = evaluate_rows(ev, clf, split, split.val, "held-out real (val split)", args.seed)
    out["held_out_val"] = {"metrics": res.metrics, "seconds": secs}
    all_rows += rows
    idx = np.random.default_rng(args.seed).choice(len(split.train), 60, replace=False)
    copies = split.train.subset(np.sort(idx))
    res, rows, secs2 = evaluate_rows(ev, clf, split, copies, "60 copies of training images", args.seed)
    out["copies"] = {"metrics": res.metrics, "seconds": secs2, "flagged": res.metrics["memorisation"]["flagged"]}
    all_rows += rows[:1]
    print_rows(all_rows)
    print(f"memorisation flagged: held-out {out['held_out_val']['metrics']['memorisation']['flagged']}, "
          f"copies {out['copies']['flagged']}; evaluate took {secs:.1f} s + {secs2:.1f} s")
    out["rows"] = all_rows
    return out


def full(args) -> dict:
    clf = ae.load_run(args.classifier, kind="classifier", device=None if args.device == "auto" else args.device)
    table = ae.load_dataset(args.data)
    split = ae.load_split(args.split, table, size=args.size) if args.split else ae.split(
        table, fractions=(0.8, 0.1, 0.1), group_by="auto", seed=args.seed, size=args.size)
    synthetic = ae.SyntheticSet.open(args.set)
    cfg = {"cas": args.cas}
    ev = ae.create_evaluator("set-quality", **cfg)
    res, rows, secs = evaluate_rows(ev, clf, split, synthetic, f"{Path(args.set).name}", args.seed)
    print(res.tables["set_quality"])
    print()
    print_rows(rows)
    for v in res.verdicts:
        print(v)
    if args.out:
        res.save(Path(args.out).with_suffix("").as_posix() + "-evaluation")
    return {"metrics": res.metrics, "verdicts": res.verdicts, "rows": rows, "seconds": secs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classifier", help="classifier run dir (trained on the same split's training set)")
    p.add_argument("--set", help="SyntheticSet .h5")
    p.add_argument("--data", default="../shared/data/ham10000")
    p.add_argument("--split", help="split.json (default: 80/10/10 lesion-grouped from --seed)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--cas", action="store_true", help="also train a classifier on the synthetic set (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", help="write results as JSON here")
    args = p.parse_args(argv)
    cpu = cpu_model()
    print(f"CPU: {cpu}")
    t = time.perf_counter()
    if args.quick:
        result = quick(args)
    else:
        if not (args.classifier and args.set):
            p.error("--classifier and --set are required (or --quick)")
        result = full(args)
    result.update({"cpu": cpu, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                   "total_seconds": time.perf_counter() - t, "versions": {"augengine": ae.__version__}})
    print(f"total {result['total_seconds']:.1f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
