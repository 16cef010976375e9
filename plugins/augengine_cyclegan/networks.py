"""CycleGAN networks (Zhu et al. 2017, appendix 7.2): ResNet generator and 70×70 PatchGAN.

Architecture as in the paper and its reference implementation: instance normalisation
without affine parameters or running statistics, reflection padding, convolution biases
(because instance norm has no shift), weights drawn from N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResnetGenerator", "PatchDiscriminator", "init_normal", "count_parameters"]


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + (pad-conv3-IN-ReLU-pad-conv3-IN)(x)`` with reflection padding.

    Shape:
        - x: :math:`(N, C, H, W)`; output: same.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, R256×n_blocks, u128, u64, c7s1-3 + tanh.

    Args:
        n_blocks: residual blocks (9 for 256 px, 6 below, as in the paper).
        ngf: filters of the first layer (64 in the paper).
        channels: image channels in and out.

    Shape:
        - x: :math:`(N, 3, H, W)` in [-1, 1], H and W divisible by 4.
        - output: :math:`(N, 3, H, W)` in [-1, 1].
    """

    def __init__(self, n_blocks: int = 9, ngf: int = 64, channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7, bias=True), _norm(ngf), nn.ReLU(True)]
        width = ngf
        for _ in range(2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=True), _norm(width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(n_blocks)]
        for _ in range(2):  # two fractionally-strided upsamplings
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                       _norm(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """70×70 PatchGAN: C64-C128-C256-C512 (4×4 convs, LeakyReLU 0.2, no norm on C64), then a
    1-channel 4×4 convolution giving one real/fake score per overlapping patch.

    Args:
        ndf: filters of the first layer (64 in the paper).
        n_layers: stride-2 layers (3 gives the 70×70 receptive field).

    Shape:
        - x: :math:`(N, 3, H, W)` with H, W ≥ 32 (for n_layers = 3).
        - output: :math:`(N, 1, H', W')` raw scores (LSGAN: no sigmoid).
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=True), _norm(out), nn.LeakyReLU(0.2, True)]
            width = out
        layers += [nn.Conv2d(width, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def init_normal(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Convolution weights ~ N(0, gain), biases 0 (the paper's initialisation)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
