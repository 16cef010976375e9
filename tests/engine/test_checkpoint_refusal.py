"""A refused checkpoint names the file and never suggests unpickling it (issue 15)."""

import collections

import pytest
import torch

import augengine as ae
from augengine.errors import DataError
from augengine.runs import load_checkpoint


def _pickled_object_file(path):
    # an OrderedDict subclass defined here: a weights-only load refuses its global
    torch.save({"state": _Evil(a=torch.ones(2))}, path)
    return path


class _Evil(collections.OrderedDict):
    pass


def _assert_safe_message(msg: str, path):
    assert str(path) in msg and "\n" not in msg
    assert "weights_only=False" not in msg and "will likely succeed" not in msg and "trust" not in msg.lower()


def test_object_checkpoint_is_refused_as_not_plain_tensor(tmp_path):
    p = _pickled_object_file(tmp_path / "evil.pt")
    with pytest.raises(DataError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    _assert_safe_message(msg, p)
    assert "not a plain-tensor checkpoint" in msg and "_Evil" in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # torch's hint is not chained either


@pytest.mark.parametrize("content", [b"", b"not a zip at all"])
def test_damaged_file_is_named(tmp_path, content):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_checkpoint(p)
    _assert_safe_message(str(e.value), p)
    assert "not a readable torch checkpoint" in str(e.value)


def test_truncated_checkpoint_is_named(tmp_path):
    p = tmp_path / "cut.pt"
    ae.save_checkpoint({"w": torch.ones(10)}, p)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DataError) as e:
        load_checkpoint(p)
    _assert_safe_message(str(e.value), p)


def test_plain_checkpoint_still_loads(tmp_path):
    p = ae.save_checkpoint({"w": torch.arange(3), "meta": {"n": 1, "names": ["a"]}}, tmp_path / "ok.pt")
    out = load_checkpoint(p)
    assert out["meta"] == {"n": 1, "names": ["a"]} and out["w"].tolist() == [0, 1, 2]


def test_resnet_pretrained_file_with_objects_is_refused(tmp_path):
    p = _pickled_object_file(tmp_path / "weights.pt")
    from augengine_resnet.classifier import load_pretrained
    from timm import create_model

    with pytest.raises(DataError) as e:
        load_pretrained(create_model("resnet18", pretrained=False, num_classes=2), p)
    _assert_safe_message(str(e.value), p)
