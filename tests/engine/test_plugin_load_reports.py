"""Unknown AUGENGINE_LOAD_PLUGINS names and misspelt hooks are reported, not ignored (issue 15)."""

import types
from importlib import metadata

import pytest

import augengine as ae
from augengine import registry
from augengine.errors import PluginLoadError


class _Gen(ae.Generator):
    """A test generator."""

    name = "typo-gen"


def test_unknown_name_in_load_plugins_is_reported(monkeypatch):
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "example, no_such_plugin,acgn")
    ae.reset_plugins()
    with pytest.warns(registry.PluginWarning) as w:
        infos = ae.list_plugins()
    msg = str(w[0].message)
    assert "'acgn'" in msg and "'no_such_plugin'" in msg and "known entry points:" in msg
    assert "acgan" in msg and "example" in msg and "\n" not in msg
    broken = {i.entry_point: i.error for i in infos if i.error}
    assert set(broken) == {"acgn", "no_such_plugin"}
    # what is known still loads
    assert "example-noise" in ae.list_generators()


def test_known_names_and_empty_list_warn_nothing(monkeypatch, recwarn):
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "example")
    ae.reset_plugins()
    assert all(i.error is None for i in ae.list_plugins())
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "")
    ae.reset_plugins()
    assert ae.list_plugins() == []
    assert not [w for w in recwarn if issubclass(w.category, registry.PluginWarning)]


def _typo_module():
    mod = types.ModuleType("typo_plugin")

    def register_generator(register):  # misspelt: the hook is register_generators
        register(_Gen)

    mod.register_generator = ae.hookimpl(register_generator)
    return mod


def test_misspelt_hook_via_register_plugin_is_an_error_naming_it():
    with pytest.raises(PluginLoadError) as e:
        ae.register_plugin(_typo_module(), name="typo_plugin")
    msg = str(e.value)
    assert "'register_generator'" in msg and "did you mean" in msg and "'register_generators'" in msg
    assert "known hooks: register_classifiers, register_evaluators, register_filters, register_generators" in msg
    assert not ae.get_plugin_manager().has_plugin("typo_plugin")
    # the engine keeps working and a later, valid registration passes check_pending
    assert "example-noise" in ae.list_generators()
    ae.register_plugin(types.SimpleNamespace(register_generators=ae.hookimpl(lambda register: register(_Gen))),
                       name="fixed_plugin")
    assert "typo-gen" in ae.list_generators()


def test_misspelt_hook_of_an_entry_point_is_listed_as_broken(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "typo_plugin_mod", _typo_module())
    real = metadata.entry_points

    def fake(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "augengine":
            eps.append(metadata.EntryPoint("typo", "typo_plugin_mod", "augengine"))
        return eps

    monkeypatch.setattr(registry.metadata, "entry_points", fake)
    ae.reset_plugins()
    broken = [i for i in ae.list_plugins() if i.error]
    assert len(broken) == 1 and broken[0].entry_point == "typo"
    assert "'register_generator'" in broken[0].error and "register_generators" in broken[0].error
    assert "typo-gen" not in ae.list_generators() and "example-noise" in ae.list_generators()
    with pytest.raises(PluginLoadError, match="register_generator"):
        ae.create_generator("typo")
