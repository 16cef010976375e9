"""Gradient scaling for fp16 autocast, one helper for every training loop.

fp16 has 5 exponent bits: gradients below ~6e-8 flush to zero, so training under fp16 autocast
without loss scaling silently stops learning in the layers whose gradients are small. bf16
(8 exponent bits, fp32's range) and fp32 need no scaling. ``precision="auto"`` picks fp16 on
CUDA GPUs without bf16 (V100, T4), so every plugin that trains under autocast steps its
optimisers through a :class:`LossScaler`: a ``torch.amp.GradScaler`` that is enabled exactly
when the autocast dtype is fp16 — and a plain ``backward()``/``step()`` otherwise, so bf16 and
fp32 runs are bit-identical to a loop without it.

Usage in a training step::

    scaler = LossScaler(device, amp_dtype)
    scaler.backward(loss_d); scaler.step(opt_d)
    scaler.backward(loss_g); scaler.step(opt_g)
    scaler.update()                      # once per iteration, after every step
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["LossScaler", "needs_loss_scaling"]


def needs_loss_scaling(dtype: torch.dtype | None) -> bool:
    """True for fp16 autocast (narrow exponent range), False for bf16, fp32 (None)."""
    return dtype == torch.float16


class LossScaler:
    """``torch.amp.GradScaler`` when ``dtype`` is fp16, a transparent pass-through otherwise.

    Args:
        device: the device the model trains on (the scaler's device type).
        dtype: the autocast dtype (``None`` = fp32).

    An optimiser step whose gradients overflowed (inf/NaN after unscaling) is skipped and the
    scale lowered, as GradScaler does; :meth:`state_dict` goes into checkpoints so that a resumed
    run continues with the same scale.
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype | None):
        self.device = torch.device(device)
        self.dtype = dtype
        self.enabled = needs_loss_scaling(dtype)
        self._scaler = torch.amp.GradScaler(self.device.type, enabled=self.enabled)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` on the scaled loss (fp16) or on the loss itself."""
        if self.enabled:
            self._scaler.scale(loss).backward()
        else:
            loss.backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale the gradients in place (before clipping them); a no-op unless fp16."""
        if self.enabled:
            self._scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Step ``optimizer``; with fp16, unscale first and skip the step when gradients overflowed."""
        if self.enabled:
            self._scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Adjust the scale once per iteration (after every :meth:`step` of the iteration)."""
        if self.enabled:
            self._scaler.update()

    @property
    def scale(self) -> float:
        """The current loss scale (1.0 when scaling is off)."""
        return float(self._scaler.get_scale()) if self.enabled else 1.0

    def state_dict(self) -> dict[str, Any] | None:
        """Plain numbers (``weights_only``-loadable), or None when scaling is off."""
        return dict(self._scaler.state_dict()) if self.enabled else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.enabled and state:
            self._scaler.load_state_dict(state)
