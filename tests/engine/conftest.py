"""Engine tests start from a freshly discovered plugin registry (and leave one behind)."""

import numpy as np
import pytest

import augengine as ae


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.delenv("AUGENGINE_LOAD_PLUGINS", raising=False)
    ae.reset_plugins()
    yield
    ae.reset_plugins()


@pytest.fixture
def spy_generator():
    """``make(probe)``: a generator class whose fit() and sample() append ``(where, probe())`` to
    its ``seen`` list — what the engine runs them under (cuDNN's flags, the heap setting)."""

    def make(probe):
        class Spy(ae.Generator):
            name = "spy"
            mode = "noise"
            seen: list = []

            class Config(ae.PluginConfig):
                deterministic: bool = False

            def fit(self, train, *, val=None, run_dir=None, resume=False, seed=0, progress=True, **inputs):
                Spy.seen.append(("fit", probe()))
                self.class_names, self.train_counts = list(train.class_names), train.class_counts()
                return self

            @property
            def image_size(self) -> int:
                return 8

            def sample(self, labels, seeds):
                Spy.seen.append(("sample", probe()))
                return np.zeros((len(labels), 8, 8, 3), np.uint8)

            def checkpoint_sha256(self) -> str:
                return "0" * 64

        return Spy

    return make
