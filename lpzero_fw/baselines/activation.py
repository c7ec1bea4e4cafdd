"""Activation and attention statistics of the shared forward (forward hooks)."""
from __future__ import annotations

from lpzero_fw.baselines.common import HookedSum
from lpzero_fw.registry import BASELINES


@BASELINES.register(
    "head_confidence",
    description="sum over linear layers of mean_token-max of the layer's output",
)
class HeadConfidence(HookedSum):
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

    tap = "linears"
    skip_nan = True

    def value(self, module, inputs, output):
        return float(output.float().max(dim=1 if output.dim() >= 3 else 0).values.mean())


@BASELINES.register(
    "softmax_confidence",
    description="sum over attention layers of the mean (over heads, queries) max attention probability",
)
class SoftmaxConfidence(HookedSum):
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

    tap = "softmax"
    skip_nan = True

    def value(self, module, inputs, output):
        return float(output.float().max(dim=-1).values.mean())


@BASELINES.register(
    "activation_distance",
    description="sum over FFN activations of token-pair sign agreements (NWOT-style kernel)",
)
class ActivationDistance(HookedSum):
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

    tap = "activations"

    def value(self, module, inputs, output):
        act = output.unsqueeze(0) if output.dim() == 2 else output
        act = act.reshape(act.shape[0], act.shape[1], -1)  # (batch, tokens, units)
        tokens = act.shape[1]
        active = (act > 0).double().sum(dim=1)  # (batch, units)
        per_sample = (active.pow(2) + (tokens - active).pow(2)).sum(dim=1)
        return float(per_sample.mean())
