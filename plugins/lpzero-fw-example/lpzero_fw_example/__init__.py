"""An example lpzero_fw plugin.

Registers, under the ``example.`` prefix that keeps plugin names from colliding:
two unary operators (``example.cube``, ``example.log2``), a statistic input
(``example.GB``), a static pruning rule (``example.no_cube_of_exp``), a baseline
proxy (``example.depth``); and ships the Hydra config option
``strategy=example_quick`` through the SearchPathPlugin in
``hydra_plugins/lpzero_fw_example_searchpath``.

Everything is imported from ``lpzero_fw`` itself, the public API. A component's
name and description come from its registration; the class attributes it sets are
facts about itself that lpzero_fw's pruning rules, evaluator and statistics cache
read. Installing the plugin changes no default run: its components join a search
when named (``search.unary=[...,example.cube]``) or with ``all``.
"""
from __future__ import annotations

import torch
from torch import nn

from lpzero_fw import (
    BASELINES,
    RULES,
    STATS,
    UNARY_OPS,
    BaselineProxy,
    Batch,
    PruningRule,
    Formula,
    StatExtractor,
    Taps,
    UnaryOp,
    Values,
)

EPS = 1e-9


@UNARY_OPS.register("example.cube", description="element-wise x ** 3 (example plugin)")
class Cube(UnaryOp):
    """Element-wise cube: keeps the sign, stretches large values."""

    output_sign = "same"

    def __call__(self, v: Values) -> Values:
        return v.like(v.x.pow(3))  # like(): keeps n, lead and the sample weights


@UNARY_OPS.register("example.log2", description="element-wise log2(max(x, 1e-9)) (example plugin)")
class Log2(UnaryOp):
    """Base-2 logarithm; non-positive values map to log2(1e-9).

    Its facts make the built-in rules prune it like ``log``: ``log2(exp(x)) = x / ln 2``
    ranks like ``x`` (``cancelling_pair``), and it is constant on non-positive
    operands (``domain_conflict``).
    """

    inverse_of = ("exp",)
    clips_nonpositive = True

    def __call__(self, v: Values) -> Values:
        return v.like(torch.clamp(v.x, min=EPS).log2())


@STATS.register("example.GB", description="gradients of each Linear/Conv1D bias (example plugin)")
class BiasGradients(StatExtractor):
    """dL/db of every tapped linear layer that has a bias.

    A whole-batch quantity, not one value per sample: ``per_sample = False`` tells the
    statistics cache to read it once after the last micro-batch of a pass (the gradients
    accumulate to the whole batch's), e.g. when it retries an architecture in two
    micro-batches after running out of memory.
    """

    shape_group = "example.bias"
    per_sample = False

    def collect(self, model: nn.Module, taps: Taps) -> list[torch.Tensor]:
        grads = []
        for module in taps.linears:
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                grads.append(torch.zeros_like(bias) if bias.grad is None else bias.grad.detach().clone())
        return grads


@RULES.register("example.no_cube_of_exp", description="cube right after exp overflows (example plugin)")
class NoCubeOfExp(PruningRule):
    """exp(x) ** 3 = exp(3x): overflows for moderate inputs; reject it statically."""

    stage = "static"
    example = "sum(example.cube(exp(W)), square(G))"
    near_miss = "sum(exp(example.cube(W)), square(G))"

    def rejects(self, subject: Formula) -> bool:
        for branch in (subject.left, subject.right):
            for inner, outer in zip(branch.ops, branch.ops[1:]):
                if inner == "exp" and outer == "example.cube":
                    return True
        return False


@BASELINES.register("example.depth", description="number of transformer blocks (example plugin)")
class Depth(BaselineProxy):
    """Depth as a proxy: deeper models of a family usually train to lower loss."""

    source = "example plugin"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(len(taps.blocks))


from lpzero_fw_example import search_space  # noqa: E402,F401  registers example.qwen2
