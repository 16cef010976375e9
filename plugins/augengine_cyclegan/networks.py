"""CycleGAN networks (Zhu et al. 2017, appendix 7.2): ResNet generator and 70×70 PatchGAN.

Architecture as in the paper and its reference implementation: instance normalisation
without affine parameters or running statistics, reflection padding, convolution biases
(because instance norm has no shift), weights drawn from N(0, 0.02).

Activations are not in place (the reference's are): instance norm returns a view, and an
in-place ReLU on a view makes autograd copy the slices back in the backward pass — the same
numbers at more copies.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResnetGenerator", "PatchDiscriminator", "GroupedPair", "ReflectionPad2d", "init_normal", "count_parameters"]


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that keeps its input's dtype under autocast.

    CPU autocast runs reflection padding in fp32: every pad of a bf16 activation would cost a
    cast up and, at the next convolution, a cast back (forward and backward). Padding only copies
    values, so doing it in the activation's dtype gives the same numbers without the casts.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = _reflect_by_copies if x.is_cuda and torch.are_deterministic_algorithms_enabled() else _reflect
        if x.device.type != "meta" and torch.is_autocast_enabled(x.device.type):  # meta: FLOP counting
            with torch.autocast(x.device.type, enabled=False):
                return pad(x, self.padding)
        return pad(x, self.padding)


def _reflect(x: torch.Tensor, padding) -> torch.Tensor:
    return F.pad(x, padding, mode="reflect")


def _reflect_by_copies(x: torch.Tensor, padding) -> torch.Tensor:
    """Reflection padding from slices, flips and a concatenation: the same values as
    ``F.pad(mode="reflect")``, with a deterministic backward (CUDA's reflection-pad backward
    accumulates with atomics and has no deterministic kernel)."""
    left, right, top, bottom = padding
    parts = [x]
    if left:
        parts.insert(0, x[..., 1:left + 1].flip(-1))
    if right:
        parts.append(x[..., -right - 1:-1].flip(-1))
    x = torch.cat(parts, dim=-1) if len(parts) > 1 else x
    parts = [x]
    if top:
        parts.insert(0, x[..., 1:top + 1, :].flip(-2))
    if bottom:
        parts.append(x[..., -bottom - 1:-1, :].flip(-2))
    return torch.cat(parts, dim=-2) if len(parts) > 1 else x


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm without affine parameters or running statistics that keeps a channels-last
    input channels-last: ``F.instance_norm`` copies such an input to the contiguous format (and
    back in the backward pass); a group norm with one group per channel is the same function
    and runs on the channels-last layout. Contiguous inputs take ``F.instance_norm``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            if torch.is_autocast_enabled(x.device.type):
                with torch.autocast(x.device.type, enabled=False):
                    return F.group_norm(x, x.shape[1], eps=self.eps)
            return F.group_norm(x, x.shape[1], eps=self.eps)
        return super().forward(x)


def _norm(channels: int) -> nn.Module:
    return InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + (pad-conv3-IN-ReLU-pad-conv3-IN)(x)`` with reflection padding.

    Shape:
        - x: :math:`(N, C, H, W)`; output: same.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels), nn.ReLU(),
            ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels),
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
        layers: list[nn.Module] = [ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7, bias=True), _norm(ngf), nn.ReLU()]
        width = ngf
        for _ in range(2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=True), _norm(width * 2), nn.ReLU()]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(n_blocks)]
        for _ in range(2):  # two fractionally-strided upsamplings
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                       _norm(width // 2), nn.ReLU()]
            width //= 2
        layers += [ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
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
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=True), _norm(out), nn.LeakyReLU(0.2)]
            width = out
        layers += [nn.Conv2d(width, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GroupedPair(nn.Module):
    """Two networks of one architecture run as one: every convolution gets ``groups=2`` over the
    two networks' channels, concatenated (instance norm is per channel, padding and activations
    are elementwise, so each half computes exactly its own network). One pass instead of two:
    half the operator launches and weight casts at batch 1.

    The pair owns the parameters (give them to the optimizer); the parameters of ``a`` and ``b``
    are replaced by views into the pair's, so ``a``/``b`` keep working on their own (inference,
    ``state_dict``, ``load_state_dict``) and always hold the trained weights. Apply a memory
    format to the pair *before* building it from ``a`` and ``b``, or to ``a`` and ``b`` before.

    Args:
        a, b: two networks of the same architecture (e.g. the generators G and F).

    Shape:
        - x: :math:`(N, 2C, H, W)` = ``torch.cat([x_a, x_b], 1)``.
        - output: :math:`(N, 2C', H', W')` = ``torch.cat([a(x_a), b(x_b)], 1)``;
          :meth:`pair` splits it.
    """

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        if type(a) is not type(b):
            raise TypeError(f"GroupedPair: the two networks differ ({type(a).__name__} vs {type(b).__name__})")
        self.net = copy.deepcopy(a)
        mods_a, mods_b = dict(a.named_modules()), dict(b.named_modules())
        for name, m in list(self.net.named_modules()):
            twin = _grouped_twin(m)
            if twin is None:
                continue
            ma, mb = mods_a[name], mods_b[name]
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                with torch.no_grad():
                    w = torch.cat([ma.weight, mb.weight], 0)
                    twin.weight = nn.Parameter(w.contiguous(memory_format=_format_of(ma.weight)))
                    if ma.bias is not None:
                        twin.bias = nn.Parameter(torch.cat([ma.bias, mb.bias], 0))
                twin.to(ma.weight.device)
            _set_module(self.net, name, twin)
        # a and b now read and write the pair's storage
        for name, m in self.net.named_modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                for half, net in ((0, mods_a), (1, mods_b)):
                    sub = net[name]
                    n = sub.weight.shape[0]
                    sub.weight = nn.Parameter(m.weight.data[half * n:(half + 1) * n], requires_grad=False)
                    if sub.bias is not None:
                        k = sub.bias.shape[0]
                        sub.bias = nn.Parameter(m.bias.data[half * k:(half + 1) * k], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def pair(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split a pair output into the two networks' outputs."""
        return out.chunk(2, dim=1)


def _format_of(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


def _grouped_twin(m: nn.Module) -> nn.Module | None:
    """The groups=2 version of a layer with per-network state, or None for layers without it."""
    if isinstance(m, nn.ConvTranspose2d):
        return nn.ConvTranspose2d(2 * m.in_channels, 2 * m.out_channels, m.kernel_size, m.stride, m.padding,
                                  m.output_padding, 2 * m.groups, m.bias is not None, m.dilation)
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(2 * m.in_channels, 2 * m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                         2 * m.groups, m.bias is not None, m.padding_mode)
    if isinstance(m, nn.InstanceNorm2d):
        if m.affine or m.track_running_stats:
            raise TypeError("GroupedPair: instance norm with affine parameters or running statistics is not supported")
        return type(m)(2 * m.num_features, eps=m.eps, affine=False, track_running_stats=False)
    return None


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


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
