"""LLaMA sub-networks, LoNAS-style: elastic depth and per-layer head counts and MLP widths.

The generic causal-LM space (:mod:`.hf_causal_lm`) with its genes fixed: ``num_hidden_layers``
and, per layer, ``num_attention_heads`` and ``intermediate_size``, each ranging over the
values the benchmark table holds (a table that gives them as scalars still gets per-layer
genes). Every other field (hidden size, vocabulary, tying, ...) comes from the first row.
"""
from __future__ import annotations

from lpzero_fw.nas.hf_causal_lm import CausalLMArchSpace
from lpzero_fw.registry import ARCH_SPACES


@ARCH_SPACES.register("llama", description="LLaMA sub-networks (LoNAS-style): depth, per-layer heads and MLP widths")
class LlamaArchSpace(CausalLMArchSpace):
    """Elastic LLaMA; the chosen config is a JSON row the ``llama`` / ``hf_causal_lm`` table reads."""

    family = "llama"
    genes = ("num_hidden_layers", "num_attention_heads", "intermediate_size")
    layer_genes = ("num_attention_heads", "intermediate_size")
