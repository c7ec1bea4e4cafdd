"""Apply a chosen set of pruning rules and count what each one rejects."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from lpzero_fw.formula.genotype import Formula
from lpzero_fw.registry import CORE_ORIGIN, RULES, LPZeroError
from lpzero_fw.rules.base import PruningRule


class RuleSet:
    """The active rules: ``"core"`` (the built-in rules), ``"all"`` (every registered
    rule, plugins' included), ``"none"`` or a list of names.

    ``static_reject(proxy)`` / ``dynamic_reject(scores)`` return the name of the first
    active rule (registry order by name, static and dynamic separately) that rejects,
    or ``None``; ``counts[name]`` counts each rule's rejections under its registered name.
    """

    def __init__(self, names: str | Iterable[str] | None = "core") -> None:
        if names is None or (isinstance(names, str) and names == "none"):
            chosen: list[str] = []
        elif isinstance(names, str) and names == "all":
            chosen = RULES.names()
        elif isinstance(names, str) and names == "core":
            chosen = [e.name for e in RULES.entries() if e.origin == CORE_ORIGIN]
        elif isinstance(names, str):
            chosen = [names]
        else:
            chosen = list(dict.fromkeys(str(n) for n in names))
        for name in chosen:
            if name not in RULES:
                raise LPZeroError(f"pruning.rules: {RULES.unknown_message(name)} (or 'core' / 'all' / 'none')")
        self.names: list[str] = chosen
        self.rules: list[PruningRule] = [RULES.get(name)() for name in chosen]
        named = list(zip(chosen, self.rules))
        self.static_rules = [(name, r) for name, r in named if r.stage == "static"]
        self.dynamic_rules = [(name, r) for name, r in named if r.stage == "dynamic"]
        self.static_names = frozenset(name for name, _ in self.static_rules)
        self.dynamic_names = frozenset(name for name, _ in self.dynamic_rules)
        self.counts: dict[str, int] = {name: 0 for name in chosen}

    def describe(self) -> dict[str, str]:
        """Active rule -> origin (``core`` or the plugin's distribution), for result.json."""
        return {name: RULES.entry(name).origin for name in self.names}

    def __repr__(self) -> str:
        return f"RuleSet({self.names})"

    def static_reject(self, proxy: Formula) -> str | None:
        """Name of the first static rule rejecting ``proxy`` (counted), else None."""
        for name, rule in self.static_rules:
            if rule.rejects(proxy):
                self.counts[name] += 1
                return name
        return None

    def dynamic_reject(self, scores: Any) -> str | None:
        """Name of the first dynamic rule rejecting the scores so far (counted), else None."""
        if not self.dynamic_rules:
            return None
        values = scores
        if not (isinstance(scores, np.ndarray) and scores.dtype == np.float64 and scores.ndim == 1):
            values = np.asarray(scores, dtype=np.float64).reshape(-1)
        for name, rule in self.dynamic_rules:
            if rule.rejects(values):
                self.counts[name] += 1
                return name
        return None

    def reset_counts(self) -> None:
        for name in self.counts:
            self.counts[name] = 0
