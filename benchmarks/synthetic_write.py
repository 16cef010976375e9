"""Writing a SyntheticSet at the rate of a GPU generator, on any machine.

A stand-in generator delivers images at a set rate (``--rate`` images/s, 15,000 by default: an
H200 generates ACGAN images at 128 px at about 17,000 img/s): per batch it does the host work
ACGAN's ``sample()`` does (one seeded noise vector per image, under the GIL), then waits out the
rest of the batch's time without the GIL (as a GPU step does) and returns a fresh copy of stored
images. Timed, in one run, interleaved and each ``--reps`` times:

* ``alone``: ``sample()`` batch by batch, nothing written;
* ``into set, unbuffered`` / ``into set, page cache``: ``Generator.generate`` into a new set, with
  the image rows written past the page cache (``O_DIRECT``, the default where rows are whole 4 KiB
  blocks and the file system allows it) or through it;
* ``page cache alone``: the same bytes ``os.pwrite``-n into a new file through the page cache, 64
  images a call, nothing else running.

Each arm writes a new file (the last one is deleted first, outside the timing): on a virtual
machine that returns freed memory to its host, new page-cache pages are the slow part. Prints a
table of medians and writes JSON (``--out``).

Usage::

    .venv/bin/python benchmarks/synthetic_write.py --out bench-results/synthetic-write.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import augengine as ae
import augengine.synthetic as synthetic
from augengine.runtime import cpu_model

# what the stand-in generator returns: stored images (made once), a fresh copy per batch
_POOL: np.ndarray | None = None


class PacedConfig(ae.PluginConfig):
    image_size: int = 128
    rate: float = 15000.0  # images per second, as a GPU generates them


class PacedGenerator(ae.Generator):
    """Images at a set rate: the host work of a real sample(), then a GIL-free wait."""

    name = "bench-paced"
    Config = PacedConfig

    def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
        return self

    def sample(self, labels, seeds):
        k = len(labels)
        t0 = time.perf_counter()
        rng = torch.Generator()
        z = torch.empty(k, 128)
        for j, sd in enumerate(np.asarray(seeds).tolist()):  # what ACGAN's sample() does per image
            rng.manual_seed(int(sd))
            torch.randn(128, generator=rng, out=z[j])
        left = k / self.config.rate - (time.perf_counter() - t0)
        if left > 0:
            time.sleep(left)  # the GPU's part: the GIL is free meanwhile
        i = int(np.asarray(seeds)[0]) % (len(_POOL) - k + 1)
        return _POOL[i:i + k].copy()

    def save(self, run_dir):
        return Path(run_dir)

    @classmethod
    def load(cls, run_dir, device=None):
        raise NotImplementedError


def storage_seconds(path: Path, n: int, images: np.ndarray, batch: int = 64) -> float:
    row = images[0].nbytes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, n * row)
        t = time.perf_counter()
        for s in range(0, n, batch):
            k = min(batch, n - s)
            os.pwrite(fd, memoryview(images[:k]).cast("B"), s * row)
        return time.perf_counter() - t
    finally:
        os.close(fd)


def main(argv=None) -> int:
    global _POOL
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16384, help="images per arm")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rate", type=float, default=15000.0, help="the stand-in generator's images/s")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the sets are written (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args(argv)
    _POOL = np.random.default_rng(0).integers(0, 256, (1024, a.size, a.size, 3), dtype=np.uint8)
    g = PacedGenerator(image_size=a.size, rate=a.rate)
    g.class_names, g.train_counts, g.run_dir = ["a", "b"], {"a": 1, "b": 1}, None
    labels, seeds = np.zeros(a.n, np.int64), np.arange(a.n)
    real_open = synthetic._open_unbuffered
    times: dict[str, list[float]] = {"alone": [], "into set, unbuffered": [], "into set, page cache": [],
                                     "page cache alone": []}
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        tmp = Path(d)
        g.generate(512, out=tmp / "warm.h5", seed=1, progress=False, force=True)  # HDF5, threads, allocator
        for rep in range(a.reps):
            for arm in times:
                for f in tmp.glob("arm*"):
                    f.unlink()
                if arm == "page cache alone":
                    times[arm].append(storage_seconds(tmp / "arm.bin", a.n, _POOL[:64]))
                    continue
                t = time.perf_counter()
                if arm == "alone":
                    for s in range(0, a.n, 64):
                        g.sample(labels[s:s + 64], seeds[s:s + 64])
                else:
                    synthetic._open_unbuffered = real_open if arm.endswith("unbuffered") else (lambda *x: None)
                    try:
                        g.generate(a.n, out=tmp / "arm.h5", seed=0, progress=False, force=True)
                    finally:
                        synthetic._open_unbuffered = real_open
                times[arm].append(time.perf_counter() - t)
            print(f"rep {rep + 1}: " + ", ".join(f"{k} {a.n / v[-1]:,.0f} img/s" for k, v in times.items()), flush=True)
    alone = statistics.median(times["alone"])
    rows = {k: {"images_per_s": a.n / statistics.median(v), "seconds": v,
                "overhead_vs_alone": statistics.median(v) / alone - 1.0} for k, v in times.items()}
    print(f"\n{a.n} images at {a.size} px, stand-in generator at {a.rate:,.0f} img/s, median of {a.reps}:")
    print(f"{'arm':<22} {'img/s':>9} {'vs alone':>9}")
    for k, r in rows.items():
        vs = "" if k in ("alone", "page cache alone") else f"{100 * r['overhead_vs_alone']:+.1f} %"
        print(f"{k:<22} {r['images_per_s']:>9,.0f} {vs:>9}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"machine": {"cpu": cpu_model(), "python": platform.python_version(),
                                                       "torch": torch.__version__},
                                           "n": a.n, "size": a.size, "rate": a.rate, "reps": a.reps,
                                           "arms": rows}, indent=1))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
