"""The Python API: score any transformers model with a proxy, run any task.

``score`` sends the model through the same path as the search — statistics extracted
by a :class:`~lpzero_fw.stats.cache.StatsStore` from one forward+backward, then the
formula evaluated on them — so a formula scores a model exactly as it scored the
benchmark architectures (given the same batch and statistics settings).
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps

#: last attribute names of the modules that produce a block's per-head context
_HEAD_PROJECTIONS = ("o_proj", "c_proj", "out_proj", "dense", "out_lin", "o")
_ATTENTION_SCOPES = ("attn", "attention")


def score(model: nn.Module, batch: Mapping[str, torch.Tensor] | torch.Tensor, proxy: str, *,
          budget: int | None = 2048, dtype: str = "float16", seed: int = 0) -> float:
    """The proxy's value (oriented: higher = predicted better) for ``model`` on ``batch``.

    ``model``: a transformers model with a loss head (``*ForCausalLM``, ``*ForMaskedLM``,
    ...) or any model built by a lpzero_fw search space. ``batch``: token ids
    ``(batch, tokens)`` or a dict of model inputs; causal / masked LMs get
    ``labels = input_ids`` when none are given. ``proxy``: a formula, a named formula or
    a baseline name. ``budget``/``dtype``: the statistics settings (the cache defaults).
    The model is copied first: its weights, gradients and mode are left untouched.
    """
    from lpzero_fw.nas.scoring import ProxyScore, proxy_inputs
    from lpzero_fw.stats.cache import StatsStore

    if not isinstance(model, nn.Module):
        raise LPZeroError(f"score() needs a torch model, got {type(model).__name__}")
    space = ModelSpace(model, batch)
    store = StatsStore(space, batch_seed=0, model_seed=seed, budget=budget, dtype=dtype,
                       enabled=False, memory=False, symbols=proxy_inputs(proxy))
    return ProxyScore(proxy, store)(ModelSpace.ARCH_ID)


class _Loss(nn.Module):
    """``forward(**batch)`` → the scalar training loss of a transformers model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.taps = nn.ModuleDict({name: nn.ModuleList() for name in ("heads", "softmax")})

    def forward(self, **batch) -> torch.Tensor:
        out = self.model(**batch)
        loss = out if isinstance(out, torch.Tensor) and out.dim() == 0 else getattr(out, "loss", None)
        if loss is None:
            raise LPZeroError(f"{type(self.model).__name__} returned no loss; use a model with a "
                              "language-modelling head (e.g. *ForCausalLM, *ForMaskedLM) or pass labels")
        return loss


class ModelSpace(SearchSpace):
    """One given model as a one-architecture search space (no trained metric)."""

    ARCH_ID = "model"

    def __init__(self, model: nn.Module, batch) -> None:
        self.model = model
        self.batch = _complete_batch(model, batch)

    def arch_ids(self) -> list[str]:
        return [self.ARCH_ID]

    def ground_truth(self, arch_id: str) -> float:
        raise LPZeroError("a model given to score() has no trained metric")

    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        from lpzero_fw.search_spaces.models.gpt2_lts import GPT2LTSModel

        clone = copy.deepcopy(self.model)
        clone.zero_grad(set_to_none=True)
        if isinstance(clone, GPT2LTSModel):  # already returns its loss and has taps
            return clone
        if hasattr(clone, "set_attn_implementation"):  # attention probabilities need eager attention
            try:
                clone.set_attn_implementation("eager")
            except Exception:  # noqa: BLE001 - models without a choice keep theirs
                pass
        return _Loss(clone)

    def make_batch(self, seed: int = 0) -> Batch:
        return self.batch

    def taps(self, model: nn.Module) -> Taps:
        from lpzero_fw.search_spaces.models.gpt2_lts import GPT2LTSModel, gpt2_taps

        if isinstance(model, GPT2LTSModel):
            return gpt2_taps(model)
        return hf_taps(model)

    def describe(self) -> dict:
        return {"name": "model", "class": type(self.model).__name__}


def _complete_batch(model: nn.Module, batch) -> Batch:
    if isinstance(batch, torch.Tensor):
        batch = {"input_ids": batch}
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise LPZeroError("batch must be a tensor of token ids or a dict with 'input_ids'")
    batch = dict(batch)
    ids = batch["input_ids"]
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
        raise LPZeroError(f"batch['input_ids'] must be an integer tensor (batch, tokens), got "
                          f"{getattr(ids, 'shape', type(ids).__name__)}")
    has_head = callable(getattr(model, "get_output_embeddings", None)) and model.get_output_embeddings() is not None
    if "labels" not in batch and has_head:
        batch["labels"] = ids.clone()
    return batch


def _blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's layer stack: the ModuleList holding the most parameters."""
    best, size = None, -1
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and module is not getattr(model, "taps", None):
            n = sum(p.numel() for p in module.parameters())
            if n > size:
                best, size = module, n
    if best is None:
        raise LPZeroError(f"{type(model).__name__} has no layer stack (nn.ModuleList) to tap")
    return best


def _num_heads(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    if not heads:
        raise LPZeroError(f"{type(model).__name__}: cannot tell the number of attention heads from its config")
    return int(heads)


def hf_taps(wrapper: _Loss) -> Taps:
    """Generic taps for transformers encoders and decoders (taps are created once per model).

    blocks = the layer stack; linears = every Linear / Conv1D inside it; activations = each
    block's feed-forward activation module (a parameter-free leaf whose name contains
    ``act``); heads = the input of the attention output projection, reshaped to
    (batch, heads, tokens, head_dim); softmax = the attention weights an attention module
    returns as its second output (eager attention).
    """
    model = wrapper.model
    blocks = list(_blocks(model))
    heads_n = _num_heads(model)
    taps = Taps(blocks=blocks)
    if len(wrapper.taps["heads"]) == 0:
        for _ in blocks:
            wrapper.taps["heads"].append(nn.Identity())
            wrapper.taps["softmax"].append(nn.Identity())
        for index, block in enumerate(blocks):
            _hook_block(block, wrapper.taps["heads"][index], wrapper.taps["softmax"][index], heads_n)
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            last = name.rsplit(".", 1)[-1]
            if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
                taps.linears.append(module)
            elif name and "act" in last and not list(module.children()) and not list(module.parameters()):
                taps.activations.append(module)
    taps.heads = list(wrapper.taps["heads"])
    taps.softmax = list(wrapper.taps["softmax"])
    return taps


def _hook_block(block: nn.Module, head_tap: nn.Module, prob_tap: nn.Module, n_heads: int) -> None:
    state = {"probs": False}

    def reset(_module, _args):
        state["probs"] = False

    def heads(_module, args):
        x = args[0]
        b, t, width = x.shape
        head_tap(x.view(b, t, n_heads, width // n_heads).transpose(1, 2))

    def probs(_module, _args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if not state["probs"] and isinstance(weights, torch.Tensor) and weights.dim() == 4:
            state["probs"] = True
            prob_tap(weights)

    block.register_forward_pre_hook(reset)
    projection = None
    for name, module in block.named_modules():
        parts = name.lower().split(".")
        if any(scope in part for part in parts[:-1] for scope in _ATTENTION_SCOPES):
            if parts[-1] in _HEAD_PROJECTIONS and projection is None:
                projection = module
        if "attention" in type(module).__name__.lower():
            module.register_forward_hook(probs)
    if projection is not None:
        projection.register_forward_pre_hook(heads)


def run(task: str, overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> Any:
    """Run ``task`` with Hydra ``overrides`` (as on the command line) and return its result.

    Composes the same config as ``python -m lpzero_fw``; outputs go to ``output_dir``
    (default: the configured ``hydra.run.dir``). Bad input raises :class:`LPZeroError`.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lpzero_fw.tasks import execute

    if not isinstance(task, str) or not task:
        raise LPZeroError(f"task={task!r} must be a task name")
    if isinstance(overrides, str):
        overrides = [overrides]
    conf = Path(__file__).resolve().parent / "conf"
    from hydra.errors import HydraException

    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="lpzero_fw"):
        try:
            cfg = compose("config", overrides=[f"task={task}", *overrides], return_hydra_config=True)
        except HydraException as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise LPZeroError("; ".join(lines[:2])) from None
        out = Path(output_dir) if output_dir is not None else Path(cfg.hydra.run.dir)
        out.mkdir(parents=True, exist_ok=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out.resolve())
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):  # the job sees its config without the hydra node, as under @hydra.main
            del cfg["hydra"]
        try:
            return execute(cfg)
        finally:  # the caller's process keeps no trace of this run (its output dir included)
            HydraConfig.instance().cfg = previous
