"""Benchmark of the ``acgan`` generator on this machine.

Measures, in one run:

* ms per training iteration (batch 64 by default) at 32, 64 and 128 px for the variants
  fp32, fp32 + channels_last, bf16 autocast, bf16 + channels_last, and (unless skipped)
  bf16 + channels_last + ``torch.compile``;
* FLOPs of one training step (``torch.utils.flop_counter``), the machine's bf16 (and fp32)
  matmul throughput measured in the same run, and the utilisation ratio;
* generation throughput (images/s) with and without writing the SyntheticSet, and the rate at
  which the page cache alone takes the same bytes;
* peak resident memory (``resource.getrusage``) after each section;
* loss-curve agreement of fp32 and the default variant (same seed) against the seed-to-seed
  spread of fp32 over the first N iterations;
* optionally (``--classifier RUN --generator RUN``) per-class accuracy of a classifier
  trained on real data on synthetic images of each class.

Prints a table and writes JSON (``--out``). ``--quick`` is a < 1 minute smoke run.

Example::

    .venv/bin/python benchmarks/acgan.py --quick --out /tmp/acgan-quick.json
    .venv/bin/python benchmarks/acgan.py --out bench-results/acgan.json          # quiet machine
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import augengine as ae
from augengine.images import to_model
from augengine.runtime import cpu_supports_bf16, retained_heap

from augengine_acgan import AcganGenerator
from augengine.runtime import cpu_model  # noqa: E402
from rates import matmul_gflops  # noqa: E402  (benchmarks/)

_PROCESS = contextlib.ExitStack()  # settings held for the whole process (main())

VARIANTS = {
    "default": {},  # the plugin's defaults: auto resolved on this machine as a fit of the paper's length would
    "fp32": {"precision": "fp32", "channels_last": "off", "compile": False},
    "fp32+cl": {"precision": "fp32", "channels_last": "on", "compile": False},
    "fp32+compile": {"precision": "fp32", "channels_last": "off", "compile": True},
    "fp32+cl+compile": {"precision": "fp32", "channels_last": "on", "compile": True},
    "bf16": {"precision": "bf16", "channels_last": "off", "compile": False},
    "bf16+cl": {"precision": "bf16", "channels_last": "on", "compile": False},
    "bf16+cl+compile": {"precision": "bf16", "channels_last": "on", "compile": True},
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


DEVICE = torch.device("cpu")  # --device


def make_trainer(size: int, batch: int, variant: dict, num_classes: int = 7, seed: int = 0):
    """A generator with networks and optimisers ready for ``train_step`` (paper architecture)."""
    gen = AcganGenerator(image_size=size, batch_size=batch, **variant)
    gen.device = DEVICE
    gen.class_names = [f"c{i}" for i in range(num_classes)]
    gen.train_counts = {c: 1 for c in gen.class_names}
    gen._resolve_speed(num_classes, gen.config.iterations)  # fixed variants: no trial
    torch.manual_seed(seed)
    gen.build_networks(num_classes)
    c = gen.config
    opt_g = torch.optim.Adam(gen.G.parameters(), lr=c.lr, betas=tuple(c.betas))
    opt_d = torch.optim.Adam(gen.D.parameters(), lr=c.lr, betas=tuple(c.betas))
    G, D = (torch.compile(gen.G), torch.compile(gen.D)) if gen.variant.compile else (gen.G, gen.D)
    rng = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if gen.use_channels_last else torch.contiguous_format
    x = to_model(torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=rng), DEVICE).contiguous(
        memory_format=fmt)
    y = torch.randint(num_classes, (batch,), generator=rng).to(DEVICE)
    z = torch.randn(batch, c.latent_dim, generator=rng).to(DEVICE)

    def step():
        return gen.train_step(G, D, opt_g, opt_d, x, y, z, y, rng)

    return gen, step


def time_steps(step, warmup: int, iters: int) -> tuple[float, float]:
    """Median and min ms per call of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        out = step()
        float(out["loss_d"].detach())
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), float(np.min(times))


def step_flops(size: int, batch: int) -> int:
    """FLOPs of one training step at ``batch``, counted (``torch.utils.flop_counter``) on a step of
    a small batch and scaled: every counted op (convolutions, transposed convolutions, linear
    layers) is linear in the batch size, and a 128 px step of batch 64 costs minutes here."""
    from torch.utils.flop_counter import FlopCounterMode

    small = min(batch, 4)
    _, step = make_trainer(size, small, VARIANTS["fp32"])
    with FlopCounterMode(display=False) as fc:
        step()
    return int(fc.get_total_flops()) * batch // small


def bench_training(sizes, batch, variants, warmup, iters):
    rows = []
    for size in sizes:
        flops = step_flops(size, batch)
        for name in variants:
            gen, step = make_trainer(size, batch, VARIANTS[name])
            if name == "default":
                name = f"default ({gen.variant.label}, {gen.speed.source})"
            t0 = time.perf_counter()
            step()  # first call (compile / oneDNN primitive creation)
            first_ms = (time.perf_counter() - t0) * 1e3
            med, best = time_steps(step, max(0, warmup - 1), iters)
            rows.append({"size": size, "batch": batch, "variant": name, "ms_per_iter": med, "ms_best": best,
                         "first_iter_ms": first_ms, "gflop_per_iter": flops / 1e9,
                         "achieved_gflops": flops / (med / 1e3) / 1e9,
                         "peak_rss_mib": peak_rss_mib()})
            print(f"  {size:>4}px {name:<16} {med:9.1f} ms/iter (best {best:.1f}, first {first_ms:.0f})", flush=True)
        base = next(r["ms_per_iter"] for r in rows if r["size"] == size and r["variant"] == "fp32") \
            if "fp32" in variants else None
        for r in rows:
            if r["size"] == size and base:
                r["speedup_vs_fp32"] = base / r["ms_per_iter"]
    return rows


def bench_generation(size: int, n: int, variant: dict, tmp: Path):
    gen = AcganGenerator(image_size=size, **variant)
    gen.device = DEVICE
    gen.class_names = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"]
    gen.train_counts = {c: 100 for c in gen.class_names}
    gen._resolve_speed(len(gen.class_names), gen.config.iterations)
    torch.manual_seed(0)
    gen.build_networks(len(gen.class_names))
    gen.G.eval()
    labels = np.arange(n, dtype=np.int64) % len(gen.class_names)
    seeds = np.arange(n, dtype=np.int64)
    # warm up both arms (oneDNN primitives, allocator, HDF5 library and page cache) before timing
    gen.sample(labels[:128], seeds[:128])
    gen.generate(min(n, 512), out=tmp / f"warm{size}.h5", seed=1, batch_size=64, chunk_size=256, progress=False,
                 force=True)
    t = time.perf_counter()
    for s in range(0, n, 64):
        gen.sample(labels[s:s + 64], seeds[s:s + 64])
    t_sample = time.perf_counter() - t
    t = time.perf_counter()
    gen.generate(n, out=tmp / f"gen{size}.h5", seed=0, batch_size=64, chunk_size=256, progress=False, force=True)
    t_write = time.perf_counter() - t
    # the same bytes into a new file through the page cache, 64 images a call: on a virtual
    # machine that returns freed memory to its host this alone can be slower than generating
    # (the set bypasses the page cache where it can: benchmarks/synthetic_write.py)
    from synthetic_write import storage_seconds

    imgs = np.random.default_rng(0).integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    t_disk = storage_seconds(tmp / f"raw{size}.bin", n, imgs)
    (tmp / f"raw{size}.bin").unlink()
    return {"size": size, "n": n, "images_per_s_no_write": n / t_sample, "images_per_s_with_hdf5": n / t_write,
            "write_overhead": t_write / t_sample - 1.0, "images_per_s_page_cache_alone": n / t_disk,
            "peak_rss_mib": peak_rss_mib()}


def _curve(train, cfg: dict, seed: int, tmp: Path, tag: str) -> dict[str, np.ndarray]:
    run = tmp / f"curve-{tag}"
    AcganGenerator({**cfg, "device": DEVICE.type}).fit(train, run_dir=run, seed=seed, progress=False)
    rows = [json.loads(x) for x in (run / "losses.jsonl").read_text().splitlines()]
    return {k: np.array([r[k] for r in rows]) for k in ("loss_d", "loss_g")}


def _smooth(x: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    out, acc = np.empty_like(x), x[0]
    for i, v in enumerate(x):
        acc = (1 - alpha) * acc + alpha * v
        out[i] = acc
    return out


def bench_curves(train, size: int, batch: int, iters: int, default_variant: str, tmp: Path):
    """Mean |smoothed difference| of fp32 vs default (same seed) and of fp32 seed 0 vs seed 1."""
    base = {"image_size": size, "batch_size": batch, "iterations": iters, "log_every": 1,
            "checkpoint_every": iters, "sample_every": iters}
    f0 = _curve(train, {**base, **VARIANTS["fp32"]}, 0, tmp, "fp32-s0")
    f1 = _curve(train, {**base, **VARIANTS["fp32"]}, 1, tmp, "fp32-s1")
    d0 = _curve(train, {**base, **VARIANTS[default_variant]}, 0, tmp, "default-s0")
    out = {"size": size, "batch": batch, "iterations": iters, "default_variant": default_variant}
    for k in ("loss_d", "loss_g"):
        diff = float(np.mean(np.abs(_smooth(d0[k]) - _smooth(f0[k]))))
        noise = float(np.mean(np.abs(_smooth(f1[k]) - _smooth(f0[k]))))
        out[k] = {"default_vs_fp32": diff, "fp32_seed_spread": noise, "within_noise": diff <= 1.5 * noise,
                  "final_fp32": float(_smooth(f0[k])[-1]), "final_default": float(_smooth(d0[k])[-1])}
    return out


def bench_class_accuracy(classifier_dir: str, generator_dir: str, per_class: int):
    clf = ae.load_run(classifier_dir, kind="classifier")
    gen = ae.load_run(generator_dir, kind="generator")
    rows = {}
    for k, name in enumerate(gen.class_names):
        if gen.train_counts.get(name, 0) == 0:
            continue
        imgs = gen.sample(np.full(per_class, k, np.int64), np.arange(per_class, dtype=np.int64) + 7919 * k)
        if clf.image_size != gen.image_size:
            imgs = ae.resize_uint8(imgs, clf.image_size)
        pred = np.asarray(clf.predict(imgs))
        target = clf.class_names.index(name) if name in clf.class_names else -1
        rows[name] = float(np.mean(pred == target))
    return {"per_class_accuracy": rows, "chance": 1.0 / len(clf.class_names), "per_class_n": per_class}


def load_train(data: str, size: int):
    try:
        table = ae.load_dataset(data)
        return ae.split(table, fractions=(0.8, 0.1, 0.1), group_by="auto", seed=0, size=size).train
    except Exception as e:  # noqa: BLE001 - fall back to tiny synthetic data for the smoke run
        print(f"  (data {data!r} unavailable: {e}; using augengine.testing.tiny_imageset)")
        from augengine.testing import tiny_imageset

        return tiny_imageset(n_per_class=32, size=size, classes=("MEL", "NV", "BKL", "BCC"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="< 1 minute smoke run (32 px, few iterations)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--batch", type=int, default=None, help="training batch (default 64; 16 with --quick)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations per variant")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--gen-n", type=int, default=None, help="images for the generation benchmark")
    p.add_argument("--gen-size", type=int, default=None)
    p.add_argument("--curve-iters", type=int, default=None, help="iterations of the loss-curve comparison")
    p.add_argument("--curve-size", type=int, default=None)
    p.add_argument("--data", default="demo", help="data for the loss curves (path or 'demo')")
    p.add_argument("--classifier", default=None, help="classifier run dir (trained on real data)")
    p.add_argument("--generator", default=None, help="acgan run dir whose samples the classifier labels")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--skip-curves", action="store_true", help="skip the loss-curve comparison")
    a = p.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(a.device)
    # cuDNN's algorithm search on and freed memory kept in the heap, as the engine's fits and generate()
    # run (augengine.runtime.benchmarked_convolutions, retained_heap), for the whole process
    torch.backends.cudnn.benchmark = True
    _PROCESS.enter_context(retained_heap())

    q = a.quick
    a.batch = a.batch or (16 if q else 64)
    sizes = a.sizes or ([32] if q else [32, 64, 128])
    iters = a.iters or (2 if q else 5)
    warmup = a.warmup if a.warmup is not None else (1 if q else 2)
    native_bf16 = torch.cuda.is_bf16_supported() if DEVICE.type == "cuda" else cpu_supports_bf16()
    variants = a.variants or [v for v in VARIANTS if not (("compile" in v) and (q or a.no_compile))
                              and (native_bf16 or "bf16" not in v)]
    # on a GPU 10,000 images take well under a second (0.27 s per 4,096 on an H200), so the set's
    # fixed costs (create, close, rename, reopen: tens of ms) would weigh like a per-image cost
    gen_n = a.gen_n or (128 if q else (16384 if DEVICE.type == "cuda" else 10000))
    gen_size = a.gen_size or (32 if q else 128)
    curve_iters = a.curve_iters or (6 if q else 500)
    curve_size = a.curve_size or (32 if q else 64)
    curve_batch = 8 if q else a.batch
    # the plugin's defaults (precision="auto", channels_last="auto") resolve to this variant
    default_variant = "default"

    t_all = time.perf_counter()
    result = {"cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_supports_bf16": cpu_supports_bf16(), "quick": q, "default_variant": default_variant}
    print(f"CPU: {result['cpu']}  torch {torch.__version__}  threads {result['threads']}  "
          f"bf16 native: {result['cpu_supports_bf16']}")
    if not native_bf16:
        print("  no native bf16 (no avx512_bf16/amx_bf16 in /proc/cpuinfo): bf16 variants skipped "
              "(emulated bf16 is far slower; force with --variants), default = fp32")
    def matmul_rates() -> dict[str, float]:
        return {"bf16": matmul_gflops(torch.bfloat16, DEVICE, n=512 if not native_bf16 else (1024 if q else 2048),
                                      reps=2 if not native_bf16 else 8),
                "fp32": matmul_gflops(torch.float32, DEVICE, n=1024 if q else 2048)}

    before = matmul_rates()
    print(f"matmul throughput: bf16 {before['bf16']:.0f} GFLOP/s, fp32 {before['fp32']:.0f} GFLOP/s")

    print(f"training iterations (batch {a.batch}):")
    result["training"] = bench_training(sizes, a.batch, variants, warmup, iters)
    # measured again after the rows: a VM's speed drifts (bf16 matmul 2,123 to 2,774 GFLOP/s within
    # an hour on one machine), and the higher of the two is the reference (the lower utilisation)
    after = matmul_rates()
    print(f"matmul throughput after the rows: bf16 {after['bf16']:.0f} GFLOP/s, fp32 {after['fp32']:.0f} GFLOP/s")
    peak_bf16, peak_fp32 = max(before["bf16"], after["bf16"]), max(before["fp32"], after["fp32"])
    result["matmul_gflops"] = {"bf16": peak_bf16, "fp32": peak_fp32, "before_rows": before, "after_rows": after}
    peak = max(peak_bf16, peak_fp32)  # the machine's best matmul throughput
    result["utilisation_reference"] = "bf16 matmul" if peak_bf16 >= peak_fp32 else "fp32 matmul (bf16 not native)"
    for r in result["training"]:
        r["utilisation_of_peak"] = r["achieved_gflops"] / peak
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"generation ({gen_n} images at {gen_size} px, variant {default_variant}):")
        result["generation"] = bench_generation(gen_size, gen_n, VARIANTS[default_variant], tmp)
        g = result["generation"]
        print(f"  {g['images_per_s_no_write']:.1f} img/s without writing, {g['images_per_s_with_hdf5']:.1f} img/s "
              f"into HDF5 (overhead {100 * g['write_overhead']:+.1f}%); the same bytes through the page cache "
              f"alone {g['images_per_s_page_cache_alone']:.0f} img/s")
        print(f"loss curves ({curve_iters} iterations at {curve_size} px, batch {curve_batch}):")
        if not a.skip_curves:
            train = load_train(a.data, curve_size)
            result["loss_curves"] = bench_curves(train, curve_size, curve_batch, curve_iters, default_variant, tmp)
    for k in ("loss_d", "loss_g") if "loss_curves" in result else ():
        c = result["loss_curves"][k]
        print(f"  {k}: |default - fp32| = {c['default_vs_fp32']:.4f}, fp32 seed spread = {c['fp32_seed_spread']:.4f}"
              f" -> within noise: {c['within_noise']}")
    if a.classifier and a.generator:
        result["class_accuracy"] = bench_class_accuracy(a.classifier, a.generator, 16 if q else a.per_class)
    result["peak_rss_mib"] = peak_rss_mib()
    result["wall_s"] = time.perf_counter() - t_all

    print()
    print(f"utilisation = achieved GFLOP/s / {result['utilisation_reference']} throughput "
          f"({peak:.0f} GFLOP/s, the higher of the two measurements)")
    print(f"{'size':>4} {'variant':<16} {'ms/iter':>9} {'×fp32':>6} {'GFLOP/it':>9} {'GFLOP/s':>8} {'util':>6} {'RSS MiB':>8}")
    for r in result["training"]:
        print(f"{r['size']:>4} {r['variant']:<16} {r['ms_per_iter']:>9.1f} {r.get('speedup_vs_fp32', float('nan')):>6.2f} "
              f"{r['gflop_per_iter']:>9.1f} {r['achieved_gflops']:>8.0f} {100 * r['utilisation_of_peak']:>5.1f}% "
              f"{r['peak_rss_mib']:>8.0f}")
    if "class_accuracy" in result:
        ca = result["class_accuracy"]
        print(f"per-class accuracy of the classifier on synthetic images (chance {ca['chance']:.2f}):")
        for name, acc in ca["per_class_accuracy"].items():
            print(f"  {name:<6} {acc:.3f}")
    print(f"peak RSS {result['peak_rss_mib']:.0f} MiB, wall {result['wall_s']:.1f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
