"""An example lpzero_fw plugin.

Registers, under the ``example.`` prefix that keeps plugin names from colliding:
a unary operator (``example.cube``), a static pruning rule
(``example.no_cube_of_exp``), a baseline proxy (``example.depth``); and ships the
Hydra config option ``strategy=example_quick`` through the SearchPathPlugin in
``hydra_plugins/lpzero_fw_example_searchpath``.
"""
from __future__ import annotations

from typing import ClassVar

from torch import nn

from lpzero_fw.baselines.base import BaselineProxy
from lpzero_fw.ops.base import UnaryOp, Values
from lpzero_fw.formula.genotype import Proxy
from lpzero_fw.registry import BASELINES, RULES, UNARY_OPS
from lpzero_fw.rules.base import PruningRule
from lpzero_fw.search_spaces.base import Batch, Taps


@UNARY_OPS.register("example.cube", description="element-wise x ** 3 (example plugin)")
class Cube(UnaryOp):
    """Element-wise cube: keeps the sign, stretches large values."""

    name: ClassVar[str] = "example.cube"
    description: ClassVar[str] = "element-wise x ** 3 (example plugin)"

    def __call__(self, v: Values) -> Values:
        return Values(v.x.pow(3), v.n)


@RULES.register("example.no_cube_of_exp", description="cube right after exp overflows (example plugin)")
class NoCubeOfExp(PruningRule):
    """exp(x) ** 3 = exp(3x): overflows for moderate inputs; reject it statically."""

    name: ClassVar[str] = "example.no_cube_of_exp"
    description: ClassVar[str] = "cube right after exp overflows (example plugin)"
    stage = "static"
    example: ClassVar[str] = "sum(example.cube(exp(W)), square(G))"
    near_miss: ClassVar[str] = "sum(exp(example.cube(W)), square(G))"

    def rejects(self, subject: Proxy) -> bool:
        for branch in (subject.left, subject.right):
            for inner, outer in zip(branch.ops, branch.ops[1:]):
                if inner == "exp" and outer == "example.cube":
                    return True
        return False


@BASELINES.register("example.depth", description="number of transformer blocks (example plugin)")
class Depth(BaselineProxy):
    """Depth as a proxy: deeper models of a family usually train to lower loss."""

    name: ClassVar[str] = "example.depth"
    source: ClassVar[str] = "example plugin"
    higher_is_better: ClassVar[bool] = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(len(taps.blocks))
