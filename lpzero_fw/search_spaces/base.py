"""The search-space contract: a benchmark of trained architectures and how to build them."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lpzero_fw.registry import LPZeroError


@dataclass
class Taps:
    """Modules a search space exposes so that generic statistic extractors can hook them.

    Each list is ordered by depth. Forward hooks read:
    ``activations`` output = the feed-forward non-linearity's output (input A);
    ``heads`` output = per-head attention outputs before the output projection,
    shaped (batch, heads, tokens, head_dim) (input H);
    ``softmax`` output = attention probabilities (batch, heads, tokens, tokens) (input S);
    ``blocks`` positional input 0 = the hidden state entering each block; its gradient
    is the Jacobian input J;
    ``linears`` = Linear/Conv1D-like modules with a ``weight`` (inputs W and G).
    A layer type without a given quantity (e.g. a token-mixing layer without softmax)
    simply contributes nothing to that list.
    """

    activations: list[nn.Module] = field(default_factory=list)
    heads: list[nn.Module] = field(default_factory=list)
    softmax: list[nn.Module] = field(default_factory=list)
    blocks: list[nn.Module] = field(default_factory=list)
    linears: list[nn.Module] = field(default_factory=list)


Batch = dict[str, torch.Tensor]


class SearchSpace(ABC):
    """A benchmark: architecture ids, their trained quality, models and input batches.

    ``model(**batch)`` must return the scalar training loss used for gradients.
    """

    #: orientation of :meth:`ground_truth` (perplexity: False; GLUE: True)
    higher_is_better: ClassVar[bool] = True
    #: human name of the ground-truth metric, for tables and plots
    metric_name: ClassVar[str] = "quality"
    #: model family of the benchmarks this space reads (a search-space name, e.g. "gpt2");
    #: a benchmark of another family is refused (``lpzero_fw.data.lts.require_family``)
    family: ClassVar[str | None] = None

    @abstractmethod
    def arch_ids(self) -> list[str]:
        """All architecture ids of the benchmark, in a stable order."""

    @abstractmethod
    def ground_truth(self, arch_id: str) -> float:
        """The trained metric exactly as the benchmark reports it."""

    @abstractmethod
    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        """A freshly, deterministically initialised model for ``arch_id``."""

    @abstractmethod
    def make_batch(self, seed: int = 0) -> Batch:
        """The input batch every architecture is scored on (from the data config)."""

    @abstractmethod
    def taps(self, model: nn.Module) -> Taps:
        """Where statistic extractors hook into a model built by :meth:`build_model`."""

    def param_counts(self, arch_id: str) -> dict[str, int]:
        """Parameter counts by part (``total`` at least); default: count a built model."""
        model = self.build_model(arch_id)
        return {"total": sum(p.numel() for p in model.parameters())}

    def describe(self) -> dict:
        """Settings that change statistics (part of the statistics cache key)."""
        return {"name": type(self).__name__}

    def loss_weights(self, parts: list[Batch]) -> list[float]:
        """Each piece's weight in the whole batch's loss, for a pass in micro-batches
        (``cache.micro_batches``): default equal shares, right for a loss that is a
        mean over the same number of tokens in every row."""
        return [1.0 / len(parts)] * len(parts)

    # -- concrete helpers ---------------------------------------------------------
    def quality(self, arch_id: str) -> float:
        """Ground truth oriented so that higher always means a better trained model."""
        value = float(self.ground_truth(arch_id))
        return value if self.higher_is_better else -value

    def sample(self, k: int, seed: int, pool: list[str] | None = None) -> list[str]:
        """``k`` distinct ids of ``pool`` (default: all) drawn with ``seed``, in pool order."""
        ids = self.arch_ids() if pool is None else list(pool)
        if k >= len(ids):
            return list(ids)
        order = {a: i for i, a in enumerate(ids)}
        return sorted(random.Random(seed).sample(ids, k), key=order.__getitem__)

    def split(self, holdout: float, seed: int) -> tuple[list[str], list[str]]:
        """(search pool, held-out pool): a seeded partition of :meth:`arch_ids`.

        ``round(holdout * size)`` ids go to the held-out pool, which a search never
        scores, so its correlation there is out of sample. Both pools keep the
        ``arch_ids`` order; the same ``seed`` always gives the same split, and
        ``holdout=0`` gives ``(all ids, [])``.
        """
        holdout = float(holdout)
        if not 0.0 <= holdout < 1.0:
            raise LPZeroError(f"holdout={holdout} must lie in [0, 1): the fraction of architectures held out")
        ids = self.arch_ids()
        n_out = int(round(holdout * len(ids)))
        if n_out == 0:
            return list(ids), []
        held = set(random.Random(f"split-{seed}").sample(ids, n_out))
        return [a for a in ids if a not in held], [a for a in ids if a in held]
