"""Plugin discovery, AUGENGINE_LOAD_PLUGINS, broken and conflicting plugins, factories."""

import types
from importlib import metadata

import pytest

import augengine as ae
from augengine import registry
from augengine.errors import ConfigError, PluginLoadError, PluginNotFoundError


def _module(name, **hooks):
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, ae.hookimpl(fn))
    return mod


class _Gen(ae.Generator):
    """A test generator."""

    name = "dup-gen"


class _Gen2(ae.Generator):
    """Another test generator with the same name."""

    name = "dup-gen"


def test_example_plugin_is_discovered_with_package_and_version():
    info = next(i for i in ae.list_plugins("generator") if i.name == "example-noise")
    assert info.package == "augengine-example-plugin" and info.version == "0.1.0" and info.error is None
    assert "example-noise" in ae.list_generators("example-*")
    assert ae.list_generators("zzz*") == []


def test_load_plugins_env_limits_what_loads(monkeypatch):
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "")
    ae.reset_plugins()
    assert ae.list_plugins() == []
    monkeypatch.setenv("AUGENGINE_LOAD_PLUGINS", "example")
    ae.reset_plugins()
    assert {i.entry_point for i in ae.list_plugins()} == {"example"}


def test_unknown_name_lists_known_and_closest():
    with pytest.raises(PluginNotFoundError) as e:
        ae.create_generator("example-nois")
    msg = str(e.value)
    assert "example-noise" in msg and "closest match: 'example-noise'" in msg and "\n" not in msg


def test_kind_prefixed_names():
    assert registry.resolve_name("generator:example-noise") == ("generator", "example-noise")
    with pytest.raises(PluginNotFoundError, match="names a generator"):
        registry.resolve_name("generator:example-noise", "filter")


def test_config_errors_name_plugin_and_key():
    with pytest.raises(ConfigError, match="example-noise.*'no_such_key'"):
        ae.create_generator("example-noise", no_such_key=1)
    with pytest.raises(ConfigError, match="'image_size'.*'abc'"):
        ae.create_generator("example-noise", image_size="abc")


def test_register_hook_that_raises_is_listed_as_broken():
    def boom(register):
        raise RuntimeError("kaput")

    ae.register_plugin(_module("bad_plugin", register_generators=boom), name="bad_plugin")
    broken = [i for i in ae.list_plugins() if i.error]
    assert any("kaput" in i.error and i.package == "bad_plugin" for i in broken)
    # the rest keeps working
    assert "example-noise" in ae.list_generators()
    with pytest.raises(PluginLoadError, match="kaput"):
        ae.create_generator("bad_plugin")


def test_import_failure_is_listed_and_repeated(monkeypatch):
    real = metadata.entry_points

    def fake(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "augengine":
            eps.append(metadata.EntryPoint("ghost", "augengine_no_such_module_xyz", "augengine"))
        return eps

    monkeypatch.setattr(registry.metadata, "entry_points", fake)
    ae.reset_plugins()
    broken = [i for i in ae.list_plugins() if i.error]
    assert any(i.entry_point == "ghost" and "augengine_no_such_module_xyz" in i.error for i in broken)
    with pytest.raises(PluginLoadError, match="augengine_no_such_module_xyz"):
        ae.create_generator("ghost")
    with pytest.raises(PluginNotFoundError, match="broken plugin packages"):
        ae.create_generator("something-else")


def test_two_packages_same_name_is_an_error_naming_both():
    ae.register_plugin(_module("pkg_one", register_generators=lambda register: register(_Gen)), name="pkg_one")
    ae.register_plugin(_module("pkg_two", register_generators=lambda register: register(_Gen2)), name="pkg_two")
    with pytest.raises(PluginLoadError) as e:
        ae.create_generator("dup-gen")
    assert "pkg_one" in str(e.value) and "pkg_two" in str(e.value)
    assert any(i.error and "pkg_two" in i.error for i in ae.list_plugins("generator"))


def test_registering_a_non_plugin_class_is_reported():
    ae.register_plugin(_module("pkg_wrong", register_filters=lambda register: register(dict)), name="pkg_wrong")
    assert any(i.error and "augengine.Filter" in i.error for i in ae.list_plugins())


def test_get_plugin_manager_is_pluggy():
    pm = ae.get_plugin_manager()
    assert pm.project_name == "augengine" and pm.has_plugin("example")
