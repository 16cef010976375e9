"""SyntheticSet crash safety: SIGKILL mid-write + resume equals an uninterrupted run (chunked and
preallocated layouts); schema errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from augengine import SyntheticSet
from augengine.errors import DataError
from augengine.synthetic import partial_path

CHUNK, N_CHUNKS, SIZE = 8, 6, 8
CLASSES = ["a", "b", "c"]

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from augengine import SyntheticSet

    CHUNK, N_CHUNKS, SIZE = {CHUNK}, {N_CHUNKS}, {SIZE}

    def chunk(k):  # images of chunk k depend only on k (like seed-driven generation)
        rng = np.random.default_rng(1000 + k)
        return (rng.integers(0, 256, (CHUNK, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 3, CHUNK),
                np.arange(k * CHUNK, (k + 1) * CHUNK))

    def run(path, resume, slow_from=-1, log=print, preallocate=None):
        w = SyntheticSet.create(path, class_names=["a", "b", "c"], image_size=SIZE, attrs={{"generator": "test"}},
                                resume=resume, chunk_size=CHUNK, preallocate=preallocate)
        for k in range(w.committed // CHUNK, N_CHUNKS):
            if k == slow_from:
                # start writing chunk k by hand (uncommitted pixels on disk), then wait to be killed
                f = w._f
                n0 = w.committed
                if w.preallocated is None:
                    f["images"].resize(n0 + CHUNK, axis=0)
                    f["images"][n0:] = 255
                else:
                    w._pwrite(np.full((CHUNK, SIZE, SIZE, 3), 255, np.uint8), n0)
                f.flush()
                log("mid-write")
                time.sleep(60)
            imgs, labels, seeds = chunk(k)
            w.append(imgs, labels, seeds=seeds, scores=seeds.astype(float) / 100)
            log(f"committed {{w.committed}}")
        w.close(generator_config={{"z": 1}})

    if __name__ == "__main__":
        run(sys.argv[1], False, int(sys.argv[2]), log=lambda m: print(m, flush=True),
            preallocate=int(sys.argv[3]) or None)
    """
).format(CHUNK=CHUNK, N_CHUNKS=N_CHUNKS, SIZE=SIZE)


@pytest.mark.parametrize("preallocate", [None, N_CHUNKS * CHUNK], ids=["chunked", "preallocated"])
def test_sigkill_mid_write_then_resume_equals_uninterrupted(tmp_path, preallocate):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    ns: dict = {"__name__": "writer"}
    exec(compile(WRITER, str(script), "exec"), ns)
    ref = tmp_path / "ref.h5"
    ns["run"](ref, False)  # uninterrupted, in this process (chunked layout)
    out = tmp_path / "set.h5"
    p = subprocess.Popen([sys.executable, str(script), str(out), "3", str(preallocate or 0)], stdout=subprocess.PIPE,
                         text=True)
    try:
        for line in p.stdout:
            if line.startswith("mid-write"):
                break
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(DataError, match="not finished .*resume=True"):
        SyntheticSet.open(out)
    with h5py.File(partial_path(out)) as f:
        assert f.attrs["committed"] == 3 * CHUNK
        if preallocate is None:
            assert f["images"].chunks is not None and f["images"].shape[0] == 4 * CHUNK  # a torn chunk on disk
        else:
            assert f["images"].chunks is None and f["images"].shape[0] == preallocate
            assert (f["images"][3 * CHUNK : 4 * CHUNK] == 255).all()  # the torn chunk, past `committed`
    with pytest.raises(DataError, match="unfinished set exists"):
        SyntheticSet.create(out, class_names=CLASSES, image_size=SIZE)
    log: list[str] = []
    ns["run"](out, True, log=log.append, preallocate=preallocate)
    assert log[0] == f"committed {4 * CHUNK}"  # resumed after the last committed chunk
    a, b = SyntheticSet.open(ref), SyntheticSet.open(out)
    assert len(a) == len(b) == N_CHUNKS * CHUNK
    assert np.array_equal(a.images(), b.images()) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.seeds, b.seeds) and np.array_equal(a.scores, b.scores)
    assert not partial_path(out).exists()
    with pytest.raises(DataError, match="force=True"):
        SyntheticSet.create(out, class_names=CLASSES, image_size=SIZE)


def _finished(tmp_path, name="s.h5"):
    w = SyntheticSet.create(tmp_path / name, class_names=CLASSES, image_size=SIZE)
    w.append(np.zeros((4, SIZE, SIZE, 3), np.uint8), [0, 1, 2, 0])
    w.close()
    return tmp_path / name


def test_schema_version_and_shape_errors(tmp_path):
    p = _finished(tmp_path)
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DataError) as e:
        SyntheticSet.open(p)
    assert "\n" not in str(e.value) and "s.h5" in str(e.value) and "schema_version is 99, expected 1" in str(e.value)
    q = _finished(tmp_path, "q.h5")
    with h5py.File(q, "a") as f:
        del f["images"]
        f.create_dataset("images", data=np.zeros((4, SIZE, SIZE), np.uint8))
    with pytest.raises(DataError, match=r"q.h5: dataset 'images' must be uint8 N×S×S×3, got \(4, 8, 8\)"):
        SyntheticSet.open(q)
    w = SyntheticSet.create(tmp_path / "r.h5", class_names=CLASSES, image_size=SIZE)
    with pytest.raises(Exception, match=r"expected uint8 N×8×8×3"):
        w.append(np.zeros((2, 4, 4, 3), np.uint8), [0, 1])
    with pytest.raises(DataError, match=r"values must be in 0..2"):
        w.append(np.zeros((2, SIZE, SIZE, 3), np.uint8), [0, 5])
    w.abort()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="junk.h5: not an HDF5 file"):
        SyntheticSet.open(tmp_path / "junk.h5")
