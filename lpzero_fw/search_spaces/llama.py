"""LLaMA preset of the bring-your-own space, with LoNAS-style elastic sub-networks.

A row may set ``num_hidden_layers`` (elastic depth) and give ``num_attention_heads`` and
``intermediate_size`` as per-layer lists (elastic widths): each layer is built with its own
head count (``head_dim`` stays ``hidden_size / max heads``, as LoNAS drops heads of
LLaMA-7B's 128-wide heads) and its own MLP width. See :mod:`.hf_causal_lm`.
"""
from __future__ import annotations

from lpzero_fw.registry import SEARCH_SPACES
from lpzero_fw.search_spaces.hf_causal_lm import HFCausalLMSpace


@SEARCH_SPACES.register(
    "llama",
    description="LLaMA table (LoNAS-style elastic depth, per-layer heads and MLP widths), bring your own",
)
class LlamaSpace(HFCausalLMSpace):
    """LLaMA causal LMs from a benchmark table; heterogeneous layers allowed."""

    family = "llama"
