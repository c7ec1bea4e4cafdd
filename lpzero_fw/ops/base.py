"""Operator contracts and the value type proxies compute on.

A statistic input is a list of per-layer tensors. Proxies see each layer as a
*population* of values: the statistics cache keeps a fixed-size uniform sample of
each layer (``k`` values) together with the population size ``n`` (the layer
tensor's ``numel``). Every operator is defined on the whole population and computed
by its sample estimator, e.g. ``frobenius_norm = sqrt(n * mean(x**2))`` and
``softmax(x)_i = exp(x_i) / (n * mean(exp(x)))``. In ``exact`` cache mode the
sample *is* the population (k == n), so the estimators are exact.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

EPS = 1e-9  # guards divisions and logs; documented per operator


@dataclass(frozen=True)
class Values:
    """Rows of per-layer samples.

    ``x``: float tensor (rows, k), one layer per row, a uniform sample of that
    layer's values (all of them in exact mode). ``n``: float tensor (rows, 1), each
    layer's population size. A per-layer scalar has k == 1 and n == 1.
    """

    x: torch.Tensor
    n: torch.Tensor

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    @property
    def is_scalar(self) -> bool:
        return self.x.shape[1] == 1 and bool(torch.all(self.n == 1))

    def row_means(self) -> torch.Tensor:
        """Estimated mean of each layer's population, shape (rows,)."""
        return self.x.mean(dim=1)


class UnaryOp(ABC):
    """A function of one layer population; never modifies its input tensors."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: True when the output is one scalar per layer (tensor -> scalar)
    reduces: ClassVar[bool] = False
    #: True when the op maps each value independently (tensor -> same-shape tensor)
    elementwise: ClassVar[bool] = True

    @abstractmethod
    def __call__(self, v: Values) -> Values:
        """Apply to every row of ``v`` and return new Values."""


class BinaryOp(ABC):
    """Joins two branch values row by row (same rows; scalars broadcast)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: True when both operands must be same-shape tensors (no scalar broadcast)
    needs_matching_tensors: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, a: Values, b: Values) -> Values:
        """Combine ``a`` and ``b``."""
