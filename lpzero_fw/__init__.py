"""lpzero_fw: search zero-cost proxies for language-model architecture search.

The public API, for plugins and scripts: the registries, the base class of every
component kind, the containers they exchange (``Values``, ``Taps``, ``Batch``), the
formula type with its parser, and the errors. Import from here, not from the
modules below, which may move between minor versions::

    from lpzero_fw import UNARY_OPS, UnaryOp, Values

Names load lazily on first access, so ``import lpzero_fw`` imports nothing else
(no torch, no registry loading, no plugins).
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module defining it
_EXPORTS = {
    # registries and their machinery
    "Registry": "lpzero_fw.registry",
    "ALL_REGISTRIES": "lpzero_fw.registry",
    "SEARCH_SPACES": "lpzero_fw.registry",
    "STATS": "lpzero_fw.registry",
    "UNARY_OPS": "lpzero_fw.registry",
    "BINARY_OPS": "lpzero_fw.registry",
    "LAYER_REDUCTIONS": "lpzero_fw.registry",
    "RULES": "lpzero_fw.registry",
    "STRATEGIES": "lpzero_fw.registry",
    "BASELINES": "lpzero_fw.registry",
    "ARCH_SPACES": "lpzero_fw.registry",
    "ARCH_STRATEGIES": "lpzero_fw.registry",
    "TASKS": "lpzero_fw.registry",
    "LOGGERS": "lpzero_fw.registry",
    "DATA_SOURCES": "lpzero_fw.registry",
    # base classes, one per component kind
    "SearchSpace": "lpzero_fw.search_spaces.base",
    "StatExtractor": "lpzero_fw.stats.base",
    "UnaryOp": "lpzero_fw.ops.base",
    "BinaryOp": "lpzero_fw.ops.base",
    "LayerReduction": "lpzero_fw.ops.base",
    "PruningRule": "lpzero_fw.rules.base",
    "SearchStrategy": "lpzero_fw.strategies.base",
    "BaselineProxy": "lpzero_fw.baselines.base",
    "Tracker": "lpzero_fw.tracking",
    "DataSource": "lpzero_fw.data.batches",
    # what components exchange
    "Values": "lpzero_fw.ops.base",
    "Taps": "lpzero_fw.search_spaces.base",
    "Batch": "lpzero_fw.search_spaces.base",
    # the formula type, its printer and parser
    "Formula": "lpzero_fw.formula.genotype",
    "Proxy": "lpzero_fw.formula.genotype",  # the old name of Formula
    "Branch": "lpzero_fw.formula.genotype",
    "parse": "lpzero_fw.formula.parse",
    "format_proxy": "lpzero_fw.formula.parse",
    # using a proxy: score a model, run a task
    "score": "lpzero_fw.api",
    "run": "lpzero_fw.api",
    # errors
    "LPZeroError": "lpzero_fw.registry",
    "RegistryError": "lpzero_fw.registry",
    "FormulaError": "lpzero_fw.formula.parse",
    "OperandMismatch": "lpzero_fw.ops.base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lpzero_fw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
