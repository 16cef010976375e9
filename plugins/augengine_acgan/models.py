"""The ACGAN networks of Odena, Olah & Shlens (2017), appendix table for 128×128 ImageNet.

Generator::

    [z ; class code] ─ Linear ─► 768×8×8 (ReLU)
      ─ ConvT 5×5/2 ─► 384×16×16 (BN, ReLU)
      ─ ConvT 5×5/2 ─► 256×32×32 (BN, ReLU)
      ─ ConvT 5×5/2 ─► 192×64×64 (BN, ReLU)
      ─ ConvT 5×5/2 ─►   3×128×128 (tanh)

The paper's table lists the linear layer's 768 *feature maps*; the spatial size of its
reshaped output follows from four stride-2 stages reaching 128 px: 8×8 (the DCGAN
"project and reshape"). Smaller images drop upsampling stages from the end of the hidden
widths and keep the 8×8 start: 64 px = 768→384→256→3, 32 px = 768→384→3.

Discriminator: 3×3 convolutions 16→32→64→128→256→512 with strides 2,1,2,1,2,1, LeakyReLU
0.2 and dropout 0.5 after each, batch norm on all but the first; the flattened
512×(S/8)×(S/8) features feed a real/fake logit and K class logits (the paper's single
linear layer with 1+K outputs, written as two heads).

Weights are initialised from N(0, 0.02), biases at 0 (the paper's table).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AcganG", "AcganD", "Dropout", "g_stage_channels", "init_weights"]

G_START = 8  # spatial size of the reshaped linear output


def g_stage_channels(image_size: int, g_channels: list[int]) -> list[int]:
    """Channel widths of the generator for ``image_size``: [linear, hidden…, 3].

    Stage count is log2(image_size / 8); hidden widths beyond it are dropped from the end.
    """
    stages = int(round(math.log2(image_size / G_START)))
    if G_START * 2**stages != image_size or stages < 1:
        raise ValueError(f"image_size must be 8·2^k (16, 32, 64, 128, 256…), got {image_size}")
    if len(g_channels) < stages:
        raise ValueError(f"g_channels needs at least {stages} widths for {image_size} px, got {g_channels}")
    return list(g_channels[:stages]) + [3]


class AcganG(nn.Module):
    """ACGAN generator: noise + class → image in [-1, 1].

    Args:
        image_size: output side S (8·2^k).
        latent_dim: noise size.
        num_classes: K.
        g_channels: widths [linear, hidden…] (paper: 768, 384, 256, 192).
        class_embedding: "onehot" (paper: one-hot concatenated to z) or "embedding" (learned
            ``embedding_dim`` vector concatenated to z).
        embedding_dim: size of the learned class embedding.

    Shape:
        - z: :math:`(N, latent\\_dim)`, labels :math:`(N,)` int64.
        - output: :math:`(N, 3, S, S)` in [-1, 1].
    """

    def __init__(self, image_size: int, latent_dim: int, num_classes: int, g_channels: list[int],
                 class_embedding: str = "onehot", embedding_dim: int = 100):
        super().__init__()
        self.num_classes = num_classes
        self.class_embedding = class_embedding
        widths = g_stage_channels(image_size, g_channels)
        if class_embedding == "embedding":
            self.embed = nn.Embedding(num_classes, embedding_dim)
            cond = embedding_dim
        else:
            self.embed = None
            cond = num_classes
        self.c0 = widths[0]
        self.fc = nn.Linear(latent_dim + cond, widths[0] * G_START * G_START)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            # kernel 5, stride 2, padding 2, output_padding 1: exactly doubles H and W ("same")
            layers.append(nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1, bias=last))
            if last:
                layers.append(nn.Tanh())
            else:
                layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def condition(self, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(labels)
        return F.one_hot(labels, self.num_classes).float()

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.condition(labels).to(z.dtype)], dim=1)
        h = F.relu(self.fc(h)).view(z.shape[0], self.c0, G_START, G_START)
        return self.net(h)


class AcganD(nn.Module):
    """ACGAN discriminator with a real/fake head and an auxiliary class head.

    Args:
        image_size: input side S (multiple of 8).
        num_classes: K.
        d_channels: widths of the six 3×3 convolutions (paper: 16, 32, 64, 128, 256, 512).
        d_strides: strides (paper: 2, 1, 2, 1, 2, 1).
        dropout: dropout after every convolution (paper: 0.5).
        leaky_slope: LeakyReLU slope (paper: 0.2).
        spectral_norm: wrap every conv/linear in spectral normalisation (not in the paper).

    Shape:
        - x: :math:`(N, 3, S, S)`.
        - output: source logits :math:`(N,)`, class logits :math:`(N, K)`.
    """

    def __init__(self, image_size: int, num_classes: int, d_channels: list[int], d_strides: list[int],
                 dropout: float = 0.5, leaky_slope: float = 0.2, spectral_norm: bool = False):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        cin, size = 3, image_size
        for i, (cout, s) in enumerate(zip(d_channels, d_strides)):
            layers.append(sn(nn.Conv2d(cin, cout, 3, stride=s, padding=1)))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(leaky_slope, inplace=True))
            if dropout > 0:
                layers.append(Dropout(dropout))
            cin = cout
            size = (size + 2 - 3) // s + 1
        self.net = nn.Sequential(*layers)
        feat = cin * size * size
        self.source = sn(nn.Linear(feat, 1))
        self.classes = sn(nn.Linear(feat, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        if h.is_contiguous() or not h.is_contiguous(memory_format=torch.channels_last):
            h = h.flatten(1)
            return self.source(h).squeeze(1), self.classes(h)
        # channels_last features: flatten them in their storage order (N, H, W, C), a view, and
        # reorder the heads' weights to match (their parameters keep the (C, H, W) order of the
        # contiguous layout, so checkpoints do not depend on the memory format). Flattening in
        # (C, H, W) order would copy the largest activation of D on every call, and its
        # backward would meet a contiguous gradient, mixing formats (several times slower).
        n, c, hh, ww = h.shape
        h = h.permute(0, 2, 3, 1).reshape(n, -1)
        return self._head(self.source, h, c, hh, ww).squeeze(1), self._head(self.classes, h, c, hh, ww)

    @staticmethod
    def _head(linear: nn.Linear, h: torch.Tensor, c: int, hh: int, ww: int) -> torch.Tensor:
        w = linear.weight.view(-1, c, hh, ww).permute(0, 2, 3, 1).reshape(linear.weight.shape[0], -1)
        return F.linear(h, w, linear.bias)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks are built from random bits.

    On a CPU ``F.dropout`` draws one Bernoulli sample per element; at the paper's 0.5 dropout
    after every discriminator layer that was 40 % of a 128 px training step here. This draws
    64-bit random words from torch's generator (so ``torch.manual_seed`` still decides the
    masks). At p = 0.5 (the paper's) one random bit per element decides: it is shifted into
    the place of the second-highest bit of an integer of x's width and the others are
    cleared, which read as x's float type is exactly 2.0 (= 1 / (1 - p)) or 0 — the scale
    tensor in two integer operations (8 bits used of each random integer of x's width: for
    bf16, 2 random bits drawn per element instead of the byte path's 8).
    Otherwise element i is kept when its random byte is below ``k = round((1 - p)·256)``:
    the keep probability is ``k / 256`` (within 1/512 of ``1 - p``) and kept values are
    scaled by ``256 / k``, so the expected output is the input, as with ``nn.Dropout``.
    CUDA uses ``F.dropout`` (a fused kernel).
    """

    BITS_PER_WORD = 8  # mask bits taken from each random integer (its low 8 bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        k = round((1 - self.p) * 256)
        if k == 0:
            return x * 0
        if k == 256:
            return x
        n = x.numel()
        if k == 128 and x.dtype.is_floating_point and x.element_size() in _INT_OF_SIZE:
            scale = self._half_scale(x)
        else:
            keep = _random_words(n, torch.int8) < (k - 128)
            scale = keep.to(x.dtype).mul_(256 / k)
        # x's memory format: a dense tensor is one flat run of storage, read here in that order
        return x * scale[:n].as_strided(x.size(), x.stride())

    @classmethod
    def _half_scale(cls, x: torch.Tensor) -> torch.Tensor:
        """A flat tensor of x's dtype with ≥ x.numel() elements, each 0 or 2 with probability 1/2."""
        itype, top = _INT_OF_SIZE[x.element_size()], x.element_size() * 8 - 2
        per = cls.BITS_PER_WORD
        words = _random_words((x.numel() + per - 1) // per, itype)  # random integers of x's width
        # 2.0 in an IEEE format: only the highest exponent bit (`top`) is set
        shifts = torch.arange(top, top - per, -1, dtype=itype).unsqueeze(1)  # bit j → bit `top`
        # row j holds bit j of every word: the long dimension innermost (vectorised; a (m, 8)
        # layout was 5× slower here)
        out = torch.bitwise_left_shift(words.unsqueeze(0), shifts)
        return out.bitwise_and_(1 << top).view(-1).view(x.dtype)


_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # integer dtype of a float's width


@torch.compiler.disable
def _random_words(count: int, dtype: torch.dtype) -> torch.Tensor:
    """``count`` uniformly random integers of ``dtype`` (every bit a fair coin), cut from 64-bit
    words of torch's default generator (so ``torch.manual_seed`` decides them).

    Eager under torch.compile (the draw breaks the graph either way), so that a compiled network
    draws the same masks as an eager one; traced, the dtype view of the graph's input was replayed
    with int64's element size and failed (every fp32 step, bf16 at some shapes; torch 2.14)."""
    width = torch.iinfo(dtype).bits
    words = torch.empty((count * width + 63) // 64, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    return words.view(dtype)[:count]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Paper init: conv/linear weights ~ N(0, std), biases 0; BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
