"""How much compute a plugin's phase is: what plugins report so that plans can be estimated.

A plugin class answers :meth:`augengine.plugin.Plugin.work` with a list of :class:`Work`
items — "``count`` times this step" — and :class:`ClassifierPass` items — "the classifier
runs over ``n_images``" (what filters and evaluators mostly do; the bench asks the classifier
what that costs). The engine turns the items into seconds: FLOPs of one step (given, or
counted once with ``torch.utils.flop_counter`` from ``make`` on the ``meta`` device and cached),
divided by the throughput measured on the machine at hand (:mod:`augengine.bench.estimate`).

A ``make`` function is ``make(batch, image_size, device) → step``: it builds the networks and
random inputs the way the plugin's own code does (same architecture, precision, memory format)
on ``device`` and returns a callable that runs one step. It is called on the ``meta`` device
(no memory, no compute: only the FLOPs are counted — use :func:`work_autocast` instead of
``torch.autocast`` there) and on the real device for a few timed steps, possibly at a smaller
batch or image size (``min_size``), from which the throughput in FLOP/s is taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["Work", "ClassifierPass", "work_autocast", "PHASES"]

#: phases a plugin kind is asked about, with the context keywords each gets
PHASES = {
    "generator": {"fit": "n_images (training images), class_counts", "generate": "n_images (images to write)"},
    "classifier": {"fit": "n_images (real + synthetic training images), class_counts, n_val",
                   "predict": "n_images (images predicted or embedded)"},
    "filter": {"score": "n_images (candidates scored)"},
    "evaluator": {"evaluate": "n_images (test images), n_classifiers (arm + baseline fits), n_synthetic, n_train"},
}


@dataclasses.dataclass(frozen=True)
class Work:
    """``count`` repetitions of one step (a training iteration or a batched forward pass).

    Attributes:
        what: what one step is, for people (``"resnet50 224 px train step, batch 64"``).
        count: how many steps the phase runs (may be fractional: an average).
        key: identity of the step for the caches (plugin, network, mode, precision, …); together
            with ``batch`` and ``image_size`` it names one FLOP count and one measured throughput.
        batch: images per step.
        image_size: side of the images one step sees.
        flops: FLOPs of one step when the plugin knows them (else counted from ``make``).
        make: ``make(batch, image_size, device) → step`` (see the module docstring); None when the
            step cannot be run outside the plugin (then ``flops`` and ``seconds`` must say it).
        min_size: smallest image size the step may be timed at to bound the probe (fully
            convolutional networks, whose FLOP rate barely depends on the size); None = only
            ``image_size``.
        seconds: seconds of one step when known without measuring (a fixed cost, e.g. a sleep).
    """

    what: str
    count: float
    key: Mapping[str, Any]
    batch: int = 1
    image_size: int = 0
    flops: float | None = None
    make: Callable[[int, int, torch.device], Callable[[], Any]] | None = dataclasses.field(
        default=None, compare=False, repr=False)
    min_size: int | None = None
    seconds: float | None = None

    def cache_key(self) -> dict[str, Any]:
        """The step's identity with its batch and image size (what FLOPs and throughputs are cached by)."""
        return {"step": dict(self.key), "batch": int(self.batch), "image_size": int(self.image_size)}


@dataclasses.dataclass(frozen=True)
class ClassifierPass:
    """The classifier of the bench runs over ``n_images`` images (predict or features).

    Attributes:
        n_images: images the classifier sees (one forward pass each).
        what: what the pass is for, for people.
    """

    n_images: int
    what: str = "classifier pass"


def work_autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` for a ``make`` step: a null context in fp32 or on the ``meta`` device."""
    device = torch.device(device)
    if dtype is None or device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
