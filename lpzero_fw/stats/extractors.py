"""The six statistic inputs of LPZero, each read from a search space's taps.

One forward+backward pass serves all six: extractors only register hooks before it
(``attach``) and read results after it (``collect``). Each per-layer tensor goes
through :meth:`~lpzero_fw.stats.base.StatExtractor.keep` where it appears (a sample
of the budget's size, or an exact copy), so hooks hold no whole tensors.
"""
from __future__ import annotations

import torch
from torch import nn

from lpzero_fw.registry import STATS
from lpzero_fw.search_spaces.base import Taps
from lpzero_fw.stats.base import StatExtractor


class _OutputHook(StatExtractor):
    """Records the forward output of each module in one list of taps."""

    tap_field: str = ""

    def __init__(self) -> None:
        self._handles: list = []
        self._outputs: dict[int, object] = {}

    def attach(self, model: nn.Module, taps: Taps) -> None:
        for index, module in enumerate(getattr(taps, self.tap_field)):
            self._handles.append(module.register_forward_hook(self._recorder(index)))

    def _recorder(self, index: int):
        def hook(_module, _inputs, output):
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            self._outputs[index] = self.keep(tensor)

        return hook

    def collect(self, model: nn.Module, taps: Taps) -> list:
        return [self._outputs[i] for i in sorted(self._outputs)]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs = {}


@STATS.register("A", description="activations: output of each block's feed-forward non-linearity")
class Activations(_OutputHook):
    shape_group = "A"
    tap_field = "activations"


@STATS.register("H", description="heads: per-head attention outputs before the output projection")
class Heads(_OutputHook):
    shape_group = "H"
    tap_field = "heads"


@STATS.register("S", description="softmax: attention probabilities of each layer")
class Softmax(_OutputHook):
    nonnegative = True
    shape_group = "S"
    tap_field = "softmax"


@STATS.register("J", description="the loss gradient at each block's input, dLoss/dh (the paper's 'Jacobian' input)")
class Jacobians(StatExtractor):
    """The gradient of the loss with respect to the hidden state entering each block.

    Shape (batch, tokens, width) per block: for block 0 the input embedding, later
    blocks one block deeper. It is what the paper calls the Jacobian input; it is not
    the per-sample input-output Jacobian of NWOT (Mellor et al.). The gradient comes
    from the shared LM-loss backward, so no extra pass is needed.
    """

    shape_group = "J"

    def __init__(self) -> None:
        self._handles: list = []
        self._grads: dict[int, object] = {}

    def attach(self, model: nn.Module, taps: Taps) -> None:
        for index, block in enumerate(taps.blocks):
            self._handles.append(block.register_forward_pre_hook(self._watcher(index)))

    def _watcher(self, index: int):
        def hook(_module, args):
            hidden = args[0]
            if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
                # a tensor hook sees the input's total gradient once the backward has
                # accumulated it; only what keep() returns survives (no retain_grad)
                self._handles.append(hidden.register_hook(self._grad_keeper(index)))

        return hook

    def _grad_keeper(self, index: int):
        def hook(grad):
            self._grads[index] = self.keep(grad)

        return hook

    def collect(self, model: nn.Module, taps: Taps) -> list:
        return [self._grads[i] for i in sorted(self._grads)]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._grads = {}


@STATS.register("W", description="weights of each Linear/Conv1D layer")
class Weights(StatExtractor):
    per_sample = False
    shape_group = "weight"

    def collect(self, model: nn.Module, taps: Taps) -> list[torch.Tensor]:
        return [self.keep(module.weight) for module in taps.linears]


@STATS.register("G", description="gradients of each Linear/Conv1D weight after the loss backward")
class Gradients(StatExtractor):
    per_sample = False
    shape_group = "weight"

    def collect(self, model: nn.Module, taps: Taps) -> list[torch.Tensor]:
        grads = []
        for module in taps.linears:
            grad = module.weight.grad
            # a layer the loss does not reach has a zero gradient, not a missing one
            grads.append(self.keep(module.weight.new_zeros(()).expand_as(module.weight) if grad is None else grad))
        return grads
