"""Built-in layer reductions (registry ``LAYER_REDUCTIONS``)."""
from __future__ import annotations

from lpzero_fw.ops.base import LayerReduction
from lpzero_fw.registry import LAYER_REDUCTIONS


@LAYER_REDUCTIONS.register("mean")
class MeanOverLayers(LayerReduction):
    """Mean over layers: the paper's rule, blind to depth."""

    def reduce(self, mean: float, layers: int) -> float:
        return mean


@LAYER_REDUCTIONS.register("sum")
class SumOverLayers(LayerReduction):
    """Sum over layers: keeps depth."""

    def reduce(self, mean: float, layers: int) -> float:
        return mean * layers
