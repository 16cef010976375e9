"""``SyntheticSet``: one HDF5 file per set of generated images.

Layout (schema version 1)::

    images        uint8  N×S×S×3   uncompressed; contiguous when the number of images was known
                                    at creation (``preallocate``), else chunked (a divisor of
                                    chunk_size images per chunk, at most 4 MiB)
    labels        int64  N          indices into attrs["class_names"]
    seeds         int64  N          per-image seed (image i = f(checkpoint, label_i, seed_i))
    scores        float32 N         optional (filters store their scores here)
    source_index  int64  N          optional (which real image a translation came from)
    attrs: schema_version, class_names (JSON), image_size, generator, generator_config (JSON),
           checkpoint_sha256, dataset_fingerprint, split_sha256, versions (JSON), created_at,
           committed (images durably written), complete (bool), n_planned

Crash safety: a set being written lives in ``<name>.partial.h5``; ``committed`` is updated
and the file flushed after every chunk, after the chunk's images are written;
:meth:`SyntheticSetWriter.close` renames it to ``<name>.h5`` atomically. Opening a partial set
for reading is an error; ``resume=True`` continues after the last committed chunk.

Writing speed: a preallocated (contiguous) images dataset is written with ``os.pwrite`` at its
file offset, which releases the GIL (h5py holds it while it writes), so a writer thread overlaps
with a generating thread; :meth:`SyntheticSetWriter.stage` writes a batch's images as soon as it
exists and :meth:`SyntheticSetWriter.commit` commits a chunk's labels and seeds after them. Rows
past ``committed`` are never read: :meth:`SyntheticSetWriter.close` refuses to finish a
preallocated set with rows missing. Where rows are whole 4 KiB blocks (64 px and up) and the file
system allows it, those writes bypass the page cache (``O_DIRECT``, from one block-aligned buffer;
the images dataset starts on a block boundary): on virtual machines that return freed memory to
their host, every page-cache page of a new file is new host memory, and writing a set through
the page cache ran at two thirds of the rate (``benchmarks/synthetic_write.py``: a generator at
GPU rate into a set, +51 % over generating alone through the page cache, +11 % unbuffered; 16,384
images at 128 px on a 2-core VM). A refused unbuffered write sends the rest through the page cache.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from augengine.errors import DataError, ShapeError
from augengine.images import check_images, resize_uint8
from augengine.imageset import ImageSet

__all__ = ["SyntheticSet", "SyntheticSetWriter", "SCHEMA_VERSION", "partial_path"]

SCHEMA_VERSION = 1
_OPTIONAL = {"scores": np.float32, "source_index": np.int64}
#: attributes that may differ between the interrupted and the resuming process
_NOT_COMPARED_ON_RESUME = {"versions", "created_at"}
#: largest chunk of the chunked images layout
_MAX_CHUNK_BYTES = 1 << 22


def partial_path(path: str | Path) -> Path:
    """``x/set.h5`` → ``x/set.partial.h5``."""
    p = Path(path)
    stem = p.name[: -len(".h5")] if p.name.endswith(".h5") else p.name
    return p.with_name(f"{stem}.partial.h5")


def _json_attr(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _chunk_rows(chunk_size: int, image_bytes: int) -> int:
    """Rows per HDF5 chunk of the chunked images layout: the largest divisor of ``chunk_size``
    within 4 MiB, so appends of ``chunk_size`` images never rewrite a partly filled chunk."""
    c = max(1, int(chunk_size))
    cap = max(1, _MAX_CHUNK_BYTES // image_bytes)
    return max(d for d in range(1, min(c, cap) + 1) if c % d == 0)


# block size unbuffered (O_DIRECT) writes are aligned to: the file offset, the length and the
# memory they are written from (4096 covers the logical block size of common disks and file systems)
_BLOCK = 4096


def _open_unbuffered(path: Path, offset: int, row_bytes: int) -> int | None:
    """A descriptor that writes past the page cache (``O_DIRECT``), for an images region that
    starts on a block boundary and whose rows are whole blocks; None where the OS, the file system
    or the layout does not allow it (the writes then go through the page cache)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or offset % _BLOCK or row_bytes % _BLOCK:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:  # e.g. tmpfs: EINVAL
        return None


def _pwrite_all(fd: int, buf: memoryview, pos: int, block: int = 1, where: str = "") -> None:
    """``os.pwrite`` all of ``buf`` at ``pos``; OSError for a partial write off a ``block`` boundary
    (an unbuffered descriptor cannot continue from there)."""
    while len(buf):
        done = os.pwrite(fd, buf, pos)
        if done % block:
            raise OSError(f"{where}: short unbuffered write ({done} bytes)")
        buf, pos = buf[done:], pos + done


def _direct_offset(f: h5py.File) -> int | None:
    """File offset of a contiguous, allocated images dataset that ``os.pwrite`` can write, else None."""
    dset = f["images"]
    if dset.chunks is not None or not hasattr(os, "pwrite") or f.driver != "sec2":
        return None
    return dset.id.get_offset()


class SyntheticSetWriter:
    """Appends images to a partial set; :meth:`close` makes it final. Use :meth:`SyntheticSet.create`."""

    def __init__(self, path: Path, file: h5py.File, chunk_size: int):
        self.path = path
        self.partial = partial_path(path)
        self._f = file
        self.chunk_size = chunk_size
        self.image_size = int(file.attrs["image_size"])
        self.class_names = json.loads(file.attrs["class_names"])
        images = file["images"]
        #: rows of a contiguous (preallocated) images dataset; None for the chunked layout
        self.preallocated: int | None = int(images.shape[0]) if images.chunks is None else None
        self._row_bytes = int(np.prod(images.shape[1:]))
        self._offset = _direct_offset(file)
        self._fd: int | None = None
        self._ufd: int | None = None  # O_DIRECT: past the page cache (see _pwrite)
        self._bounce: np.ndarray | None = None  # block-aligned memory the O_DIRECT writes go from
        self._staged = 0
        if self._offset is not None:
            self._fd = os.open(self.partial, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            self._ufd = _open_unbuffered(self.partial, self._offset, self._row_bytes)

    @property
    def direct(self) -> bool:
        """True when images are written with ``os.pwrite`` (outside the GIL) rather than h5py."""
        return self._fd is not None

    @property
    def unbuffered(self) -> bool:
        """True when images are written past the page cache (``O_DIRECT``)."""
        return self._ufd is not None

    def _pwrite(self, images: np.ndarray, row: int) -> None:
        """Write images at their row. Past the page cache where possible: a set is written once and
        read later, and on virtual machines that hand freed memory back to their host, every new
        page-cache page is a fresh page of the host's (measured on a 2-core VM: 540 MB/s through
        the page cache, 1.9 GB/s with O_DIRECT, against 5 GB/s into pages it had just used)."""
        data = np.ascontiguousarray(images).reshape(-1)
        pos = self._offset + row * self._row_bytes
        if self._ufd is not None:
            try:
                self._pwrite_unbuffered(data, pos)
                return
            except OSError:  # the file system refused it after all: the page cache from now on
                fd, self._ufd, self._bounce = self._ufd, None, None
                os.close(fd)
        _pwrite_all(self._fd, memoryview(data), pos)

    def _pwrite_unbuffered(self, data: np.ndarray, pos: int) -> None:
        n = data.nbytes  # whole rows: whole blocks
        if self._bounce is None or self._bounce.nbytes < n:
            # an anonymous mapping starts on a page boundary; kept for the next batches
            self._bounce = np.frombuffer(mmap.mmap(-1, n), dtype=np.uint8)
        np.copyto(self._bounce[:n], data)
        # only a write cut short by a full disk ends off a block boundary
        _pwrite_all(self._ufd, memoryview(self._bounce)[:n], pos, block=_BLOCK, where=str(self.partial))

    def _close_fd(self) -> None:
        for name in ("_ufd", "_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)
        self._bounce = None

    @property
    def committed(self) -> int:
        """Number of images durably written."""
        return int(self._f.attrs["committed"])

    @property
    def staged(self) -> int:
        """Number of images written by :meth:`stage` and not committed yet."""
        return self._staged

    def stage(self, images) -> int:
        """Write images after the committed and staged ones, without committing them.

        They count (and survive an interruption) only once :meth:`commit` is called; a
        preallocated set writes them with ``os.pwrite``, which releases the GIL, so a thread can
        stage a batch while another generates the next.

        Shape:
            - images: :math:`(K, S, S, 3)` uint8.

        Returns:
            the number of staged images.
        """
        images = check_images(np.asarray(images), where=f"{self.partial}: stage(images)", size=self.image_size)
        k = images.shape[0]
        row = self.committed + self._staged
        dset = self._f["images"]
        if self.preallocated is None:
            dset.resize(row + k, axis=0)
        elif row + k > self.preallocated:
            raise DataError(f"{self.partial}: {row + k} images would exceed the {self.preallocated} "
                            "the set was created for (preallocate)")
        if self._fd is not None:
            self._pwrite(images, row)
        else:
            dset[row : row + k] = images
        self._staged += k
        return self._staged

    def _columns(self, k: int, labels, seeds, scores, source_index, what: str) -> dict[str, np.ndarray]:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != k:
            raise ShapeError(f"{self.partial}: {what}(labels): expected {k} labels, got {labels.shape[0]}")
        if k and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(f"{self.partial}: {what}(labels): values must be in 0..{len(self.class_names) - 1}")
        seeds = np.full(k, -1, np.int64) if seeds is None else np.asarray(seeds, dtype=np.int64).reshape(-1)
        cols = {"labels": labels, "seeds": seeds}
        for name, dtype in _OPTIONAL.items():
            val = {"scores": scores, "source_index": source_index}[name]
            if val is None:
                if name in self._f:
                    raise DataError(f"{self.partial}: {what}: {name} was given for earlier images, missing now")
                continue
            if name not in self._f:
                if self.committed:
                    raise DataError(f"{self.partial}: {what}: {name} given now but not for earlier images")
                self._f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(max(self.chunk_size, 1),))
            cols[name] = np.asarray(val, dtype=dtype).reshape(-1)
        for name, col in cols.items():
            if col.shape[0] != k:
                raise ShapeError(f"{self.partial}: {what}({name}): expected {k} values, got {col.shape[0]}")
        return cols

    def _commit(self, cols: dict[str, np.ndarray]) -> int:
        n0, k = self.committed, self._staged
        for name, col in cols.items():
            self._f[name].resize(n0 + k, axis=0)
            self._f[name][n0 : n0 + k] = col
        self._f.attrs["committed"] = n0 + k  # after the images: committed counts only rows written
        self._f.flush()
        self._staged = 0
        return n0 + k

    def commit(self, labels, *, seeds=None, scores=None, source_index=None) -> int:
        """Commit the staged images with their per-image values (flushed before returning).

        Shape:
            - labels, seeds, scores, source_index: :math:`(K,)` for the K staged images.

        Returns:
            the new committed count.
        """
        return self._commit(self._columns(self._staged, labels, seeds, scores, source_index, "commit"))

    def append(self, images, labels, *, seeds=None, scores=None, source_index=None) -> int:
        """Append images and commit them (flushed before returning): :meth:`stage` + :meth:`commit`.

        Shape:
            - images: :math:`(K, S, S, 3)` uint8.
            - labels, seeds, scores, source_index: :math:`(K,)`.

        Returns:
            the new committed count.
        """
        if self._staged:
            raise DataError(f"{self.partial}: append: {self._staged} staged images are not committed; commit() them first")
        images = check_images(np.asarray(images), where=f"{self.partial}: append(images)", size=self.image_size)
        cols = self._columns(images.shape[0], labels, seeds, scores, source_index, "append")
        self.stage(images)
        return self._commit(cols)

    def close(self, **attrs: Any) -> "SyntheticSet":
        """Mark complete, close, rename ``.partial.h5`` → ``.h5`` atomically, and reopen for reading.

        Raises:
            DataError: staged images are not committed, or the set was preallocated for more
                images than were committed (nothing is closed or renamed: write the rest, or
                :meth:`abort` and resume later).
        """
        if self._staged:
            raise DataError(f"{self.partial}: {self._staged} staged images are not committed; commit() them before close()")
        if self.preallocated is not None and self.committed != self.preallocated:
            raise DataError(f"{self.partial}: only {self.committed} of the {self.preallocated} images the set was "
                            "created for are written; append the rest (or resume) before close()")
        self._close_fd()
        for k, v in attrs.items():
            self._f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.generic)) else _json_attr(v)
        self._f.attrs["complete"] = True
        self._f.attrs["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._f.flush()
        self._f.close()
        os.replace(self.partial, self.path)
        return SyntheticSet.open(self.path)

    def abort(self) -> None:
        """Close without finishing (the partial file stays, resumable)."""
        self._close_fd()
        if self._f.id.valid:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


class SyntheticSet(ImageSet):
    """A finished synthetic set, opened for reading (an :class:`~augengine.ImageSet`).

    Open with :meth:`SyntheticSet.open`; write with :meth:`SyntheticSet.create`.
    """

    def __init__(self, path: Path, attrs: dict[str, Any], labels: np.ndarray, seeds: np.ndarray,
                 scores: np.ndarray | None, source_index: np.ndarray | None):
        self.path = path
        self.attrs = attrs
        self.class_names = list(attrs["class_names"])
        self.labels = labels
        self.seeds = seeds
        self.scores = scores
        self.source_index = source_index
        self.size = int(attrs["image_size"])
        self.ids = [f"{path.name}:{i}" for i in range(len(labels))]
        self.groups = None

    # -- writing -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        class_names: Sequence[str],
        image_size: int,
        attrs: Mapping[str, Any] | None = None,
        resume: bool = False,
        force: bool = False,
        chunk_size: int = 256,
        preallocate: int | None = None,
    ) -> SyntheticSetWriter:
        """Start (or with ``resume=True`` continue) writing the set that will be ``path``.

        Args:
            preallocate: the number of images the set will hold, when known: the images are
                then stored contiguously, allocated up front and written with ``os.pwrite``
                (outside the GIL), and :meth:`SyntheticSetWriter.close` requires exactly that
                many. Without it (or where ``os.pwrite`` is missing) images are chunked and
                written by h5py. A resumed set keeps the layout it was created with.

        Raises:
            DataError: ``path`` exists (pass ``force=True`` to overwrite), or a partial set
                exists and neither ``resume`` nor ``force`` is given, or the partial set was
                made with other settings.
        """
        path = Path(path)
        part = partial_path(path)
        if path.exists() and not force:
            raise DataError(f"{path}: a finished set exists; pass force=True to overwrite it")
        if part.exists() and resume and not force:
            try:
                f = h5py.File(part, "a")
            except OSError as e:
                raise DataError(f"{part}: the unfinished set is damaged ({e}); pass force=True to start over") from None
            try:
                if "class_names" not in f.attrs or "committed" not in f.attrs or "images" not in f:
                    raise DataError(f"{part}: the unfinished set is damaged (no header); pass force=True to start over")
                if json.loads(f.attrs["class_names"]) != list(class_names) or int(f.attrs["image_size"]) != image_size:
                    raise DataError(f"{part}: partial set has other classes or image size; pass force=True to start over")
                for k, v in (attrs or {}).items():
                    if k in _NOT_COMPARED_ON_RESUME:
                        continue
                    if k in f.attrs and str(f.attrs[k]) != str(v if isinstance(v, (str, int, float, bool)) else _json_attr(v)):
                        raise DataError(f"{part}: partial set was made with another {k}; pass force=True to start over")
                n = int(f.attrs["committed"])
                rows = f["images"].shape[0]
                if f["images"].chunks is None:  # preallocated: rows past `committed` get overwritten
                    if n > rows:
                        raise DataError(f"{part}: the unfinished set is damaged ({n} images committed, {rows} "
                                        "allocated); pass force=True to start over")
                    if preallocate is not None and int(preallocate) != rows:
                        raise DataError(f"{part}: partial set was created for {rows} images, not {preallocate}; "
                                        "pass force=True to start over")
                for name in ("images", "labels", "seeds", *_OPTIONAL):
                    if name in f and f[name].chunks is not None and f[name].shape[0] != n:
                        f[name].resize(n, axis=0)  # drop an uncommitted tail
            except BaseException:
                f.close()
                raise
            return SyntheticSetWriter(path, f, chunk_size)
        if part.exists() and not force and not resume:
            raise DataError(f"{part}: an unfinished set exists; pass resume=True to continue it or force=True to start over")
        path.parent.mkdir(parents=True, exist_ok=True)
        # large datasets (the preallocated images) start on a block boundary: unbuffered writes
        f = h5py.File(part, "w", alignment_threshold=1 << 16, alignment_interval=_BLOCK)
        s = int(image_size)
        if preallocate is not None and int(preallocate) > 0:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.CONTIGUOUS)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # the file offset exists from the start
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # nothing written now (a sparse region)
            f.create_dataset("images", shape=(int(preallocate), s, s, 3), dtype=np.uint8, dcpl=dcpl)
            if _direct_offset(f) is None:  # no os.pwrite or no plain file offset: chunked after all
                del f["images"]
        if "images" not in f:
            f.create_dataset("images", shape=(0, s, s, 3), maxshape=(None, s, s, 3), dtype=np.uint8,
                             chunks=(_chunk_rows(chunk_size, s * s * 3), s, s, 3))
        f.create_dataset("labels", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(max(chunk_size, 1),))
        f.create_dataset("seeds", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(max(chunk_size, 1),))
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["class_names"] = _json_attr(list(class_names))
        f.attrs["image_size"] = s
        f.attrs["committed"] = 0
        f.attrs["complete"] = False
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (str, int, float, bool)) else _json_attr(v)
        f.flush()
        return SyntheticSetWriter(path, f, chunk_size)

    # -- reading -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "SyntheticSet":
        """Open a finished set. DataError for a missing, partial, foreign or malformed file."""
        path = Path(path)
        if not path.exists():
            part = partial_path(path)
            if part.exists():
                raise DataError(f"{path}: not finished (only {part.name} exists); continue writing it first (generate with resume=True)")
            raise DataError(f"{path}: synthetic set not found")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise DataError(f"{path}: not an HDF5 file ({e})") from None
        with f:
            version = f.attrs.get("schema_version")
            version = version.item() if isinstance(version, np.generic) else version
            if version != SCHEMA_VERSION:
                raise DataError(f"{path}: attribute schema_version is {version!r}, expected {SCHEMA_VERSION}")
            if not bool(f.attrs.get("complete", False)) or path.name.endswith(".partial.h5"):
                raise DataError(
                    f"{path}: incomplete set ({int(f.attrs.get('committed', 0))} images committed); "
                    "continue writing it (generate with resume=True) before training on it"
                )
            if "images" not in f or f["images"].ndim != 4 or f["images"].shape[-1] != 3 or f["images"].dtype != np.uint8:
                shape = f["images"].shape if "images" in f else None
                raise DataError(f"{path}: dataset 'images' must be uint8 N×S×S×3, got {shape}")
            attrs = {}
            for k, v in f.attrs.items():
                v = v.item() if isinstance(v, np.generic) else v
                if isinstance(v, str) and v[:1] in "[{":
                    try:
                        v = json.loads(v)
                    except json.JSONDecodeError:
                        pass
                attrs[k] = v
            n = int(attrs["committed"])
            if f["images"].shape[0] != n:
                raise DataError(f"{path}: dataset 'images' holds {f['images'].shape[0]} rows, attribute committed is {n}")
            labels = f["labels"][:n]
            seeds = f["seeds"][:n]
            scores = f["scores"][:n] if "scores" in f else None
            source_index = f["source_index"][:n] if "source_index" in f else None
        return cls(path, attrs, labels, seeds, scores, source_index)

    def _load(self, size):
        with h5py.File(self.path, "r") as f:
            arr = f["images"][: len(self)]
        return resize_uint8(arr, size) if size != self.size else arr
