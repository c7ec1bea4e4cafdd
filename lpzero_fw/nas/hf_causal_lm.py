"""Architectures of any transformers causal-LM family: the space its benchmark table spans.

The genes are the config fields the table's rows vary (``search_space=hf_causal_lm``: every
integer column whose value differs between rows; a column holding per-layer lists in any
row is a per-layer gene, one value per layer). Each gene ranges over the values the rows
hold (per-layer lists flattened); ``nas.space.<field>`` overrides a gene's range or adds
any other integer config field of the family as a gene. Every other field (vocabulary,
tying, ...) comes from the table's first row. The depth field is the family's
``num_hidden_layers`` under the name the table uses (``n_layer`` for GPT-2). Candidates
are built by the table's own builder
(:func:`~lpzero_fw.search_spaces.models.hf_taps.build_causal_lm`, heterogeneous layers)
and counted exactly on the meta device (no memory, no init).
"""
from __future__ import annotations

import copy
import json
import random
import warnings
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from lpzero_fw.nas.space import ArchSpace, Genome
from lpzero_fw.registry import ARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import SearchSpace
from lpzero_fw.search_spaces.models.hf_taps import CausalLMLoss, build_causal_lm, family_config, hf_taps


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@ARCH_SPACES.register("hf_causal_lm", description="any transformers causal LM: the config fields its benchmark table varies")
class CausalLMArchSpace(ArchSpace):
    """Elastic causal LMs of the table's family; the chosen config is a JSON row the table reads."""

    family = "hf_causal_lm"
    default_proxy = "lpzero_gpt2"
    config_file = "chosen_config.json"
    #: canonical (``PretrainedConfig``) names of the genes; None = the fields the table varies
    genes: ClassVar[tuple[str, ...] | None] = None
    #: canonical names of the per-layer genes; None = the fields some row gives as lists
    layer_genes: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, base: SearchSpace, ranges: Mapping[str, Any] | None = None) -> None:
        self.model_type = base.family_name
        self._aliases = dict(getattr(family_config(self.model_type), "attribute_map", {}) or {})
        self.depth_key = self._native("num_hidden_layers")
        rows = {arch_id: base.config(arch_id) for arch_id in base.arch_ids()}
        self._first = dict(next(iter(rows.values())))
        self.defaults, self.per_layer = self._spanned(rows, dict(ranges or {}), base.keys)
        super().__init__(base, ranges)

    def _native(self, key: str) -> str:
        """The family's own name of a canonical config field (GPT-2: ``n_layer``, ...)."""
        return self._aliases.get(key, key)

    def _spanned(self, rows: dict[str, dict], requested: dict, known: set[str]) -> tuple[dict, tuple[str, ...]]:
        """``({gene: the values the rows hold}, per-layer genes)``."""
        template = self._first
        if self.genes is None:
            keys = [key for key in template if any(row.get(key) != template[key] or isinstance(row.get(key), list)
                                                   for row in rows.values())]
            lists = [key for key in keys if any(isinstance(row.get(key), list) for row in rows.values())]
        else:
            keys, lists = [self._native(k) for k in self.genes], [self._native(k) for k in self.layer_genes or ()]
        spanned: dict[str, Any] = {}
        for key in keys:
            values = set()
            for arch_id, row in rows.items():
                if key not in row:
                    raise LPZeroError(f"task=nas search_space={self.family}: the table has no {key!r} column "
                                      f"(id={arch_id}); give it or set nas.space.{key}")
                value = row[key]
                values.update(value if isinstance(value, list) else [value])
            if not all(_is_int(v) for v in values):
                warnings.warn(f"task=nas: column {key!r} varies across the table but is not integer; every "
                              f"candidate takes the first row's value", RuntimeWarning, stacklevel=3)
                continue
            spanned[key] = sorted(values)
        for key in requested:
            if key not in spanned and key in known:
                spanned[key] = template.get(key, getattr(family_config(self.model_type), key, None))
        if lists and self.depth_key not in spanned:
            spanned.setdefault(self.depth_key, self._depth(template))
        return spanned, tuple(key for key in lists if key in spanned)

    def _depth(self, fields: Mapping[str, Any]) -> int:
        return int(fields.get(self.depth_key, getattr(family_config(self.model_type), "num_hidden_layers")))

    def check(self) -> None:
        super().check()
        heads, hidden = self._native("num_attention_heads"), self._native("hidden_size")
        head_values = self.ranges[heads].values() if heads in self.ranges else [self._first.get(heads)]
        hidden_values = self.ranges[hidden].values() if hidden in self.ranges else [self._first.get(hidden)]
        for h in head_values:
            for d in hidden_values:
                if _is_int(h) and _is_int(d) and d % h:
                    raise LPZeroError(f"nas.space.{heads}={h} does not divide {hidden}={d}")

    def template(self) -> dict:
        """Fields every candidate shares: the table's first row."""
        return dict(self._first)

    # -- genomes --------------------------------------------------------------------
    def _scalars(self) -> list[str]:
        return [key for key in self.ranges if key not in self.per_layer and key != self.depth_key]

    def sample(self, rng: random.Random) -> Genome:
        genome: Genome = {}
        if self.depth_key in self.ranges:
            genome[self.depth_key] = self.ranges[self.depth_key].sample(rng)
        depth = self._depth({**self._first, **genome})
        for key in self.ranges:
            if key in self.per_layer:
                genome[key] = [self.ranges[key].sample(rng) for _ in range(depth)]
            elif key != self.depth_key:
                genome[key] = self.ranges[key].sample(rng)
        return genome

    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        child = copy.deepcopy(genome)
        key = rng.choice(list(self.ranges))
        if key == self.depth_key:
            depth = self.ranges[key].sample(rng)
            for name in self.per_layer:  # keep existing layers, draw new ones
                values = child[name][:depth]
                child[name] = values + [self.ranges[name].sample(rng) for _ in range(depth - len(values))]
            child[key] = depth
        elif key in self.per_layer:
            child[key][rng.randrange(len(child[key]))] = self.ranges[key].sample(rng)
        else:
            child[key] = self.ranges[key].sample(rng)
        return child

    def smallest(self) -> Genome:
        genome: Genome = {key: self.ranges[key].low for key in self._scalars()}
        if self.depth_key in self.ranges:
            genome[self.depth_key] = self.ranges[self.depth_key].low
        depth = self._depth({**self._first, **genome})
        genome.update({key: [self.ranges[key].low] * depth for key in self.per_layer})
        return genome

    # -- models ---------------------------------------------------------------------
    def model_config(self, genome: Genome) -> dict:
        fields = {k: v for k, v in self.template().items() if k not in self.ranges}
        return {**fields, **copy.deepcopy(genome)}

    def param_counts(self, genome: Genome) -> dict[str, int]:
        with torch.device("meta"):
            model = build_causal_lm(self.model_type, self.model_config(genome))
        total = sum(p.numel() for p in model.parameters())
        embedding = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())
                     if m is not None for p in m.parameters()}
        return {"total": total, "nonembedding": total - sum(embedding.values())}

    def build(self, genome: Genome, seed: int = 0) -> nn.Module:
        model = CausalLMLoss(build_causal_lm(self.model_type, self.model_config(genome), seed=seed))
        hf_taps(model)  # as the table's own models (search_space=hf_causal_lm build_model)
        return model

    def write_config(self, genome: Genome, path) -> None:
        with open(path, "w") as handle:
            json.dump({"id": "chosen", **self.model_config(genome)}, handle, indent=2, sort_keys=True)
