"""Decoded HDF5 cache: built once, reused, rebuilt on change; conversions; unreadable images."""

from __future__ import annotations

import os
import shutil
import warnings

import h5py
import numpy as np
import pytest
from PIL import Image

import augengine.data.cache as cache_mod
from augengine.data import DataWarning, cache_path, decode_image, load_dataset
from augengine.errors import DataError

from data_helpers import HAM, make_folder_set, make_ham, needs_ham, small_ham_rows, write_image


def _count_decodes(monkeypatch):
    calls = []
    orig = cache_mod.decode_all

    def spy(*a, **k):
        calls.append(a[1])
        return orig(*a, **k)

    monkeypatch.setattr(cache_mod, "decode_all", spy)
    return calls


def test_cache_built_once_reused_and_rebuilt(tmp_path, monkeypatch):
    root = make_ham(tmp_path / "h", small_ham_rows(2))
    calls = _count_decodes(monkeypatch)
    t = load_dataset(root)
    x = t.image_set(size=16).images()
    assert x.shape == (14, 16, 16, 3) and calls == [16]
    path = cache_path(t, 16)
    with h5py.File(path) as f:
        assert f["images"].compression is None and f["images"].chunks is None  # contiguous, uncompressed
        assert f.attrs["interpolation"] == "bicubic" and f.attrs["fingerprint"] == t.fingerprint
    # a fresh table of the same data reads the cache (no decode)
    y = load_dataset(root).image_set(size=16).images()
    assert calls == [16] and np.array_equal(x, y)
    # pixels equal a direct PIL bicubic resize
    ref = np.asarray(Image.open(root / t.paths[3]).convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))
    assert np.array_equal(x[3], ref)
    # editing a source file rebuilds it
    write_image(root / t.paths[3], 999)
    st = os.stat(root / t.paths[3])
    os.utime(root / t.paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    z = load_dataset(root).image_set(size=16).images()
    assert calls == [16, 16] and not np.array_equal(z[3], x[3]) and np.array_equal(z[4], x[4])
    # other size or crop mode: another cache file
    t2 = load_dataset(root)
    assert t2.image_set(size=8, crop="center-crop").images().shape == (14, 8, 8, 3) and calls[-1] == 8
    assert cache_path(t2, 8, crop="center-crop") != cache_path(t2, 8)


def test_crop_modes():
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, 10:20] = 255  # white centre square on black
    c, *_ = decode_image(arr, 10, crop="center-crop")
    assert c.min() == 255
    p, *_ = decode_image(arr, 30, crop="pad", interpolation="nearest")
    assert p[:10].max() == 0 and p[10:20, 10:20].min() == 255
    r, *_ = decode_image(arr, 10, crop="resize", interpolation="nearest")
    assert r[:, :3].max() == 0 and r[:, 4:6].min() == 255
    with pytest.raises(DataError, match="crop: expected one of resize, center-crop, pad"):
        decode_image(arr, 10, crop="zoom")


def test_modes_converted_with_one_warning(tmp_path):
    root = make_folder_set(tmp_path / "f", n=2)
    write_image(root / "cats" / "gray.png", 1, mode="L")
    write_image(root / "cats" / "rgba.png", 2, mode="RGBA")
    write_image(root / "dogs" / "pal.png", 3, mode="P")
    write_image(root / "dogs" / "cmyk.jpg", 4, mode="CMYK")
    a16 = (np.arange(14 * 20, dtype=np.uint16).reshape(14, 20) * 230)
    Image.fromarray(a16).save(root / "dogs" / "deep.png")
    t = load_dataset(root)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        x = t.image_set(size=20).images()
    msgs = [str(m.message) for m in w if issubclass(m.category, DataWarning)]
    assert len(msgs) == 1, msgs
    assert "converted 5 images to 8-bit RGB" in msgs[0] and "16-bit 1" in msgs[0] and "CMYK 1" in msgs[0]
    deep = x[t.ids.index("dogs/deep.png")]
    assert deep.shape == (20, 20, 3) and deep.max() > 200  # scaled from 16 bit, not clipped to 255 everywhere
    assert (deep[..., 0] == deep[..., 1]).all()


@pytest.mark.parametrize("kind", ["truncated", "not_image"])
def test_bad_image_file(tmp_path, kind, private_cache):
    root = make_folder_set(tmp_path / "f", n=2)
    bad = root / "cats" / "cats_1.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"hello, not an image")
    t = load_dataset(root)  # listing is fine; decoding names the file
    with pytest.raises(DataError) as e:
        t.image_set(size=8).images()
    msg = str(e.value)
    assert "\n" not in msg and "cats_1.png" in msg
    assert ("truncated" in msg or "unreadable" in msg) if kind == "truncated" else "not an image" in msg
    # the failed build leaves no cache file behind, finished or temporary
    final = cache_mod.cache_path(t, 8)
    assert str(final).startswith(str(private_cache))
    assert not final.exists() and not list(final.parent.glob(f".{final.stem}*"))


def test_pool_decoding_matches_serial(tmp_path, monkeypatch):
    root = make_ham(tmp_path / "h", small_ham_rows(6))
    t = load_dataset(root)
    serial, _ = cache_mod.decode_all(t, 12, progress=False, workers=1)
    monkeypatch.setattr(cache_mod, "_POOL_MIN", 1)
    monkeypatch.setattr(cache_mod, "_CHUNK", 5)
    pooled, _ = cache_mod.decode_all(t, 12, progress=False, workers=2)
    assert np.array_equal(serial, pooled)


@needs_ham
def test_real_ham_subset_cache(tmp_path):
    """600 real HAM10000 images (a HAM layout of symlinks): decoded in 2 processes, read back equal."""
    import csv

    rows = list(csv.DictReader(open(HAM / "HAM10000_metadata.csv")))[:600]
    root = tmp_path / "ham_subset"
    (root / "images").mkdir(parents=True)
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        os.symlink(HAM / "images" / f"{r['image_id']}.jpg", root / "images" / f"{r['image_id']}.jpg")
    t = load_dataset(root)
    x = t.image_set(size=32).images()
    assert x.shape == (600, 32, 32, 3)
    y = load_dataset(root).image_set(size=32).images()
    assert np.array_equal(x, y)
    shutil.rmtree(root)
