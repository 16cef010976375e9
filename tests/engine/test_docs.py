"""Every hook spec and every public factory has a docstring and is documented in the README."""

import inspect
from pathlib import Path

import pytest

import augengine as ae
from augengine import hookspecs, registry

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
HOOKS = [n for n, f in vars(hookspecs).items() if n.startswith("register_") and inspect.isfunction(f)]
FACTORIES = [n for n in registry.__all__ if n.startswith(("create_", "list_")) or n == "get_plugin_manager"]


def test_there_is_one_hook_per_kind():
    assert sorted(HOOKS) == ["register_classifiers", "register_evaluators", "register_filters", "register_generators"]


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_documented(name):
    fn = getattr(hookspecs, name)
    assert inspect.getdoc(fn) and len(inspect.getdoc(fn)) > 80, f"hook {name} needs a reference docstring"
    assert name in README, f"hook {name} is not documented in README.md"


@pytest.mark.parametrize("name", FACTORIES)
def test_factory_documented(name):
    fn = getattr(ae, name)
    assert inspect.getdoc(fn), f"{name} has no docstring"
    assert name in README, f"{name} is not documented in README.md"
