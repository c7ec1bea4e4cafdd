"""transformers decoder-only causal LMs, built offline, with generic statistic taps.

Building (:func:`build_causal_lm`): ``AutoConfig.for_model(family, **scalars)`` (never
the hub), eager attention (so attention probabilities exist), no KV cache, dropout as
the family default. A config field given as a per-layer list (``num_attention_heads:
[4, 2]``) builds heterogeneous layers: the model is first built with the list's maximum
(which fixes e.g. LLaMA's ``head_dim = hidden_size / max heads``, as LoNAS's elastic
sub-networks keep head_dim and drop heads), then layer ``i`` is rebuilt from a copy of
the config holding the ``i``-th value and initialised with the model's own
``_init_weights``. The whole build runs under ``torch.manual_seed(seed)`` in a forked RNG.

Taps (:func:`install_taps`, :func:`hf_taps`), located by the attribute names
transformers' decoder families share (``LlamaDecoderLayer``, ``MistralDecoderLayer``,
``Qwen2DecoderLayer``, ``GPT2Block``, ...):

* blocks: the ``nn.ModuleList`` of ``num_hidden_layers`` decoder layers; each layer's
  positional input 0 is the hidden state entering it (input J);
* activations: the MLP's activation module (``mlp.act_fn`` / ``mlp.act``), output =
  the non-linearity's output (LLaMA: ``silu(gate_proj(x))`` before the up-projection
  product) (input A);
* heads: an ``nn.Identity`` fed, by a pre-hook on the attention output projection
  (``o_proj`` / ``c_proj`` / ``out_proj`` / ``dense``), that projection's input
  reshaped to (batch, heads, tokens, head_dim) (input H);
* softmax: an ``nn.Identity`` fed, by a forward hook on the attention module, the
  attention weights it returns (eager attention: (batch, heads, tokens, tokens)) (input S);
* linears: every ``nn.Linear`` / ``Conv1D`` inside the decoder layers, in module order
  (inputs W, G); embeddings and the LM head are not included.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import Taps

ATTENTION = ("self_attn", "attn", "attention", "self_attention")
OUT_PROJ = ("o_proj", "c_proj", "out_proj", "dense")
MLP = ("mlp", "feed_forward")
ACT = ("act_fn", "act", "activation_fn", "activation")


def family_config(family: str, **fields: Any):
    """``AutoConfig.for_model(family, **fields)``: offline, one line on an unknown family."""
    from transformers import AutoConfig

    try:
        return AutoConfig.for_model(family, **fields)
    except ValueError:
        raise LPZeroError(
            f"search_space.family={family!r} is not a transformers model type; "
            f"use a decoder family such as llama, mistral, qwen2, gpt2"
        ) from None


def config_keys(family: str) -> set[str]:
    """Every config field of ``family`` (defaults plus attribute aliases such as n_layer)."""
    config = family_config(family)
    return set(config.to_dict()) | set(getattr(config, "attribute_map", {}) or {})


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList holding the model's ``num_hidden_layers`` decoder layers."""
    depth = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth and depth > 0:
            return module
    raise LPZeroError(f"{type(model).__name__}: no list of {depth} decoder layers found")


def build_causal_lm(family: str, fields: dict[str, Any], seed: int = 0) -> nn.Module:
    """A freshly initialised ``AutoModelForCausalLM`` of ``family`` (lists = per-layer values)."""
    from transformers import AutoModelForCausalLM

    lists = {k: list(v) for k, v in fields.items() if isinstance(v, (list, tuple))}
    scalars = {k: v for k, v in fields.items() if k not in lists}
    base = {**scalars, **{k: max(v) for k, v in lists.items()}}
    config = family_config(family, **base)
    config.use_cache = False
    depth = config.num_hidden_layers
    for key, values in lists.items():
        if len(values) != depth:
            raise LPZeroError(f"{key}={values}: a per-layer list needs {depth} values (num_hidden_layers)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
        except (ValueError, TypeError, AssertionError, RuntimeError) as exc:
            raise LPZeroError(f"{family} config {fields} cannot be built: {str(exc).splitlines()[0]}") from None
        if lists:
            layers = decoder_layers(model)
            for index, old in enumerate(layers):
                layer_config = copy.deepcopy(model.config)
                for key, values in lists.items():
                    setattr(layer_config, key, values[index])
                if (
                    "num_attention_heads" in lists
                    and "num_key_value_heads" not in fields
                    and hasattr(layer_config, "num_key_value_heads")
                ):
                    layer_config.num_key_value_heads = lists["num_attention_heads"][index]
                try:
                    layer = type(old)(layer_config, layer_idx=index)
                except (ValueError, TypeError, AssertionError, RuntimeError) as exc:
                    raise LPZeroError(
                        f"{family} layer {index} of {fields} cannot be built: {str(exc).splitlines()[0]}"
                    ) from None
                for module in layer.modules():
                    model._init_weights(module)
                layers[index] = layer
    model.config.use_cache = False
    return model


def _child(module: nn.Module, names: tuple[str, ...], what: str) -> nn.Module:
    for name in names:
        child = getattr(module, name, None)
        if isinstance(child, nn.Module):
            return child
    raise LPZeroError(f"{type(module).__name__} has no {what} (looked for {', '.join(names)})")


def install_taps(model: nn.Module) -> Taps:
    """Add the head/probability tap modules and hooks to every decoder layer; return the taps."""
    from transformers.pytorch_utils import Conv1D

    taps = Taps()
    for layer in decoder_layers(model):
        attention = _child(layer, ATTENTION, "attention module")
        out_proj = _child(attention, OUT_PROJ, "attention output projection")
        mlp = _child(layer, MLP, "MLP")
        heads, probs = nn.Identity(), nn.Identity()
        # plain attributes, not submodules: the state dict and module tree stay transformers'
        object.__setattr__(attention, "lpzero_heads", heads)
        object.__setattr__(attention, "lpzero_probs", probs)
        head_dim = int(getattr(attention, "head_dim"))

        def split_heads(_module, args, heads=heads, head_dim=head_dim):
            context = args[0]
            heads(context.view(*context.shape[:-1], -1, head_dim).transpose(1, 2))

        def weights(_module, _args, output, probs=probs):
            if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor):
                probs(output[1])

        out_proj.register_forward_pre_hook(split_heads)
        attention.register_forward_hook(weights)
        taps.blocks.append(layer)
        taps.activations.append(_child(mlp, ACT, "activation module"))
        taps.heads.append(heads)
        taps.softmax.append(probs)
        taps.linears.extend(m for m in layer.modules() if isinstance(m, (nn.Linear, Conv1D)))
    object.__setattr__(model, "lpzero_taps", taps)
    return taps


def hf_taps(model: nn.Module) -> Taps:
    """The taps :func:`install_taps` put on ``model`` (a model without them gets them now)."""
    lm = getattr(model, "lm", model)
    taps = getattr(lm, "lpzero_taps", None)
    return taps if taps is not None else install_taps(lm)


class CausalLMLoss(nn.Module):
    """``model(**batch)`` → the scalar next-token loss of the wrapped causal LM.

    ``batch["input_ids"]`` holds whole windows; transformers shifts labels itself.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.lm(input_ids=input_ids, labels=input_ids if labels is None else labels, **kwargs).loss
