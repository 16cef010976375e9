"""Determinism and resume at two intra-op threads (the rest of the suite runs at one; issue 15)."""

import numpy as np
import pytest
import torch

import augengine as ae
from augengine.testing import tiny_imageset

CFG = {"arch": "test_resnet", "image_size": 16, "epochs": 3, "batch_size": 8, "lr": 3e-3, "precision": "fp32",
       "augment": "light", "early_stopping_patience": None}


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _sets():
    return tiny_imageset(n_per_class=8, size=16, seed=0), tiny_imageset(n_per_class=4, size=16, seed=1)


def _weights(run):
    return ae.load_checkpoint(run / "train_state.pt")["model"]


class _Crash(Exception):
    pass


def test_fit_and_resume_are_bit_identical_at_two_threads(tmp_path, monkeypatch, two_threads):
    import augengine_resnet.classifier as mod

    assert torch.get_num_threads() == 2
    train, val = _sets()
    fit = lambda run, **kw: ae.create_classifier("resnet", **CFG).fit(  # noqa: E731
        train, val=val, run_dir=tmp_path / run, seed=3, progress=False, **kw)
    a, b = fit("a"), fit("b")
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), "two-thread fits differ"
    np.testing.assert_array_equal(a.predict_proba(val), b.predict_proba(val))

    # interrupted right after epoch 2's checkpoint, then resumed: equal to the uninterrupted run
    real_save = mod.save_checkpoint

    def save_then_crash(state, path):
        real_save(state, path)
        if isinstance(state, dict) and state.get("epoch") == 2:
            raise _Crash("simulated kill after epoch 2")

    with monkeypatch.context() as m:
        m.setattr(mod, "save_checkpoint", save_then_crash)
        with pytest.raises(_Crash):
            fit("cut")
    assert ae.load_checkpoint(tmp_path / "cut" / "train_state.pt")["epoch"] == 2
    resumed = fit("cut", resume=True)
    wc = _weights(tmp_path / "cut")
    assert all(torch.equal(wa[k], wc[k]) for k in wa), "resume at two threads differs from the uninterrupted fit"
    np.testing.assert_array_equal(resumed.predict_proba(val), a.predict_proba(val))
