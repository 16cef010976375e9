"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for GANs on small data sets.

The same random transform family is applied to real and generated images before the
discriminator, in both players' steps; gradients flow through it to the generator. All
randomness comes from the ``generator`` argument so training stays reproducible and
resumable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["diff_augment", "POLICIES"]

POLICIES = ("color", "translation", "cutout")


def _rand(n: int, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g).to(device)


def color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×0..2) and contrast (×0.5..1.5), per image."""
    n = x.shape[0]
    x = x + (_rand(n, g, x.device) - 0.5).to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, g, x.device) * 2).to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (_rand(n, g, x.device) + 0.5).to(x.dtype) + mean
    return x


def translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Random integer shift up to ``ratio`` of the side, zero padding (differentiable gather)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g).to(x.device)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g).to(x.device)
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gi = torch.clamp(gi.unsqueeze(0) + tx + 1, 0, h + 1)
    gj = torch.clamp(gj.unsqueeze(0) + ty + 1, 0, w + 1)
    xp = F.pad(x, [1, 1, 1, 1])
    b = torch.arange(n, device=x.device).view(n, 1, 1)
    return xp.permute(0, 2, 3, 1)[b, gi, gj].permute(0, 3, 1, 2).contiguous(memory_format=_fmt(x))


def cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ``ratio`` × side per image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g).to(x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g).to(x.device)
    gi = torch.arange(h, device=x.device).view(1, h, 1)
    gj = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = ox - ch // 2, oy - cw // 2
    keep = ~((gi >= top) & (gi < top + ch) & (gj >= left) & (gj < left + cw))
    return x * keep.unsqueeze(1).to(x.dtype)


def _fmt(x: torch.Tensor):
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


def diff_augment(x: torch.Tensor, policy: list[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the transforms named in ``policy`` (subset of :data:`POLICIES`, in that order).

    Shape:
        - x: :math:`(N, 3, H, W)`.
        - output: same.
    """
    for name in POLICIES:
        if name in policy:
            x = {"color": color, "translation": translation, "cutout": cutout}[name](x, generator)
    return x
