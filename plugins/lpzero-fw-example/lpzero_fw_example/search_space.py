"""A search space contributed by a plugin: Qwen2 causal LMs from a bring-your-own table.

Declaring the family on the class is all a transformers family preset needs; the table
format, offline building, heterogeneous layers and taps come from lpzero_fw's
``hf_causal_lm`` space. Its Hydra option ``search_space=example_qwen2`` ships in
``conf/search_space/example_qwen2.yaml``.
"""
from __future__ import annotations

from lpzero_fw.registry import SEARCH_SPACES
from lpzero_fw.search_spaces.hf_causal_lm import HFCausalLMSpace


@SEARCH_SPACES.register("example.qwen2", description="Qwen2 causal LMs from a benchmark table (example plugin)")
class Qwen2TableSpace(HFCausalLMSpace):
    """Qwen2 rows of a benchmark table (grouped-query attention, per-layer widths allowed)."""

    family = "qwen2"
