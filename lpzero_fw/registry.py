"""Named registries of components, filled by built-in modules and installed plugins.

Every component kind (search spaces, statistic inputs, operators, pruning rules,
strategies, baseline proxies, architecture spaces and strategies, tasks, loggers, data
sources) has one :class:`Registry`; a config group's ``name`` key is a registered name. Built-ins register with
``@REGISTRY.register("name")`` when their module is imported; the registry imports
those modules, and every ``lpzero_fw.plugins`` entry point, the first time it is read,
so importing ``lpzero_fw`` itself has no side effects.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as md
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

ENTRY_POINT_GROUP = "lpzero_fw.plugins"
CORE_ORIGIN = "core"


class LPZeroError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


class RegistryError(LPZeroError, KeyError):
    """Unknown or duplicate component name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    origin: str


class _PluginLoader:
    """Imports entry points once and remembers which plugin is registering."""

    def __init__(self) -> None:
        self.loaded = False
        self.origin = CORE_ORIGIN
        self.failed: dict[str, str] = {}

    @contextmanager
    def registering_as(self, origin: str):
        previous, self.origin = self.origin, origin
        try:
            yield
        finally:
            self.origin = previous

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            origin = f"{dist.name} {dist.version}" if dist is not None else ep.name
            try:
                with self.registering_as(origin):
                    loaded = ep.load()
                    if callable(loaded) and ep.attr:
                        loaded()
            except Exception as exc:  # a broken plugin must not break the others
                self.failed[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"lpzero_fw plugin {ep.name!r} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )


PLUGINS = _PluginLoader()


def import_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import local, uninstalled plugin modules (config key ``plugins``)."""
    for module in modules:
        try:
            with PLUGINS.registering_as(f"local {module}"):
                importlib.import_module(module)
        except ImportError as exc:
            raise LPZeroError(f"plugins: cannot import module {module!r}: {exc}") from exc


class Registry(Generic[T]):
    """A name → component map with decorator registration and helpful lookup errors."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._builtins_loaded = False

    # -- registration -------------------------------------------------------------
    def register(
        self, name: str, obj: T | None = None, *, description: str = "", override: bool = False
    ) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` return a decorator.

        A registered class gets ``name`` and ``description`` as class attributes
        (the description defaults to the class's first docstring line).
        """
        if obj is None:
            def decorator(target: T) -> T:
                self.register(name, target, description=description, override=override)
                return target

            return decorator
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries and not override and self._entries[name].obj is not obj:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered by {self._entries[name].origin}; "
                f"pass override=True to replace it"
            )
        if isinstance(obj, type):
            description = self._set_identity(name, obj, description)
        description = description or _first_doc_line(obj)
        self._entries[name] = Entry(name, obj, description, _origin_of(obj) or _loading_origin(obj))
        return obj

    def _set_identity(self, name: str, cls: type, description: str) -> str:
        """Give a registered class its one identity: ``cls.name`` and ``cls.description``.

        A class body that spells a different name (or a class registered under a
        second name) is refused, so the registered name is the only one in use.
        """
        declared = cls.__dict__.get("name")
        if declared is not None and declared != name:
            raise RegistryError(
                f"{self.kind} {name!r}: class {cls.__qualname__} already has the name {declared!r}; "
                "registration sets the name, so drop the class attribute (or register a subclass)"
            )
        own = cls.__dict__.get("description")
        description = description or (own if isinstance(own, str) else "") or _first_doc_line(cls)
        cls.name = name
        cls.description = description
        return description

    # -- lookup -------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            with PLUGINS.registering_as(CORE_ORIGIN):
                for module in self._builtins:
                    importlib.import_module(module)
        PLUGINS.load()

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: Any) -> str:
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}; choose one of: {', '.join(names)}.{hint}"

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


@functools.lru_cache(maxsize=1)
def _distributions_by_package() -> dict[str, list[str]]:
    return md.packages_distributions()


def _origin_of(obj: Any) -> str | None:
    """``core`` or ``<distribution> <version>`` of the package defining ``obj``.

    Decided by the object's module, not by who imported it: Hydra may import a
    plugin's package (for its configs) before lpzero_fw loads entry points.
    """
    module = getattr(obj, "__module__", None) or type(obj).__module__
    top = (module or "").split(".")[0]
    if top == "lpzero_fw":
        return CORE_ORIGIN
    for dist_name in _distributions_by_package().get(top, []):
        try:
            return f"{dist_name} {md.version(dist_name)}"
        except md.PackageNotFoundError:
            continue
    return None


def _loading_origin(obj: Any) -> str:
    """The origin of a component outside any installed distribution: the plugin being
    loaded, else ``local <module>`` (only lpzero_fw's own modules are ``core``)."""
    if PLUGINS.origin != CORE_ORIGIN:
        return PLUGINS.origin
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"local {(module or '?').split('.')[0]}"


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def build(registry: Registry[Callable[..., T]], cfg: Any, *args: Any, group: str | None = None, **runtime: Any) -> T:
    """``registry[cfg.name](*args, **runtime, **options)``: the one way a config group
    (``cfg``, its ``name`` a registered name, the other keys options) becomes a component.

    ``args`` / ``runtime``: what the run supplies (a benchmark path, the seed, ...). An
    option the component's constructor does not take is refused in one line naming the
    valid ones, instead of a ``TypeError`` deep in the run.
    """
    import inspect

    from omegaconf import DictConfig, OmegaConf

    params = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    name = params.pop("name")
    cls = registry.get(name)
    signature = inspect.signature(cls)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        positional = list(signature.parameters)[: len(args)]
        options = [p for p in signature.parameters if p not in runtime and p not in positional]
        unknown = sorted(set(params) - set(options))
        if unknown:
            where = group or registry.kind
            raise LPZeroError(f"{where}.{unknown[0]} is not an option of {where}={name}; "
                              f"options: {', '.join(options) or 'none'}")
    return cls(*args, **runtime, **params)


# One registry per component kind; built-in modules are imported on first lookup.
SEARCH_SPACES: Registry = Registry(
    "search space",
    (
        "lpzero_fw.search_spaces.gpt2",
        "lpzero_fw.search_spaces.flexibert",
        "lpzero_fw.search_spaces.transformer_xl",
        "lpzero_fw.search_spaces.hf_causal_lm",
        "lpzero_fw.search_spaces.llama",
    ),
)
STATS: Registry = Registry("statistic input", ("lpzero_fw.stats.extractors",))
UNARY_OPS: Registry = Registry("unary operator", ("lpzero_fw.ops.unary", "lpzero_fw.ops.reference"))
BINARY_OPS: Registry = Registry("binary operator", ("lpzero_fw.ops.binary", "lpzero_fw.ops.reference"))
LAYER_REDUCTIONS: Registry = Registry("layer reduction", ("lpzero_fw.ops.layers",))
RULES: Registry = Registry("pruning rule", ("lpzero_fw.rules.static", "lpzero_fw.rules.dynamic"))
STRATEGIES: Registry = Registry(
    "search strategy", ("lpzero_fw.strategies.evolution", "lpzero_fw.strategies.random")
)
BASELINES: Registry = Registry("baseline proxy", tuple(
    f"lpzero_fw.baselines.{family}"
    for family in ("params", "saliency", "activation", "activation_grad", "pruning_at_init", "reference")
))
ARCH_SPACES: Registry = Registry(
    "architecture space",
    ("lpzero_fw.nas.gpt2", "lpzero_fw.nas.transformer_xl", "lpzero_fw.nas.hf_causal_lm", "lpzero_fw.nas.llama"),
)
ARCH_STRATEGIES: Registry = Registry("architecture strategy", ("lpzero_fw.nas.strategies",))
TASKS: Registry = Registry(
    "task",
    (
        "lpzero_fw.tasks.search",
        "lpzero_fw.tasks.rank",
        "lpzero_fw.tasks.list_components",
        "lpzero_fw.tasks.report",
        "lpzero_fw.tasks.transfer",
        "lpzero_fw.tasks.nas",
        "lpzero_fw.tasks.build_benchmark",
    ),
)
LOGGERS: Registry = Registry("logger", ("lpzero_fw.tracking",))
DATA_SOURCES: Registry = Registry("data source", ("lpzero_fw.data.batches",))

ALL_REGISTRIES: dict[str, Registry] = {
    "search_spaces": SEARCH_SPACES,
    "stats": STATS,
    "unary_ops": UNARY_OPS,
    "binary_ops": BINARY_OPS,
    "layer_reductions": LAYER_REDUCTIONS,
    "rules": RULES,
    "strategies": STRATEGIES,
    "baselines": BASELINES,
    "arch_spaces": ARCH_SPACES,
    "arch_strategies": ARCH_STRATEGIES,
    "tasks": TASKS,
    "loggers": LOGGERS,
    "data_sources": DATA_SOURCES,
}


#: config group -> the registry whose components get a typed option schema in Hydra's
#: ConfigStore (``schema/<group>/<name>``); a group's YAML extends it (see store_schemas)
SCHEMA_GROUPS: dict[str, Registry] = {"strategy": STRATEGIES, "logger": LOGGERS}


def store_schemas() -> None:
    """Store each component's options as a dataclass in Hydra's ConfigStore.

    A component's options are its constructor's keyword-only parameters, typed by their
    annotations, with the constructor's defaults: the one default of every key. A config
    file extends the schema (``defaults: [/schema/strategy/evolution@_here_, _self_]``)
    and so gets typed validation (``strategy.iterations=abc`` is refused while composing)
    without restating a value. Called by Hydra before it composes (the search-path plugin
    ``hydra_plugins/lpzero_fw_schemas``), so the CLI, ``lpzero_fw.run`` and ``compose``
    all see it.
    """
    from hydra.core.config_store import ConfigStore

    from lpzero_fw.settings import RUN_SCHEMAS

    store = ConfigStore.instance()
    for group, registry in SCHEMA_GROUPS.items():
        for name in registry.names():
            store.store(group=f"schema/{group}", name=name, node=schema_of(registry.get(name), name))
    for name, node in RUN_SCHEMAS.items():  # the run's own settings: types only
        store.store(group="schema/run", name=name, node=node)


def schema_of(cls: type, name: str) -> type:
    """A dataclass of ``cls``'s options (keyword-only constructor parameters) plus ``name``."""
    import dataclasses
    import inspect
    import typing

    hints = typing.get_type_hints(cls.__init__)
    fields: list = [("name", str, dataclasses.field(default=name))]
    for param in inspect.signature(cls).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kind = _config_type(hints.get(param.name, Any))
        if param.default is inspect.Parameter.empty:
            fields.append((param.name, kind))
        elif isinstance(param.default, (list, tuple, dict)):
            value = param.default
            fields.append((param.name, kind, dataclasses.field(
                default_factory=lambda v=value: dict(v) if isinstance(v, dict) else list(v))))
        else:
            fields.append((param.name, kind, dataclasses.field(default=param.default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Options", fields)


def _config_type(hint: Any) -> Any:
    """The nearest type OmegaConf validates (plain scalars, Optional and List of them), else Any."""
    import types
    import typing

    if hint in (int, float, bool, str):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2 and rest[0] in (int, float, bool, str):
            return typing.Optional[rest[0]]
    if origin in (list, tuple) and args and args[0] in (int, float, bool, str) and (
            origin is list or args[1:] in ((), (Ellipsis,))):
        return typing.List[args[0]]
    return Any

