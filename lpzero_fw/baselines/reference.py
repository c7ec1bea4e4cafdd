"""The reference's searched proxies: as formula strings (``NAMED_FORMULAS``) and as its code
computes them (``lpzero_gpt2_reference``, ``lpzero_flexibert_reference``).

FlexiBERT:

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
from lpzero_fw.baselines.common import weight_grad
from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, Taps


#: the reference's searched proxies as formula strings (evaluated by the formula machinery,
#: not registered as baselines): GPT-2 (Table/Fig. of arXiv 2410.04808 and
#: ``lpzero/predictor/measures/lpzero.py`` genotype ``['weight', 'grad'], [[3, 10], [11, 3], 0]``)
#: and FlexiBERT.
NAMED_FORMULAS: dict[str, str] = {
    "lpzero_gpt2": "sum(l1_norm(square(W)), square(softmax(G)))",
    "lpzero_flexibert": "sum(square(negate(H)), log_softmax(frobenius_norm(A)))",
}


@BASELINES.register(
    "lpzero_gpt2_reference",
    description="the reference's searched GPT-2 proxy as its code computes it: mean_l [mean(W^2) + mean(softmax_dim0(G)^2)]",
)
class LPZeroGPT2Reference(BaselineProxy):
    """The reference implementation's searched GPT-2 proxy, computed exactly as its code does.

    Genotype ``['weight', 'grad'], [[3, 10], [11, 3], 0]`` of ``measures/lpzero.py``:
    ``l1_norm(element_wise_pow(W))`` + ``element_wise_pow(softmax(G))``, joined by
    ``element_wise_sum`` per layer and reduced by ``convert_to_float`` (mean over layers
    of per-layer means). The reference's ``l1_norm`` is ``sum|x| / numel`` and its
    ``softmax`` runs over dim 0 of the stored weight layout (for Conv1D: over the input
    features, so each output column sums to 1): per layer ``mean(W**2) +
    mean(softmax(G, dim=0)**2)``, averaged over ``taps.linears``. The right branch is
    ~``1 / fan_in**2`` for the near-zero gradients of an untrained model, i.e. the proxy
    mostly measures layer widths. The named formula ``lpzero_gpt2`` is the same genotype
    in this package's operator semantics (whole-layer softmax, true L1 norm), which ranks
    differently; this class exists to check the reference's scores.
    Orientation: lower is better (the score falls as layers widen; the reference's own
    scores correlate negatively with -perplexity too).
    """

    searched = True

    source = "Dong et al. 2024 (LPZero), reference measures/lpzero.py"
    higher_is_better = False

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        per_layer = []
        for module in taps.linears:
            weight = module.weight.detach().double().square_()  # (in place on the float64 copies)
            grad = torch.softmax(weight_grad(module).double(), dim=0).square_()
            per_layer.append(float(weight.mean() + grad.mean()))
        return sum(per_layer) / len(per_layer) if per_layer else math.nan

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
