"""Data-loading benchmark: JPEG decode+resize versus reads of the decoded HDF5 cache.

Prints images/s at 64 and 128 px for:

* ``jpeg_decode_resize_1proc``: PIL decode + bicubic resize, one process (what a naive loader does per epoch);
* ``cache_build_2proc``: building the cache (2 worker processes);
* ``hdf5_read_whole``: reading the whole uncompressed cache into memory (once per run);
* ``hdf5_read_chunks256``: sequential 256-image slices of the HDF5 file;
* ``hdf5_random_batches``: one random batch of 64 at a time with fancy indexing on the file (the slow path we avoid);
* ``memory_epoch_batches``: a shuffled epoch of 64-image batches gathered from the in-memory array (what training does);
* ``memory_epoch_batches_augmented``: the same plus kornia augmentation (flips, rot90, colour jitter).

Usage::

    python benchmarks/data.py --quick --out bench-data.json
    python benchmarks/data.py --data ../shared/data/ham10000 --out bench-data.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from augengine.runtime import cpu_model  # noqa: E402




def rate(n: int, fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv=None) -> dict:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AUGENGINE_HAM10000", str(here.parent / "shared/data/ham10000")))
    ap.add_argument("--n", type=int, default=None, help="images to use (default: all; --quick: 600)")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--quick", action="store_true", help="smoke run (< 1 minute)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the augmentation timing (default 1)")
    args = ap.parse_args(argv)

    os.environ["AUGENGINE_CACHE"] = tempfile.mkdtemp(prefix="augengine-bench-")  # never touch the user's cache
    import torch

    torch.set_num_threads(args.threads)
    from augengine.data import augment, load_dataset
    from augengine.data.cache import decode_all, decode_image
    from augengine.data.table import ImageTable

    data = args.data if Path(args.data).exists() else "demo"
    full = load_dataset(data)
    n = args.n or (600 if args.quick else len(full))
    n = min(n, len(full))
    idx = np.arange(n)
    table = ImageTable(root=full.root, format=full.format, class_names=full.class_names, labels=full.labels[idx],
                       paths=[full.paths[i] for i in idx], ids=[full.ids[i] for i in idx],
                       embedded=None if full._embedded is None else [full._embedded[i] for i in idx])
    sizes = [int(s) for s in args.sizes.split(",")]
    rep = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    results = []
    tmp = Path(os.environ["AUGENGINE_CACHE"])
    for size in sizes:
        row = {"size": size, "n": n}
        row["jpeg_decode_resize_1proc"] = rate(n, lambda: [decode_image(table.source(i), size) for i in range(n)])
        t0 = time.perf_counter()
        arr, _ = decode_all(table, size, progress=False)
        row["cache_build_2proc"] = n / (time.perf_counter() - t0)
        path = tmp / f"cache{size}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("images", data=arr)
        row["cache_mb"] = round(path.stat().st_size / 1e6, 1)

        def read_whole():
            with h5py.File(path, "r") as f:
                return f["images"][()]

        def read_chunks():
            with h5py.File(path, "r") as f:
                d = f["images"]
                for s in range(0, n, 256):
                    d[s: s + 256]

        nb = min(n // 64, 20 if args.quick else 100)

        def read_random():
            with h5py.File(path, "r") as f:
                d = f["images"]
                for _ in range(nb):
                    d[np.sort(rng.choice(n, 64, replace=False))]

        mem = read_whole()

        def epoch():
            perm = rng.permutation(n)
            for s in range(0, n, 64):
                torch.from_numpy(mem[perm[s: s + 64]])

        gen = torch.Generator().manual_seed(0)

        def epoch_aug():
            perm = rng.permutation(n)
            for s in range(0, n, 64):
                augment(torch.from_numpy(mem[perm[s: s + 64]]), generator=gen)

        row["hdf5_read_whole"] = rate(n, read_whole, rep)
        row["hdf5_read_chunks256"] = rate(n, read_chunks, rep)
        row["hdf5_random_batches"] = rate(nb * 64, read_random, 1)
        row["memory_epoch_batches"] = rate(n, epoch, rep)
        row["memory_epoch_batches_augmented"] = rate(n, epoch_aug, 1)
        row["epoch_speedup_vs_jpeg"] = row["memory_epoch_batches"] / row["jpeg_decode_resize_1proc"]
        results.append(row)

    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0], "data": str(data),
            "format": table.format, "quick": args.quick, "torch_threads": torch.get_num_threads()}
    print(f"CPU: {info['cpu']} ({info['cores']} cores); data: {data} ({table.format}), {n} images")
    keys = ["jpeg_decode_resize_1proc", "cache_build_2proc", "hdf5_read_whole", "hdf5_read_chunks256",
            "hdf5_random_batches", "memory_epoch_batches", "memory_epoch_batches_augmented"]
    print(f"{'images/s':<34}" + "".join(f"{r['size']:>12}px" for r in results))
    for k in keys:
        print(f"{k:<34}" + "".join(f"{r[k]:>14,.0f}" for r in results))
    print(f"{'epoch speed-up vs JPEG decode':<34}" + "".join(f"{r['epoch_speedup_vs_jpeg']:>13,.0f}x" for r in results))
    print(f"{'cache size (MB)':<34}" + "".join(f"{r['cache_mb']:>14}" for r in results))
    out = {"info": info, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
