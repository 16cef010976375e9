"""The machine's reference rates that the benchmarks divide by (shared by acgan.py and cyclegan.py)."""

from __future__ import annotations

import time

import torch


def matmul_gflops(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 2048, reps: int = 8) -> float:
    """Best-of-``reps`` throughput of an n×n×n matmul in ``dtype`` on ``device`` (GFLOP/s)."""
    device = torch.device(device)
    a, b = torch.randn(n, n).to(device, dtype), torch.randn(n, n).to(device, dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9
