"""Apply a chosen set of pruning rules and count what each one rejects."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from lpzero_fw.proxy.formula import Proxy
from lpzero_fw.registry import RULES, LPZeroError
from lpzero_fw.rules.base import PruningRule


class RuleSet:
    """The active rules: ``"all"`` (every registered rule), ``"none"`` or a list of names.

    ``static_reject(proxy)`` / ``dynamic_reject(scores)`` return the name of the first
    active rule (registry order by name, static and dynamic separately) that rejects,
    or ``None``; ``counts[name]`` counts each rule's rejections.
    """

    def __init__(self, names: str | Iterable[str] | None = "all") -> None:
        if names is None or (isinstance(names, str) and names == "none"):
            chosen: list[str] = []
        elif isinstance(names, str) and names == "all":
            chosen = RULES.names()
        elif isinstance(names, str):
            chosen = [names]
        else:
            chosen = list(dict.fromkeys(str(n) for n in names))
        self.rules: list[PruningRule] = []
        for name in chosen:
            if name not in RULES:
                raise LPZeroError(f"pruning.rules: {RULES.unknown_message(name)} (or 'all' / 'none')")
            self.rules.append(RULES.get(name)())
        self.static_rules = [r for r in self.rules if r.stage == "static"]
        self.dynamic_rules = [r for r in self.rules if r.stage == "dynamic"]
        self.static_names = frozenset(r.name for r in self.static_rules)
        self.dynamic_names = frozenset(r.name for r in self.dynamic_rules)
        self.counts: dict[str, int] = {r.name: 0 for r in self.rules}

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def __repr__(self) -> str:
        return f"RuleSet({self.names})"

    def static_reject(self, proxy: Proxy) -> str | None:
        """Name of the first static rule rejecting ``proxy`` (counted), else None."""
        for rule in self.static_rules:
            if rule.rejects(proxy):
                self.counts[rule.name] += 1
                return rule.name
        return None

    def dynamic_reject(self, scores: Any) -> str | None:
        """Name of the first dynamic rule rejecting the scores so far (counted), else None."""
        if not self.dynamic_rules:
            return None
        values = scores
        if not (isinstance(scores, np.ndarray) and scores.dtype == np.float64 and scores.ndim == 1):
            values = np.asarray(scores, dtype=np.float64).reshape(-1)
        for rule in self.dynamic_rules:
            if rule.rejects(values):
                self.counts[rule.name] += 1
                return rule.name
        return None

    def reset_counts(self) -> None:
        for name in self.counts:
            self.counts[name] = 0
