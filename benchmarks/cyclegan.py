"""Benchmark of the ``cyclegan`` plugin: ms per training iteration (batch 1), peak memory,
translation images/s, at 64/128/256 px, for fp32, bf16 autocast, channels_last and
torch.compile — optionally beside the reference implementation's own training step.

Every (size, variant) runs in a fresh subprocess so that peak memory (max RSS on CPU,
``torch.cuda.max_memory_allocated`` on CUDA) and compilation do not leak between rows.
Architecture for the comparison: ResNet generator with ``--blocks`` (9) residual blocks at
every size, 70×70 PatchGAN, batch size 1 — as the reference's defaults.

Examples::

    python benchmarks/cyclegan.py --quick
    python benchmarks/cyclegan.py --reference /tmp/cyclegan_ref --out cyclegan-bench.json
    python benchmarks/cyclegan.py --sizes 128 --loss-check 500 --reference /tmp/cyclegan_ref

``--reference PATH`` is a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (or a fork with
its history, e.g. premsuggu/pytorch-CycleGAN-and-pix2pix at 2a7afba) *outside* this project;
its ``models`` package is imported and its ``CycleGANModel.optimize_parameters`` timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path
from augengine.runtime import cpu_model, cpu_supports_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# our rows: "default" (auto, resolved on this machine as a fit would) or a fixed variant named as
# autotune labels it, PRECISION[+cl][+batched][+grouped][+compile][+cudagraphs]; the default list:
OURS = ["default", "fp32", "fp32+batched", "fp32+grouped", "bf16", "bf16+batched", "bf16+grouped",
        "bf16+batched+grouped", "bf16+cl", "bf16+cl+batched", "bf16+cl+grouped", "bf16+cl+batched+grouped",
        "fp32+cl", "bf16+grouped+compile", "bf16+compile", "bf16+batched+compile", "bf16+cl+batched+compile",
        "fp32+compile"]
FLAGS = {"cl": "channels_last", "batched": "batched_passes", "grouped": "grouped", "compile": "compile",
         "cudagraphs": "cudagraphs"}


def variant_config(label: str) -> dict | None:
    """The plugin's speed settings of a fixed variant label (None for "default"); ValueError if unknown."""
    if label == "default":
        return None
    precision, *flags = label.split("+")
    if precision not in ("fp32", "bf16") or set(flags) - set(FLAGS) or len(set(flags)) != len(flags):
        raise ValueError(label)
    cfg = {"precision": precision, **{key: flag in flags for flag, key in FLAGS.items()}}
    cfg["compile"] = cfg["compile"] or cfg["cudagraphs"]  # CUDA graphs are a compile mode
    return cfg
# a fit of the paper's length (200 epochs of ~1,000 images): what the default row's autotune
# trial is bounded by (the trial runs once per machine, size and torch version, then is cached)
DEFAULT_FIT_STEPS = 200_000
REF = {"ref-fp32": None, "ref-bf16": "bf16"}




def run_child(cmd: list[str], env: dict, timeout: float) -> tuple[int, list[str]]:
    """Run one row's process: (exit code, its output's lines, stderr included). The default row's
    autotune lines are passed through as they come, so that a log shows how far a row got even
    when a time limit kills the benchmark."""
    import threading

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []

    def pump():
        for ln in proc.stdout:
            lines.append(ln.rstrip("\n"))
            if ln.startswith(("autotune:", "default resolved")):
                print(f"      {ln.rstrip()}", file=sys.stderr, flush=True)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        t.join(timeout=5)
    return proc.returncode, lines


def result_line(lines: list[str]) -> dict | None:
    """The measurement a row's process printed (its ``RESULT`` line), or None."""
    line = next((ln for ln in lines if ln.startswith("RESULT ")), None)
    return json.loads(line[len("RESULT "):]) if line else None


# -- one measurement (runs in a child process) ---------------------------------------------------
def _data(size: int, n: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(1, 3, size, size, generator=g) * 2 - 1, torch.rand(1, 3, size, size, generator=g) * 2 - 1)
            for _ in range(n)]


def step_gflop(size: int, blocks: int) -> float:
    """GFLOP of one training iteration of ours at batch 1 (``torch.utils.flop_counter`` on the
    ``meta`` device: the engine's plan estimate). Every variant, and the reference's step, run
    the same convolutions; precision and fusion change the time, not the count."""
    from augengine.bench.estimate import count_flops
    from augengine_cyclegan import CycleGanGenerator

    cfg = {"image_size": size, "n_blocks": blocks, "precision": "fp32", "channels_last": False,
           "batched_passes": False, "grouped": False, "compile": False, "cudagraphs": False, "device": "cpu"}
    work = CycleGanGenerator.work(cfg, phase="fit", n_images=1)[0]
    return count_flops(work.make, 1, size) / 1e9


def run_ours(variant: str, size: int, iters: int, warmup: int, blocks: int, device: str, log_losses: int,
             seed: int = 0) -> dict:
    import numpy as np
    import torch

    from augengine_cyclegan import CycleGanGenerator
    from augengine_cyclegan.pool import ImageHistory

    fixed = variant_config(variant)
    if fixed is None:  # the plugin's defaults, auto resolved on this machine as a fit would
        g = CycleGanGenerator(image_size=size, n_blocks=blocks, device=device)
        t0 = time.perf_counter()
        res = g._resolve_speed(DEFAULT_FIT_STEPS, progress=True)
        print(f"default resolved to {res.variant.label} ({res.source}, {time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
        resolved = {"resolved": res.variant.label, "source": res.source, "trial_ms": res.timings_ms}
    else:
        g = CycleGanGenerator(image_size=size, n_blocks=blocks, device=device, **fixed)
        resolved = {}
    g._build(seed)  # initialisation; the data below are the same for every seed
    g._make_optim()
    g.pool_x, g.pool_y = ImageHistory(50, 1 + 2 * seed), ImageHistory(50, 2 + 2 * seed)
    g.class_names, g.out_label = ["X", "Y"], 1
    n = max(warmup + iters, log_losses)
    data = _data(size, min(n, 64))

    def step(i):
        x, y = data[i % len(data)]
        return g._train_step(g._to_model(((x + 1) * 127.5).round().byte().permute(0, 2, 3, 1)),
                             g._to_model(((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1))).tolist()

    return {**_time_loop(step, iters, warmup, log_losses, device,
                         translate=lambda imgs: g.translate(imgs, np.zeros(len(imgs), np.int64))), **resolved}


def run_reference(variant: str, size: int, iters: int, warmup: int, blocks: int, device: str, ref: str,
                  log_losses: int) -> dict:
    import contextlib

    import torch

    sys.path.insert(0, ref)
    from models.cycle_gan_model import CycleGANModel  # the reference's own code, from its checkout

    opt = Namespace(isTrain=True, checkpoints_dir="/tmp/cyclegan-ref-bench", name="bench", device=torch.device(device),
                    preprocess="resize_and_crop", input_nc=3, output_nc=3, ngf=64, ndf=64,
                    netG=f"resnet_{blocks}blocks", netD="basic", n_layers_D=3, norm="instance", no_dropout=True,
                    init_type="normal", init_gain=0.02, lambda_identity=0.5, lambda_A=10.0, lambda_B=10.0,
                    pool_size=50, gan_mode="lsgan", lr=2e-4, beta1=0.5, direction="AtoB", gpu_ids=[],
                    continue_train=False, epoch_count=1, n_epochs=100, n_epochs_decay=100, lr_policy="linear",
                    verbose=False, epoch="latest", load_iter=0, lr_decay_iters=50)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):
        model = CycleGANModel(opt)
        # what the reference's BaseModel.setup does for training (without its schedulers and prints):
        # every network on the device (moved in place, so the optimizers keep their parameters) and
        # initialised with N(0, 0.02), the reference's init_type="normal"
        from models import networks
        for name in model.model_names:
            net = getattr(model, "net" + name).to(device)
            networks.init_weights(net, opt.init_type, opt.init_gain)
    ctx = (lambda: torch.autocast(torch.device(device).type, dtype=torch.bfloat16)) if REF[variant] else contextlib.nullcontext
    data = _data(size, min(max(warmup + iters, log_losses), 64))

    def step(i):
        x, y = data[i % len(data)]
        model.set_input({"A": x, "B": y, "A_paths": ["a"], "B_paths": ["b"]})
        with ctx():
            model.optimize_parameters()
        return [float(model.loss_G_B), float(model.loss_G_A), float(model.loss_cycle_A), float(model.loss_cycle_B),
                float(model.loss_idt_B), float(model.loss_idt_A), float(model.loss_D_A), float(model.loss_D_B)]

    @torch.no_grad()
    def translate(imgs):
        t = torch.as_tensor(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        with ctx():
            return model.netG_A(t)

    return _time_loop(step, iters, warmup, log_losses, device, translate=translate)


def _time_loop(step, iters, warmup, log_losses, device, translate) -> dict:
    import numpy as np
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    losses = []
    t_first = time.perf_counter()
    for i in range(warmup):
        losses.append(step(i))
    sync()
    first = (time.perf_counter() - t_first) * 1000 / max(warmup, 1)
    times = []
    for i in range(warmup, warmup + iters):
        t0 = time.perf_counter()
        losses.append(step(i))
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    for i in range(warmup + iters, log_losses):
        losses.append(step(i))
    profile = _profile(step, max(warmup + iters, log_losses), device, sync)
    # 32 images: ours replays a CUDA graph per image from 16 on (REPLAY_MIN_IMAGES), the reference
    # translates them as one batch
    imgs = np.random.default_rng(0).integers(0, 256, (32, *_size_of(step), 3), dtype=np.uint8)
    translate(imgs)  # warm-up
    sync()
    t0 = time.perf_counter()
    reps = 2
    for _ in range(reps):
        translate(imgs)
    sync()
    tps = reps * len(imgs) / (time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"ms_per_iter": float(np.median(times)), "ms_min": float(np.min(times)), "ms_warmup": first,
            "peak_mib": peak, "translate_img_s": tps, "losses": losses[:log_losses] if log_losses else [],
            **({"profile": profile} if profile else {})}


def _profile(step, first: int, device: str, sync) -> str | None:
    """``--profile N``: N more steps under torch.profiler; the operators (and on a GPU the kernels)
    by their own time, as a table (what a step spends its time on, per variant)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    n = int(os.environ.get("AUGENGINE_BENCH_PROFILE", "0") or 0)
    if n <= 0:
        return None
    cuda = device.startswith("cuda")
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for i in range(first, first + n):
            step(i)
        sync()
    table = prof.key_averages()
    for key in (["self_device_time_total", "self_cuda_time_total"] if cuda else []) + ["self_cpu_time_total"]:
        try:
            return f"{n} steps, sorted by {key}\n" + table.table(sort_by=key, row_limit=25)
        except (AttributeError, KeyError, ValueError):
            continue
    return None


def _size_of(step) -> tuple[int, int]:
    return (_CURRENT_SIZE, _CURRENT_SIZE)


_CURRENT_SIZE = 64


def child(args) -> None:
    global _CURRENT_SIZE
    _CURRENT_SIZE = args.size
    from augengine.plugin_api import benchmarked_convolutions, retained_heap

    if args.variant in REF:
        with retained_heap(args.reference_heap == "retain"):
            res = run_reference(args.variant, args.size, args.iters, args.warmup, args.blocks, args.device,
                                args.reference, args.loss_check)
    else:
        # as the engine's fit runs it (the reference turns cuDNN's algorithm search on itself)
        with benchmarked_convolutions(), retained_heap():
            res = run_ours(args.variant, args.size, args.iters, args.warmup, args.blocks, args.device,
                           args.loss_check, args.seed)
    print("RESULT " + json.dumps(res))


# -- loss curves ---------------------------------------------------------------------------------
def _smooth(values, window: int = 20):
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    return np.convolve(v, np.ones(window) / window, mode="valid") if len(v) >= window else v


def loss_check(curves: dict, sizes, n: int) -> dict:
    """Generator loss (sum of the six G terms) and discriminator loss (two D terms), smoothed over
    20 iterations: mean |default − fp32 seed 0| against mean |fp32 seed 1 − fp32 seed 0| (the
    spread of two fp32 seeds). Printed as a table, returned for the JSON."""
    import numpy as np

    out = {}
    print(f"\nloss curves over the first {n} iterations (smoothed over 20): mean |difference| to fp32 seed 0")
    print("| size | curve | generator loss | discriminator loss | within the fp32 seed spread |")
    print("|---:|---|---:|---:|---|")
    for size in sizes:
        base = curves.get((size, "fp32"))
        if base is None:
            continue
        parts = {k: v for (s, k), v in curves.items() if s == size and k != "fp32"}

        def dist(a, b, idx):
            sa = _smooth([sum(l[idx]) for l in a])
            sb = _smooth([sum(l[idx]) for l in b])
            m = min(len(sa), len(sb))
            return float(np.mean(np.abs(sa[:m] - sb[:m])))

        g_idx, d_idx = slice(0, 6), slice(6, 8)
        spread = parts.get("fp32 seed 1")
        sp = (dist(spread, base, g_idx), dist(spread, base, d_idx)) if spread else None
        out[size] = {}
        for name, c in sorted(parts.items()):
            dg, dd = dist(c, base, g_idx), dist(c, base, d_idx)
            within = None if sp is None or name == "fp32 seed 1" else bool(dg <= sp[0] and dd <= sp[1])
            out[size][name] = {"generator": dg, "discriminator": dd, "within_seed_spread": within}
            mark = "—" if within is None else ("yes" if within else "NO")
            print(f"| {size} | {name} | {dg:.4f} | {dd:.4f} | {mark} |")
    return out


# -- driver --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--variants", default=None,
                    help="comma-separated; default all, without bf16 on a CPU that lacks native bf16")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations per row (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=9, help="residual blocks at every size (9 = reference default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference", default=None, help="checkout of the reference implementation (outside the project)")
    ap.add_argument("--loss-check", type=int, default=0,
                    help="also record the first N iterations' losses of fp32, default and ref-fp32 on identical "
                         "data, run fp32 with a second seed, and compare default's curves with the two seeds' spread")
    ap.add_argument("--quick", action="store_true", help="32 px, 6 blocks (the smallest the reference builds), fp32 and bf16+cl, 1 iteration (smoke check)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--row-timeout", type=float, default=3600, help="seconds before a row's process is killed")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also run N steps of every row under torch.profiler and print (and save) the top operators "
                         "and kernels by their own time")
    ap.add_argument("--reference-heap", choices=["system", "retain"], default="system",
                    help="glibc malloc for the reference's rows: as it comes (default), or with freed memory "
                         "kept in the heap as our rows run (augengine.runtime.retained_heap)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        child(args)
        return 0
    if args.quick:
        args.sizes, args.iters, args.warmup, args.blocks = "32", 1, 1, 6
        args.variants = "default,fp32"
    sizes = [int(s) for s in args.sizes.split(",")]
    emulated_bf16 = args.device == "cpu" and not cpu_supports_bf16()
    if args.variants is None:
        # emulated bf16 is 10-40x slower than fp32 (38 s vs 0.9 s per 64 px step of the reference
        # here): rows that would run for hours at 256 px; name them in --variants to force them
        args.variants = ",".join(v for v in OURS if not (emulated_bf16 and "bf16" in v))
    variants = [v for v in args.variants.split(",") if v]
    unknown = []
    for v in variants:
        try:
            variant_config(v)
        except ValueError:
            unknown.append(v)
    if unknown:
        ap.error(f"unknown variants {unknown}; give default or PRECISION (fp32, bf16) followed by any of "
                 f"+{', +'.join(FLAGS)}, e.g. {', '.join(OURS[1:4])}")
    if args.reference:
        if not (Path(args.reference) / "models" / "cycle_gan_model.py").is_file():
            ap.error(f"--reference {args.reference}: no models/cycle_gan_model.py there")
        variants = [r for r in REF if not (emulated_bf16 and "bf16" in r and "bf16" not in args.variants)] + variants
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); device {args.device}; torch threads default; "
          f"heap: ours retained, the reference's {'retained' if args.reference_heap == 'retain' else 'as glibc has it'}")
    if emulated_bf16:
        print("  no native bf16 on this CPU (no avx512_bf16/amx_bf16): bf16 rows skipped unless named in --variants")
    rows = []
    extras: dict = {}
    import torch

    from augengine.autotune import precision_options
    from rates import matmul_gflops  # benchmarks/

    # what the rows are measured against: the machine's matmul rate in each precision it runs natively
    native = [p for p in precision_options(args.device) if p in ("fp32", "bf16")]
    mm = {p: matmul_gflops({"fp32": torch.float32, "bf16": torch.bfloat16}[p], args.device) for p in native}
    gflop = {size: step_gflop(size, args.blocks) for size in sizes}
    extras.update(matmul_gflops=mm, gflop_per_iter=gflop)
    print("matmul: " + ", ".join(f"{p} {r:,.0f} GFLOP/s" for p, r in mm.items()) + "; one iteration: "
          + ", ".join(f"{g:,.1f} GFLOP at {s} px" for s, g in gflop.items()), flush=True)

    def save() -> dict:  # after every row, so that a run cut short (a time limit) keeps what it measured
        result = {"cpu": cpu_model(), "device": args.device, "blocks": args.blocks, "rows": rows,
                  "reference_heap": args.reference_heap,
                  "argv": sys.argv[1:], "platform": platform.platform(), **extras}
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return result

    def child_cmd(v: str, size: int, iters: int, warmup: int, loss_check: int, seed: int = 0) -> list[str]:
        cmd = [sys.executable, __file__, "--_child", "--variant", v, "--size", str(size), "--iters", str(iters),
               "--warmup", str(warmup), "--blocks", str(args.blocks), "--device", args.device,
               "--loss-check", str(loss_check), "--seed", str(seed)]
        return cmd + (["--reference", args.reference, "--reference-heap", args.reference_heap] if v in REF else [])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                                      os.environ.get("PYTHONPATH", "")]),
           "AUGENGINE_BENCH_PROFILE": str(args.profile)}
    for size in sizes:
        for v in variants:
            cmd = child_cmd(v, size, args.iters, args.warmup + (2 if "compile" in v or v == "default" else 0),
                            args.loss_check if v in ("fp32", "default", "ref-fp32") else 0)
            t_row = time.perf_counter()
            try:
                rc, lines = run_child(cmd, env, args.row_timeout)
            except subprocess.TimeoutExpired:
                print(f"  {size:>4} px  {v:<16} TIMEOUT after {args.row_timeout:.0f} s")
                rows.append({"size": size, "variant": v, "error": "timeout"})
                save()
                continue
            res = result_line(lines)
            if rc or res is None:
                err = (lines or ["?"])[-1]
                print(f"  {size:>4} px  {v:<16} FAILED: {err}")
                rows.append({"size": size, "variant": v, "error": err})
                save()
                continue
            res["row_wall_s"] = round(time.perf_counter() - t_row, 1)
            rows.append({"size": size, "variant": v, **res})
            save()
            if res.get("resolved"):
                v = res["variant_label"] = f"default ({res['resolved']}, {res['source']})"
            print(f"  {size:>4} px  {v:<16} {res['ms_per_iter']:9.1f} ms/it  peak {res['peak_mib']:7.0f} MiB  "
                  f"translate {res['translate_img_s']:7.1f} img/s  ({res['row_wall_s']:.0f} s)", flush=True)
            if res.get("profile"):
                print(res["profile"], flush=True)
    # table with speed-ups against the reference's best (or our fp32)
    print()
    fastest = max(mm.values())
    print(f"| size | variant | ms/iter | speed-up vs {'ref best' if args.reference else 'fp32'} | GFLOP/s | "
          f"of the {max(mm, key=mm.get)} matmul rate | peak MiB | translate img/s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        ok = [r for r in rows if r["size"] == size and "error" not in r]
        base_rows = [r for r in ok if r["variant"] in REF] or [r for r in ok if r["variant"] == "fp32"]
        base = min((r["ms_per_iter"] for r in base_rows), default=None)
        for r in ok:
            sp = f"{base / r['ms_per_iter']:.2f}×" if base else "—"
            rate = gflop[size] / r["ms_per_iter"] * 1e3
            print(f"| {size} | {r.get('variant_label', r['variant'])} | {r['ms_per_iter']:.1f} | {sp} | "
                  f"{rate:,.0f} | {100 * rate / fastest:.0f} % | {r['peak_mib']:.0f} | {r['translate_img_s']:.1f} |")
        if any(r["variant"] in REF for r in ok):  # the 1.5x target against the machine's ceiling
            need = 1.5 * gflop[size] / base * 1e3
            print(f"{size} px: 1.5× the reference's best = {need:,.0f} GFLOP/s = {100 * need / fastest:.0f} % of the "
                  f"fastest matmul rate here ({max(mm, key=mm.get)}, {fastest:,.0f} GFLOP/s)"
                  + (": beyond the machine's matmul peak, out of reach with the same convolutions"
                     if need > fastest else ""))
    for size in sizes:  # the target: default within 5 % of the fastest fixed variant of ours
        ok = [r for r in rows if r["size"] == size and "error" not in r]
        dflt = next((r for r in ok if r["variant"] == "default"), None)
        fixed = [r for r in ok if r["variant"] not in REF and r["variant"] != "default"]
        if dflt and fixed:
            best = min(fixed, key=lambda r: r["ms_per_iter"])
            print(f"{size} px: default {dflt['ms_per_iter']:.1f} ms = {dflt['ms_per_iter'] / best['ms_per_iter']:.2f}× "
                  f"the fastest fixed variant ({best['variant']}, {best['ms_per_iter']:.1f} ms)")
    curves = {}
    if args.loss_check:
        for size in sizes:  # the spread of two fp32 seeds: what "the same training" varies by
            rc, lines = run_child(child_cmd("fp32", size, 1, 0, args.loss_check, seed=1), env, args.row_timeout)
            res = result_line(lines)
            if res is not None:
                curves[(size, "fp32 seed 1")] = res["losses"]
            else:
                print(f"  {size} px fp32 seed 1 FAILED: {(lines or ['?'])[-1]}")
        for r in rows:
            if r.get("losses"):
                curves[(r["size"], r["variant"])] = r["losses"]
        extras["loss_check"] = loss_check(curves, sizes, args.loss_check)
    save()
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
