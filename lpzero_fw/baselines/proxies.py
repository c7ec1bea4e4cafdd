"""Human-designed zero-cost proxies (registry ``BASELINES``) and the reference's searched formulas.

Every baseline reads a model only through the search space's :class:`~lpzero_fw.search_spaces.base.Taps`
(plus ``model.parameters()`` / ``model.modules()`` for counting), so it works for any space
that honours the taps contract. Scores are sums over layers of per-layer quantities, as in
the LPZero reference (``lpzero/predictor/measures``), whose GPT-2 scores were computed on one
16x192 WikiText-103 batch and are stored beside the benchmark as ``<name>_scores_seed_1111.yaml``.

Conventions
-----------
* "linears" = ``taps.linears`` (for GPT-2: the Linear/Conv1D layers of the blocks; the
  reference summed over every ``nn.Linear``/``transformers.Conv1D`` module, which for its
  GPT-2 (adaptive-softmax head, no Linear there) is the same set).
* A weight's gradient is the gradient of the shared LM-loss backward (``model(**batch)``
  returns the mean token cross-entropy); a layer the loss does not reach contributes 0.
* ``higher_is_better`` is the orientation the reference's ranking script used
  (``eval_rank_gpt2.py`` ranks by ``-score``, i.e. higher score = lower perplexity, after
  negating GraSP first).
* Shared-pass baselines register hooks in ``attach`` and read weights, ``.grad`` and what
  the hooks recorded in ``score``; they never modify the model. The others (synflow,
  logsynflow, grasp) get a fresh model and run their own passes.

Where the reference is buggy or depends on the weight layout, the class docstring says what
was done instead; ``benchmarks/compare_reference.py`` measures the resulting rank agreement.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lpzero_fw.baselines.base import BaselineProxy
from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, Taps

#: the reference's searched proxies as formula strings (evaluated by the formula machinery,
#: not registered as baselines): GPT-2 (Table/Fig. of arXiv 2410.04808 and
#: ``lpzero/predictor/measures/lpzero.py`` genotype ``['weight', 'grad'], [[3, 10], [11, 3], 0]``)
#: and FlexiBERT.
NAMED_FORMULAS: dict[str, str] = {
    "lpzero_gpt2": "sum(l1_norm(square(W)), square(softmax(G)))",
    "lpzero_flexibert": "sum(square(negate(H)), log_softmax(frobenius_norm(A)))",
}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _weight_out_in(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (a weight or its gradient) in (out_features, in_features) layout.

    ``nn.Linear`` stores (out, in); GPT-2's ``Conv1D`` (recognised by its ``nf`` attribute,
    the number of output features) stores (in, out).
    """
    if isinstance(module, nn.Linear):
        return tensor
    nf = getattr(module, "nf", None)
    if nf is not None and tensor.dim() == 2 and tensor.shape[1] == nf:
        return tensor.t()
    return tensor.reshape(tensor.shape[0], -1)


def _nuclear_norm(matrix: torch.Tensor) -> torch.Tensor:
    """Sum of singular values, via the eigenvalues of the smaller float64 Gram matrix
    (same value as ``torch.linalg.matrix_norm(ord="nuc")``, ~10x faster on CPU)."""
    m = matrix.detach().double().reshape(matrix.shape[0], -1)
    gram = m @ m.t() if m.shape[0] <= m.shape[1] else m.t() @ m
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum()


def _grad(module: nn.Module) -> torch.Tensor:
    grad = module.weight.grad
    return torch.zeros_like(module.weight) if grad is None else grad.detach()


def _as_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class _HookedProxy(BaselineProxy):
    """Keeps hook handles and removes them in :meth:`detach`."""

    def __init__(self) -> None:
        self._handles: list = []

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class _WeightGradSum(BaselineProxy):
    """Sum over ``taps.linears`` of ``per_layer(weight, grad)`` (shared pass, no hooks)."""

    def per_layer(self, module: nn.Module, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        total = 0.0
        for module in taps.linears:
            weight = module.weight.detach()
            total += float(self.per_layer(module, weight, _grad(module)).double())
        return total


# ----------------------------------------------------------------------------------------
# parameter counts
# ----------------------------------------------------------------------------------------
@BASELINES.register("num_parameters", description="total number of parameters (shared ones once)")
class NumParameters(BaselineProxy):
    """Total number of parameters, ``sum(p.numel() for p in model.parameters())``.

    Source: the standard size baseline (the reference's ``measures/parameters.py``).
    Orientation: higher is better (bigger models reach lower perplexity). Tied weights
    are counted once, as ``model.parameters()`` yields each tensor once.
    """

    source = "parameter count (reference measures/parameters.py)"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(sum(p.numel() for p in model.parameters()))


@BASELINES.register(
    "nonembedding_parameters",
    description="parameters of the transformer blocks plus norms outside them (decoder params)",
)
class NonEmbeddingParameters(BaselineProxy):
    """Non-embedding ("decoder") parameters, the LTS paper's proxy.

    Counted without the search space: every parameter of the modules in ``taps.blocks``,
    plus the parameters of normalisation layers outside the blocks (GPT-2's final
    ``ln_f``). For GPT-2 this equals ``params_summary.yaml``'s ``nonembedding``
    = Attn + FFN + (4L+2)·d. Embeddings, positional tables and the (adaptive) softmax
    head are excluded.

    Source: Javaheripi et al., "LiteTransformerSearch" (NeurIPS 2022) — decoder parameter
    count as a training-free proxy. Orientation: higher is better.
    """

    source = "Javaheripi et al. 2022, LiteTransformerSearch"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        seen: set[int] = set()
        total = 0
        block_modules: set[int] = set()
        for block in taps.blocks:
            for sub in block.modules():
                block_modules.add(id(sub))
            for p in block.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        norm_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm) if hasattr(
            nn, "RMSNorm"
        ) else (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)
        for module in model.modules():
            if id(module) in block_modules or not isinstance(module, norm_types):
                continue
            for p in module.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return float(total)


# ----------------------------------------------------------------------------------------
# gradient x weight saliencies (shared pass)
# ----------------------------------------------------------------------------------------
@BASELINES.register("grad_norm", description="sum over linear layers of the Frobenius norm of dL/dW")
class GradNorm(_WeightGradSum):
    """GradNorm: ``sum_l ||dL/dW_l||_F`` over the linear layers.

    Source: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021);
    reference ``measures/grad_norm.py`` (same definition). Orientation: higher is better.
    """

    source = "Abdelfattah et al. 2021 (ICLR), zero-cost proxies"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return grad.double().norm()


@BASELINES.register("snip", description="SNIP: sum |W * dL/dW| over linear layers")
class Snip(_WeightGradSum):
    """SNIP connection sensitivity: ``sum |W ⊙ dL/dW|`` over the linear layers.

    The reference multiplies each weight by a mask of ones and reads the mask's gradient,
    which equals ``W ⊙ dL/dW``; here it is read directly from the shared backward.
    Source: Lee et al., "SNIP" (ICLR 2019), as a proxy in Abdelfattah et al. 2021.
    Orientation: higher is better.
    """

    source = "Lee et al. 2019 (ICLR), SNIP"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return (weight.double() * grad.double()).abs().sum()


@BASELINES.register("synaptic_saliency", description="sum |W * dL/dW| over linear layers")
class SynapticSaliency(_WeightGradSum):
    """Synaptic saliency: ``sum |W ⊙ dL/dW|`` over the linear layers.

    Source: Tanaka et al. 2020 (the SynFlow saliency) used as a proxy for transformers by
    Serianni & Kalita, "Training-free NAS for RNNs and Transformers" (ACL 2023);
    reference ``measures/synaptic_saliency.py`` (all Linear/Conv1D layers for GPT-2 — which
    makes it numerically identical to SNIP). Orientation: higher is better.
    """

    source = "Serianni & Kalita 2023 (ACL)"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return (weight.double() * grad.double()).abs().sum()


@BASELINES.register("plain", description="sum W * dL/dW (signed) over linear layers")
class Plain(_WeightGradSum):
    """Plain: ``sum W ⊙ dL/dW`` (signed) over the linear layers.

    Source: Abdelfattah et al. 2021 (the "plain" first-order Taylor saliency); reference
    ``measures/plain.py``. No reference score file. Orientation: higher is better (as the
    reference ranks every proxy).
    """

    source = "Abdelfattah et al. 2021 (ICLR), zero-cost proxies"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return (weight.double() * grad.double()).sum()


@BASELINES.register(
    "synaptic_diversity", description="sum ||W||_nuc * ||dL/dW||_nuc over linear layers"
)
class SynapticDiversity(_WeightGradSum):
    """Synaptic diversity: ``sum_l ||W_l||_* · ||dL/dW_l||_*`` (nuclear norms).

    Source: Zhou et al., "Training-free Transformer Architecture Search" (CVPR 2022, TF-TAS),
    for transformers in Serianni & Kalita 2023; reference ``measures/synaptic_diversity.py``
    (same definition over all linear layers). Orientation: higher is better.
    """

    source = "Zhou et al. 2022 (CVPR), TF-TAS"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return (_nuclear_norm(weight) * _nuclear_norm(grad)).abs()


@BASELINES.register("eznas", description="EZNAS program on weight gradients (sign, gram, slogdet, sigmoid)")
class EZNAS(_WeightGradSum):
    """EZNAS (as programmed in the reference): per linear layer
    ``sigmoid(log|det(sign(G) sign(G)^T)|)`` summed over layers, ``G = dL/dW``.

    The reference applies the Gram product to the Conv1D layout (in, out), i.e. the Gram
    matrix is (in × in) = ``S^T S`` with ``S = sign(G)`` in (out, in) layout; that is kept.
    Whenever in > out the Gram matrix has rank ≤ out < in, its determinant is exactly 0 and
    the layer contributes ``sigmoid(-inf) = 0`` — computed here without the O(in³)
    determinant (the reference computed it and got ≈0 numerically). A full-rank ±1 Gram
    matrix has a large log-determinant, so each remaining layer contributes ≈1: on GPT-2
    the score degenerates to ≈ 3 × n_layer (attention qkv, attention output, FFN up), as
    the reference's integer-valued scores show.

    Source: Akhauri et al., "EZNAS: Evolving Zero-Cost Proxies for NAS" (NeurIPS 2022);
    reference ``measures/eznas.py``. Orientation: higher is better.
    """

    source = "Akhauri et al. 2022 (NeurIPS), EZNAS"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        signs = torch.sign(_weight_out_in(module, grad).double())  # (out, in)
        out_f, in_f = signs.shape
        if in_f > out_f:  # rank-deficient Gram matrix: det = 0 exactly
            return torch.tensor(0.0, dtype=torch.float64)
        gram = signs.t() @ signs  # (in, in)
        _, logabsdet = torch.linalg.slogdet(gram)
        return torch.sigmoid(logabsdet).abs()


@BASELINES.register(
    "lpzero_gpt2_reference",
    description="the reference's searched GPT-2 proxy as its code computes it: mean_l [mean(W^2) + mean(softmax_dim0(G)^2)]",
)
class LPZeroGPT2Reference(BaselineProxy):
    """The reference implementation's searched GPT-2 proxy, computed exactly as its code does.

    Genotype ``['weight', 'grad'], [[3, 10], [11, 3], 0]`` of ``measures/lpzero.py``:
    ``l1_norm(element_wise_pow(W))`` + ``element_wise_pow(softmax(G))``, joined by
    ``element_wise_sum`` per layer and reduced by ``convert_to_float`` (mean over layers
    of per-layer means). The reference's ``l1_norm`` is ``sum|x| / numel`` and its
    ``softmax`` runs over dim 0 of the stored weight layout (for Conv1D: over the input
    features, so each output column sums to 1): per layer ``mean(W**2) +
    mean(softmax(G, dim=0)**2)``, averaged over ``taps.linears``. The right branch is
    ~``1 / fan_in**2`` for the near-zero gradients of an untrained model, i.e. the proxy
    mostly measures layer widths. The named formula ``lpzero_gpt2`` is the same genotype
    in this package's operator semantics (whole-layer softmax, true L1 norm), which ranks
    differently; this class exists to check the reference's scores.
    Orientation: lower is better (the score falls as layers widen; the reference's own
    scores correlate negatively with -perplexity too).
    """

    searched = True

    source = "Dong et al. 2024 (LPZero), reference measures/lpzero.py"
    higher_is_better = False

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        per_layer = []
        for module in taps.linears:
            weight = module.weight.detach().double()
            grad = _grad(module).double()
            per_layer.append(float(weight.square().mean() + torch.softmax(grad, dim=0).square().mean()))
        return sum(per_layer) / len(per_layer) if per_layer else math.nan


# ----------------------------------------------------------------------------------------
# activation / attention statistics (shared pass, forward hooks)
# ----------------------------------------------------------------------------------------
@BASELINES.register(
    "head_confidence",
    description="sum over linear layers of mean_token-max of the layer's output",
)
class HeadConfidence(_HookedProxy):
    """Head confidence as the reference computed it for GPT-2: for every linear layer,
    ``mean(max over tokens of the layer's output)`` (max along dim 1 of the
    (batch, tokens, features) output, mean over batch and features), summed over layers.

    Serianni & Kalita (after Voita et al. 2019, "Analyzing multi-head self-attention")
    define head confidence on the attention heads; the reference's GPT-2 code hooks every
    Linear/Conv1D output instead (its ``attention_confidence`` is the identical code). The
    reference's GPT-2 definition is kept so that the score matches its published numbers;
    ``softmax_confidence`` is the attention-probability version.
    Orientation: higher is better.
    """

    source = "Serianni & Kalita 2023 (ACL); Voita et al. 2019"
    higher_is_better = True

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values: list[float] = []

        def hook(_module, _inputs, output):
            out = _as_tensor(output).detach()
            if out.dim() >= 3:
                value = out.float().max(dim=1).values.mean()
            else:
                value = out.float().max(dim=0).values.mean()
            self._values.append(float(value))

        for module in taps.linears:
            self._handles.append(module.register_forward_hook(hook))

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(math.fsum(v for v in self._values if not math.isnan(v)))


@BASELINES.register(
    "softmax_confidence",
    description="sum over attention layers of the mean (over heads, queries) max attention probability",
)
class SoftmaxConfidence(_HookedProxy):
    """Softmax confidence: for each attention layer, the attention probabilities S
    (batch, heads, queries, keys); ``mean over (batch, heads, queries) of max over keys``;
    summed over layers.

    Source: Serianni & Kalita 2023 (after Voita et al. 2019). The reference
    (``measures/softmax_confidence.py``, FlexiBERT only) takes ``torch.max(S, 1)``, i.e. the
    max over *heads*, not over the keys each query attends to; the max over keys (the
    confidence of a head's attention distribution) is used here. The closest GPT-2 reference
    file is ``attention_confidence``, which hooks linear-layer outputs (see
    ``head_confidence``). Measured (200 archs, WikiText-2 16x192): τ 0.455 vs 0.676 of the
    reference's (linear-output) attention_confidence — a different quantity, not a bug.
    Orientation: higher is better.
    """

    source = "Serianni & Kalita 2023 (ACL); Voita et al. 2019"
    higher_is_better = True

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values: list[float] = []

        def hook(_module, _inputs, output):
            probs = _as_tensor(output).detach().float()
            self._values.append(float(probs.max(dim=-1).values.mean()))

        for module in taps.softmax:
            self._handles.append(module.register_forward_hook(hook))

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(math.fsum(v for v in self._values if not math.isnan(v)))


@BASELINES.register(
    "activation_distance",
    description="sum over FFN activations of token-pair sign agreements (NWOT-style kernel)",
)
class ActivationDistance(_HookedProxy):
    """Activation distance: for each feed-forward activation output A (batch, tokens, f),
    binarise ``x = A > 0`` and sum all entries of the token kernel
    ``K = x x^T + (1-x)(1-x)^T`` (the number of (token, token, unit) sign agreements);
    averaged over the samples of the batch, summed over layers.

    The sum of all entries has the closed form ``sum_d c_d² + (T - c_d)²`` with ``c_d`` the
    number of tokens where unit d is active, so no T×T matrix is formed.

    Source: Mellor et al., "NAS without training" (ICML 2021) Hamming kernel, as a
    transformer proxy in Serianni & Kalita 2023. Differences to the reference's GPT-2 code:
    it hooked every Linear/Conv1D output (not the non-linearity) and used only the first
    sample of the batch; here the taps' activations (the FFN non-linearity, the
    FlexiBERT reference's choice) and the mean over samples are used.
    Measured (200 archs, WikiText-2 16x192): τ 0.416 vs the reference file's 0.644 — the
    reference's extra q/k/v/output-projection widths (all multiples of d_model) carry the
    d_model signal that the FFN activations alone lack.
    Orientation: higher is better.
    """

    source = "Mellor et al. 2021 (ICML); Serianni & Kalita 2023 (ACL)"
    higher_is_better = True

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values: list[float] = []

        def hook(_module, _inputs, output):
            act = _as_tensor(output).detach()
            if act.dim() == 2:
                act = act.unsqueeze(0)
            act = act.reshape(act.shape[0], act.shape[1], -1)  # (batch, tokens, units)
            tokens = act.shape[1]
            active = (act > 0).double().sum(dim=1)  # (batch, units)
            per_sample = (active.pow(2) + (tokens - active).pow(2)).sum(dim=1)
            self._values.append(float(per_sample.mean()))

        for module in taps.activations:
            self._handles.append(module.register_forward_hook(hook))

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(math.fsum(self._values))


# ----------------------------------------------------------------------------------------
# gradient-of-activation statistics (shared pass, tensor hooks)
# ----------------------------------------------------------------------------------------
@BASELINES.register(
    "head_importance",
    description="Michel et al. head importance: sum over heads of |<H_h, dL/dH_h>|",
)
class HeadImportance(_HookedProxy):
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

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values: list[float] = []

        def forward_hook(_module, _inputs, output):
            heads = _as_tensor(output)
            if not (isinstance(heads, torch.Tensor) and heads.requires_grad):
                return
            saved = heads.detach()

            def grad_hook(grad):
                prod = (saved.double() * grad.detach().double())  # (batch, heads, tokens, dim)
                per_head = prod.transpose(0, 1).reshape(prod.shape[1], -1).sum(dim=1)
                self._values.append(float(per_head.abs().sum()))

            heads.register_hook(grad_hook)

        for module in taps.heads:
            self._handles.append(module.register_forward_hook(forward_hook))

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(math.fsum(self._values))


@BASELINES.register(
    "fisher", description="Fisher channel saliency of linear-layer outputs (Theis et al.)"
)
class Fisher(_HookedProxy):
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

    def attach(self, model: nn.Module, taps: Taps) -> None:
        self._values: list[float] = []

        def forward_hook(_module, inputs, output):
            out = _as_tensor(output)
            if not (isinstance(out, torch.Tensor) and out.requires_grad):
                return
            fan_in = inputs[0].shape[-1] if inputs and isinstance(inputs[0], torch.Tensor) else 1
            saved = out.detach()

            def grad_hook(grad):
                act = saved.reshape(-1, saved.shape[-1]).double()
                g = grad.detach().reshape(-1, grad.shape[-1]).double()
                per_channel = (act * g).pow(2).mean(dim=0).mul(0.5)
                self._values.append(float(per_channel.sum()) * fan_in)

            out.register_hook(grad_hook)

        for module in taps.linears:
            self._handles.append(module.register_forward_hook(forward_hook))

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        return float(math.fsum(self._values))


class _InputJacobian(_HookedProxy):
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


# ----------------------------------------------------------------------------------------
# baselines with passes of their own
# ----------------------------------------------------------------------------------------
class _StopForward(Exception):
    """Raised by a hook to end a forward pass early."""


def _synflow_gradients(model: nn.Module, batch: Batch, taps: Taps) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Abs-weight, float64 pass on a constant input; returns (|W|, dR/dW) per linear layer.

    Input: every token id of the batch replaced by 0 (a constant token, so the hidden state
    entering block 0 is the same |embedding| at every position plus the |position| table),
    mirroring the reference's all-ones input embeddings plus position embeddings. Output
    R = sum of the last block's output. The reference summed the logits of the adaptive
    softmax's head cluster instead; those pass through the final LayerNorm and the tied
    (abs) embedding, which rescale but do not cut the flow into the blocks.
    """
    memo = getattr(model, "_synflow_gradients", None)
    if memo is not None:  # another baseline ran the pass on this model (own_pass = "synflow")
        return memo
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.double()
    model.zero_grad(set_to_none=True)
    outputs: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        outputs.append(_as_tensor(output))
        raise _StopForward  # R only needs the blocks: skip the final norm and softmax head

    handle = taps.blocks[-1].register_forward_hook(hook)
    try:
        constant = {k: torch.zeros_like(v) if k in ("input_ids", "labels") else v for k, v in batch.items()}
        model(**constant)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not outputs:
        raise RuntimeError("the last block produced no output")
    outputs[-1].double().sum().backward()
    memo = [(m.weight.detach(), _grad(m)) for m in taps.linears]
    model._synflow_gradients = memo
    return memo


@BASELINES.register("synflow", description="SynFlow: sum |W * dR/dW| with |W| and a constant input")
class SynFlow(BaselineProxy):
    """SynFlow (Tanaka et al. 2020, as a proxy in Abdelfattah et al. 2021): all parameters
    replaced by their absolute values, float64, a constant input, R = sum of the network
    output; score ``sum |W ⊙ dR/dW|`` over the linear layers. See ``_synflow_gradients``
    for the LM input/output used. Measured (200 archs, WikiText-2 16x192): τ 0.815 vs the
    reference file's 0.632; the gap comes from the output R (last block vs the reference's
    head-cluster logits through ln_f and the abs-valued tied embedding).
    Orientation: higher is better.
    """

    source = "Tanaka et al. 2020 (NeurIPS), SynFlow"
    higher_is_better = True
    shared_pass = False
    own_pass = "synflow"

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        total = 0.0
        for weight, grad in _synflow_gradients(model, batch, taps):
            total += float((weight * grad).abs().sum())
        return total


@BASELINES.register("logsynflow", description="LogSynFlow: sum |W| * |log|dR/dW|| with the SynFlow pass")
class LogSynFlow(BaselineProxy):
    """LogSynFlow (Cavagnero et al., "FreeREA", 2022): the SynFlow pass, score
    ``sum |W| · |log |dR/dW||`` over the linear layers. Exactly-zero gradients (where
    ``log`` is -inf; the reference then produced inf) contribute 0.
    Orientation: higher is better.
    """

    source = "Cavagnero et al. 2022, FreeREA (log-SynFlow)"
    higher_is_better = True
    shared_pass = False
    own_pass = "synflow"

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        total = 0.0
        for weight, grad in _synflow_gradients(model, batch, taps):
            g = grad.abs()
            nonzero = g > 0
            total += float((weight.abs()[nonzero] * g[nonzero].log().abs()).sum())
        return total


@BASELINES.register("grasp", description="GraSP: sum -W * (H dL/dW) over linear layers")
class GraSP(BaselineProxy):
    """GraSP (Wang et al., ICLR 2020, as in Abdelfattah et al. 2021): ``sum -W ⊙ (H g)``
    over the linear layers, g = dL/dW, H the Hessian of the LM loss (Hessian-gradient
    product by double back-propagation of ``g_detached · g``; one forward pass — the
    reference ran the same forward twice, identical in eval mode).
    Orientation: lower is better — the reference's ranking script negates GraSP before
    ranking higher-is-better, i.e. it ranks by ``+W ⊙ Hg``.
    Measured (200 archs, WikiText-2 16x192): τ 0.612 vs the reference file's 0.758. The
    gap is within GraSP's own seed noise: on 60 archs (WikiText-2 4x192) four seeds of
    batch and init give τ 0.485 / 0.620 / 0.487 / 0.496 (spread 0.135). Train mode with
    dropout and the reference's two separate forward passes does not close it (30 archs:
    τ 0.545 vs 0.600 in eval mode).
    """

    source = "Wang et al. 2020 (ICLR), GraSP"
    higher_is_better = False
    shared_pass = False

    def score(self, model: nn.Module, batch: Batch, taps: Taps) -> float:
        weights = [m.weight for m in taps.linears]
        model.zero_grad(set_to_none=True)
        loss = model(**batch)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z = None
        for g in grads:
            if g is None:
                continue
            term = (g.detach() * g).sum()
            z = term if z is None else z + term
        if z is None:
            return 0.0
        hg = torch.autograd.grad(z, weights, allow_unused=True)
        total = 0.0
        for w, h in zip(weights, hg):
            if h is not None:
                total += float((-w.detach().double() * h.detach().double()).sum())
        return total
