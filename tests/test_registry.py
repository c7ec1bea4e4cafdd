"""Registry behaviour and entry-point plugin discovery."""
from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap
from pathlib import Path
import warnings

import pytest

from lpzero_fw import registry as reg
from lpzero_fw.registry import LPZeroError, Registry, RegistryError


def test_register_get_names_iteration():
    r = Registry("widget")
    r.register("b", 2, description="two")

    @r.register("a", description="the a")
    def a():
        """unused docstring"""

    assert r.get("b") == 2
    assert r.get("a") is a
    assert r.names() == ["a", "b"] == list(r)
    assert len(r) == 2 and "a" in r and "zzz" not in r
    assert r.entry("a").description == "the a"


def test_description_defaults_to_first_docstring_line():
    r = Registry("widget")

    class Thing:
        """Does a thing.

        More text."""

    r.register("thing", Thing)
    assert r.entry("thing").description == "Does a thing."


def test_unknown_name_lists_choices_and_close_matches():
    r = Registry("widget")
    r.register("square", 1)
    r.register("sqrt", 2)
    with pytest.raises(RegistryError) as info:
        r.get("sqare")
    message = str(info.value)
    assert "\n" not in message
    assert "'sqare'" in message and "square, sqrt" in message and "Did you mean square" in message
    assert isinstance(info.value, LPZeroError)


def test_duplicate_needs_override():
    r = Registry("widget")
    r.register("x", 1)
    with pytest.raises(RegistryError, match="already registered"):
        r.register("x", 2)
    r.register("x", 2, override=True)
    assert r.get("x") == 2


class _FakeEntryPoint:
    def __init__(self, name, value, dist_name="fake-plugin", version="1.2.3"):
        self.name, self.value = name, value
        module, _, attr = value.partition(":")
        self.module, self.attr = module, attr or None
        self.dist = type("Dist", (), {"name": dist_name, "version": version})()

    def load(self):
        import importlib

        obj = importlib.import_module(self.module)
        return getattr(obj, self.attr) if self.attr else obj


def test_entry_point_plugins_register_and_broken_ones_warn(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_lpzero_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from lpzero_fw.registry import UNARY_OPS

        def setup():
            UNARY_OPS.register("fake_plugin.cube", object(), description="x ** 3 (test plugin)")
    '''))
    (tmp_path / "broken_lpzero_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [_FakeEntryPoint("fake", "fake_lpzero_plugin:setup"), _FakeEntryPoint("broken", "broken_lpzero_plugin")]
    monkeypatch.setattr(md, "entry_points", lambda group=None: eps if group == reg.ENTRY_POINT_GROUP else [])
    loader = reg._PluginLoader()
    monkeypatch.setattr(reg, "PLUGINS", loader)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = reg.UNARY_OPS.names()
    assert "fake_plugin.cube" in names
    assert reg.UNARY_OPS.entry("fake_plugin.cube").origin == "fake-plugin 1.2.3"
    assert any("broken" in str(w.message) and "boom" in str(w.message) for w in caught)
    assert "square" in names  # built-ins still load
    reg.UNARY_OPS._entries.pop("fake_plugin.cube")
    sys.modules.pop("fake_lpzero_plugin", None)


def test_local_plugin_modules_are_imported(tmp_path, monkeypatch):
    (tmp_path / "my_local_rules.py").write_text(
        "from lpzero_fw.registry import BASELINES\nBASELINES.register('local.zero', object(), description='zero')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg.import_modules(["my_local_rules"])
    assert reg.BASELINES.entry("local.zero").origin == "local my_local_rules"
    reg.BASELINES._entries.pop("local.zero")
    with pytest.raises(LPZeroError, match="no_such_module"):
        reg.import_modules(["no_such_module"])


def test_every_registry_has_builtins():
    for kind, r in reg.ALL_REGISTRIES.items():
        assert len(r) > 0, kind


def test_registration_is_a_class_s_one_identity():
    r = Registry("widget")

    @r.register("w.one", description="the first")
    class One:
        """Docstring line."""

    @r.register("w.two")
    class Two:
        """Second widget."""

    assert (One.name, One.description) == ("w.one", "the first") == (r.entry("w.one").name, r.entry("w.one").description)
    assert (Two.name, Two.description) == ("w.two", "Second widget.")
    with pytest.raises(RegistryError, match="already has the name 'w.one'"):
        r.register("w.alias", One)  # one class, two names: refused

    class Spelled:
        name = "spelled.differently"

    with pytest.raises(RegistryError, match="drop the class attribute"):
        r.register("w.spelled", Spelled)
    assert "w.spelled" not in r and "w.alias" not in r

    class Subclass(One):
        pass

    r.register("w.sub", Subclass)  # a subclass gets its own identity; the parent keeps its own
    assert (Subclass.name, One.name) == ("w.sub", "w.one")


def test_every_registered_class_carries_its_registered_name():
    for kind, registry in reg.ALL_REGISTRIES.items():
        for entry in registry.entries():
            if isinstance(entry.obj, type):
                assert entry.obj.name == entry.name and entry.obj.description == entry.description, (kind, entry)


def test_a_registered_strategy_gets_a_typed_schema_with_its_constructor_defaults(tmp_path):
    """store_schemas: options = keyword-only constructor parameters, typed, one default each."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError

    base = reg.STRATEGIES.get("random")
    reg.STRATEGIES.register("local.fast", type("Fast", (base,), {"__doc__": "random, renamed (test)"}))
    try:
        reg.store_schemas()
        (tmp_path / "strategy").mkdir()
        (tmp_path / "config.yaml").write_text("defaults:\n  - strategy: fast\n  - _self_\n")
        (tmp_path / "strategy" / "fast.yaml").write_text(
            "defaults:\n  - /schema/strategy/local.fast@_here_\n  - _self_\nname: local.fast\n")
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
            cfg = compose("config", overrides=["strategy.population=5"])
            assert dict(cfg.strategy) == {"name": "local.fast", "iterations": 1000, "population": 5}
            with pytest.raises((ConfigCompositionException, ValidationError)):
                compose("config", overrides=["strategy.population=many"])
    finally:
        reg.STRATEGIES._entries.pop("local.fast", None)


def test_built_in_strategy_and_logger_files_restate_no_default():
    """One default per key: the YAML of a schema'd group names its schema and nothing else."""
    import yaml

    conf = Path(reg.__file__).resolve().parent / "conf"
    for group in reg.SCHEMA_GROUPS:
        for path in sorted((conf / group).glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            if path.stem in reg.SCHEMA_GROUPS[group]:
                assert set(data) <= {"defaults", "name"}, f"{path.name} restates {set(data) - {'defaults', 'name'}}"


@pytest.mark.parametrize("resolve", [False, True])
def test_schemas_are_stored_whichever_path_names_the_config_dir(resolve):
    """The package's conf dir or the folder it links to in a checkout: both compose."""
    from hydra import compose, initialize_config_dir

    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().repo.pop("schema", None)  # as in a fresh process: Hydra must store them
    conf = Path(reg.__file__).parent / "conf"
    with initialize_config_dir(config_dir=str(conf.resolve() if resolve else conf), version_base="1.3"):
        cfg = compose("config")
    assert cfg.strategy.iterations == 1000 and cfg.logger.project == "lpzero_fw"
