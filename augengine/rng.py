"""The host's global random state: plugins may use it inside a fit, the caller never sees it change.

Plugins draw their randomness from explicit generators where they can (``torch.Generator``,
``numpy.random.default_rng``); what they cannot route through one — dropout, weight
initialisation in ``torch.nn`` — uses torch's global generator. :func:`isolated_global_rng`
gives such code a global state seeded from the run's seed and puts the caller's Python, NumPy
and torch (CPU and CUDA) states back afterwards, the way ``torch.random.fork_rng`` does for
torch alone. The engine wraps every ``Generator.fit``, ``Classifier.fit`` and
``Generator.generate`` in it, so an embedding project's own random streams are untouched.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["isolated_global_rng", "global_rng_state"]


#: the seed of a CUDA generator nobody seeded (c10's ``default_rng_seed_val``)
_CUDA_DEFAULT_SEED = 67280421310721


def _cuda_devices_in_use() -> list[int]:
    """Visible CUDA devices when this process has already initialised CUDA (else none: the
    block must not initialise CUDA just to save a state nobody has used)."""
    try:
        return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    except Exception:  # noqa: BLE001 - a broken driver means no CUDA state to keep
        return []


def _lazy_cuda_seeds():
    """torch queues ``manual_seed`` calls for CUDA until CUDA is initialised (``torch.manual_seed``
    queues one even on machines without a GPU); a block's queued seed must not reach the caller."""
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    queued = getattr(torch.cuda, "_queued_calls", None)
    if tracker is None or queued is None:
        return None
    return dict(vars(tracker)), list(queued)


def _restore_lazy_cuda_seeds(saved) -> None:
    tracker, queued = torch.cuda._lazy_seed_tracker, torch.cuda._queued_calls
    vars(tracker).clear()
    vars(tracker).update(saved[0])
    queued[:] = saved[1]


def global_rng_state() -> tuple:
    """A comparable snapshot of the global Python, NumPy and torch CPU generators (for tests)."""
    np_state = np.random.get_state()
    return (random.getstate(), (np_state[0], np_state[1].tobytes(), *np_state[2:]),
            torch.get_rng_state().numpy().tobytes())


@contextlib.contextmanager
def isolated_global_rng(seed: int | None = None) -> Iterator[None]:
    """Run a block with its own global random state; restore the caller's afterwards.

    Args:
        seed: when given, Python's ``random``, NumPy's legacy global generator and torch's
            global generators (CPU, and CUDA devices) are seeded with it inside the block, so
            the block's result does not depend on what the caller did before.

    The caller's states are restored on every exit, exceptions and ``KeyboardInterrupt``
    included; nested use is fine. CUDA states are saved and restored when the caller had
    initialised CUDA; when the block is the first to use CUDA, its generators are left in the
    state of a fresh process (unseeded default), as the caller would have found them.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = _cuda_devices_in_use()
    lazy = _lazy_cuda_seeds() if not devices else None
    with torch.random.fork_rng(devices=devices, enabled=True):
        try:
            if seed is not None:
                random.seed(seed)
                np.random.seed(int(seed) % (2**32))
                torch.manual_seed(int(seed))  # CPU, and CUDA (now or when the block initialises it)
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            if not devices and torch.cuda.is_available() and torch.cuda.is_initialized():
                for d in range(torch.cuda.device_count()):
                    torch.cuda.default_generators[d].manual_seed(_CUDA_DEFAULT_SEED)
            elif lazy is not None:
                _restore_lazy_cuda_seeds(lazy)
