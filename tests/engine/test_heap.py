"""``augengine.runtime.retained_heap``: fits and generation keep the memory they free in the heap
(glibc; set once for the process), hand the free pages back after each block, and leave the
user's own malloc settings alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from augengine import runtime
from augengine.errors import ConfigError
from augengine.testing import tiny_imageset

_USER_VARS = ("AUGENGINE_CPU_HEAP", "GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
              "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(runtime, "_glibc", lambda: fake)
    monkeypatch.setattr(runtime, "_heap_retained", False)
    for var in _USER_VARS:
        monkeypatch.delenv(var, raising=False)
    return fake


def test_settings_once_then_free_pages_returned_after_each_outermost_block(libc, monkeypatch):
    monkeypatch.setattr(runtime, "_heap_retained", False)
    with runtime.retained_heap():
        assert libc.calls == [("mallopt", -4, 0), ("mallopt", -1, 2**31 - 1)]  # M_MMAP_MAX, M_TRIM_THRESHOLD
        with runtime.retained_heap():
            pass
        assert len(libc.calls) == 2  # a nested block shares the outer one
    assert libc.calls[2:] == [("trim", 0)]
    libc.calls.clear()
    with pytest.raises(KeyboardInterrupt):
        with runtime.retained_heap():
            raise KeyboardInterrupt
    assert libc.calls == [("trim", 0)] and runtime._heap_depth == 0  # set once: only the trim
    libc.calls.clear()
    with runtime.retained_heap(False):
        assert libc.calls == []


@pytest.mark.parametrize("var, value", [("AUGENGINE_CPU_HEAP", "system"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0"),
                                        ("MALLOC_TRIM_THRESHOLD_", "0")])
def test_the_users_own_malloc_settings_are_left_alone(libc, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with runtime.retained_heap():
        pass
    assert libc.calls == []


def test_unknown_setting_is_an_error_naming_the_variable(libc, monkeypatch):
    monkeypatch.setenv("AUGENGINE_CPU_HEAP", "keep")
    with pytest.raises(ConfigError, match=r"AUGENGINE_CPU_HEAP must be 'retain'.*'keep'"):
        with runtime.retained_heap():
            pass


def test_fits_and_generation_run_with_the_heap_retained(libc, tmp_path, spy_generator):
    Spy = spy_generator(lambda: runtime._heap_depth)
    gen = Spy().fit(tiny_imageset(n_per_class=2, size=8, seed=0), seed=0)
    gen.generate(4, out=tmp_path / "set.h5", seed=0, progress=False)
    assert {what for what, _ in Spy.seen} == {"fit", "sample"}
    assert all(depth == 1 for _, depth in Spy.seen), Spy.seen
    assert runtime._heap_depth == 0 and libc.calls[-1] == ("trim", 0)


@pytest.mark.skipif(runtime._glibc() is None, reason="glibc only")
def test_freed_memory_is_reused_without_new_page_faults():
    # the real glibc, in a process of its own: 64 MiB tensors, filled then freed, eight times
    script = textwrap.dedent("""
        import resource, torch
        from augengine.runtime import retained_heap
        def faults():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(8):
                torch.ones(16 * 2**20)
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        plain = faults()
        with retained_heap():
            kept = faults()
        print(plain, kept, faults())
    """)
    env = {k: v for k, v in os.environ.items() if k not in _USER_VARS}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    plain, kept, after = map(int, out.stdout.split())
    if plain < 8 * 10_000:  # 16,384 pages per tensor, faulted anew each time, on 4 KiB pages
        pytest.skip(f"fresh mappings cost {plain} faults for 8 × 64 MiB here (huge pages?): nothing to compare")
    assert kept < plain / 4, out.stdout
    assert after < plain / 4, out.stdout  # still kept after the block (its free pages were returned once)


def test_release_free_memory_collects_and_trims(libc):
    runtime.release_free_memory()
    assert libc.calls == [("trim", 0)]
