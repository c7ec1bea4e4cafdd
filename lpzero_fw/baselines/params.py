"""Parameter counts: the controls every proxy must beat."""
from __future__ import annotations

from torch import nn

from lpzero_fw.baselines.base import BaselineProxy
from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, Taps


@BASELINES.register("num_parameters", description="total number of parameters (shared ones once)")
class NumParameters(BaselineProxy):
    """Total number of parameters, ``sum(p.numel() for p in model.parameters())``.

    Source: the standard size baseline (the reference's ``measures/parameters.py``).
    Orientation: higher is better (bigger models reach lower perplexity). Tied weights
    are counted once, as ``model.parameters()`` yields each tensor once.
    """

    source = "parameter count (reference measures/parameters.py)"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(sum(p.numel() for p in model.parameters()))


@BASELINES.register(
    "nonembedding_parameters",
    description="parameters of the transformer blocks plus norms outside them (decoder params)",
)
class NonEmbeddingParameters(BaselineProxy):
    """Non-embedding ("decoder") parameters, the LTS paper's proxy.

    Counted without the search space: every parameter of the modules in ``taps.blocks``,
    plus the parameters of normalisation layers outside the blocks (GPT-2's final
    ``ln_f``). For GPT-2 this equals ``params_summary.yaml``'s ``nonembedding``
    = Attn + FFN + (4L+2)·d. Embeddings, positional tables and the (adaptive) softmax
    head are excluded.

    Source: Javaheripi et al., "LiteTransformerSearch" (NeurIPS 2022) — decoder parameter
    count as a training-free proxy. Orientation: higher is better.
    """

    source = "Javaheripi et al. 2022, LiteTransformerSearch"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        seen: set[int] = set()
        total = 0
        block_modules: set[int] = set()
        for block in taps.blocks:
            for sub in block.modules():
                block_modules.add(id(sub))
            for p in block.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        norm_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm) if hasattr(
            nn, "RMSNorm"
        ) else (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)
        for module in model.modules():
            if id(module) in block_modules or not isinstance(module, norm_types):
                continue
            for p in module.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return float(total)
