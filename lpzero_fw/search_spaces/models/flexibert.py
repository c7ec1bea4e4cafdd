"""FlexiBERT / NAS-Bench-BERT models: ELECTRA-style encoders with heterogeneous layers.

Architecture (following the LPZero reference ``lpzero/model/flexibert/modeling_electra.py``)
-------------------------------------------------------------------------------------------
* Embeddings: transformers' ``ElectraEmbeddings`` (vocab 30522, embedding size 128,
  512 positions, 2 token types, LayerNorm), then ``embeddings_project``
  (Linear 128 → hidden) *only when* the hidden size differs from 128, as in ELECTRA.
* 2–4 encoder layers, each one of

  - ``SA``/``SDP``: scaled dot-product self-attention with q/k/v Linear(h, h),
    then ``ElectraSelfOutput`` (dense h→h, residual, LayerNorm);
  - ``SA``/``WMA``: the same with the query multiplied by an extra bias-free
    ``weight`` Linear(h, h) (weighted multiplicative attention);
  - ``LT``/``DFT`` and ``LT``/``DCT``: one ``input`` Linear(h, h) split into heads, then
    per head a 2-D transform over (tokens, head_dim): the real part of the FFT (FNet
    style) or an un-normalised DCT-II. As in the reference there is *no* output
    projection, residual or LayerNorm after a linear transform: its output goes
    straight into the feed-forward;
  - ``DSC`` with kernel 5 or 9: ConvBERT mixed attention with head ratio 2:
    ``heads // 2`` self-attention heads of size ``h // heads`` plus as many
    dynamic-convolution heads (separable key convolution, span-based kernel
    generator with a softmax over the kernel taps, light-weight convolution of
    ``conv_out_layer``), concatenated back to width h, then ``ElectraSelfOutput``.

  followed by the feed-forward: ``dense_in`` Linear(h, f), GELU, then
  ``num_feed_forward - 1`` times Linear(f, f) + GELU, and ``ElectraOutput``
  (dense f→h, residual with the operation's output, LayerNorm).
* Dropout is 0 by default (statistics are taken on a deterministic forward pass).

Sizes: each entry's ``hidden_size`` (256 when absent, ELECTRA-small's default) and each
layer's ``feed_forward_dimension`` are honoured. With ``reference_quirks=True`` every
model is built like the reference did: hidden 256, embedding 128, intermediate 1024
whatever the entry says; the parameter count then equals the reference CSV's
``Number of Parameters`` (``sum(p.numel())`` over the bare ``ElectraModel``: embeddings,
projection and encoder, no pooler and no prediction head).

Loss (what the G statistics differentiate)
------------------------------------------
``objective="mlm"`` (default): generator-free masked-token prediction. The batch masks
some positions (``labels`` = original id there, -100 elsewhere) and the model predicts
them through a *parameter-free* head tied to the input side: the last hidden state is
mapped back to embedding width with the transposed ``embeddings_project`` weight (when
there is a projection), passed through GELU and a LayerNorm without affine parameters,
and scored against the word-embedding matrix. ELECTRA's own discriminator objective
(replaced-token detection) needs a generator and an extra head; masked-token
prediction is the generator's objective and the closest loss that touches every
encoder weight without adding parameters, so the model's parameter set (and the
``param_counts``) stays exactly the benchmarked backbone.
``objective="hidden_sum"``: the reference's gradient signal, the sum of the last
hidden state (``output.backward(torch.ones_like(output))``); labels are ignored.

Taps
----
``act_taps``: one ``nn.Identity`` after every feed-forward GELU (``num_feed_forward``
per layer; the reference hooked the activation module, which fires once per call).
``head_tap`` (H), shape (batch, heads, tokens, head_dim) with heads =
``num_operation_heads`` and head_dim = h / heads for every layer type:
SA: attention context per head before the output dense; LT: the per-head transformed
slices of the ``input`` projection (the layer's token mixing, before the feed-forward);
DSC: the ``heads // 2`` attention heads followed by the ``heads // 2`` convolution heads.
``softmax_tap`` (S), shape (batch, heads, tokens, tokens): SA layers, and the
self-attention half of DSC layers (``heads // 2`` heads). LT layers have no attention
softmax; the DSC softmax over kernel taps is not a token-to-token attention map and is
not tapped. (The reference's "softmax" hook also recorded an unused softmax over the
LT outputs; that is not reproduced.)
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F
from lpzero_fw.registry import LPZeroError

if TYPE_CHECKING:
    from transformers.models.electra.configuration_electra import ElectraConfig


def _hf() -> SimpleNamespace:
    """transformers' ELECTRA parts, imported when the first model is built: importing
    transformers takes ~3 s, which runs on cached statistics never need."""
    from transformers.models.electra.configuration_electra import ElectraConfig
    from transformers.models.electra.modeling_electra import ElectraEmbeddings, ElectraOutput, ElectraSelfOutput

    return SimpleNamespace(ElectraConfig=ElectraConfig, ElectraEmbeddings=ElectraEmbeddings,
                           ElectraOutput=ElectraOutput, ElectraSelfOutput=ElectraSelfOutput)

VOCAB_SIZE = 30522
EMBEDDING_SIZE = 128
MAX_POSITIONS = 512
TYPE_VOCAB_SIZE = 2
PAD_TOKEN_ID = 0
DEFAULT_HIDDEN = 256  # ELECTRA-small / reference ElectraConfig default
QUIRK_HIDDEN = 256
QUIRK_INTERMEDIATE = 1024
CONV_HEAD_RATIO = 2
INIT_STD = 0.02
LAYER_NORM_EPS = 1e-12

OPERATIONS: dict[str, tuple] = {"SA": ("SDP", "WMA"), "LT": ("DFT", "DCT"), "DSC": (5, 9)}
OBJECTIVES = ("mlm", "hidden_sum")


# --------------------------------------------------------------------------- arch specs
@dataclass(frozen=True)
class LayerSpec:
    operation_type: str
    operation_parameter: Any
    num_operation_heads: int
    feed_forward_dimension: int
    num_feed_forward: int


@dataclass(frozen=True)
class FlexiBertArch:
    hidden_size: int
    layers: tuple[LayerSpec, ...]

    def resolved(self, reference_quirks: bool) -> "FlexiBertArch":
        """The sizes actually built: the entry's, or the reference's fixed 256/1024."""
        if not reference_quirks:
            return self
        layers = tuple(
            LayerSpec(
                l.operation_type,
                l.operation_parameter,
                l.num_operation_heads,
                QUIRK_INTERMEDIATE,
                l.num_feed_forward,
            )
            for l in self.layers
        )
        return FlexiBertArch(QUIRK_HIDDEN, layers)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LPZeroError(f"{what}: expected a positive integer, got {value!r}")
    return value


def parse_arch(entry: dict, where: str = "flexibert arch") -> FlexiBertArch:
    """A benchmark entry (or its ``model_hparam_overrides``) → :class:`FlexiBertArch`."""
    if not isinstance(entry, dict):
        raise LPZeroError(f"{where}: expected a mapping, got {type(entry).__name__}")
    overrides = entry
    if "hparams" in entry:
        hparams = entry["hparams"]
        if not isinstance(hparams, dict) or not isinstance(
            hparams.get("model_hparam_overrides"), dict
        ):
            raise LPZeroError(f"{where}: missing hparams.model_hparam_overrides")
        overrides = hparams["model_hparam_overrides"]
    hidden = _positive_int(overrides.get("hidden_size", DEFAULT_HIDDEN), f"{where}: hidden_size")
    nas = overrides.get("nas_config")
    layers_raw = nas.get("encoder_layers") if isinstance(nas, dict) else None
    if not isinstance(layers_raw, list) or not layers_raw:
        raise LPZeroError(f"{where}: nas_config.encoder_layers must be a non-empty list")
    layers = []
    for index, raw in enumerate(layers_raw):
        at = f"{where}: encoder_layers[{index}]"
        if not isinstance(raw, dict):
            raise LPZeroError(f"{at}: expected a mapping, got {type(raw).__name__}")
        op_type = raw.get("operation_type")
        if op_type not in OPERATIONS:
            raise LPZeroError(
                f"{at}: unknown operation_type {op_type!r}; "
                f"choose one of: {', '.join(OPERATIONS)}"
            )
        param = raw.get("operation_parameter")
        if param not in OPERATIONS[op_type] or isinstance(param, bool):
            choices = ", ".join(str(c) for c in OPERATIONS[op_type])
            raise LPZeroError(
                f"{at}: operation_parameter {param!r} is not valid for {op_type}; "
                f"choose one of: {choices}"
            )
        heads = _positive_int(raw.get("num_operation_heads"), f"{at}: num_operation_heads")
        if hidden % heads:
            raise LPZeroError(
                f"{at}: hidden_size {hidden} is not divisible by num_operation_heads {heads}"
            )
        if op_type == "DSC" and heads % CONV_HEAD_RATIO:
            raise LPZeroError(
                f"{at}: DSC layers need an even num_operation_heads "
                f"(half attention, half convolution), got {heads}"
            )
        ffn = _positive_int(raw.get("feed_forward_dimension"), f"{at}: feed_forward_dimension")
        num_ff = _positive_int(raw.get("num_feed_forward"), f"{at}: num_feed_forward")
        layers.append(LayerSpec(op_type, param, heads, ffn, num_ff))
    return FlexiBertArch(hidden, tuple(layers))


# ------------------------------------------------------------------ analytic counts
def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def layer_param_counts(spec: LayerSpec, hidden: int) -> dict[str, int]:
    """Parameters of one encoder layer: its token-mixing operation and its feed-forward."""
    h, n, f = hidden, spec.num_operation_heads, spec.feed_forward_dimension
    self_output = _linear(h, h) + 2 * h
    if spec.operation_type == "SA":
        operation = 3 * _linear(h, h) + self_output
        if spec.operation_parameter == "WMA":
            operation += _linear(h, h, bias=False)
    elif spec.operation_type == "LT":
        operation = _linear(h, h)
    else:  # DSC
        k = spec.operation_parameter
        att_heads = n // CONV_HEAD_RATIO
        width = att_heads * (h // n)
        operation = (
            3 * _linear(h, width)  # query, key, value
            + h * k + _linear(h, width)  # separable key conv: depthwise + pointwise (+bias)
            + _linear(width, att_heads * k)  # conv_kernel_layer
            + _linear(h, width)  # conv_out_layer
            + self_output
        )
    ffn = _linear(h, f) + (spec.num_feed_forward - 1) * _linear(f, f) + _linear(f, h) + 2 * h
    return {"operation": operation, "ffn": ffn}


def count_parameters(arch: FlexiBertArch, reference_quirks: bool = False) -> dict[str, int]:
    """Analytic parameter counts of :class:`FlexiBertModel` (equal to a built model's).

    ``total`` = embeddings + embedding projection + encoder: what the reference counted
    (the bare ElectraModel). The MLM head is tied and adds nothing.
    """
    arch = arch.resolved(reference_quirks)
    e, h = EMBEDDING_SIZE, arch.hidden_size
    embeddings = (VOCAB_SIZE + MAX_POSITIONS + TYPE_VOCAB_SIZE) * e + 2 * e
    projection = _linear(e, h) if e != h else 0
    operation = ffn = 0
    for spec in arch.layers:
        part = layer_param_counts(spec, h)
        operation += part["operation"]
        ffn += part["ffn"]
    encoder = operation + ffn
    return {
        "embeddings": embeddings,
        "projection": projection,
        "operation": operation,
        "ffn": ffn,
        "encoder": encoder,
        "nonembedding": projection + encoder,
        "total": embeddings + projection + encoder,
    }


# --------------------------------------------------------------------- token mixing
def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, tokens, heads·d) → (batch, heads, tokens, d)."""
    b, t, w = x.shape
    return x.view(b, t, heads, w // heads).permute(0, 2, 1, 3)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, tokens, d) → (batch, tokens, heads·d)."""
    b, n, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, n * d)


class SelfAttention(nn.Module):
    """SA layer operation: SDP, or WMA (query re-weighted by a bias-free square matrix)."""

    def __init__(self, config: ElectraConfig, heads: int, weighted: bool) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = heads
        self.head_size = h // heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.weight = nn.Linear(h, h, bias=False) if weighted else None
        self.softmax_tap = nn.Identity()
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.head_tap = nn.Identity()
        self.output = _hf().ElectraSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        query = self.query(hidden_states)
        if self.weight is not None:
            query = self.weight(query)
        q = _split_heads(query, self.num_heads)
        k = _split_heads(self.key(hidden_states), self.num_heads)
        v = _split_heads(self.value(hidden_states), self.num_heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        probs = self.dropout(self.softmax_tap(torch.softmax(scores, dim=-1)))
        context = self.head_tap(torch.matmul(probs, v))
        return self.output(_merge_heads(context), hidden_states)


def dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Un-normalised DCT-II as a matrix: ``X_k = 2·Σ_j x_j·cos(π·k·(2j+1)/(2n))``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    return (2.0 * torch.cos(math.pi * k * (2 * j + 1) / (2 * n))).to(device=device, dtype=dtype)


class LinearTransform(nn.Module):
    """LT layer operation: per-head 2-D DFT (real part) or DCT-II over (tokens, head_dim)."""

    def __init__(self, config: ElectraConfig, heads: int, transform: str) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = heads
        self.transform = transform
        self.input = nn.Linear(h, h)
        self.head_tap = nn.Identity()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = _split_heads(self.input(hidden_states), self.num_heads)
        if self.transform == "DFT":
            mixed = torch.fft.fft2(x, dim=(-2, -1)).real
        else:
            tokens, width = x.shape[-2], x.shape[-1]
            c_t = dct_matrix(tokens, x.dtype, x.device)
            c_d = dct_matrix(width, x.dtype, x.device)
            mixed = torch.matmul(torch.matmul(c_t, x), c_d.transpose(0, 1))
        return _merge_heads(self.head_tap(mixed))


class DynamicSeparableConv(nn.Module):
    """DSC layer operation: ConvBERT mixed attention (half attention, half dynamic conv)."""

    def __init__(self, config: ElectraConfig, heads: int, kernel: int) -> None:
        super().__init__()
        h = config.hidden_size
        self.kernel = kernel
        self.num_heads = heads // CONV_HEAD_RATIO
        self.head_size = h // heads
        width = self.num_heads * self.head_size
        self.query = nn.Linear(h, width)
        self.key = nn.Linear(h, width)
        self.value = nn.Linear(h, width)
        # separable key convolution; the pointwise 1x1 conv is a bias-free Linear plus a
        # bias, so that it is a Linear tap (same parameters as the reference's Conv1d)
        self.key_conv_depthwise = nn.Conv1d(
            h, h, kernel_size=kernel, groups=h, padding=kernel // 2, bias=False
        )
        self.key_conv_pointwise = nn.Linear(h, width, bias=False)
        self.key_conv_bias = nn.Parameter(torch.zeros(width))
        self.conv_kernel_layer = nn.Linear(width, self.num_heads * kernel)
        self.conv_out_layer = nn.Linear(h, width)
        self.softmax_tap = nn.Identity()
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.head_tap = nn.Identity()
        self.output = _hf().ElectraSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        b, t, _ = hidden_states.shape
        n, d, k = self.num_heads, self.head_size, self.kernel
        query = self.query(hidden_states)
        key_conv = self.key_conv_depthwise(hidden_states.transpose(1, 2)).transpose(1, 2)
        key_conv = self.key_conv_pointwise(key_conv) + self.key_conv_bias
        # dynamic kernels: one softmax-normalised k-tap kernel per token and conv head
        kernels = self.conv_kernel_layer(key_conv * query).view(b, t, n, k)
        kernels = torch.softmax(kernels, dim=-1)
        values = self.conv_out_layer(hidden_states)  # (b, t, n·d)
        pad = (k - 1) // 2
        windows = F.pad(values, (0, 0, pad, pad)).unfold(1, k, 1)  # (b, t, n·d, k)
        windows = windows.reshape(b, t, n, d, k)
        conv = torch.einsum("btndk,btnk->bntd", windows, kernels)
        # self-attention half
        q = _split_heads(query, n)
        key = _split_heads(self.key(hidden_states), n)
        v = _split_heads(self.value(hidden_states), n)
        scores = torch.matmul(q, key.transpose(-1, -2)) / math.sqrt(d)
        probs = self.dropout(self.softmax_tap(torch.softmax(scores, dim=-1)))
        context = torch.matmul(probs, v)
        heads = self.head_tap(torch.cat([context, conv], dim=1))  # (b, 2n, t, d)
        return self.output(_merge_heads(heads), hidden_states)


# ------------------------------------------------------------------------ layers
class FeedForward(nn.Module):
    """``dense_in`` + GELU, then ``num_feed_forward - 1`` × (Linear(f, f) + GELU)."""

    def __init__(self, hidden: int, width: int, count: int) -> None:
        super().__init__()
        self.dense_in = nn.Linear(hidden, width)
        self.dense_list = nn.ModuleList(nn.Linear(width, width) for _ in range(count - 1))
        self.act_taps = nn.ModuleList(nn.Identity() for _ in range(count))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.act_taps[0](F.gelu(self.dense_in(hidden_states)))
        for dense, tap in zip(self.dense_list, self.act_taps[1:]):
            x = tap(F.gelu(dense(x)))
        return x


class FlexiBertLayer(nn.Module):
    """One heterogeneous encoder layer; ``forward(hidden_states)`` → hidden_states."""

    def __init__(self, config: ElectraConfig, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        heads = spec.num_operation_heads
        if spec.operation_type == "SA":
            self.operation = SelfAttention(config, heads, weighted=spec.operation_parameter == "WMA")
        elif spec.operation_type == "LT":
            self.operation = LinearTransform(config, heads, spec.operation_parameter)
        else:
            self.operation = DynamicSeparableConv(config, heads, spec.operation_parameter)
        self.intermediate = FeedForward(
            config.hidden_size, spec.feed_forward_dimension, spec.num_feed_forward
        )
        ffn_config = copy.copy(config)
        ffn_config.intermediate_size = spec.feed_forward_dimension
        self.output = _hf().ElectraOutput(ffn_config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mixed = self.operation(hidden_states)
        return self.output(self.intermediate(mixed), mixed)


# ------------------------------------------------------------------------- model
class FlexiBertModel(nn.Module):
    """ELECTRA-style FlexiBERT encoder that returns a scalar loss (see module docstring)."""

    def __init__(
        self,
        arch: FlexiBertArch,
        *,
        reference_quirks: bool = False,
        objective: str = "mlm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise LPZeroError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        self.arch = arch.resolved(reference_quirks)
        self.reference_quirks = reference_quirks
        self.objective = objective
        self.config = _hf().ElectraConfig(
            vocab_size=VOCAB_SIZE,
            embedding_size=EMBEDDING_SIZE,
            hidden_size=self.arch.hidden_size,
            num_hidden_layers=len(self.arch.layers),
            num_attention_heads=self.arch.layers[0].num_operation_heads,
            intermediate_size=QUIRK_INTERMEDIATE,
            hidden_act="gelu",
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=MAX_POSITIONS,
            type_vocab_size=TYPE_VOCAB_SIZE,
            initializer_range=INIT_STD,
            layer_norm_eps=LAYER_NORM_EPS,
            pad_token_id=PAD_TOKEN_ID,
        )
        self.embeddings = _hf().ElectraEmbeddings(self.config)
        if EMBEDDING_SIZE != self.arch.hidden_size:
            self.embeddings_project = nn.Linear(EMBEDDING_SIZE, self.arch.hidden_size)
        else:
            self.embeddings_project = None
        self.layers = nn.ModuleList(FlexiBertLayer(self.config, spec) for spec in self.arch.layers)

    # -- init ----------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> "FlexiBertModel":
        """The reference's initialisation (N(0, 0.02) weights, zero biases, unit
        LayerNorms, zero padding embedding), drawn from a generator seeded by ``seed``."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))

        def normal_(tensor: torch.Tensor) -> None:
            if tensor.device.type == "meta":
                return
            tensor.copy_(torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype) * INIT_STD)

        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                normal_(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                normal_(module.weight)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, DynamicSeparableConv):
                module.key_conv_bias.zero_()
        return self

    # -- forward -------------------------------------------------------------------
    def encode(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Last hidden state (batch, tokens, hidden)."""
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        if self.embeddings_project is not None:
            hidden = self.embeddings_project(hidden)
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied, parameter-free LM head: hidden → embedding width → vocabulary logits."""
        if self.embeddings_project is not None:
            hidden = torch.matmul(hidden, self.embeddings_project.weight)
        hidden = F.layer_norm(F.gelu(hidden), (hidden.shape[-1],), eps=LAYER_NORM_EPS)
        return torch.matmul(hidden, self.embeddings.word_embeddings.weight.t())

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_unused: Any,
    ) -> torch.Tensor:
        """Scalar loss; without ``labels`` (objective ``mlm``) the last hidden state."""
        hidden = self.encode(input_ids, token_type_ids)
        if self.objective == "hidden_sum":
            return hidden.sum()
        if labels is None:
            return hidden
        selected = labels != -100
        if not bool(selected.any()):
            raise ValueError("labels select no masked position (all -100)")
        logits = self.mlm_logits(hidden[selected])
        return F.cross_entropy(logits, labels[selected])


def build_flexibert(
    arch: FlexiBertArch,
    *,
    seed: int = 0,
    reference_quirks: bool = False,
    objective: str = "mlm",
    dropout: float = 0.0,
    device: torch.device | str | None = None,
) -> FlexiBertModel:
    """A deterministically initialised model (``device="meta"`` for shape-only builds)."""
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"):
            return FlexiBertModel(
                arch, reference_quirks=reference_quirks, objective=objective, dropout=dropout
            )
    model = FlexiBertModel(arch, reference_quirks=reference_quirks, objective=objective, dropout=dropout)
    model.init_weights(seed)
    if device is not None:
        model.to(device)
    return model


def flexibert_taps(model: FlexiBertModel):
    """The :class:`~lpzero_fw.search_spaces.base.Taps` of a :class:`FlexiBertModel`."""
    from lpzero_fw.search_spaces.base import Taps

    taps = Taps()
    for layer in model.layers:
        op = layer.operation
        taps.heads.append(op.head_tap)
        if hasattr(op, "softmax_tap"):
            taps.softmax.append(op.softmax_tap)
        taps.activations.extend(layer.intermediate.act_taps)
        taps.blocks.append(layer)
        taps.linears.extend(m for m in layer.modules() if isinstance(m, nn.Linear))
    return taps
