"""GPT-2 models of the Lite Transformer Search (LTS) benchmark, randomly initialised.

Architecture (facts from the LPZero reference ``lpzero/model/hf_gpt2`` +
``model_utils/adaptive_embedding.py`` / ``proj_adaptive_softmax.py``)
------------------------------------------------------------------------------------
* Input: adaptive embedding of ``n_token`` ids (``d_embed: -1`` means d_model). The vocabulary is split at the cleaned
  ``cutoffs`` (see :func:`clean_cutoffs`; the benchmark's ``[19997, 39997, 199997, 50264]``
  becomes ``[19997, 39997, 50264]``: 3 clusters). ``div_val == 1``: one
  ``Embedding(n_token, d_embed)`` plus a projection ``(d_model, d_embed)`` only when
  ``d_embed != d_model``. ``div_val > 1``: cluster i has ``Embedding(size_i, d_embed //
  div_val**i)`` and always a projection ``(d_model, d_embed // div_val**i)``. The
  projected embedding is multiplied by ``sqrt(d_model)``; learned positions
  ``Embedding(n_positions, d_model)`` (``tgt_len`` = 192) are added.
* ``n_layer`` pre-LayerNorm GPT-2 blocks with per-layer ``n_head[l]`` and ``d_inner[l]``:
  ``h + attn(ln_1(h))`` then ``h + mlp(ln_2(h))``. Attention: transformers' ``Conv1D``
  ``c_attn`` (d -> 3d) and ``c_proj`` (d -> d), eager causal softmax attention scaled by
  ``1/sqrt(head_dim)``. MLP: transformers' ``GPT2MLP`` (``Conv1D`` c_fc d -> d_inner,
  ``gelu_new``, ``Conv1D`` c_proj d_inner -> d). Final LayerNorm ``ln_f``.
* Output: projected adaptive softmax. Head cluster logits = the first cluster's words plus
  one logit per tail cluster (``cluster_weight`` (n_clusters, d_embed), ``cluster_bias``);
  a tail word's log-probability is its cluster's head log-probability plus its
  within-cluster log-softmax. ``tie_weight``: the output word matrices *are* the
  embedding matrices; output biases (n_token in total) are always separate.
  ``tie_projs[i]``: cluster i reuses the input projection; otherwise it has its own
  ``(d_model, d_embed_i)`` projection (the benchmark unties the head cluster only). With
  ``div_val == 1`` and ``d_embed == d_model`` there is no projection at all.

Parameter counts (exactly ``params_summary.yaml``; see :func:`analytic_param_counts`)
-------------------------------------------------------------------------------------
``Attn = sum_l (4 d^2 + 4 d)``; ``FFN = sum_l (2 d d_inner_l + d_inner_l + d)``;
``nonembedding = Attn + FFN + (4 L + 2) d`` (two LayerNorms per block plus ``ln_f``);
``AdaEmb`` = adaptive-embedding tables and input projections + ``n_positions * d``;
``total = AdaEmb + nonembedding + softmax`` where ``softmax`` = ``n_clusters *
(d_embed + 1)`` (cluster weight and bias) + ``n_token`` (output biases) + the untied
output projections (+ the output word matrices when ``tie_weight`` is false), i.e. the
unique parameters of the model.

Initialisation (reference ``_init_weights``): Conv1D / embedding / position / cluster
weights N(0, weight_init_std=0.02); both ``c_proj`` weights N(0, 0.02 / sqrt(2 L));
input and output projections N(0, proj_init_std=0.01); biases 0; LayerNorm 1 / 0.
Every tensor is sampled once (Conv1D's own N(0, 0.02) draw is rescaled, not redrawn).
Dropout defaults to 0 so statistics come from a deterministic forward pass.

Loss: ``model(input_ids=..., labels=...)`` returns the mean next-token NLL over all
positions; ``labels`` are already the next tokens (same shape as ``input_ids``, every id in
``[0, n_token)``). Every cluster is evaluated even when no label falls into it, so every
parameter receives a (possibly zero) gradient.

Taps (``nn.Identity`` modules, see :func:`gpt2_taps`)
----------------------------------------------------
per block: ``mlp.act.out`` = gelu output (batch, tokens, d_inner); ``attn.heads`` =
per-head context before ``c_proj`` (batch, heads, tokens, head_dim); ``attn.probs`` =
attention probabilities (batch, heads, tokens, tokens); the block itself (positional
input 0 = hidden state entering it). ``linears`` = per block, in this order,
``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj`` — transformers ``Conv1D``
whose ``weight`` is stored (in_features, out_features), the transpose of ``nn.Linear``.
Embeddings, projections and the softmax head are not in ``linears``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import Taps

def _hf() -> SimpleNamespace:
    """transformers' GPT-2 parts, imported when the first model is built: importing
    transformers takes ~3 s, which runs on cached statistics never need."""
    from transformers.activations import ACT2FN
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
    from transformers.pytorch_utils import Conv1D

    return SimpleNamespace(ACT2FN=ACT2FN, GPT2MLP=GPT2MLP, Conv1D=Conv1D)


CONV1D_INIT_STD = 0.02  # transformers' Conv1D draws its weight from N(0, 0.02) in __init__
LAYER_NORM_EPS = 1e-5
ACTIVATION = "gelu_new"


# ----------------------------------------------------------------------------- config
def clean_cutoffs(cutoffs: list[int] | None, n_token: int) -> list[int]:
    """Cluster end ids exactly as the LTS code cleans them; the last one is always ``n_token``.

    Walk the strictly increasing list from its second entry and cut it before the first
    entry above ``n_token``; if the (then) last entry still exceeds ``n_token`` (only the
    first entry can) it becomes ``n_token``, and ``n_token`` is appended when the list ends
    below it. So ``[59997, 99997, 639997, 50264]`` with ``n_token=50264`` leaves the
    single cluster ``[50264]``. ``None`` means the LTS default ``[19997, 39997, 199997]``.
    """
    values = [19997, 39997, 199997, n_token] if cutoffs is None else [int(c) for c in cutoffs]
    if not values:
        return [n_token]
    end = 1
    while end < len(values):
        if values[end] <= values[end - 1]:
            raise LPZeroError(f"cutoffs {list(cutoffs or [])} must be strictly increasing")
        if values[end] > n_token:
            break
        end += 1
    kept = values[:end]
    kept[-1] = min(kept[-1], n_token)
    if kept[-1] < n_token:
        kept.append(n_token)
    if kept[0] <= 0:
        raise LPZeroError(f"cutoffs {list(cutoffs or [])} must be positive token ids")
    return kept


class AdaptiveVocab:
    """Adaptive input/softmax geometry shared by the LTS model configs (GPT-2, Transformer-XL).

    Needs the attributes ``n_token``, ``d_model``, ``d_embed``, ``div_val``, ``cutoffs``
    (cleaned), ``n_head`` (per layer), ``tie_weight``, ``tie_projs``.
    """

    @property
    def n_layer(self) -> int:
        return len(self.n_head)

    @property
    def n_clusters(self) -> int:
        return len(self.cutoffs) - 1

    def cluster_bounds(self) -> list[tuple[int, int]]:
        ends = [0, *self.cutoffs]
        return [(ends[i], ends[i + 1]) for i in range(len(self.cutoffs))]

    def embed_dims(self) -> list[int]:
        """Embedding width per table: one table when div_val == 1, else one per cluster."""
        if self.div_val == 1:
            return [self.d_embed]
        return [self.d_embed // self.div_val**i for i in range(len(self.cutoffs))]

    def input_projected(self) -> list[bool]:
        """Whether each input table has a projection to d_model."""
        if self.div_val == 1:
            return [self.d_embed != self.d_model]
        return [True] * len(self.cutoffs)


def parse_lts_common(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields every LTS model config shares, parsed as the LTS code reads them.

    ``d_embed`` -1 (or missing) means ``d_model``; scalar ``n_head`` / ``d_inner`` repeat
    per layer; cutoffs are cleaned (:func:`clean_cutoffs`) and ``tie_projs`` cut to the
    cluster count (missing entries: tied). Raises LPZeroError naming ``where``.
    """

    def need(key: str) -> Any:
        if key not in raw:
            raise LPZeroError(f"{where}: missing key {key!r}")
        return raw[key]

    try:
        n_layer = int(need("n_layer"))
        n_token = int(need("n_token"))
        d_model = int(need("d_model"))
        d_embed = raw.get("d_embed")
        d_embed = d_model if d_embed is None or int(d_embed) < 0 else int(d_embed)
        per_layer = {}
        for key in ("n_head", "d_inner"):
            value = need(key)
            values = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * n_layer
            if len(values) < n_layer:
                raise LPZeroError(f"{where}: {key} has {len(values)} entries for n_layer={n_layer}")
            per_layer[key] = tuple(values[:n_layer])
        div_val = int(raw.get("div_val", 1))
        cutoffs = clean_cutoffs(raw.get("cutoffs"), n_token)
        tie_projs_raw = raw.get("tie_projs")
        if not tie_projs_raw:  # reference default: untie the head only when adaptive
            tie_projs_raw = [not raw.get("adaptive", True)] + [True] * (len(cutoffs) - 1)
        tie_projs = tuple(bool(t) for t in list(tie_projs_raw)[: len(cutoffs)])
        tie_projs += (True,) * (len(cutoffs) - len(tie_projs))
        fields = dict(
            n_token=n_token,
            d_model=d_model,
            d_embed=d_embed,
            n_head=per_layer["n_head"],
            d_inner=per_layer["d_inner"],
            div_val=div_val,
            cutoffs=tuple(cutoffs),
            tie_weight=bool(raw.get("tie_weight", True)),
            tie_projs=tie_projs,
            weight_init_std=float(raw.get("weight_init_std", 0.02)),
            proj_init_std=float(raw.get("proj_init_std", 0.01)),
        )
    except (TypeError, ValueError) as exc:
        raise LPZeroError(f"{where}: malformed value ({exc})") from None
    if div_val < 1:
        raise LPZeroError(f"{where}: div_val={div_val} is not supported; use 1, 2, 4, ...")
    if n_layer < 1 or d_model < 1 or n_token < 1:
        raise LPZeroError(f"{where}: n_layer, d_model and n_token must be positive")
    if any(d_embed // div_val**i < 1 for i in range(len(cutoffs) if div_val > 1 else 1)):
        raise LPZeroError(f"{where}: d_embed={d_embed} // div_val**i reaches 0")
    return fields


@dataclass(frozen=True)
class GPT2LTSConfig(AdaptiveVocab):
    """The model-relevant part of an LTS ``model_config.yaml`` (lists already per layer)."""

    n_token: int
    n_positions: int
    d_model: int
    d_embed: int
    n_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    div_val: int
    cutoffs: tuple[int, ...]  # cleaned: the last entry is n_token
    tie_weight: bool
    tie_projs: tuple[bool, ...]  # one per cluster
    weight_init_std: float = 0.02
    proj_init_std: float = 0.01

    @classmethod
    def from_dict(cls, raw: dict[str, Any], n_positions: int | None = None, where: str = "config") -> "GPT2LTSConfig":
        fields = parse_lts_common(raw, where)
        try:
            tgt_len = int(raw.get("tgt_len") or raw.get("n_positions") or 192)
            positions = int(n_positions) if n_positions is not None else tgt_len
        except (TypeError, ValueError) as exc:
            raise LPZeroError(f"{where}: malformed value ({exc})") from None
        if positions < 1:
            raise LPZeroError(f"{where}: positions must be positive")
        d_model = fields["d_model"]
        for heads in fields["n_head"]:
            if heads < 1 or d_model % heads:
                raise LPZeroError(f"{where}: d_model={d_model} is not divisible by n_head={heads}")
        return cls(n_positions=positions, **fields)


def adaptive_param_counts(cfg: AdaptiveVocab) -> tuple[int, int]:
    """(input tables + input projections, softmax-only parameters) of the adaptive I/O.

    Softmax-only = cluster weight and bias (``n_clusters * (d_embed + 1)``) + the output
    biases (``n_token``) + untied output projections (+ the output word matrices when
    ``tie_weight`` is false).
    """
    d = cfg.d_model
    dims, projected = cfg.embed_dims(), cfg.input_projected()
    rows = [cfg.n_token] if cfg.div_val == 1 else [r - l for l, r in cfg.cluster_bounds()]
    tables = sum(n * dim for n, dim in zip(rows, dims))
    input_projs = sum(d * dim for dim, p in zip(dims, projected) if p)
    softmax = cfg.n_token
    if cfg.n_clusters > 0:
        softmax += cfg.n_clusters * (cfg.d_embed + 1)
    softmax += sum(d * dim for _, dim in _untied_output_projs(cfg))
    if not cfg.tie_weight:
        softmax += tables
    return tables + input_projs, softmax


def analytic_param_counts(cfg: GPT2LTSConfig) -> dict[str, int]:
    """Parameter counts by part without building the model (keys as params_summary.yaml)."""
    d, n_layer = cfg.d_model, cfg.n_layer
    attn = n_layer * (4 * d * d + 4 * d)
    ffn = sum(2 * d * inner + inner + d for inner in cfg.d_inner)
    layer_norm = (4 * n_layer + 2) * d
    embedding, softmax = adaptive_param_counts(cfg)
    ada_emb = embedding + cfg.n_positions * d
    nonembedding = attn + ffn + layer_norm
    return {
        "AdaEmb": ada_emb,
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": nonembedding,
        "total": ada_emb + nonembedding + softmax,
    }


def _untied_output_projs(cfg: AdaptiveVocab) -> list[tuple[int, int]]:
    """(cluster index, embed dim) of every output projection that is its own parameter."""
    if cfg.div_val == 1:
        if cfg.d_embed == cfg.d_model:
            return []
        return [(i, cfg.d_embed) for i, tied in enumerate(cfg.tie_projs) if not tied]
    dims = cfg.embed_dims()
    return [(i, dims[i]) for i, tied in enumerate(cfg.tie_projs) if not tied]


# ----------------------------------------------------------------------------- modules
def _normal(*shape: int, std: float) -> torch.Tensor:
    return torch.empty(*shape).normal_(0.0, std)


def draw_word_tables(cfg: AdaptiveVocab) -> list[torch.Tensor]:
    """The adaptive embedding's word tables, N(0, weight_init_std), drawn in table order:
    the first RNG draws of a model, so they depend only on the seed and the vocabulary
    geometry (``n_token``, cutoffs, ``div_val``, ``d_embed``), not on the rest of the model."""
    rows = [cfg.n_token] if cfg.div_val == 1 else [r - l for l, r in cfg.cluster_bounds()]
    return [_normal(n, dim, std=cfg.weight_init_std) for n, dim in zip(rows, cfg.embed_dims())]


class AdaptiveEmbedding(nn.Module):
    """Adaptive input embedding, projected to d_model and scaled by sqrt(d_model)."""

    def __init__(self, cfg: AdaptiveVocab, tables: list[torch.Tensor] | None = None) -> None:
        """``tables``: the word tables as :func:`draw_word_tables` returns them (used as
        they are); None draws them here, from the same RNG calls."""
        super().__init__()
        self.cfg = cfg
        self.scale = cfg.d_model**0.5
        if tables is None:
            tables = draw_word_tables(cfg)
        self.emb_layers = nn.ModuleList(nn.Embedding(*t.shape, _weight=t) for t in tables)
        # projections (d_model, dim) where needed; index-aligned with emb_layers when present
        self.emb_projs = nn.ParameterList(
            nn.Parameter(_normal(cfg.d_model, dim, std=cfg.proj_init_std))
            for dim, projected in zip(cfg.embed_dims(), cfg.input_projected())
            if projected
        )

    def proj(self, i: int) -> torch.Tensor | None:
        return self.emb_projs[i] if i < len(self.emb_projs) else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.div_val == 1:
            out = self.emb_layers[0](input_ids)
            if len(self.emb_projs):
                out = F.linear(out, self.emb_projs[0])
            return out * self.scale
        flat = input_ids.reshape(-1)
        out = flat.new_zeros((flat.numel(), cfg.d_model), dtype=self.emb_projs[0].dtype)
        for i, (lo, hi) in enumerate(cfg.cluster_bounds()):
            index = ((flat >= lo) & (flat < hi)).nonzero(as_tuple=True)[0]
            # empty clusters still run (on zero rows) so every table gets a gradient
            emb = F.linear(self.emb_layers[i](flat[index] - lo), self.emb_projs[i])
            out = out.index_copy(0, index, emb.to(out.dtype))
        return out.view(*input_ids.shape, cfg.d_model) * self.scale


class TappedActivation(nn.Module):
    """The MLP non-linearity followed by an ``nn.Identity`` tap (``out``) on its output."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fn(x))


class CausalSelfAttention(nn.Module):
    """GPT-2 attention (Conv1D q/k/v and output) with its own head count, computed eagerly."""

    def __init__(self, d_model: int, n_head: int, dropatt: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model, self.n_head, self.head_dim = d_model, n_head, d_model // n_head
        hf = _hf()
        self.c_attn = hf.Conv1D(3 * d_model, d_model)
        self.c_proj = hf.Conv1D(d_model, d_model)
        self.probs = nn.Identity()  # tap S: (batch, heads, tokens, tokens)
        self.heads = nn.Identity()  # tap H: (batch, heads, tokens, head_dim)
        self.attn_dropout = nn.Dropout(dropatt)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = hidden.shape
        q, k, v = (
            t.view(batch, tokens, self.n_head, self.head_dim).transpose(1, 2)
            for t in self.c_attn(hidden).split(self.d_model, dim=2)
        )
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.head_dim**-0.5
        future = torch.ones(tokens, tokens, dtype=torch.bool, device=hidden.device).triu(1)
        scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
        probs = self.probs(torch.softmax(scores, dim=-1))
        context = self.heads(torch.matmul(self.attn_dropout(probs), v))
        merged = context.transpose(1, 2).reshape(batch, tokens, self.d_model)
        return self.resid_dropout(self.c_proj(merged))


class GPT2LTSBlock(nn.Module):
    """Pre-LN GPT-2 block; ``forward(hidden)`` takes the hidden state as positional input 0."""

    def __init__(self, d_model: int, n_head: int, d_inner: int, dropout: float = 0.0, dropatt: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.attn = CausalSelfAttention(d_model, n_head, dropatt, dropout)
        self.ln_2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        mlp_config = SimpleNamespace(
            hidden_size=d_model, activation_function=ACTIVATION, resid_pdrop=dropout
        )
        hf = _hf()
        self.mlp = hf.GPT2MLP(d_inner, mlp_config)
        self.mlp.act = TappedActivation(hf.ACT2FN[ACTIVATION])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attn(self.ln_1(hidden))
        return hidden + self.mlp(self.ln_2(hidden))


class ProjectedAdaptiveSoftmax(nn.Module):
    """Adaptive softmax head; only parameters not shared with the embedding live here."""

    def __init__(self, cfg: AdaptiveVocab) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.n_clusters > 0:
            self.cluster_weight = nn.Parameter(_normal(cfg.n_clusters, cfg.d_embed, std=cfg.weight_init_std))
            self.cluster_bias = nn.Parameter(torch.zeros(cfg.n_clusters))
        bias_sizes = [cfg.n_token] if cfg.div_val == 1 else [r - l for l, r in cfg.cluster_bounds()]
        self.out_biases = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in bias_sizes)
        self.out_weights = nn.ParameterList()
        if not cfg.tie_weight:
            rows = [cfg.n_token] if cfg.div_val == 1 else bias_sizes
            self.out_weights.extend(
                nn.Parameter(_normal(n, dim, std=cfg.weight_init_std))
                for n, dim in zip(rows, cfg.embed_dims())
            )
        self.own_proj_index = {i: k for k, (i, _) in enumerate(_untied_output_projs(cfg))}
        self.out_projs = nn.ParameterList(
            nn.Parameter(_normal(cfg.d_model, dim, std=cfg.proj_init_std))
            for _, dim in _untied_output_projs(cfg)
        )

    def _clusters(self, embedding: AdaptiveEmbedding) -> list[tuple]:
        """(weight, bias, projection or None) per cluster.

        With ``div_val == 1`` the single table and bias are split once (``torch.split``):
        its backward writes one full-size gradient, where per-cluster slicing would
        allocate and fill a full-size zero gradient per cluster (the 267k-word vocabulary
        of Transformer-XL made that the slowest step of the backward pass).
        """
        cfg = self.cfg
        weights = self.out_weights if not cfg.tie_weight else [m.weight for m in embedding.emb_layers]
        if cfg.div_val == 1:
            sizes = [hi - lo for lo, hi in cfg.cluster_bounds()]
            pairs = list(zip(weights[0].split(sizes), self.out_biases[0].split(sizes)))
            tables = [0] * len(sizes)
        else:
            pairs = list(zip(weights, self.out_biases))
            tables = list(range(len(cfg.cutoffs)))
        out = []
        for i, ((weight, bias), table) in enumerate(zip(pairs, tables)):
            if i in self.own_proj_index:
                proj = self.out_projs[self.own_proj_index[i]]
            elif cfg.tie_projs[i]:
                proj = embedding.proj(table)
            else:  # untied but d_embed == d_model with div_val == 1: no projection at all
                proj = None
            out.append((weight, bias, proj))
        return out

    @staticmethod
    def _logits(hidden, weight, bias, proj):
        if proj is not None:
            hidden = torch.matmul(hidden, proj)  # (N, d_model) @ (d_model, dim)
        return F.linear(hidden, weight, bias)

    def forward(
        self, hidden: torch.Tensor, target: torch.Tensor, embedding: AdaptiveEmbedding, reduction: str = "mean"
    ) -> torch.Tensor:
        """NLL of ``target`` (N,) given ``hidden`` (N, d_model): the mean, or per token (``"none"``)."""
        cfg = self.cfg
        clusters = self._clusters(embedding)
        weight, bias, proj = clusters[0]
        if cfg.n_clusters > 0:
            weight = torch.cat([weight, self.cluster_weight], dim=0)
            bias = torch.cat([bias, self.cluster_bias], dim=0)
        head_logprob = torch.log_softmax(self._logits(hidden, weight, bias, proj), dim=-1)
        head_end = cfg.cutoffs[0]
        index = (target < head_end).nonzero(as_tuple=True)[0]
        parts = [(index, -head_logprob[index, target[index]])]
        for i in range(1, len(cfg.cutoffs)):
            lo, hi = cfg.cluster_bounds()[i]
            index = ((target >= lo) & (target < hi)).nonzero(as_tuple=True)[0]
            weight, bias, proj = clusters[i]
            tail_logprob = torch.log_softmax(self._logits(hidden[index], weight, bias, proj), dim=-1)
            word = tail_logprob.gather(1, (target[index] - lo)[:, None]).squeeze(1)
            parts.append((index, -(head_logprob[index, head_end + i - 1] + word)))
        if reduction == "none":
            nll = hidden.new_zeros(target.shape)
            for index, values in parts:
                nll = nll.index_copy(0, index, values)
            return nll
        return sum(values.sum() for _, values in parts) / target.numel()


class GPT2LTSModel(nn.Module):
    """GPT-2 with adaptive input/softmax and per-layer heads / FFN widths (see module doc)."""

    def __init__(
        self, cfg: GPT2LTSConfig, dropout: float = 0.0, dropatt: float = 0.0, word_grads: bool = True,
        tables: list[torch.Tensor] | None = None,
    ) -> None:
        """``word_grads=False``: the word tables (adaptive input embedding, also the tied
        softmax words, and untied output words) get no gradient. Every other gradient,
        the loss and the block-input gradients (J) are unchanged; the backward pass skips
        the dense (vocabulary x width) table gradients, which no statistic or baseline
        reads. ``tables``: word tables as :func:`draw_word_tables` returns them."""
        super().__init__()
        self.cfg = cfg
        self.wte = AdaptiveEmbedding(cfg, tables)
        self.wpe = nn.Embedding(
            cfg.n_positions, cfg.d_model, _weight=_normal(cfg.n_positions, cfg.d_model, std=cfg.weight_init_std)
        )
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(
            GPT2LTSBlock(cfg.d_model, heads, inner, dropout, dropatt)
            for heads, inner in zip(cfg.n_head, cfg.d_inner)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=LAYER_NORM_EPS)
        self.lm_head = ProjectedAdaptiveSoftmax(cfg)
        # Conv1D drew N(0, 0.02); rescale instead of drawing again
        base = cfg.weight_init_std / CONV1D_INIT_STD
        proj_scale = base / math.sqrt(2 * cfg.n_layer)
        with torch.no_grad():
            for block in self.h:
                for conv, scale in (
                    (block.attn.c_attn, base),
                    (block.attn.c_proj, proj_scale),
                    (block.mlp.c_fc, base),
                    (block.mlp.c_proj, proj_scale),
                ):
                    if scale != 1.0:
                        conv.weight.mul_(scale)
        if not word_grads:
            for table in [*(m.weight for m in self.wte.emb_layers), *self.lm_head.out_weights]:
                table.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean LM loss when ``labels`` (next tokens) are given, else the final hidden states."""
        batch, tokens = input_ids.shape
        if tokens > self.cfg.n_positions:
            raise ValueError(f"sequence of {tokens} tokens exceeds the {self.cfg.n_positions} positions")
        positions = torch.arange(tokens, device=input_ids.device)
        hidden = self.drop(self.wte(input_ids) + self.wpe(positions))
        for block in self.h:
            hidden = block(hidden)
        hidden = self.ln_f(hidden)
        if labels is None:
            return hidden
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")
        target = labels.reshape(-1)
        if int(target.min()) < 0 or int(target.max()) >= self.cfg.n_token:
            raise ValueError(f"labels must lie in [0, {self.cfg.n_token})")
        return self.lm_head(hidden.reshape(-1, self.cfg.d_model), target, self.wte)


# ----------------------------------------------------------------------------- helpers
def build_gpt2_lts(
    cfg: GPT2LTSConfig, seed: int = 0, dropout: float = 0.0, dropatt: float = 0.0, word_grads: bool = True,
    table_cache: dict | None = None,
) -> GPT2LTSModel:
    """A deterministically initialised model (global RNG state is left untouched).

    ``table_cache`` (a dict the caller owns, e.g. one per search space): the word tables
    are a model's first RNG draws and depend only on the seed and the vocabulary geometry
    (9 combinations in the GPT-2 benchmark); a cached copy plus the RNG state after
    drawing it gives a bit-identical model without drawing up to 26M normal numbers again.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if table_cache is None:
            return GPT2LTSModel(cfg, dropout=dropout, dropatt=dropatt, word_grads=word_grads)
        key = (int(seed), cfg.n_token, cfg.cutoffs, cfg.div_val, cfg.d_embed, cfg.weight_init_std)
        if key not in table_cache:
            tables = draw_word_tables(cfg)
            table_cache[key] = (tables, torch.get_rng_state())
        tables, state = table_cache[key]
        torch.set_rng_state(state)
        copies = [t.clone() for t in tables]  # models own their tables (synflow writes |W| in place)
        return GPT2LTSModel(cfg, dropout=dropout, dropatt=dropatt, word_grads=word_grads, tables=copies)


def gpt2_taps(model: GPT2LTSModel) -> Taps:
    blocks = list(model.h)
    return Taps(
        activations=[b.mlp.act.out for b in blocks],
        heads=[b.attn.heads for b in blocks],
        softmax=[b.attn.probs for b in blocks],
        blocks=blocks,
        linears=[m for b in blocks for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)],
    )


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_param_counts(model: GPT2LTSModel) -> dict[str, int]:
    """Counts of a built model grouped by module (same keys as :func:`analytic_param_counts`)."""
    attn = sum(_numel(b.attn) for b in model.h)
    ffn = sum(_numel(b.mlp) for b in model.h)
    layer_norm = sum(_numel(b.ln_1) + _numel(b.ln_2) for b in model.h) + _numel(model.ln_f)
    return {
        "AdaEmb": _numel(model.wte) + _numel(model.wpe),
        "Attn": attn,
        "FFN": ffn,
        "nonembedding": attn + ffn + layer_norm,
        "total": _numel(model),  # Module.parameters() yields shared tensors once
    }
