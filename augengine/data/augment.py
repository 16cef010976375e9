"""Training-time augmentation of image batches with kornia: flips, 90° rotations, light colour jitter.

Every random parameter is drawn from an explicit :class:`torch.Generator` (or a seed), so the same
seed gives the same augmented batch on any run. Works on both conventions of
:mod:`augengine.images`: uint8 N×H×W×3 (returns uint8) or float N×3×H×W in [-1, 1] (returns float,
for augmenting on the device inside a training step).

Example::

    from augengine.data import Augment, AugmentConfig
    aug = Augment(AugmentConfig(vflip=False, hue=0.0))
    g = torch.Generator().manual_seed(0)
    x = aug(batch_uint8, generator=g)
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.enhance import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation_with_gray_subtraction
from pydantic import BaseModel, ConfigDict, Field

from augengine.errors import ShapeError

__all__ = ["AugmentConfig", "Augment", "augment"]


class AugmentConfig(BaseModel):
    """Which augmentations to apply (embed in a plugin's config to make them configurable).

    Attributes:
        hflip: random horizontal flip (p = 0.5).
        vflip: random vertical flip (p = 0.5).
        rot90: random rotation by 0/90/180/270° (dermoscopy has no canonical orientation).
        brightness: additive brightness shift drawn from ±brightness (on a [0, 1] scale).
        contrast: contrast factor drawn from 1 ± contrast.
        saturation: saturation factor drawn from 1 ± saturation (blend with the grey image).
        hue: hue shift drawn from ±hue (fraction of a full turn, ≤ 0.5); off by default because
            kornia's HSV round trip costs ~5× the rest of the pipeline on a CPU.
        p_color: probability of applying the colour jitter to an image.
    """

    model_config = ConfigDict(extra="forbid")

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.1, ge=0, le=1)
    saturation: float = Field(0.1, ge=0, le=1)
    hue: float = Field(0.0, ge=0, le=0.5)
    p_color: float = Field(0.8, ge=0, le=1)


def _u(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


class Augment:
    """Callable batch augmentation (see module docstring).

    Args:
        config: an :class:`AugmentConfig`, a dict of its fields, or ``None`` for defaults.

    Shape:
        - input: :math:`(N, H, W, 3)` uint8 (numpy or torch) or :math:`(N, 3, H, W)` float in [-1, 1].
        - output: same shape, dtype and device as the input (numpy in → numpy out).
    """

    def __init__(self, config: AugmentConfig | dict | None = None, **kwargs):
        if config is None:
            config = AugmentConfig(**kwargs)
        elif isinstance(config, dict):
            config = AugmentConfig(**{**config, **kwargs})
        self.config = config

    def __call__(self, x, *, generator: torch.Generator | None = None, seed: int | None = None):
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        is_numpy = isinstance(x, np.ndarray)
        t = torch.from_numpy(x) if is_numpy else x
        if t.ndim == 4 and t.dtype == torch.uint8 and t.shape[-1] == 3:
            storage = True
            y = t.permute(0, 3, 1, 2).float().div(255.0)
        elif t.ndim == 4 and t.is_floating_point() and t.shape[1] == 3:
            storage = False
            y = (t.float() + 1.0) * 0.5
        else:
            raise ShapeError(f"augment: expected uint8 N×H×W×3 or float N×3×H×W in [-1, 1]; got shape "
                             f"{tuple(t.shape)} dtype {t.dtype}")
        y = self._apply(y, generator)
        if storage:
            out = y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            return out.numpy() if is_numpy else out
        return (y * 2.0 - 1.0).to(t.dtype)

    def _apply(self, y: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """Augment float N×3×H×W in [0, 1]; parameters drawn on the CPU from ``g``."""
        c = self.config
        n = y.shape[0]
        dev = y.device
        if n == 0:
            return y
        if c.hflip:
            m = (torch.rand(n, generator=g) < 0.5).to(dev)
            y = torch.where(m[:, None, None, None], y.flip(-1), y)
        if c.vflip:
            m = (torch.rand(n, generator=g) < 0.5).to(dev)
            y = torch.where(m[:, None, None, None], y.flip(-2), y)
        if c.rot90:
            if y.shape[-1] != y.shape[-2]:
                raise ShapeError(f"augment: rot90 needs square images; got {tuple(y.shape[-2:])}")
            k = torch.randint(0, 4, (n,), generator=g)
            y = y.clone()
            for r in (1, 2, 3):
                sel = (k == r).nonzero().flatten().to(dev)
                if len(sel):
                    y[sel] = torch.rot90(y[sel], r, dims=(-2, -1))
        if c.p_color > 0 and (c.brightness or c.contrast or c.saturation or c.hue):
            on = (torch.rand(n, generator=g) < c.p_color).float()
            b = _u(n, -c.brightness, c.brightness, g) * on
            ct = 1 + _u(n, -c.contrast, c.contrast, g) * on
            s = 1 + _u(n, -c.saturation, c.saturation, g) * on
            h = _u(n, -c.hue, c.hue, g) * on * (2 * torch.pi)  # kornia hue in radians [-pi, pi]
            if c.brightness:
                y = adjust_brightness(y, b.to(dev))
            if c.contrast:
                y = adjust_contrast(y, ct.to(dev))
            if c.saturation:
                y = adjust_saturation_with_gray_subtraction(y, s.to(dev))
            if c.hue:
                y = adjust_hue(y, h.to(dev))
            y = y.clamp(0, 1)
        return y


def augment(x, *, generator: torch.Generator | None = None, seed: int | None = None,
            config: AugmentConfig | dict | None = None, **kwargs):
    """Augment one batch (functional form of :class:`Augment`).

    Args:
        x: uint8 N×H×W×3 (numpy or torch) or float N×3×H×W in [-1, 1].
        generator: source of randomness (or give ``seed``); the same one gives the same result.
        config: :class:`AugmentConfig` or dict; keyword arguments override single fields.

    Shape:
        - x: :math:`(N, H, W, 3)` uint8 or :math:`(N, 3, H, W)` float.
        - output: same as ``x``.
    """
    return Augment(config, **kwargs)(x, generator=generator, seed=seed)
