"""Baseline (human-designed) zero-cost proxy contract."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import nn

from lpzero_fw.search_spaces.base import Batch, Taps


class BaselineProxy(ABC):
    """A published zero-cost proxy: one score per architecture.

    Baselines with ``shared_pass = True`` read the one shared forward+backward of
    the LM loss: ``attach`` registers hooks before it, ``score`` reads hooks,
    weights and ``.grad`` after it and must not modify the model. Baselines that
    need passes of their own (synflow, ...) set ``shared_pass = False``;
    their ``score`` gets a fresh model it may modify and runs its own passes.
    ``higher_is_better`` is the proxy's own orientation: True when a larger score
    predicts a better trained model.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: model families the proxy is defined for (``SearchSpace.family``); empty = every family.
    #: ``proxy=all`` leaves a baseline out on other families instead of scoring nan
    families: ClassVar[tuple[str, ...]] = ()
    shared_pass: ClassVar[bool] = True
    #: baselines without the shared pass that declare the same ``own_pass`` (the name of
    #: their pass) share one freshly built model; the pass caches its result on that
    #: model, so it runs once for all of them (synflow and logsynflow: one float64 pass)
    own_pass: ClassVar[str | None] = None
    #: reads the shared backward's weight gradients with their graph (``create_graph``) to
    #: differentiate them again (GraSP's Hessian-gradient product); scores after every other
    #: shared-pass baseline has scored and removed its hooks
    second_order: ClassVar[bool] = False
    #: found by a proxy search (not a control): never a member of ``best2_ensemble``
    searched: ClassVar[bool] = False

    def attach(self, model: nn.Module, taps: Taps) -> None:
        """Register hooks before the shared pass (default: nothing)."""

    @abstractmethod
    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        """The proxy's value for this model."""

    def detach(self) -> None:
        """Remove hooks (default: nothing)."""

    @classmethod
    def applies_to(cls, family: str | None) -> bool:
        """Whether the proxy is defined on models of ``family``."""
        return not cls.families or family in cls.families
