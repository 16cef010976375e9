"""The decoded cache: every image of a table decoded, converted to 8-bit RGB and resized once.

One HDF5 file per (dataset fingerprint, size, interpolation, crop mode) under
``$AUGENGINE_CACHE/decoded/`` (default ``~/.cache/augengine``), holding ``images``: uint8
N×S×S×3, **uncompressed** and contiguous, in table row order. It is read whole into memory
(HAM10000 at 64 px is 123 MB): compressed chunks or per-image random HDF5 reads are slower than
decoding the JPEGs again (see ``benchmarks/data.py``). The file records the table's
:attr:`~augengine.data.table.ImageTable.source_stamp` (paths, sizes, mtimes) and is rebuilt when a
source file changes. It is written to a temporary file and renamed, so a crash never leaves a
half-written cache behind.

Conversions: grayscale, RGBA/LA, palette, CMYK and 16-bit images become 8-bit RGB (16-bit values
are scaled, not clipped) with **one** :class:`DataWarning` that counts them.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

from augengine.errors import DataError

__all__ = ["DataWarning", "cache_dir", "cache_path", "decode_image", "decoded_images", "INTERPOLATIONS", "CROPS"]

CACHE_VERSION = 1
INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
}
CROPS = ("resize", "center-crop", "pad")
_POOL_MIN = 512  # below this many file-based images, decode in this process
_CHUNK = 128


class DataWarning(UserWarning):
    """A data problem that was handled (converted images, unlisted files, lesions across splits)."""


def cache_dir() -> Path:
    """``$AUGENGINE_CACHE`` or ``~/.cache/augengine``."""
    return Path(os.environ.get("AUGENGINE_CACHE") or "~/.cache/augengine").expanduser()


def _check_options(size: int, interpolation: str, crop: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise DataError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}")
    if crop not in CROPS:
        raise DataError(f"crop: expected one of {', '.join(CROPS)}; got {crop!r}")
    if not isinstance(size, int) or size < 1:
        raise DataError(f"size: expected a positive integer; got {size!r}")


def cache_path(table, size: int, interpolation: str = "bicubic", crop: str = "resize") -> Path:
    """Where the decoded cache of ``table`` at these settings lives."""
    key = hashlib.sha256(f"{table.fingerprint}|{size}|{interpolation}|{crop}|v{CACHE_VERSION}".encode()).hexdigest()[:24]
    return cache_dir() / "decoded" / f"{table.format}-{size}px-{key}.h5"


def _to_rgb8(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Convert any PIL image to 8-bit RGB; return the kind of conversion (None if it was RGB)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img)
        a = a.astype(np.float64) * (255.0 / (65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0))
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(g[..., None], 3, axis=2)), "16-bit"
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.repeat(np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., None], 3, axis=2)), "16-bit"
    kind = {"L": "grayscale", "1": "grayscale", "LA": "grayscale", "RGBA": "RGBA", "RGBa": "RGBA", "P": "palette",
            "PA": "palette", "CMYK": "CMYK", "YCbCr": None, "LAB": None, "HSV": None}.get(mode, mode)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB"), kind


def _is_16bit_png(img: Image.Image) -> bool:
    # PIL reads 48-bit RGB PNGs as 8-bit "RGB" (keeping the high byte); report them as converted.
    return getattr(img, "format", None) == "PNG" and img.mode == "RGB" and img.info.get("bits", 8) == 16


def decode_image(src, size: int, interpolation: str = "bicubic", crop: str = "resize",
                 name: str | None = None) -> tuple[np.ndarray, str | None, tuple[int, int], str]:
    """Decode one image (file path, encoded bytes, or uint8 array) to uint8 S×S×3.

    Args:
        src: file path (str/Path), encoded image bytes, or a uint8 array H×W[×C].
        size: output side length.
        interpolation: ``bicubic`` (default, as in the paper), ``bilinear``, ``lanczos``, ``nearest``, ``box``.
        crop: ``resize`` (squash to square), ``center-crop`` (shorter side to S, then central S×S),
            ``pad`` (pad to square with black, then resize).
        name: how to call the image in error messages.

    Returns:
        (image uint8 S×S×3, conversion kind or None, original (width, height), original mode).

    Raises:
        DataError: the file is missing, empty, truncated or not an image (message names it).
    """
    _check_options(size, interpolation, crop)
    name = name or (str(src) if isinstance(src, (str, Path)) else "<image>")
    if isinstance(src, np.ndarray):
        a = src
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        img = Image.fromarray(a)
    else:
        try:
            if isinstance(src, (bytes, bytearray)):
                import io

                img = Image.open(io.BytesIO(src))
            else:
                if os.path.getsize(src) == 0:
                    raise DataError(f"{name}: empty file (0 bytes); expected an image")
                img = Image.open(src)
            img.load()
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{name}: image file not found; expected an image listed by the dataset") from None
        except UnidentifiedImageError:
            raise DataError(f"{name}: not an image (PIL cannot identify it); expected a JPEG/PNG/… file") from None
        except (OSError, SyntaxError, ValueError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            kind = "truncated" if "truncat" in msg.lower() else "unreadable"
            raise DataError(f"{name}: {kind} image ({msg}); expected a complete image file") from None
    orig_mode, orig_size = img.mode, img.size
    sixteen = _is_16bit_png(img)
    img, kind = _to_rgb8(img)
    if sixteen:
        kind = "16-bit"
    rs = INTERPOLATIONS[interpolation]
    w, h = img.size
    if crop == "center-crop" and w != h:
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        img = img.resize((nw, nh), rs)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    else:
        if crop == "pad" and w != h:
            m = max(w, h)
            canvas = Image.new("RGB", (m, m), (0, 0, 0))
            canvas.paste(img, ((m - w) // 2, (m - h) // 2))
            img = canvas
        if img.size != (size, size):
            img = img.resize((size, size), rs)
    out = np.asarray(img, dtype=np.uint8)
    return out, kind, orig_size, orig_mode


def _decode_chunk(args):
    """Worker: decode a list of (name, src) → (array K×S×S×3, kinds, error message or None)."""
    items, size, interpolation, crop = args
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    kinds = []
    for j, (name, src) in enumerate(items):
        try:
            out[j], kind, _, _ = decode_image(src, size, interpolation, crop, name=name)
        except DataError as e:
            return None, kinds, str(e)
        kinds.append(kind)
    return out, kinds, None


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


def decode_all(table, size: int, interpolation: str = "bicubic", crop: str = "resize", *,
               progress: bool = True, workers: int | None = None) -> tuple[np.ndarray, Counter]:
    """Decode every row of ``table`` (2 worker processes for file-based sets). No caching.

    Returns:
        (uint8 N×S×S×3, Counter of conversion kinds).
    """
    _check_options(size, interpolation, crop)
    n = len(table)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    kinds: Counter = Counter()
    items = [(f"{table.root / table.paths[i]}" if table._embedded is None else f"{table.root}:{table.ids[i]}",
              table.source(i)) for i in range(n)]
    chunks = [(items[i: i + _CHUNK], size, interpolation, crop) for i in range(0, n, _CHUNK)]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    use_pool = table._embedded is None and n >= _POOL_MIN and workers > 1
    with _progress(n, f"decoding {table.format} at {size}px", progress) as bar:
        if use_pool:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
                results = ex.map(_decode_chunk, chunks)
                for ci, (arr, ks, err) in enumerate(results):
                    if err is not None:
                        raise DataError(err)
                    out[ci * _CHUNK: ci * _CHUNK + len(arr)] = arr
                    kinds.update(k for k in ks if k)
                    bar.update(len(arr))
        else:
            for ci, ch in enumerate(chunks):
                arr, ks, err = _decode_chunk(ch)
                if err is not None:
                    raise DataError(err)
                out[ci * _CHUNK: ci * _CHUNK + len(arr)] = arr
                kinds.update(k for k in ks if k)
                bar.update(len(arr))
    return out, kinds


def _warn_conversions(table, kinds: Counter) -> None:
    if kinds:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        warnings.warn(f"{table.root}: converted {sum(kinds.values())} images to 8-bit RGB ({detail})",
                      DataWarning, stacklevel=4)


def decoded_images(table, size: int = 64, *, interpolation: str = "bicubic", crop: str = "resize",
                   progress: bool = True) -> np.ndarray:
    """All images of ``table`` as uint8 N×S×S×3, from the HDF5 cache (built on first use).

    The cache is reused while the table's fingerprint and source stamp are unchanged, and rebuilt
    otherwise. If the cache folder is not writable the images are decoded in memory only.

    Shape:
        - output: :math:`(N, S, S, 3)` uint8, in table row order.
    """
    _check_options(size, interpolation, crop)
    path = cache_path(table, size, interpolation, crop)
    stamp = table.source_stamp
    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                if (f.attrs.get("source_stamp") == stamp and f.attrs.get("version") == CACHE_VERSION
                        and f["images"].shape == (len(table), size, size, 3)):
                    arr = f["images"][()]
                    kinds = Counter({k[len("converted_"):]: int(v) for k, v in f.attrs.items()
                                     if k.startswith("converted_")})
                    _warn_conversions(table, kinds)
                    return arr
        except (OSError, KeyError):
            pass  # unreadable cache: rebuild
    arr, kinds = decode_all(table, size, interpolation, crop, progress=progress)
    _warn_conversions(table, kinds)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.h5")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=arr)  # contiguous, uncompressed
            f.attrs.update({"version": CACHE_VERSION, "fingerprint": table.fingerprint, "source_stamp": stamp,
                            "size": size, "interpolation": interpolation, "crop": crop, "format": table.format,
                            "root": str(table.root)})
            for k, v in kinds.items():
                f.attrs[f"converted_{k}"] = int(v)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"{path.parent}: cannot write the decoded cache ({e.strerror or e}); keeping images in memory",
                      DataWarning, stacklevel=3)
        tmp.unlink(missing_ok=True)
    return arr
