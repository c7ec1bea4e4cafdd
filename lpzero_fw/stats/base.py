"""The statistic-input contract: what one forward+backward pass exposes to proxies."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, get_args

import torch
from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import Taps

#: how the per-layer tensors of two half batches combine into the whole batch's (the
#: out-of-memory retry of the statistics cache): ``concat`` per-sample values (A, H,
#: S); ``concat_halved`` per-sample gradients of the batch-mean loss, which each half
#: weights twice (J); ``mean`` batch-mean quantities such as weight gradients (G);
#: ``same`` values that do not depend on the batch (W)
Merge = Literal["concat", "concat_halved", "mean", "same"]


class StatExtractor(ABC):
    """Collects one input symbol (A, J, G, H, W, S) as a list of per-layer tensors.

    ``attach`` runs before the shared forward pass (register hooks), ``collect``
    after the shared backward pass; extractors never run passes themselves, so one
    forward+backward per architecture serves all six. ``name`` (the input symbol) and
    ``description`` are set by registration (``@STATS.register``); the other class
    attributes are facts that pruning rules and the statistics cache read.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: inputs in the same group have equal per-layer shapes (W and G: "weight"),
    #: so element-wise binary ops between them are defined
    shape_group: ClassVar[str] = ""
    #: every value is >= 0 (S: attention probabilities)
    nonnegative: ClassVar[bool] = False
    #: how half-batch statistics merge (see :data:`Merge`)
    merge: ClassVar[Merge] = "concat"

    @property
    def symbol(self) -> str:
        """The input symbol: the registered name."""
        return self.name

    def keep(self, tensor: torch.Tensor):
        """What is stored of one per-layer tensor, called where the tensor appears (in a
        hook, or in ``collect``): a float32 CPU copy here; ``extract_raw`` replaces it per
        pass by a sampler that keeps only the budget's values."""
        return tensor.detach().to("cpu", torch.float32, copy=True)

    def attach(self, model: nn.Module, taps: Taps) -> None:
        """Register hooks before the forward pass (default: nothing)."""

    @abstractmethod
    def collect(self, model: nn.Module, taps: Taps) -> list[torch.Tensor]:
        """Per-layer results of :meth:`keep` after backward (they outlive the model)."""

    def detach(self) -> None:
        """Remove hooks (default: nothing)."""

    @classmethod
    def merge_halves(cls, first: list[torch.Tensor], second: list[torch.Tensor]) -> list[torch.Tensor]:
        """The whole batch's per-layer tensors from its two halves', as :attr:`merge` says."""
        if cls.merge == "same":
            return list(first)
        if cls.merge == "mean":
            return [(a + b) / 2 for a, b in zip(first, second)]
        if cls.merge in ("concat", "concat_halved"):
            joined = [torch.cat([a, b]) for a, b in zip(first, second)]
            return [t / 2 for t in joined] if cls.merge == "concat_halved" else joined
        raise LPZeroError(
            f"statistic input {cls.name!r} declares merge={cls.merge!r}; choose one of: {', '.join(get_args(Merge))}"
        )
