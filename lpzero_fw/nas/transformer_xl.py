"""Transformer-XL architectures of Lite Transformer Search (LTS), the space its benchmark came from.

The genome keys and moves are GPT-2's (:class:`~lpzero_fw.nas.gpt2.GPT2ArchSpace`); the
default ranges are those the 200 ``random_TransXL_wt103`` architectures span: 5-8 layers,
d_model in {64, 128, 256, 512}, per layer 2/4/8 heads and an inner size in [513, 2048],
adaptive embeddings with d_embed in {128, 256, 512} and div_val in {1, 2, 4}. Vocabulary
(267,736 words), clusters, tying and memory length come from the benchmark's first config;
candidates are built by the benchmark's own builder (relative-position attention, adaptive
input / softmax), word tables frozen and drawn once per vocabulary geometry.
"""
from __future__ import annotations

import functools

from torch import nn

from lpzero_fw.nas.gpt2 import GPT2ArchSpace
from lpzero_fw.nas.space import Genome
from lpzero_fw.registry import ARCH_SPACES
from lpzero_fw.search_spaces.models.mem_transformer import (
    TransformerXLConfig,
    analytic_param_counts,
    build_transformer_xl,
)


@ARCH_SPACES.register("transformer_xl", description="LTS Transformer-XL: layers, d_model, per-layer heads / inner sizes, adaptive embeddings")
class TransformerXLArchSpace(GPT2ArchSpace):
    """LTS Transformer-XL space; the chosen config is an LTS ``model_config.yaml``."""

    family = "transformer_xl"
    defaults = {
        "n_layer": {"low": 5, "high": 8},
        "d_model": [64, 128, 256, 512],
        "n_head": [2, 4, 8],
        "d_inner": {"low": 513, "high": 2048},
        "d_embed": [128, 256, 512],
        "div_val": [1, 2, 4],
    }

    def _config(self, genome: Genome) -> TransformerXLConfig:
        return TransformerXLConfig.from_dict(self.model_config(genome), where="nas candidate")

    def param_counts(self, genome: Genome) -> dict[str, int]:
        return analytic_param_counts(self._config(genome))

    def build(self, genome: Genome, seed: int = 0) -> nn.Module:
        return build_transformer_xl(self._config(genome), seed=seed, word_grads=False, table_cache=self._word_tables)

    @functools.cached_property
    def _word_tables(self) -> dict:
        return {}

    def freeze_unread(self, model: nn.Module) -> nn.Module:
        """Adaptive input and softmax (tables and projections): frozen; the model keeps the
        hidden state entering block 0 differentiable itself (input Jacobian J)."""
        for module in (model.word_emb, model.crit):
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        return model
