"""Device choice, seeding and CPU threading — the same for every command."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import random
import threading

import numpy as np
import torch

from augengine.errors import ConfigError

__all__ = ["select_device", "seed_everything", "autocast_dtype", "autocast_context", "resolve_channels_last",
           "deterministic_algorithms", "benchmarked_convolutions", "retained_heap"]


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


# mallopt(3) parameters (<malloc.h>)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_heap_lock = threading.Lock()
_heap_depth = 0
_heap_retained = False


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (which has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it (not musl, macOS, Windows)
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError, TypeError):
        return None


_USER_MALLOC_VARS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def _heap_left_alone() -> bool:
    """True when the heap setting must not be touched: ``$AUGENGINE_CPU_HEAP=system``, or the
    user set glibc's malloc through its own environment variables."""
    setting = os.environ.get("AUGENGINE_CPU_HEAP", "retain").strip().lower()
    if setting not in ("retain", "system"):
        raise ConfigError(f"$AUGENGINE_CPU_HEAP must be 'retain' (the default) or 'system', got {setting!r}")
    return (setting == "system" or any(var in os.environ for var in _USER_MALLOC_VARS)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))


@contextlib.contextmanager
def retained_heap(enabled: bool = True):
    """Keep the memory the process frees in its heap for its next allocations (glibc), from this
    block on; at the end of the block, hand the free pages back to the kernel.

    glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
    and hands it back to the kernel when freed, so a training step that allocates the same large
    activations every step touches new pages every step: each page costs a fault and the kernel
    zeroes it, and in a VM the host may have to hand it over again. Measured on a 2-core Xeon VM
    (torch 2.14.1, bf16): an ACGAN step at 128 px, batch 64, faulted 72,000–107,000 pages and
    took 1,452–1,508 ms; with the heap retained 2,700–11,000 pages and 1,404–1,414 ms; a CycleGAN
    step at 256 px 4–8 % faster, at 128 px unchanged.

    The first block sets ``M_MMAP_MAX`` to 0 (every allocation from the heap, freed memory reused)
    and ``M_TRIM_THRESHOLD`` to 2 GiB (free memory at the top of the heap is kept) for the rest of
    the process: glibc has no way back to its dynamic thresholds once they are set, and fixed
    defaults (128 KiB) would mmap — and fault anew — every allocation above 128 KiB (that halved a
    bf16 matmul's speed here). At the end of every outermost block ``malloc_trim`` returns the
    free pages to the kernel, so that the process holds what it still uses, as before. The cost
    is peak memory: freed blocks of one size do not always serve the next sizes, so the heap
    grows past what is live at once — the ACGAN step above peaked at 2,482–2,663 MB instead of
    2,383–2,464 MB, and the ACGAN benchmark's process (an autotune trial, then ten variants one
    after another) at 5.2 GB instead of 4.2 GB at 128 px.

    The engine runs every fit and every ``Generator.generate`` under it. Nothing happens with
    another C library, when ``$AUGENGINE_CPU_HEAP`` is ``system``, or when the user set glibc's
    malloc through ``MALLOC_*_`` or ``GLIBC_TUNABLES``.
    """
    global _heap_depth, _heap_retained
    libc = _glibc() if enabled and not _heap_left_alone() else None
    if libc is None:
        yield
        return
    with _heap_lock:
        _heap_depth += 1
        if not _heap_retained:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
            _heap_retained = True
    try:
        yield
    finally:
        with _heap_lock:
            _heap_depth -= 1
            if _heap_depth == 0:
                libc.malloc_trim(0)


def release_free_memory() -> None:
    """Collect Python's garbage and hand the heap's free pages back to the kernel (``malloc_trim``,
    glibc only): after work whose objects are all gone (an autotune trial's candidates)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
