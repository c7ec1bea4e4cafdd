"""The paper's four binary operators, joining two branch values layer by layer.

Operands are :class:`~lpzero_fw.ops.base.Values` with the same number of rows
(layers). ``sum``, ``difference`` and ``product`` are element-wise: both operands
must be same-shape tensors (same ``k``, the same population size ``n`` per row and
the same weights ``w``: the statistics cache samples W and G of a layer at shared
positions, so their samples are aligned) or one of them a per-layer scalar (k == 1, n == 1),
which broadcasts over the other's row.

``matmul`` is the matrix product of the two flattened layers as a row vector times
a column vector, i.e. their inner product ``sum_i a_i * b_i``, estimated by
``n * mean(a * b)`` (weighted, :meth:`Values.mean_of`) over the aligned samples; the result is a per-layer scalar. It
needs two tensors of the same shape group (W and G); with a per-layer scalar
operand the product ``s · a`` of a 1×1 matrix is scalar multiplication, so
``matmul`` then equals ``product`` (the static rule ``scalar_matmul`` rejects such
proxies as duplicates).

Fast-path facts declared on :class:`~lpzero_fw.ops.base.BinaryOp` and read by
:class:`~lpzero_fw.proxy.evaluate.Evaluator` (a plugin operator may keep the
defaults): ``mean_kind`` (``"add"``, ``"sub"``, ``"mul"``) says the mean of
the result follows from the operands' per-layer means (``mul``: only when one
operand is a per-layer scalar); ``row_means(a_means, b_means, a_scalar, b_scalar)``
computes the result's per-layer means from the operands' (numpy arrays), or returns
``None`` when that is not possible (product/matmul of two tensors).
"""
from __future__ import annotations

import numpy as np
import torch

from lpzero_fw.ops.base import BinaryOp, OperandMismatch, Values
from lpzero_fw.registry import BINARY_OPS


def _check_rows(a: Values, b: Values) -> None:
    if a.rows != b.rows:
        raise OperandMismatch(f"operands have {a.rows} and {b.rows} layers")


def _check_tensors(a: Values, b: Values) -> None:
    if not a.aligned(b):
        raise OperandMismatch(
            f"tensor operands differ in shape ({tuple(a.x.shape)} vs {tuple(b.x.shape)}), layer sizes "
            f"or sample positions"
        )


class _Elementwise(BinaryOp):
    @staticmethod
    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, a: Values, b: Values) -> Values:
        _check_rows(a, b)
        a_scalar, b_scalar = a.is_scalar, b.is_scalar
        if not (a_scalar or b_scalar):
            _check_tensors(a, b)
        return (b if a_scalar else a).like(self.fn(a.x, b.x))


@BINARY_OPS.register("sum", description="element-wise a + b (a per-layer scalar broadcasts)")
class Sum(_Elementwise):
    """a + b."""

    mean_kind = "add"

    @staticmethod
    def fn(a, b):
        return a + b

    @staticmethod
    def row_means(am: np.ndarray, bm: np.ndarray, a_scalar: bool, b_scalar: bool) -> np.ndarray:
        return am + bm


@BINARY_OPS.register("difference", description="element-wise a - b (a per-layer scalar broadcasts)")
class Difference(_Elementwise):
    """a - b."""

    mean_kind = "sub"

    @staticmethod
    def fn(a, b):
        return a - b

    @staticmethod
    def row_means(am, bm, a_scalar, b_scalar):
        return am - bm


@BINARY_OPS.register("product", description="element-wise a * b (a per-layer scalar broadcasts)")
class Product(_Elementwise):
    """a * b (Hadamard product)."""

    mean_kind = "mul"

    @staticmethod
    def fn(a, b):
        return a * b

    @staticmethod
    def row_means(am, bm, a_scalar, b_scalar):
        # mean(s * a) = s * mean(a); two tensors need the aligned values themselves
        return am * bm if (a_scalar or b_scalar) else None


@BINARY_OPS.register("matmul", description="inner product of the flattened layers, sum a_i b_i; tensor x tensor -> scalar (the reference multiplies per-layer means: ref.matmul)")
class Matmul(BinaryOp):
    """Row vector · column vector: sum_i a_i b_i = n * mean(a * b) per layer."""

    needs_matching_tensors = True
    mean_kind = "mul"

    def __call__(self, a: Values, b: Values) -> Values:
        _check_rows(a, b)
        if a.is_scalar or b.is_scalar:  # 1x1 matrix times a vector: scaling
            return (b if a.is_scalar else a).like(a.x * b.x)
        _check_tensors(a, b)
        inner = a.n.to(a.x.dtype).reshape(-1) * a.mean_of(a.x * b.x).reshape(-1)
        col = inner.reshape(-1, 1)
        return Values(col, torch.ones_like(col))

    @staticmethod
    def row_means(am, bm, a_scalar, b_scalar):
        return am * bm if (a_scalar or b_scalar) else None
