"""SyntheticSet writer layouts: preallocated (contiguous, os.pwrite) vs chunked (h5py), both
through Generator.generate and by hand; close() refusals; old chunked partial sets resume."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import augengine as ae
from augengine import SyntheticSet
from augengine.errors import DataError
from augengine.synthetic import _chunk_rows, partial_path
from augengine.testing import tiny_imageset

SIZE = 16
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def gen():
    g = ae.create_generator("example-noise", image_size=SIZE)
    g.fit(tiny_imageset(n_per_class=6, size=SIZE, counts=[12, 4, 2]))
    return g


def _layout(path) -> str:
    with h5py.File(path, "r") as f:
        return "contiguous" if f["images"].chunks is None else "chunked"


def _same(a: SyntheticSet, b: SyntheticSet) -> None:
    np.testing.assert_array_equal(a.images(), b.images())
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.seeds, b.seeds)


def _interrupt_at_call(monkeypatch, gen, k: int) -> None:
    calls = {"n": 0}
    real = type(gen).sample

    def flaky(self, labels, seeds):
        calls["n"] += 1
        if calls["n"] == k:
            raise KeyboardInterrupt
        return real(self, labels, seeds)

    monkeypatch.setattr(type(gen), "sample", flaky)


def test_pwrite_and_fallback_give_identical_sets(gen, tmp_path, monkeypatch):
    # batches of 6 in chunks of 16: chunks hold 3 batches (18 images), the last chunk a partial batch
    kw = dict(seed=3, chunk_size=16, batch_size=6, progress=False)
    direct = gen.generate(45, out=tmp_path / "direct.h5", **kw)
    monkeypatch.delattr(os, "pwrite")
    fallback = gen.generate(45, out=tmp_path / "fallback.h5", **kw)
    assert _layout(direct.path) == "contiguous" and _layout(fallback.path) == "chunked"
    assert len(direct) == len(fallback) == 45
    _same(direct, fallback)
    assert direct.attrs["n_planned"] == fallback.attrs["n_planned"] == 45


def test_preallocated_resume_after_interrupt_equals_uninterrupted(gen, tmp_path, monkeypatch):
    kw = dict(seed=5, chunk_size=8, batch_size=4, progress=False)
    full = gen.generate(30, out=tmp_path / "full.h5", **kw)
    out = tmp_path / "part.h5"
    _interrupt_at_call(monkeypatch, gen, 5)  # chunks 0-1 committed, batch 5 never comes back
    with pytest.raises(KeyboardInterrupt):
        gen.generate(30, out=out, **kw)
    with h5py.File(partial_path(out), "r") as f:
        assert f["images"].chunks is None and f["images"].shape[0] == 30 and f.attrs["committed"] == 8 * 2
    monkeypatch.undo()
    with pytest.raises(DataError, match="n_planned"):  # another size needs force=True
        gen.generate(31, out=out, **kw, resume=True)
    done = gen.generate(30, out=out, **kw, resume=True)
    assert _layout(out) == "contiguous" and not partial_path(out).exists()
    _same(done, full)


def test_old_chunked_partial_set_still_resumes(gen, tmp_path, monkeypatch):
    kw = dict(seed=7, chunk_size=8, batch_size=8, progress=False)
    full = gen.generate(40, out=tmp_path / "full.h5", **kw)
    out = tmp_path / "old.h5"
    with monkeypatch.context() as m:  # written the old way: chunked, by h5py
        m.delattr(os, "pwrite")
        _interrupt_at_call(m, gen, 3)
        with pytest.raises(KeyboardInterrupt):
            gen.generate(40, out=out, **kw)
    assert _layout(partial_path(out)) == "chunked"
    done = gen.generate(40, out=out, **kw, resume=True)  # pwrite available now: the layout stays chunked
    assert _layout(out) == "chunked"
    _same(done, full)


def test_close_refuses_missing_rows_then_resume_finishes(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    out = tmp_path / "s.h5"
    w = SyntheticSet.create(out, class_names=CLASSES, image_size=SIZE, preallocate=8, chunk_size=4)
    assert w.preallocated == 8 and w.direct
    assert w.stage(imgs[:1]) == 1 and w.stage(imgs[1:4]) == 4 and w.committed == 0  # batches, written in place
    with pytest.raises(DataError, match="4 staged images are not committed"):
        w.close()
    with pytest.raises(ae.ShapeError, match=r"commit\(labels\): expected 4 labels, got 3"):
        w.commit([0, 1, 2])
    assert w.commit([0, 1, 2, 0]) == 4 and w.staged == 0
    with pytest.raises(DataError) as e:
        w.close()
    assert "s.partial.h5" in str(e.value) and "4 of the 8" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="exceed the 8"):
        w.append(imgs, [0] * 8)
    w.stage(imgs[4:6])  # staged, never committed: dropped by the resume below
    w.abort()
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(DataError, match="not finished"):
        SyntheticSet.open(out)
    with pytest.raises(DataError, match="created for 8 images, not 9"):
        SyntheticSet.create(out, class_names=CLASSES, image_size=SIZE, preallocate=9, resume=True)
    w = SyntheticSet.create(out, class_names=CLASSES, image_size=SIZE, preallocate=8, resume=True)
    assert w.committed == 4
    w.append(imgs[4:], [1, 1, 2, 2])
    s = w.close()
    np.testing.assert_array_equal(s.images(), imgs)
    assert s.labels.tolist() == [0, 1, 2, 0, 1, 1, 2, 2] and s.seeds.tolist() == [-1] * 8


def test_open_refuses_a_set_whose_rows_differ_from_committed(tmp_path):
    w = SyntheticSet.create(tmp_path / "s.h5", class_names=CLASSES, image_size=SIZE, preallocate=4)
    w.append(np.zeros((4, SIZE, SIZE, 3), np.uint8), [0, 1, 2, 0])
    w.close()
    with h5py.File(tmp_path / "s.h5", "a") as f:
        f.attrs["committed"] = 3
    with pytest.raises(DataError, match=r"s.h5: dataset 'images' holds 4 rows, attribute committed is 3"):
        SyntheticSet.open(tmp_path / "s.h5")


def test_chunk_rows_divide_chunk_size_within_4_mib(tmp_path):
    assert _chunk_rows(256, 128 * 128 * 3) == 64  # 85 would fit in 4 MiB but leaves partial chunks
    assert _chunk_rows(256, 64 * 64 * 3) == 256
    assert _chunk_rows(100, 128 * 128 * 3) == 50
    assert _chunk_rows(7, 1 << 23) == 1  # an image above 4 MiB: one per chunk
    for c in (1, 24, 256, 1000):
        r = _chunk_rows(c, 128 * 128 * 3)
        assert c % r == 0 and r * 128 * 128 * 3 <= 1 << 22
    w = SyntheticSet.create(tmp_path / "c.h5", class_names=CLASSES, image_size=128, chunk_size=256)
    try:
        assert w.preallocated is None and not w.direct and w._f["images"].chunks == (64, 128, 128, 3)
    finally:
        w.abort()


class _FlipConfig(ae.PluginConfig):
    image_size: int = SIZE


class _Flip(ae.Generator):
    """A translator that mirrors its source images and labels them all class 0."""

    name = "test-flip"
    Config = _FlipConfig
    mode = "translate"

    def translate(self, images, labels):
        return np.ascontiguousarray(images[:, :, ::-1]), np.zeros(len(images), np.int64)


def test_translations_written_in_both_layouts_with_source_index(tmp_path, monkeypatch):
    src = tiny_imageset(n_per_class=4, size=SIZE, counts=[4, 3, 2])
    g = _Flip()
    g.class_names, g.train_counts = ["x", "y"], {"x": 1, "y": 1}
    kw = dict(source=src, seed=2, chunk_size=5, batch_size=3, progress=False)  # chunks of 2 batches, last short
    direct = g.generate(14, out=tmp_path / "d.h5", **kw)  # 14 > 9 source images: cycles
    monkeypatch.delattr(os, "pwrite")
    fallback = g.generate(14, out=tmp_path / "f.h5", **kw)
    assert _layout(direct.path) == "contiguous" and _layout(fallback.path) == "chunked"
    _same(direct, fallback)
    np.testing.assert_array_equal(direct.source_index, fallback.source_index)
    np.testing.assert_array_equal(direct.images(), src.images(SIZE)[direct.source_index][:, :, ::-1])
    assert sorted(direct.source_index[:9].tolist()) == list(range(9)) and (direct.labels == 0).all()


def test_block_sized_rows_are_written_past_the_page_cache_and_fall_back_when_refused(tmp_path, monkeypatch):
    # 64 px rows are 12,288 bytes (3 blocks): O_DIRECT where the file system has it (not tmpfs);
    # a refusal mid-set (EINVAL) sends the rest through the page cache; resume reopens it unbuffered
    import errno

    import augengine.synthetic as syn

    s64 = 64
    imgs = np.random.default_rng(1).integers(0, 256, (12, s64, s64, 3), dtype=np.uint8)
    out = tmp_path / "s.h5"
    w = SyntheticSet.create(out, class_names=CLASSES, image_size=s64, preallocate=12, chunk_size=4)
    with h5py.File(w.partial, "r") as f:
        assert f["images"].id.get_offset() % 4096 == 0  # the images start on a block boundary
    probe = syn._open_unbuffered(w.partial, 0, 4096)
    if probe is None:
        pytest.skip(f"no O_DIRECT on the file system of {tmp_path}")
    os.close(probe)
    assert w.unbuffered
    w.stage(imgs[:3])  # odd batch sizes: whole rows are whole blocks
    w.commit([0, 1, 2])
    w.abort()
    w = SyntheticSet.create(out, class_names=CLASSES, image_size=s64, preallocate=12, chunk_size=4, resume=True)
    assert w.committed == 3 and w.unbuffered
    w.stage(imgs[3:8])
    calls = []

    def refuse(self, data, pos):
        calls.append(pos)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(syn.SyntheticSetWriter, "_pwrite_unbuffered", refuse)
    w.stage(imgs[8:])
    assert len(calls) == 1 and not w.unbuffered and w.direct  # still os.pwrite, through the page cache
    w.commit([0] * 9)
    s = w.close()
    np.testing.assert_array_equal(s.images(), imgs)
    # rows that are not whole blocks (16 px: 768 bytes) always go through the page cache
    w = SyntheticSet.create(tmp_path / "t.h5", class_names=CLASSES, image_size=SIZE, preallocate=2)
    assert w.direct and not w.unbuffered
    w.abort()
