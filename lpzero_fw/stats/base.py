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
    forward+backward per architecture serves all six.
    """

    symbol: ClassVar[str]
    description: ClassVar[str] = ""
    #: inputs in the same group have equal per-layer shapes (W and G: "weight"),
    #: so element-wise binary ops between them are defined
    shape_group: ClassVar[str] = ""

    def attach(self, model: nn.Module, taps: Taps) -> None:
        """Register hooks before the forward pass (default: nothing)."""

    @abstractmethod
    def collect(self, model: nn.Module, taps: Taps) -> list[torch.Tensor]:
        """Per-layer tensors after backward (detached copies: they outlive the model)."""

    def detach(self) -> None:
        """Remove hooks (default: nothing)."""
