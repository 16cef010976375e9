"""Bundled datasets: the built-in demo set (a HAM10000 subset, CC BY-NC-SA 4.0).

``augengine.load_dataset("demo")`` loads it; :func:`describe_demo` returns its description
(scikit-learn style), and ``python -m augengine.datasets.build_demo HAM_PATH`` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "describe_demo"]

DATA_DIR = Path(__file__).resolve().parent / "data"


def describe_demo() -> str:
    """The demo set's description (``DESCR.rst``), including its license and attribution."""
    return (DATA_DIR / "DESCR.rst").read_text(encoding="utf-8")
