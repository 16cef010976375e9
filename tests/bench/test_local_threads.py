"""--jobs N shares the cores out among the worker processes instead of oversubscribing them."""

import os

import torch

from augengine.bench.executors.local import _share_cores, _threads_per_job


def test_threads_per_job_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [_threads_per_job(j) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_share_cores_sets_the_workers_intra_op_threads():
    before = torch.get_num_threads()
    try:
        _share_cores(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
