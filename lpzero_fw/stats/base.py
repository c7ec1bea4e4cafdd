"""The statistic-input contract: what one forward+backward pass exposes to proxies."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from lpzero_fw.search_spaces.base import Taps


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
    #: values per sample, batch dimension first (A, H, S, and J: with each micro-batch's
    #: loss scaled by 1/parts, its gradient is the whole batch's): micro-batches of one
    #: pass (``cache.micro_batches``, the out-of-memory retry) each give their rows.
    #: False: a whole-batch quantity read once after the last micro-batch (W; G, whose
    #: gradients accumulate to the whole batch's)
    per_sample: ClassVar[bool] = True

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
