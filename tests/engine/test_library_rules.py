"""What an embedding project relies on: the run-directory rule, provenance of the training
split, read-only images, untouched host RNG state, and the declared plugin API."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import augengine as ae
from augengine.cli import main
from augengine.rng import global_rng_state, isolated_global_rng
from augengine.testing import StubClassifier, tiny_imageset

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- the declared plugin API -----------------------------------------------------------------
def test_builtin_plugins_import_only_the_declared_api():
    allowed = {"augengine", "augengine.plugin_api", "augengine.testing"}
    bad = []
    for path in sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "tests/example_plugin").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", line)
            module = m and (m.group(1) or m.group(2))
            if module and module.split(".")[0] == "augengine" and module not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "plugins import undeclared engine modules:\n" + "\n".join(bad)


def test_runs_module_does_not_import_the_registry():
    """runs → registry → generator/evaluator → runs was a circle; load_run lives with the registry."""
    import ast

    tree = ast.parse((ROOT / "augengine/runs.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    engine = {m for m in imported if m and m.startswith("augengine")}
    assert engine <= {"augengine.errors"}, engine
    assert ae.load_run.__module__ == "augengine.registry"
    import augengine.plugin_api as api

    for name in api.__all__:
        assert hasattr(api, name), name


# -- the run-directory rule, from the command line -------------------------------------------
def test_cli_fit_used_run_dir_needs_resume_or_force(tmp_path):
    out = tmp_path / "run"
    r = run("fit", "example-noise", "--out", out, "-o", "image_size=16")
    assert r.exit_code == 0, r.output
    ckpt = (out / "checkpoint.pt").read_bytes()
    (out / "stale.png").write_bytes(b"old grid")
    r = run("fit", "example-noise", "--out", out, "-o", "image_size=16")
    lines = [x for x in r.output.splitlines() if x.strip() and not x.startswith("fit ")]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "--resume" in lines[0] and "--force" in lines[0] and "resume=True" not in lines[0], lines[0]
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "stale.png").exists()
    r = run("fit", "example-noise", "--out", out, "-o", "image_size=16", "-o", "shrink=0.5", "--resume")
    assert r.exit_code == 2 and "'shrink'" in r.output and "cannot resume" in r.output, r.output
    r = run("fit", "example-noise", "--out", out, "-o", "image_size=16", "--resume", "--seed", "3")
    assert r.exit_code == 2 and "seed" in r.output and "cannot resume" in r.output, r.output
    r = run("fit", "example-noise", "--out", out, "-o", "image_size=16", "--force")
    assert r.exit_code == 0, r.output
    assert not (out / "stale.png").exists()
    rec = json.loads((out / "run.json").read_text())
    assert rec["seed"] == 0 and "status" not in rec and rec["split_sha256"]


def test_cli_failed_fit_leaves_no_folder(tmp_path):
    out = tmp_path / "a" / "run"
    r = run("fit", "example-noise", "--out", out, "--data", tmp_path / "missing-data")
    assert r.exit_code == 2 and not (tmp_path / "a").exists(), r.output


# -- split provenance, however a classifier was trained --------------------------------------
def test_python_api_classifier_records_split_and_evaluate_refuses_another(tmp_path):
    table = ae.load_dataset("demo")
    s0 = ae.split(table, seed=0, size=16)
    s1 = ae.split(table, seed=1, size=16)
    assert s0.train.split_sha256 == s0.sha256() and s0.test.split_sha256 == s0.sha256()
    assert s0.test.subset([0, 1]).split_sha256 == s0.sha256()
    clf = ae.create_classifier("resnet", arch="test_resnet", image_size=16, epochs=2, batch_size=16, lr=1e-3,
                               precision="fp32")
    small = s0.train.subset(np.arange(0, len(s0.train), 8))
    clf.fit(small, run_dir=tmp_path / "clf", seed=0, progress=False)  # no CLI, no bench
    rec = json.loads((tmp_path / "clf" / "run.json").read_text())
    assert rec["split_sha256"] == s0.sha256() and rec["seed"] == 0
    loaded = ae.load_run(tmp_path / "clf", kind="classifier")
    ev = ae.create_evaluator("benefit", n_boot=100)
    with pytest.raises(ae.DataError, match="another split"):
        ev.evaluate(loaded, s1.test.subset(np.arange(10)))
    ev.evaluate(loaded, s0.test.subset(np.arange(10)))  # its own split's test images are fine


# -- images and RNG ---------------------------------------------------------------------------
def test_imageset_images_are_read_only():
    s = tiny_imageset(n_per_class=2, size=8)
    a = s.images()
    with pytest.raises(ValueError):
        a[0, 0, 0, 0] = 7
    assert s.images()[0, 0, 0, 0] == a[0, 0, 0, 0]
    arr = np.zeros((2, 8, 8, 3), np.uint8)
    own = ae.ArrayImageSet(arr, [0, 0], ["A"])
    own.images()
    arr[0, 0, 0, 0] = 1  # the caller's own array stays writable
    x, _ = own[0]
    x[0, 0, 0] = 9  # items are copies
    assert own.images()[0, 0, 0, 0] != 9


def test_isolated_global_rng_restores_and_seeds():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = global_rng_state()
    with isolated_global_rng(5):
        a = (random.random(), np.random.rand(), torch.rand(1).item())
    assert global_rng_state() == before
    with pytest.raises(KeyboardInterrupt), isolated_global_rng(5):
        b = (random.random(), np.random.rand(), torch.rand(1).item())
        raise KeyboardInterrupt
    assert a == b and global_rng_state() == before


def test_evaluate_leaves_host_rng_state_unchanged():
    test = tiny_imageset(n_per_class=6, size=8, seed=2)
    torch.manual_seed(3)
    before = global_rng_state()
    ae.create_evaluator("benefit", n_boot=100).evaluate(StubClassifier(test.class_names, image_size=8), test)
    assert global_rng_state() == before


# -- data split --out ---------------------------------------------------------------------------
def test_split_library_helper_names_the_argument(tmp_path):
    from augengine.rundir import check_output_file

    p = tmp_path / "s.json"
    p.write_text("{}")
    with pytest.raises(ae.DataError, match="force=True"):
        check_output_file(p, what="split file")
    assert check_output_file(p, force=True, what="split file") == p


def test_isolated_global_rng_keeps_the_callers_pending_cuda_seed():
    """torch.manual_seed queues a CUDA seed until CUDA starts; a fit's seed must not replace the
    caller's (on a GPU machine the caller's first CUDA random numbers would change)."""
    import torch.cuda as cuda

    if cuda.is_initialized():
        pytest.skip("CUDA already initialised: states are saved and restored directly")
    torch.manual_seed(11)
    before = (dict(vars(cuda._lazy_seed_tracker)), list(cuda._queued_calls))
    with isolated_global_rng(5):
        torch.manual_seed(99)  # what acgan/cyclegan/resnet do inside fit
    assert (dict(vars(cuda._lazy_seed_tracker)), list(cuda._queued_calls)) == before


def test_library_names_arguments_cli_names_flags(tmp_path):
    gen = ae.create_generator("example-noise", image_size=8).fit(tiny_imageset(n_per_class=2, size=8))
    with pytest.raises(ae.DataError, match="^per_class: class 'XYZ'"):
        gen.generate(out=tmp_path / "a.h5", per_class={"XYZ": 2}, progress=False)
    gen.save(tmp_path / "run")
    r = run("generate", "example-noise", "--run", tmp_path / "run", "--per-class", "XYZ=2", "--out", tmp_path / "b.h5")
    assert r.exit_code == 2 and "error: --per-class: class 'XYZ'" in r.output, r.output
    r = run("generate", "example-noise", "--run", tmp_path / "run", "--n", "0", "--out", tmp_path / "b.h5")
    assert r.exit_code == 2 and "error: --n: expected a positive number" in r.output, r.output


def test_device_and_plugin_input_errors_name_arguments_in_library_and_flags_on_cli(tmp_path):
    from augengine.runtime import select_device

    with pytest.raises(ae.ConfigError, match=r"^device='tpu': expected 'auto', 'cpu' or 'cuda'"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ae.ConfigError, match=r"^device='cuda': no CUDA device .*\(expected 'cpu' or 'auto'\)"):
            select_device("cuda")
        r = run("fit", "resnet", "--device", "cuda", "--out", tmp_path / "r")
        assert r.exit_code == 2 and "error: --device 'cuda': no CUDA device is available here (use --device cpu or auto)" in r.output, r.output
    flt = ae.create_filter("path-rank")
    with pytest.raises(ae.DataError, match=r"target_class='MEL'") as e:
        flt.select_dataset(tiny_imageset(n_per_class=2, size=8), classifier=None, target_class=None)
    assert "--" not in str(e.value)
    q = ae.create_evaluator("set-quality")
    with pytest.raises(ae.DataError, match=r"classifier=RUN_DIR") as e:
        q.evaluate(None, tiny_imageset(n_per_class=2, size=8))
    assert "--" not in str(e.value)
