"""Device choice, seeding and CPU threading — the same for every command."""

from __future__ import annotations

import contextlib
import functools
import os
import random

import numpy as np
import torch

from augengine.errors import ConfigError

__all__ = ["select_device", "seed_everything", "autocast_dtype", "autocast_context", "resolve_channels_last",
           "deterministic_algorithms", "benchmarked_convolutions"]


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU. ``"cuda"`` without a GPU is an error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device='cuda': no CUDA device is available here (expected 'cpu' or 'auto')")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"device={name!r}: expected 'auto', 'cpu' or 'cuda'")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 (AVX-512 BF16 or AMX). Read once: the plugins ask on
    every batch (through their autocast and channels-last choices)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype for ``precision`` ("auto", "bf16", "fp16", "fp32") on ``device``; None = no autocast."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``, or a null context when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def resolve_channels_last(setting: bool | str, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """The channels-last choice of every plugin: ``"auto"`` = on with autocast or on CUDA (measured
    slower in fp32 on CPUs without native bf16: ResNet-18 0.87×, ACGAN 0.84×, CycleGAN 0.98×);
    ``True``/``"on"`` and ``False``/``"off"`` force it."""
    if setting == "auto":
        return device.type == "cuda" or amp_dtype is not None
    if isinstance(setting, str):
        return setting == "on"
    return bool(setting)


def cpu_model() -> str:
    """The CPU model as ``lscpu`` names it (benchmarks print it beside every number)."""
    import platform
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool = True):
    """Bit-reproducible kernels for the duration of the block (a fit with ``deterministic=true``).

    On a CPU the engine's fits are reproducible without it. On CUDA it turns on
    ``torch.use_deterministic_algorithms`` (warn-only: an op with no deterministic kernel warns,
    naming itself, instead of failing the run), cuDNN's deterministic algorithms without its
    benchmark search, and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless
    set). Slower on a GPU; everything is restored afterwards.
    """
    if not enabled:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    had_env = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if not had_env:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@contextlib.contextmanager
def benchmarked_convolutions(enabled: bool = True):
    """cuDNN's algorithm search for the duration of the block (``torch.backends.cudnn.benchmark``).

    The first time a convolution of a new shape runs, cuDNN times its algorithms for it and keeps
    the fastest; without the search it takes its heuristics' first choice, which need not be the
    fastest for batch-1 GAN shapes (7×7 and strided convolutions, grouped pairs, channels-last
    bf16; the gain on our GPUs is not measured yet). A fit repeats the same shapes every step, so
    the search is paid once.
    The engine runs every fit and every ``Generator.generate`` under it, except where the
    plugin's config asks for ``deterministic`` kernels (the search may pick another algorithm
    in another run). The reference CycleGAN trains with it on. No effect on a CPU; the previous
    setting is restored afterwards.
    """
    saved = torch.backends.cudnn.benchmark
    if enabled:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved
