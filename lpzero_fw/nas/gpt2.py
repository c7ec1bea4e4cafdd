"""GPT-2 architectures of Lite Transformer Search (LTS), the space the benchmark was drawn from.

Default ranges are those of the LTS GPT-2 search (microsoft/archai; the 200 benchmark
architectures span exactly them): 2-16 layers, d_model in {64, 128, 256, 512}, per layer
2/4/8 heads and an inner size in [512, 2048], adaptive embeddings with d_embed in
{128, 256, 512} and div_val in {1, 2, 4}. Vocabulary, clusters and tying come from the
benchmark's first config, so every candidate is a model the benchmark could contain.
"""
from __future__ import annotations

import copy
import functools
import random

import yaml
from torch import nn

from lpzero_fw.nas.space import ArchSpace, Genome
from lpzero_fw.registry import ARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.models.gpt2_lts import (
    GPT2LTSConfig,
    analytic_param_counts,
    build_gpt2_lts,
    clean_cutoffs,
)


@ARCH_SPACES.register("gpt2", description="LTS GPT-2: layers, d_model, per-layer heads / inner sizes, adaptive embeddings")
class GPT2ArchSpace(ArchSpace):
    """LTS GPT-2 space; the chosen config is an LTS ``model_config.yaml``."""

    family = "gpt2"
    defaults = {
        "n_layer": {"low": 2, "high": 16},
        "d_model": [64, 128, 256, 512],
        "n_head": [2, 4, 8],
        "d_inner": {"low": 512, "high": 2048},
        "d_embed": [128, 256, 512],
        "div_val": [1, 2, 4],
    }
    per_layer = ("n_head", "d_inner")
    default_proxy = "lpzero_gpt2"
    config_file = "model_config.yaml"

    def check(self) -> None:
        super().check()
        for d_model in self.ranges["d_model"].values():
            bad = [h for h in self.ranges["n_head"].values() if d_model % h]
            if bad:
                raise LPZeroError(f"nas.space.n_head={bad[0]} does not divide d_model={d_model}; "
                                  "every head count must divide every d_model choice")
        template = self.template()
        clusters = len(clean_cutoffs(template.get("cutoffs"), int(template["n_token"])))
        d_embed, div_val = self.ranges["d_embed"].low, self.ranges["div_val"].high
        if d_embed // div_val ** (clusters - 1) < 1:
            raise LPZeroError(f"nas.space: d_embed={d_embed} with div_val={div_val} leaves an empty "
                              f"embedding for the last of {clusters} clusters; raise d_embed or lower div_val")

    def template(self) -> dict:
        """Fixed settings shared by every candidate: the benchmark's first config."""
        bench = self.base.bench
        return bench.config(bench.arch_ids()[0])

    # -- genomes --------------------------------------------------------------------
    def sample(self, rng: random.Random) -> Genome:
        n_layer = self.ranges["n_layer"].sample(rng)
        return {
            "n_layer": n_layer,
            "d_model": self.ranges["d_model"].sample(rng),
            "d_embed": self.ranges["d_embed"].sample(rng),
            "div_val": self.ranges["div_val"].sample(rng),
            "n_head": [self.ranges["n_head"].sample(rng) for _ in range(n_layer)],
            "d_inner": [self.ranges["d_inner"].sample(rng) for _ in range(n_layer)],
        }

    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        child = copy.deepcopy(genome)
        key = rng.choice(list(self.ranges))
        if key in self.per_layer:
            layer = rng.randrange(child["n_layer"])
            child[key][layer] = self.ranges[key].sample(rng)
        elif key == "n_layer":
            n_layer = self.ranges["n_layer"].sample(rng)
            for name in self.per_layer:  # keep existing layers, draw new ones
                values = child[name][:n_layer]
                values += [self.ranges[name].sample(rng) for _ in range(n_layer - len(values))]
                child[name] = values
            child["n_layer"] = n_layer
        else:
            child[key] = self.ranges[key].sample(rng)
        return child

    def smallest(self) -> Genome:
        low = {key: r.low for key, r in self.ranges.items()}
        best = None
        for d_model in self.ranges["d_model"].values():
            for d_embed in self.ranges["d_embed"].values():
                for div_val in self.ranges["div_val"].values():
                    genome = {
                        "n_layer": low["n_layer"], "d_model": d_model, "d_embed": d_embed, "div_val": div_val,
                        "n_head": [low["n_head"]] * low["n_layer"], "d_inner": [low["d_inner"]] * low["n_layer"],
                    }
                    try:
                        total = self.param_counts(genome)["total"]
                    except LPZeroError:  # e.g. an empty embedding cluster
                        continue
                    if best is None or total < best[0]:
                        best = (total, genome)
        return best[1]

    # -- models ---------------------------------------------------------------------
    def model_config(self, genome: Genome) -> dict:
        raw = dict(self.template())
        raw.update({key: copy.deepcopy(genome[key]) for key in self.ranges})
        return raw

    def _config(self, genome: Genome) -> GPT2LTSConfig:
        return GPT2LTSConfig.from_dict(self.model_config(genome), n_positions=self.base.max_positions,
                                       where="nas candidate")

    def param_counts(self, genome: Genome) -> dict[str, int]:
        return analytic_param_counts(self._config(genome))

    def build(self, genome: Genome, seed: int = 0) -> nn.Module:
        return build_gpt2_lts(self._config(genome), seed=seed, table_cache=self._word_tables)

    @functools.cached_property
    def _word_tables(self) -> dict:
        """Word tables per (seed, vocabulary geometry), drawn once: candidates share 9
        geometries, and a copy is bit-identical to a fresh draw (see build_gpt2_lts)."""
        return {}

    def freeze_unread(self, model: nn.Module) -> nn.Module:
        """Adaptive embedding and softmax: frozen. Learned positions keep their gradient, so
        the hidden state entering block 0 still requires one (input Jacobian J)."""
        for module in (model.wte, model.lm_head):
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        return model

    def write_config(self, genome: Genome, path) -> None:
        with open(path, "w") as handle:
            yaml.safe_dump(self.model_config(genome), handle, sort_keys=True)
