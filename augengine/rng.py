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


def _cuda_devices() -> list[int]:
    try:
        return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    except Exception:  # noqa: BLE001 - a broken driver means no CUDA state to keep
        return []


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
    included. Nested use is fine. CUDA states are kept for every visible device (this
    initialises CUDA when it is available).
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = _cuda_devices()
    with torch.random.fork_rng(devices=devices, enabled=True):
        try:
            if seed is not None:
                random.seed(seed)
                np.random.seed(int(seed) % (2**32))
                torch.default_generator.manual_seed(int(seed))
                for d in devices:
                    torch.cuda.default_generators[d].manual_seed(int(seed))
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
