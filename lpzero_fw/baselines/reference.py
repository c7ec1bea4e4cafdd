"""The reference's searched FlexiBERT proxy, computed as its code computes it.

``lpzero_flexibert`` = ``sum(square(negate(H)), log_softmax(frobenius_norm(A)))``. In the
reference code (``lpzero/operators/zc_inputs.py``, ``structures/tree.py``):

* its ``head`` input H is the output of each encoder layer's first projection: the
  ``query`` Linear of SA and DSC layers, the ``input`` Linear of LT layers (shape
  (batch, tokens, width)); this package's H statistic is the per-head output of the
  token mixing instead;
* ``log_softmax`` runs over dim 0, and the Frobenius norm is a 0-d tensor, so the right
  branch is ``log_softmax`` of one value, 0 on every layer;
* each branch is reduced to its mean per layer (``convert_to_float``) before the sum, and
  the score is the mean over layers.

So the score is ``mean_l mean(H_l ** 2)``. Orientation: higher is better (the reference
correlates its FlexiBERT scores with GLUE as they are).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lpzero_fw.baselines.base import BaselineProxy
from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, Taps

#: the projection the reference hooked, in its order of preference
_PROJECTIONS = ("query", "key", "value", "input", "weight")


def _first_projection(block: nn.Module) -> nn.Module | None:
    operation = getattr(block, "operation", None)
    for name in _PROJECTIONS:
        module = getattr(operation, name, None)
        if isinstance(module, nn.Linear):
            return module
    return None


@BASELINES.register(
    "lpzero_flexibert_reference",
    description="the reference's searched FlexiBERT proxy as its code computes it: mean_l mean(query_l(x)^2)",
)
class LPZeroFlexiBERTReference(BaselineProxy):
    """``lpzero_flexibert`` with the reference's inputs and operators (module docstring)."""

    source = "Dong et al. 2024 (LPZero), reference structures/tree.py + operators/zc_inputs.py"
    higher_is_better = True
    families = ("flexibert",)  # hooks FlexiBERT's query/input projections

    def __init__(self) -> None:
        self._handles: list = []
        self._values: list[float] = []

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values = []

        def hook(_module, _inputs, output):
            self._values.append(float(output.detach().double().square().mean()))

        for block in taps.blocks:
            projection = _first_projection(block)
            if projection is not None:
                self._handles.append(projection.register_forward_hook(hook))

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        # + mean_l log_softmax(frobenius_norm(A_l)) = 0 (the softmax of one value is 1)
        return sum(self._values) / len(self._values) if self._values else math.nan

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
