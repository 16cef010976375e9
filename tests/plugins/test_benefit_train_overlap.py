"""An external test set that contains training images is flagged (issue 15)."""

import numpy as np
import pytest

import augengine as ae
from augengine.testing import StubClassifier, tiny_imageset


@pytest.fixture(scope="module")
def sets():
    train = tiny_imageset(n_per_class=10, size=16, seed=0)
    fresh = tiny_imageset(n_per_class=6, size=16, seed=7)
    # 14 of 28: the first 14 training images plus 14 new ones, in another class-list order
    imgs = np.concatenate([train.images()[:14], fresh.images()[:14]])
    labels = np.concatenate([train.labels[:14], fresh.labels[:14]])
    mixed = ae.ArrayImageSet(imgs, labels, train.class_names)
    return train, fresh, mixed


def test_overlap_is_counted_and_in_the_verdict_line(sets):
    train, fresh, mixed = sets
    clf = StubClassifier(train.class_names, image_size=16)
    res = ae.create_evaluator("benefit", n_boot=100).evaluate(
        clf, fresh, baseline=StubClassifier(train.class_names, image_size=16), train=train,
        external={"clinic2": mixed})
    ext = res.metrics["sets"]["external:clinic2"]
    assert ext["train_overlap"]["n"] == 14 and ext["train_overlap"]["of"] == 28
    assert "decoded uint8" in ext["train_overlap"]["content_hash"]
    assert res.metrics["sets"]["test"]["train_overlap"]["n"] == 0
    line = next(v for v in res.verdicts if v.startswith("external:clinic2: "))
    assert "14 of 28 images of this set are training images" in line
    assert not any("training images" in v for v in res.verdicts if not v.startswith("external:"))
    assert "14 of 28 images of this set are training images" in res.tables["summary_external_clinic2"]


def test_overlap_without_a_baseline_is_its_own_line(sets):
    train, fresh, mixed = sets
    clf = StubClassifier(train.class_names, image_size=16)
    res = ae.create_evaluator("benefit", n_boot=100).evaluate(clf, None, train=train, external={"c": mixed})
    assert res.verdicts == ["external:c: WARNING: 14 of 28 images of this set are training images (identical "
                            "pixels): its metrics are inflated"]
    # no train given: nothing is claimed
    res = ae.create_evaluator("benefit", n_boot=100).evaluate(clf, None, external={"c": mixed})
    assert "train_overlap" not in res.metrics["sets"]["external:c"] and res.verdicts == []


def test_cli_flags_training_images_written_as_files(tmp_path):
    """Demo training images saved as PNG files in an external class-folder set are recognised."""
    from click.testing import CliRunner
    from PIL import Image

    from augengine.cli import main

    split = ae.split(ae.load_dataset("demo"), fractions=(0.8, 0.1, 0.1), group_by="lesion", seed=0)
    run = tmp_path / "clf"
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=1, batch_size=64, lr=1e-3,
                               precision="fp32", early_stopping_patience=None)
    clf.fit(split.train, run_dir=run, seed=0, progress=False)
    clf.save(run)
    rng = np.random.default_rng(0)
    train_px = split.train.images(64)
    for i in range(6):
        name = split.train.class_names[int(split.train.labels[i])]
        (tmp_path / "ext" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(train_px[i]).save(tmp_path / "ext" / name / f"copy{i}.png")
        (tmp_path / "ext" / "NV").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ext" / "NV" / f"new{i}.png")
    r = CliRunner().invoke(main, ["evaluate", "benefit", "--classifier", str(run), "--baseline", str(run),
                                  "--test-data", str(tmp_path / "ext"), "-o", "n_boot=100"])
    assert r.exit_code == 0, r.output
    assert "external:ext: " in r.output and "6 of 12 images of this set are training images" in r.output
