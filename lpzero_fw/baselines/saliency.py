"""Weight x gradient saliencies of the shared LM-loss pass, summed over linear layers."""
from __future__ import annotations

import torch

from lpzero_fw.baselines.common import weight_out_in, nuclear_norm, WeightGradSum
from lpzero_fw.registry import BASELINES


@BASELINES.register("grad_norm", description="sum over linear layers of the Frobenius norm of dL/dW")
class GradNorm(WeightGradSum):
    """GradNorm: ``sum_l ||dL/dW_l||_F`` over the linear layers.

    Source: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021);
    reference ``measures/grad_norm.py`` (same definition). Orientation: higher is better.
    """

    source = "Abdelfattah et al. 2021 (ICLR), zero-cost proxies"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return grad.double().norm()


@BASELINES.register("snip", description="SNIP: sum |W * dL/dW| over linear layers")
class Snip(WeightGradSum):
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
class SynapticSaliency(WeightGradSum):
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
class Plain(WeightGradSum):
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
class SynapticDiversity(WeightGradSum):
    """Synaptic diversity: ``sum_l ||W_l||_* · ||dL/dW_l||_*`` (nuclear norms).

    Source: Zhou et al., "Training-free Transformer Architecture Search" (CVPR 2022, TF-TAS),
    for transformers in Serianni & Kalita 2023; reference ``measures/synaptic_diversity.py``
    (same definition over all linear layers). Orientation: higher is better.
    """

    source = "Zhou et al. 2022 (CVPR), TF-TAS"
    higher_is_better = True

    def per_layer(self, module, weight, grad):
        return (nuclear_norm(weight) * nuclear_norm(grad)).abs()


@BASELINES.register("eznas", description="EZNAS program on weight gradients (sign, gram, slogdet, sigmoid)")
class EZNAS(WeightGradSum):
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
        signs = torch.sign(weight_out_in(module, grad).float())  # (out, in)
        out_f, in_f = signs.shape
        if in_f > out_f:  # rank-deficient Gram matrix: det = 0 exactly
            return torch.tensor(0.0, dtype=torch.float64)
        # integer entries up to out_f < 2**24: float32 computes them exactly, 1.7x faster than float64
        gram = (signs.t() @ signs).double()  # (in, in)
        _, logabsdet = torch.linalg.slogdet(gram)
        return torch.sigmoid(logabsdet).abs()
