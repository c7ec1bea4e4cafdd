"""LLaMA sub-networks, LoNAS-style: elastic depth and per-layer head counts and MLP widths.

The space is the one the benchmark table spans (as for the LTS families): by default each
key ranges over the values its rows hold — ``num_hidden_layers``, and per layer
``num_attention_heads`` and ``intermediate_size``; every other field (hidden size,
vocabulary, tying, ...) comes from the table's first row. Candidates are built by the
table's own builder (:func:`~lpzero_fw.search_spaces.models.hf_taps.build_causal_lm`,
heterogeneous layers) and counted exactly on the meta device (no memory, no init).
"""
from __future__ import annotations

import copy
import json
import random
from typing import Any, Mapping

import torch
from torch import nn

from lpzero_fw.nas.space import ArchSpace, Genome
from lpzero_fw.registry import ARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import SearchSpace
from lpzero_fw.search_spaces.models.hf_taps import CausalLMLoss, build_causal_lm, hf_taps

DEPTH, PER_LAYER = "num_hidden_layers", ("num_attention_heads", "intermediate_size")


@ARCH_SPACES.register("llama", description="LLaMA sub-networks (LoNAS-style): depth, per-layer heads and MLP widths")
class LlamaArchSpace(ArchSpace):
    """Elastic LLaMA; the chosen config is a JSON row the ``llama`` / ``hf_causal_lm`` table reads."""

    family = "llama"
    per_layer = PER_LAYER
    default_proxy = "lpzero_gpt2"
    config_file = "chosen_config.json"
    defaults: dict[str, Any] = {DEPTH: None, **{key: None for key in PER_LAYER}}  # filled from the table

    def __init__(self, base: SearchSpace, ranges: Mapping[str, Any] | None = None) -> None:
        self.defaults = self._spanned(base)
        super().__init__(base, ranges)

    @staticmethod
    def _spanned(base: SearchSpace) -> dict[str, Any]:
        """Each key's values over the benchmark's rows (per-layer lists flattened)."""
        seen: dict[str, set[int]] = {DEPTH: set(), **{key: set() for key in PER_LAYER}}
        for arch_id in base.arch_ids():
            fields = base.config(arch_id)
            for key in seen:
                if key not in fields:
                    raise LPZeroError(f"task=nas search_space=llama: the table has no {key!r} column "
                                      f"(id={arch_id}); give it or set nas.space.{key}")
                value = fields[key]
                seen[key].update(int(v) for v in (value if isinstance(value, list) else [value]))
        return {key: sorted(values) for key, values in seen.items()}

    def check(self) -> None:
        super().check()
        hidden = int(self.template()["hidden_size"])
        bad = [h for h in self.ranges["num_attention_heads"].values() if hidden % h]
        if bad:
            raise LPZeroError(f"nas.space.num_attention_heads={bad[0]} does not divide hidden_size={hidden}")

    def template(self) -> dict:
        """Fields every candidate shares: the table's first row."""
        return dict(self.base.config(self.base.arch_ids()[0]))

    # -- genomes --------------------------------------------------------------------
    def sample(self, rng: random.Random) -> Genome:
        depth = self.ranges[DEPTH].sample(rng)
        return {DEPTH: depth, **{key: [self.ranges[key].sample(rng) for _ in range(depth)] for key in PER_LAYER}}

    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        child = copy.deepcopy(genome)
        key = rng.choice([DEPTH, *PER_LAYER])
        if key == DEPTH:
            depth = self.ranges[DEPTH].sample(rng)
            for name in PER_LAYER:  # keep existing layers, draw new ones
                values = child[name][:depth]
                child[name] = values + [self.ranges[name].sample(rng) for _ in range(depth - len(values))]
            child[DEPTH] = depth
        else:
            child[key][rng.randrange(child[DEPTH])] = self.ranges[key].sample(rng)
        return child

    def smallest(self) -> Genome:
        depth = self.ranges[DEPTH].low
        return {DEPTH: depth, **{key: [self.ranges[key].low] * depth for key in PER_LAYER}}

    # -- models ---------------------------------------------------------------------
    def model_config(self, genome: Genome) -> dict:
        fields = {k: v for k, v in self.template().items() if k not in (DEPTH, *PER_LAYER)}
        return {**fields, **copy.deepcopy(genome)}

    def param_counts(self, genome: Genome) -> dict[str, int]:
        with torch.device("meta"):
            model = build_causal_lm(self.family, self.model_config(genome))
        total = sum(p.numel() for p in model.parameters())
        embedding = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())
                     if m is not None for p in m.parameters()}
        return {"total": total, "nonembedding": total - sum(embedding.values())}

    def build(self, genome: Genome, seed: int = 0) -> nn.Module:
        model = CausalLMLoss(build_causal_lm(self.family, self.model_config(genome), seed=seed))
        hf_taps(model)  # as the table's own models (search_space=llama build_model)
        return model

    def write_config(self, genome: Genome, path) -> None:
        with open(path, "w") as handle:
            json.dump({"id": "chosen", **self.model_config(genome)}, handle, indent=2, sort_keys=True)
