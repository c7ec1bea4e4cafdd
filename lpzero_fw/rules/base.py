"""Pruning-rule contract (the paper's rule-based pruning strategy, RPS)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal


class PruningRule(ABC):
    """Rejects a proxy before it is scored (static) or while it is scored (dynamic).

    Static rules get a :class:`~lpzero_fw.formula.genotype.Formula`; dynamic rules get
    the numpy array of scores computed so far (one per architecture, in order).
    ``example`` / ``near_miss`` are formula strings (static) that the rule must
    reject / accept; the test-suite checks every registered rule with them.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    stage: ClassVar[Literal["static", "dynamic"]] = "static"
    example: ClassVar[Any] = None
    near_miss: ClassVar[Any] = None

    @abstractmethod
    def rejects(self, subject: Any) -> bool:
        """True when the proxy (static) or its scores so far (dynamic) are invalid."""
