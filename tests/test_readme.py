"""The README's "Use from Python" script runs (at tiny size), so the documented API cannot rot."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_script() -> str:
    text = README.read_text()
    section = text[text.index("## Use from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def shrink(code: str) -> str:
    """Same calls, tiny numbers: a few GAN steps, one epoch, slim ACGAN widths."""
    code = code.replace("iterations=300, batch_size=32",
                        "iterations=2, batch_size=8, g_channels=[32, 16], d_channels=[8, 8, 16, 16, 32, 32]")
    code = code.replace("generate(500,", "generate(320,")  # amount=0.25 of 1,205 real = 301
    code = code.replace("epochs=10", "epochs=1, batch_size=64")
    return code


@pytest.mark.slow
def test_use_from_python_script_runs(tmp_path, monkeypatch, capsys):
    code = shrink(readme_script())
    assert code != readme_script(), "the README script changed: update shrink()"
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "torch.uint8" in out and "McNemar" in out
    assert (tmp_path / "runs" / "acgan.h5").exists() and (tmp_path / "runs" / "acgan" / "run.json").exists()
