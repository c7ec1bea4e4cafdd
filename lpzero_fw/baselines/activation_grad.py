"""Statistics of activations' gradients in the shared pass (tensor hooks): head importance, Fisher, input Jacobians."""
from __future__ import annotations

import torch
from torch import nn

from lpzero_fw.baselines.common import HookedProxy, HookedSum
from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, Taps


@BASELINES.register(
    "head_importance",
    description="Michel et al. head importance: sum over heads of |<H_h, dL/dH_h>|",
)
class HeadImportance(HookedSum):
    """Head importance (Michel et al., "Are Sixteen Heads Really Better than One?",
    NeurIPS 2019): for each attention head h with output H_h (per-head attention output
    before the output projection, ``taps.heads``), ``I_h = |sum_{b,t,d} H_h ⊙ dL/dH_h|``
    (the sensitivity of the loss to a head mask at 1), summed over heads and layers.

    The reference's GPT-2 code instead sums ``|W ⊙ dL/dW|`` over linear layers whose
    ``weight.shape[0] >= 128`` — with GPT-2's Conv1D layout that is every layer with
    ≥128 input features, so it is (almost) synaptic saliency and has nothing per-head in it.
    The head-level definition of the cited paper is used here.
    Orientation: higher is better.
    """

    source = "Michel et al. 2019 (NeurIPS); Serianni & Kalita 2023 (ACL)"
    higher_is_better = True

    tap = "heads"
    from_grad = True

    def grad_value(self, inputs, output, grad):
        prod = output.double() * grad.double()  # (batch, heads, tokens, dim)
        per_head = prod.transpose(0, 1).reshape(prod.shape[1], -1).sum(dim=1)
        return float(per_head.abs().sum())


@BASELINES.register(
    "fisher", description="Fisher channel saliency of linear-layer outputs (Theis et al.)"
)
class Fisher(HookedSum):
    """Fisher (Theis et al. 2018 / Turner et al. 2020, as in Abdelfattah et al. 2021): for
    each linear layer with output activations a (N = batch·tokens rows, C channels) and their
    gradient g, ``F_c = 0.5 · mean_n (a_nc g_nc)²``; the channel value is broadcast to the
    channel's ``fan_in`` weights and everything is summed.

    Reference difference: it broadcast each channel value to ``weight.shape[1:]`` — for
    GPT-2's Conv1D layout (in, out) that is the fan-*out*, so every layer was weighted by its
    output width instead of its input width. The fan-in (read from the hooked layer's input)
    is used here, as the original per-parameter broadcast intends.
    Orientation: higher is better.
    """

    source = "Theis et al. 2018; Turner et al. 2020; Abdelfattah et al. 2021"
    higher_is_better = True

    tap = "linears"
    from_grad = True

    def grad_value(self, inputs, output, grad):
        fan_in = inputs[0].shape[-1] if inputs and isinstance(inputs[0], torch.Tensor) else 1
        act = output.reshape(-1, output.shape[-1]).double()
        g = grad.reshape(-1, grad.shape[-1]).double()
        per_channel = (act * g).pow(2).mean(dim=0).mul(0.5)
        return float(per_channel.sum()) * fan_in


class _InputJacobian(HookedProxy):
    """Records dL/dh for the hidden state h entering the first block (batch, tokens, d)."""

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._jacobian: torch.Tensor | None = None
        if not taps.blocks:
            return

        def pre_hook(_module, args):
            hidden = args[0] if args else None
            if not (isinstance(hidden, torch.Tensor) and hidden.requires_grad):
                return

            def grad_hook(grad):
                self._jacobian = grad.detach().clone()

            hidden.register_hook(grad_hook)

        self._handles.append(taps.blocks[0].register_forward_pre_hook(pre_hook))

    def jacobian(self) -> torch.Tensor:
        if self._jacobian is None:
            raise RuntimeError("no gradient reached the first block's input")
        return self._jacobian


@BASELINES.register(
    "jacobian_cosine",
    description="1 - mean |cosine|^(1/20) between embedding-feature columns of dL/d(position embedding)",
)
class JacobianCosine(_InputJacobian):
    """Jacobian cosine (Serianni & Kalita 2023): take J = dL/dP, the gradient of the loss
    w.r.t. the position-embedding table restricted to the used positions (tokens × d); for
    the d feature columns compute pairwise cosine similarities c_ij (i≠j) and return
    ``1 - (1/(d²-d)) · (1/2) · sum_{i≠j} |c_ij|^(1/20)`` (the reference's formula,
    including its factor 1/2).

    dL/dP[t] equals the batch sum of dL/dh0[:, t] (h0 = input of the first block, the sum
    of token and position embeddings), which is what is read here — so no access to the
    embedding module is needed. Same as the reference's GPT-2 code (``wpe.weight.grad`` after
    the LM-loss backward). A feature column with zero gradient has no cosine and is dropped.
    Measured (200 archs, WikiText-2 16x192): τ -0.351 vs the reference file's -0.227: both
    negative (a wider model has more correlated Jacobian columns), ours more so. Same
    formula and tensor; the gap is measurement noise of a one-batch, one-init score: on
    60 archs (WikiText-2 4x192) four seeds of batch and init give τ -0.102 / +0.020 /
    -0.035 / -0.082, a spread (0.12) as large as the gap.
    Orientation: higher is better (less correlated Jacobian columns), as the reference ranked it.
    """

    source = "Serianni & Kalita 2023 (ACL)"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        jac = self.jacobian().double()
        per_position = jac.reshape(-1, jac.shape[-2], jac.shape[-1]).sum(dim=0)  # (tokens, d)
        columns = per_position.t()  # (d, tokens)
        norms = columns.norm(dim=1)
        columns = columns[norms > 0] / norms[norms > 0, None]
        n = columns.shape[0]
        if n < 2:
            return float("nan")
        cosines = columns @ columns.t()
        cosines.fill_diagonal_(0.0)
        summed = cosines.abs().pow(1.0 / 20).sum() / 2
        return float(1 - summed / (n * n - n))


@BASELINES.register(
    "jacob_cov",
    description="NWOT Jacobian covariance of per-sample dL/d(input embeddings)",
)
class JacobCov(_InputJacobian):
    """Jacobian covariance (Mellor et al., "Neural Architecture Search without Training",
    ICML 2021 v1): rows = per-sample Jacobians (the gradient w.r.t. the hidden state entering
    the first block, i.e. the input embeddings, flattened over tokens × d); their correlation
    matrix Σ (batch × batch) with eigenvalues λ gives ``-sum(log(λ + k) + 1/(λ + k))``,
    k = 1e-5.

    Reference difference: the reference replaced the LM loss by a random Linear(n_token → 1)
    applied to the logits and back-propagated ones; here the shared LM-loss backward is used
    (each sample's rows depend only on its own loss terms, so the rows are per-sample
    Jacobians of the loss). Eigenvalues via ``eigvalsh`` (Σ is symmetric). Needs batch ≥ 2.
    No reference score file. Orientation: higher is better.
    """

    source = "Mellor et al. 2021 (ICML), NWOT v1"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        jac = self.jacobian().double()
        rows = jac.reshape(jac.shape[0], -1)
        if rows.shape[0] < 2:
            return float("nan")
        corr = torch.corrcoef(rows)
        eig = torch.linalg.eigvalsh(corr)
        k = 1e-5
        return float(-(torch.log(eig + k) + 1.0 / (eig + k)).sum())
