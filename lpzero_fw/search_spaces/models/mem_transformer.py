"""Transformer-XL (NVIDIA memory transformer) models of the LTS benchmark, randomly initialised.

Architecture (facts from the LTS code base: archai ``nlp/models/mem_transformer`` and
``model_utils/adaptive_embedding.py`` / ``proj_adaptive_softmax.py``, itself NVIDIA's
Transformer-XL with per-layer ``n_head`` / ``d_inner``)
----------------------------------------------------------------------------------------
* Input: the adaptive embedding of :mod:`.gpt2_lts` (same cutoff cleaning, tables,
  projections, ``sqrt(d_model)`` scale). No absolute positions: ``attn_type: 0`` uses
  relative positions, a sinusoidal table over the distances ``klen-1 .. 0``
  (``clamp_len`` > 0 clamps them) shared by all layers.
* ``n_layer`` decoder layers, layer l with ``n_head[l]`` heads of ``d_head[l]`` (``-1``:
  ``d_model // n_head[l]``) and an FFN of width ``d_inner[l]``:
  - attention: ``qkv_net`` Linear(d, 3·H·Dh, no bias), ``r_net`` Linear(d, H·Dh, no bias)
    for the positions, ``o_net`` Linear(H·Dh, d, no bias), a LayerNorm, and the layer's
    ``r_w_bias`` / ``r_r_bias`` (H, Dh). Score = ``(q + r_w_bias)·k + rel_shift((q +
    r_r_bias)·r)``, scaled by ``1/sqrt(Dh)``, causally masked.
  - FFN ``CoreNet``: Linear(d, d_inner) + bias, ReLU, Linear(d_inner, d) + bias, a LayerNorm.
  - ``pre_lnorm: false`` (the benchmark): ``LN(x + sublayer(x))``; ``true``:
    ``x + sublayer(LN(x))``. There is no final LayerNorm.
* Output: the projected adaptive softmax of :mod:`.gpt2_lts` (tied words, per-cluster
  ``tie_projs``); the loss is the mean next-token NLL through it.
* Memory (``mem_len``) and segment length (``tgt_len``): statistics come from one
  segment, i.e. the first training step, whose memory is still empty, so ``klen = qlen``;
  sequences longer than ``tgt_len`` are refused by the search space.

Parameter counts (see :func:`analytic_param_counts`; equal to ``params_summary.yaml`` and
to each config's ``n_all_param`` / ``n_nonemb_param`` for all 200 architectures)
---------------------------------------------------------------------------------------
per layer, with ``e = H·Dh``: ``Attn = 5·d·e + 2d`` (q/k/v, r, o, the attention
LayerNorm); ``FFN = 2·d·d_inner + d_inner + d``; ``nonembedding = Attn + FFN + 2d (FFN
LayerNorm) + 2e (r_w_bias, r_r_bias)``; ``AdaEmb`` = tables + input projections;
``total = AdaEmb + nonembedding + softmax`` (as in :func:`.gpt2_lts.adaptive_param_counts`).
The training script's ``n_nonemb_param`` / ``n_all_param`` are ``nonembedding`` /
``total`` without the per-layer ``r_w_bias`` / ``r_r_bias`` (``2e`` per layer): its
parameter count did not include them.

Initialisation (LTS ``weights_init``): Linear, embedding and cluster weights
N(0, weight_init_std=0.02), biases 0, projections N(0, proj_init_std=0.01), LayerNorm
weights N(1, 0.02) and biases 0, ``r_w_bias`` / ``r_r_bias`` N(0, 0.02). Dropout 0.

Taps (see :func:`txl_taps`): per layer ``pos_ff.act`` = ReLU output (batch, tokens,
d_inner); ``dec_attn.heads`` = per-head context (batch, heads, tokens, Dh);
``dec_attn.probs`` = attention probabilities (batch, heads, tokens, tokens); the layer
itself (positional input 0 = hidden state (batch, tokens, d)); ``linears`` =
``qkv_net, r_net, o_net, fc1, fc2`` per layer (``nn.Linear``). Everything is batch-first
(the original is time-first; the arithmetic is the same).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import Taps
from lpzero_fw.search_spaces.models.gpt2_lts import (
    AdaptiveEmbedding,
    AdaptiveVocab,
    ProjectedAdaptiveSoftmax,
    adaptive_param_counts,
    draw_word_tables,
    parse_lts_common,
)

SUPPORTED_ATTN_TYPES = (0,)


@dataclass(frozen=True)
class TransformerXLConfig(AdaptiveVocab):
    """The model-relevant part of a Transformer-XL LTS ``model_config.yaml``."""

    n_token: int
    d_model: int
    d_embed: int
    n_head: tuple[int, ...]
    d_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    div_val: int
    cutoffs: tuple[int, ...]
    tie_weight: bool
    tie_projs: tuple[bool, ...]
    pre_lnorm: bool = False
    tgt_len: int = 192
    mem_len: int = 192
    clamp_len: int = -1
    weight_init_std: float = 0.02
    proj_init_std: float = 0.01

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> "TransformerXLConfig":
        fields = parse_lts_common(raw, where)
        n_layer = len(fields["n_head"])
        attn_type = raw.get("attn_type", 0)
        if attn_type not in SUPPORTED_ATTN_TYPES:
            raise LPZeroError(
                f"{where}: attn_type={attn_type!r} is not supported; use "
                f"{', '.join(map(str, SUPPORTED_ATTN_TYPES))} (relative positions, the LTS default)"
            )
        try:
            d_head_raw = raw.get("d_head", -1)
            if isinstance(d_head_raw, (list, tuple)):
                d_head = tuple(int(v) for v in d_head_raw[:n_layer])
            elif d_head_raw is None or int(d_head_raw) < 0:
                d_head = tuple(fields["d_model"] // h if h > 0 else 0 for h in fields["n_head"])
            else:
                d_head = (int(d_head_raw),) * n_layer
            extra = dict(
                pre_lnorm=bool(raw.get("pre_lnorm", False)),
                tgt_len=int(raw.get("tgt_len") or 192),
                mem_len=int(raw.get("mem_len") or 0),
                clamp_len=int(raw.get("clamp_len", -1) if raw.get("clamp_len") is not None else -1),
            )
        except (TypeError, ValueError) as exc:
            raise LPZeroError(f"{where}: malformed value ({exc})") from None
        if len(d_head) < n_layer or any(h < 1 for h in fields["n_head"]) or any(dh < 1 for dh in d_head):
            raise LPZeroError(f"{where}: n_head and d_head must give every layer >= 1 head of width >= 1")
        if extra["tgt_len"] < 1:
            raise LPZeroError(f"{where}: tgt_len must be positive")
        return cls(d_head=d_head, **fields, **extra)


def layer_param_counts(cfg: TransformerXLConfig) -> list[dict[str, int]]:
    """Per layer: ``attn`` (nets + attention LayerNorm), ``ffn`` (CoreNet), ``norm`` (FFN
    LayerNorm) and ``rel_bias`` (r_w_bias + r_r_bias)."""
    d = cfg.d_model
    out = []
    for heads, d_head, inner in zip(cfg.n_head, cfg.d_head, cfg.d_inner):
        e = heads * d_head
        out.append({"attn": 5 * d * e + 2 * d, "ffn": 2 * d * inner + inner + d, "norm": 2 * d, "rel_bias": 2 * e})
    return out


def analytic_param_counts(cfg: TransformerXLConfig) -> dict[str, int]:
    """``params_summary.yaml``'s keys plus the training script's ``n_all_param`` /
    ``n_nonemb_param``, without building the model."""
    layers = layer_param_counts(cfg)
    attn = sum(part["attn"] for part in layers)
    ffn = sum(part["ffn"] for part in layers)
    rel_bias = sum(part["rel_bias"] for part in layers)
    nonembedding = attn + ffn + sum(part["norm"] for part in layers) + rel_bias
    embedding, softmax = adaptive_param_counts(cfg)
    total = embedding + nonembedding + softmax
    return {
        "AdaEmb": embedding,
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": nonembedding,
        "total": total,
        "n_nonemb_param": nonembedding - rel_bias,
        "n_all_param": total - rel_bias,
    }


# ----------------------------------------------------------------------------- modules
def _normal_(tensor: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    with torch.no_grad():
        return tensor.normal_(mean, std)


def _layer_norm(d_model: int, std: float) -> nn.LayerNorm:
    norm = nn.LayerNorm(d_model)
    _normal_(norm.weight, 1.0, std)
    return norm


def _linear(d_in: int, d_out: int, bias: bool, std: float) -> nn.Linear:
    layer = torch.nn.utils.skip_init(nn.Linear, d_in, d_out, bias=bias)  # no default draw to overwrite
    _normal_(layer.weight, 0.0, std)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class SinusoidPositions(nn.Module):
    """Sinusoidal embedding of relative distances (no parameters)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1 / (10000 ** (torch.arange(0.0, d_model, 2.0) / d_model)), persistent=False)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(distances, self.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TappedReLU(nn.Module):
    """ReLU followed by an ``nn.Identity`` tap (``out``) on its output (input A)."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(x))


class PositionwiseFF(nn.Module):
    """Transformer-XL feed-forward sublayer (post- or pre-LayerNorm residual)."""

    def __init__(self, d_model: int, d_inner: int, pre_lnorm: bool, std: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = _linear(d_model, d_inner, True, std)
        self.act = TappedReLU()
        self.fc2 = _linear(d_inner, d_model, True, std)
        self.drop = nn.Dropout(dropout)
        self.layer_norm = _layer_norm(d_model, std)
        self.pre_lnorm = pre_lnorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.layer_norm(x) if self.pre_lnorm else x
        core = self.drop(self.fc2(self.drop(self.act(self.fc1(inner)))))
        return x + core if self.pre_lnorm else self.layer_norm(x + core)


class RelPartialLearnableAttention(nn.Module):
    """Relative multi-head attention with learnable global content / position biases."""

    def __init__(
        self, d_model: int, n_head: int, d_head: int, pre_lnorm: bool, std: float,
        dropout: float = 0.0, dropatt: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        inner = n_head * d_head
        self.qkv_net = _linear(d_model, 3 * inner, False, std)
        self.r_net = _linear(d_model, inner, False, std)
        self.o_net = _linear(inner, d_model, False, std)
        self.layer_norm = _layer_norm(d_model, std)
        self.r_w_bias = nn.Parameter(_normal_(torch.empty(n_head, d_head), 0.0, std))
        self.r_r_bias = nn.Parameter(_normal_(torch.empty(n_head, d_head), 0.0, std))
        self.probs = nn.Identity()  # tap S
        self.heads = nn.Identity()  # tap H
        self.drop = nn.Dropout(dropout)
        self.dropatt = nn.Dropout(dropatt)
        self.scale = d_head**-0.5
        self.pre_lnorm = pre_lnorm

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        """Align (…, query i, distance index) scores to (…, query i, key j): Transformer-XL's shift."""
        *lead, q, k = x.shape
        padded = torch.cat([x.new_zeros(*lead, q, 1), x], dim=-1).view(*lead, k + 1, q)
        return padded[..., 1:, :].reshape(*lead, q, k)

    def forward(self, w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        batch, qlen, _ = w.shape
        heads = self.qkv_net(self.layer_norm(w) if self.pre_lnorm else w)
        q, k, v = (t.view(batch, qlen, self.n_head, self.d_head) for t in heads.chunk(3, dim=-1))
        r_k = self.r_net(r).view(r.shape[0], self.n_head, self.d_head)
        content = torch.einsum("bihd,bjhd->bhij", q + self.r_w_bias, k)
        position = self.rel_shift(torch.einsum("bihd,jhd->bhij", q + self.r_r_bias, r_k))
        scores = (content + position) * self.scale
        future = torch.ones(qlen, qlen, dtype=torch.bool, device=w.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        probs = self.probs(torch.softmax(scores, dim=-1))
        context = self.heads(torch.einsum("bhij,bjhd->bhid", self.dropatt(probs), v))
        out = self.drop(self.o_net(context.transpose(1, 2).reshape(batch, qlen, self.n_head * self.d_head)))
        return w + out if self.pre_lnorm else self.layer_norm(w + out)


class RelDecoderLayer(nn.Module):
    """One Transformer-XL layer; ``forward(hidden, pos_emb)`` takes the hidden state first."""

    def __init__(self, cfg: TransformerXLConfig, layer: int, dropout: float = 0.0, dropatt: float = 0.0) -> None:
        super().__init__()
        std = cfg.weight_init_std
        self.dec_attn = RelPartialLearnableAttention(
            cfg.d_model, cfg.n_head[layer], cfg.d_head[layer], cfg.pre_lnorm, std, dropout, dropatt
        )
        self.pos_ff = PositionwiseFF(cfg.d_model, cfg.d_inner[layer], cfg.pre_lnorm, std, dropout)

    def forward(self, hidden: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        return self.pos_ff(self.dec_attn(hidden, pos_emb))


class TransformerXLModel(nn.Module):
    """Transformer-XL LM with adaptive input/softmax and per-layer heads / FFN widths.

    ``word_grads=False`` builds the word tables (input embeddings, shared with the softmax
    when tied, and untied output tables) with ``requires_grad=False``: every other
    gradient, the loss and the input Jacobian are unchanged, but the backward pass skips
    the dense (vocabulary x width) table gradients that no statistic reads.
    """

    def __init__(
        self, cfg: TransformerXLConfig, dropout: float = 0.0, dropatt: float = 0.0, word_grads: bool = True,
        tables: list[torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.word_emb = AdaptiveEmbedding(cfg, tables)
        self.pos_emb = SinusoidPositions(cfg.d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(RelDecoderLayer(cfg, i, dropout, dropatt) for i in range(cfg.n_layer))
        self.crit = ProjectedAdaptiveSoftmax(cfg)
        if not word_grads:
            for table in [*(m.weight for m in self.word_emb.emb_layers), *self.crit.out_weights]:
                table.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean LM loss when ``labels`` (next tokens) are given, else the last hidden states."""
        qlen = input_ids.shape[1]
        hidden = self.word_emb(input_ids)
        if torch.is_grad_enabled() and not hidden.requires_grad:  # frozen tables, no projection
            hidden.requires_grad_(True)  # keep dL/d(input embeddings) (input J) defined
        hidden = self.drop(hidden)
        distances = torch.arange(qlen - 1, -1, -1.0, device=input_ids.device, dtype=hidden.dtype)
        if self.cfg.clamp_len > 0:
            distances = distances.clamp(max=self.cfg.clamp_len)
        pos_emb = self.drop(self.pos_emb(distances))
        for layer in self.layers:
            hidden = layer(hidden, pos_emb)
        hidden = self.drop(hidden)
        if labels is None:
            return hidden
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")
        target = labels.reshape(-1)
        if int(target.min()) < 0 or int(target.max()) >= self.cfg.n_token:
            raise ValueError(f"labels must lie in [0, {self.cfg.n_token})")
        return self.crit(hidden.reshape(-1, self.cfg.d_model), target, self.word_emb)


# ----------------------------------------------------------------------------- helpers
def build_transformer_xl(
    cfg: TransformerXLConfig, seed: int = 0, dropout: float = 0.0, dropatt: float = 0.0, word_grads: bool = True,
    table_cache: dict | None = None,
) -> TransformerXLModel:
    """A deterministically initialised model (global RNG state is left untouched).

    ``table_cache`` (a dict the caller owns, e.g. one per search space): the word tables
    are a model's first RNG draws and depend only on the seed and the vocabulary geometry,
    which the 200 benchmark models share in 9 combinations; a cached copy plus the RNG
    state after drawing it gives a bit-identical model without drawing up to 137M normal
    numbers again (the slowest step of building one).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if table_cache is None:
            return TransformerXLModel(cfg, dropout=dropout, dropatt=dropatt, word_grads=word_grads)
        key = (int(seed), cfg.n_token, cfg.cutoffs, cfg.div_val, cfg.d_embed, cfg.weight_init_std)
        if key not in table_cache:
            tables = draw_word_tables(cfg)
            table_cache[key] = (tables, torch.get_rng_state())
        tables, state = table_cache[key]
        torch.set_rng_state(state)
        copies = [t.clone() for t in tables]  # models own their tables (synflow writes |W| in place)
        return TransformerXLModel(cfg, dropout=dropout, dropatt=dropatt, word_grads=word_grads, tables=copies)


def txl_taps(model: TransformerXLModel) -> Taps:
    layers = list(model.layers)
    return Taps(
        activations=[layer.pos_ff.act.out for layer in layers],
        heads=[layer.dec_attn.heads for layer in layers],
        softmax=[layer.dec_attn.probs for layer in layers],
        blocks=layers,
        linears=[
            m
            for layer in layers
            for m in (layer.dec_attn.qkv_net, layer.dec_attn.r_net, layer.dec_attn.o_net, layer.pos_ff.fc1, layer.pos_ff.fc2)
        ],
    )


def _numel(module: nn.Module | nn.Parameter) -> int:
    if isinstance(module, nn.Parameter):
        return module.numel()
    return sum(p.numel() for p in module.parameters())


def model_param_counts(model: TransformerXLModel) -> dict[str, int]:
    """Counts of a built model grouped by module (same keys as :func:`analytic_param_counts`)."""
    attn = sum(_numel(l.dec_attn) - _numel(l.dec_attn.r_w_bias) - _numel(l.dec_attn.r_r_bias) for l in model.layers)
    ffn = sum(_numel(l.pos_ff.fc1) + _numel(l.pos_ff.fc2) for l in model.layers)
    rel_bias = sum(_numel(l.dec_attn.r_w_bias) + _numel(l.dec_attn.r_r_bias) for l in model.layers)
    nonembedding = _numel(model.layers)
    total = _numel(model)
    return {
        "AdaEmb": _numel(model.word_emb),
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": nonembedding,
        "total": total,
        "n_nonemb_param": nonembedding - rel_bias,
        "n_all_param": total - rel_bias,
    }
