"""The proxy genotype: two branches (input symbol + unary chain) joined by a binary op."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Branch:
    """An input symbol (A, J, G, H, W, S) followed by unary ops, innermost first."""

    input: str
    ops: tuple[str, ...]


@dataclass(frozen=True)
class Formula:
    """A searched proxy: ``binary(left, right)``; prints as text that :func:`parse` reads back.

    Names: a *proxy* is anything that scores an architecture (``proxy=`` takes a formula
    or a baseline); a ``Formula`` is the searched kind, a ``BaselineProxy`` the
    human-designed kind.

    ``layers``: a registered layer reduction (``LAYER_REDUCTIONS``); the default
    ``"mean"`` prints bare, any other as ``layer_<name>(binary(left, right))``.
    """

    left: Branch
    right: Branch
    binary: str
    layers: str = "mean"

    def __str__(self) -> str:
        text = f"{self.binary}({_branch_str(self.left)}, {_branch_str(self.right)})"
        return text if self.layers == "mean" else f"layer_{self.layers}({text})"


def _branch_str(branch: Branch) -> str:
    text = branch.input
    for op in branch.ops:
        text = f"{op}({text})"
    return text


#: the earlier name of ``Formula``, kept for plugins (``lpzero_fw.__all__`` is stable
#: within a major version)
Proxy = Formula
