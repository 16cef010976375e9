"""The image conventions of augengine, and the checks that enforce them.

Two conventions, one per boundary:

* **Storage and plugin I/O** (HDF5 sets, the decoded cache, everything a plugin receives or
  returns through the public API): ``numpy.ndarray`` (or ``torch.Tensor``) of dtype
  ``uint8``, shape ``N×H×W×3`` (RGB, channels last), values 0–255.
* **Inside models**: ``torch.float32`` (or autocast dtype) of shape ``N×3×H×W`` with values in
  ``[-1, 1]`` (what GANs with a tanh output produce).

:func:`check_images` is called at every public entry point; :func:`to_model` and
:func:`from_model` convert between the two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from augengine.errors import ShapeError

__all__ = ["check_images", "to_model", "from_model", "resize_uint8", "tensor_view"]


def tensor_view(x: np.ndarray) -> torch.Tensor:
    """A zero-copy ``torch.Tensor`` over a (possibly read-only) uint8 array such as
    :meth:`ImageSet.images() <augengine.ImageSet.images>` returns. The tensor shares the
    array's memory: index it (which copies), never write into it.

    Shape:
        - x, output: :math:`(N, H, W, 3)` (any shape is passed through).
    """
    import warnings

    x = np.ascontiguousarray(x)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(x)


def _describe(x) -> str:
    return f"shape {tuple(x.shape)} dtype {x.dtype}"


def check_images(x: np.ndarray | torch.Tensor, *, where: str, size: int | None = None,
                 n: int | None = None) -> np.ndarray | torch.Tensor:
    """Check that ``x`` follows the storage convention (uint8 N×H×W×3).

    Args:
        x: array or tensor to check.
        where: who is checking, used in the message (e.g. ``"generator 'acgan' sample()"``).
        size: expected H = W, if known.
        n: expected number of images, if known.

    Returns:
        ``x`` unchanged.

    Raises:
        ShapeError: naming ``where``, the expected and the actual shape/dtype.

    Shape:
        - x: :math:`(N, H, W, 3)`, uint8.
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise ShapeError(f"{where}: expected a uint8 array N×H×W×3, got {type(x).__name__}")
    expected = f"uint8 N×{size or 'H'}×{size or 'W'}×3"
    ok_dtype = x.dtype == np.uint8 or x.dtype == torch.uint8
    if not ok_dtype or x.ndim != 4 or x.shape[-1] != 3:
        raise ShapeError(f"{where}: expected {expected}, got {_describe(x)}")
    if size is not None and (x.shape[1] != size or x.shape[2] != size):
        raise ShapeError(f"{where}: expected {expected}, got {_describe(x)}")
    if n is not None and x.shape[0] != n:
        raise ShapeError(f"{where}: expected {n} images, got {x.shape[0]} ({_describe(x)})")
    return x


def to_model(x: np.ndarray | torch.Tensor, device: torch.device | str | None = None, channels_last: bool = False) -> torch.Tensor:
    """uint8 N×H×W×3 (numpy or torch) → float32 N×3×H×W in [-1, 1] on ``device``.

    Shape:
        - x: :math:`(N, H, W, 3)` uint8.
        - output: :math:`(N, 3, H, W)` float32 in [-1, 1].
    """
    t = torch.as_tensor(x)
    if device is not None:
        t = t.to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    else:
        t = t.contiguous()
    return t


def from_model(x: torch.Tensor) -> np.ndarray:
    """float N×3×H×W in [-1, 1] → numpy uint8 N×H×W×3 (rounded, clamped).

    Shape:
        - x: :math:`(N, 3, H, W)`.
        - output: :math:`(N, H, W, 3)` uint8.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ShapeError(f"from_model: expected float N×3×H×W, got {_describe(x)}")
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def resize_uint8(x: np.ndarray, size: int, batch: int = 512) -> np.ndarray:
    """Resize uint8 N×H×W×3 images to ``size``×``size`` with antialiased bicubic interpolation.

    Shape:
        - x: :math:`(N, H, W, 3)` uint8.
        - output: :math:`(N, size, size, 3)` uint8.
    """
    check_images(x, where="resize_uint8")
    if x.shape[1] == size and x.shape[2] == size:
        return x
    out = np.empty((x.shape[0], size, size, 3), dtype=np.uint8)
    for i in range(0, x.shape[0], batch):
        t = tensor_view(x[i : i + batch]).permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out[i : i + batch] = t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
