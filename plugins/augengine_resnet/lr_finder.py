"""Learning-rate range test (Smith 2017; the fastai ``lr_find``), compact.

The learning rate grows exponentially from ``start_lr`` to ``end_lr`` over ``num_iter`` steps,
one mini-batch each; the loss is smoothed with an exponential moving average (bias-corrected),
the sweep stops once the smoothed loss exceeds ``diverge_factor`` × its minimum, and the
suggestion is the learning rate where the smoothed loss falls fastest (steepest negative slope
against log LR), capped at a tenth of the rate at the loss minimum (fastai's older "min/10"
rule): on HAM10000 from random init the steepest point alone gave 6.6e-2 for AdamW, and a
ResNet-18 did not learn at it. The model and optimizer are restored afterwards.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["LRFinderResult", "lr_range_test", "plot_lr_curve"]


@dataclass
class LRFinderResult:
    """Outcome of :func:`lr_range_test`.

    Attributes:
        lrs: learning rates tried (one per step).
        losses: smoothed losses at those rates.
        raw_losses: un-smoothed losses.
        suggestion: the rate at the steepest descent of the smoothed loss, at most a tenth of
            the rate at its minimum.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float = float("nan")

    def to_json(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, "raw_losses": self.raw_losses, "suggestion": self.suggestion}


def _steepest(lrs: np.ndarray, losses: np.ndarray, skip_start: int, skip_end: int) -> float:
    lo, hi = skip_start, len(lrs) - skip_end
    if hi - lo < 3:
        lo, hi = 0, len(lrs)
    if hi - lo < 2:
        return float(lrs[0])
    grad = np.gradient(losses[lo:hi], np.log(lrs[lo:hi]))
    return float(lrs[lo + int(np.argmin(grad))])


def lr_range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step_loss: Callable[[object], torch.Tensor],
    batches: Iterator,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    skip_start: int = 5,
    skip_end: int = 2,
) -> LRFinderResult:
    """Run the learning-rate range test.

    Args:
        model: the model (its state is restored at the end).
        optimizer: the optimizer to sweep (its state and learning rates are restored).
        step_loss: ``batch -> loss`` (forward pass and loss; backward/step are done here).
        batches: an iterator of batches (cycled if it runs out is the caller's job).
        start_lr: first learning rate.
        end_lr: last learning rate.
        num_iter: number of steps of the exponential sweep.
        beta: smoothing factor of the loss EMA.
        diverge_factor: stop when the smoothed loss exceeds this × its minimum.
        skip_start: points ignored at the start when choosing the suggestion.
        skip_end: points ignored at the end when choosing the suggestion.

    Returns:
        :class:`LRFinderResult`.
    """
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    gamma = (end_lr / start_lr) ** (1.0 / max(1, num_iter - 1))
    lrs, smoothed, raw = [], [], []
    avg, best = 0.0, math.inf
    was_training = model.training
    model.train()
    try:
        for i in range(num_iter):
            try:
                batch = next(batches)
            except StopIteration:
                break
            lr = start_lr * gamma**i
            for g in optimizer.param_groups:
                g["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            loss.backward()
            optimizer.step()
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            smoothed.append(s)
            raw.append(value)
            best = min(best, s)
            if i > skip_start and s > diverge_factor * best:
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)
    if not lrs:
        return LRFinderResult([], [], [], float("nan"))
    sug = _steepest(np.asarray(lrs), np.asarray(smoothed), skip_start, skip_end)
    sug = min(sug, float(lrs[int(np.argmin(smoothed))]) / 10.0)
    return LRFinderResult(lrs, smoothed, raw, sug)


def plot_lr_curve(result: LRFinderResult, title: str = "learning-rate range test") -> bytes:
    """PNG bytes of the smoothed loss against the learning rate (log axis), suggestion marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.lrs, result.raw_losses, color="0.8", lw=0.8, label="loss")
    ax.plot(result.lrs, result.losses, color="C0", label="smoothed")
    if math.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="C3", ls="--", label=f"steepest {result.suggestion:.2e}")
    if result.losses:  # keep the diverged tail from squashing the interesting part
        lo, first = min(result.losses), result.losses[0]
        ax.set_ylim(lo - 0.05 * abs(lo), max(first, lo) + 0.5 * abs(first - lo) + 0.1 * abs(first))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
