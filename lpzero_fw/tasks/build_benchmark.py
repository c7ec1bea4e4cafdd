"""``task=build_benchmark``: train N architectures with Lightning and write a benchmark table.

Architectures are drawn with ``build.seed`` from ``build.choices`` (a list of values per
config key; keys in ``build.per_layer`` are drawn independently for every layer), on top
of ``build.base``. Each is built offline as a ``build.family`` causal LM, trained by a
``lightning.Trainer`` (``build.accelerator`` / ``devices`` / ``strategy`` / ``precision``)
for ``build.steps`` AdamW steps on random windows of the training text, and scored by
the perplexity of fixed validation windows. Its row is appended to ``build.table``
(JSONL) as soon as it is done, so a restart with the same settings skips finished ids;
an architecture that fails is recorded with its ``error`` and skipped.

Text: ``data=wikitext2`` trains on WikiText-2 ``valid.txt`` and validates on ``test.txt``
(the shared corpus has no train split); ``data=text_file`` trains on the first 90 % of
``data.path`` and validates on the rest. ``build.train_path`` / ``build.valid_path``
override both. GPT-2 BPE ids, ``% vocab_size`` when the model vocabulary is smaller.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lpzero_fw.data.table import ERROR, ID, append_row, read_rows
from lpzero_fw.registry import TASKS, LPZeroError
from lpzero_fw.tasks.common import console, progress_bar, run_dir, to_dict, write_json
from lpzero_fw.tracking import build_tracker

GPT2_VOCAB = 50257
TRAIN_FRACTION = 0.9


# ------------------------------------------------------------------------ architectures
def draw_configs(choices: dict, per_layer: list[str], base: dict, n: int, seed: int) -> list[dict]:
    """``n`` distinct configs drawn with ``seed`` (fewer when the space is smaller)."""
    if not choices:
        raise LPZeroError("build.choices is empty: give a list of values per config key")
    for key, values in choices.items():
        if not isinstance(values, list) or not values:
            raise LPZeroError(f"build.choices.{key}={values!r} must be a non-empty list of values")
    for key in per_layer:
        if key not in choices:
            raise LPZeroError(f"build.per_layer: {key!r} is not a key of build.choices ({', '.join(choices)})")
    rng = random.Random(f"build-{seed}")
    configs: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(configs) < n and attempts < 50 * n:
        attempts += 1
        config = dict(base)
        for key, values in choices.items():
            if key not in per_layer:
                config[key] = rng.choice(values)
        depth = config.get("num_hidden_layers", config.get("n_layer"))
        for key in per_layer:
            if not isinstance(depth, int):
                raise LPZeroError("build.per_layer needs num_hidden_layers in build.choices or build.base")
            config[key] = [rng.choice(choices[key]) for _ in range(depth)]
        digest = json.dumps(config, sort_keys=True)
        if digest not in seen:
            seen.add(digest)
            configs.append(config)
    return configs


# --------------------------------------------------------------------------------- text
def text_paths(data: dict, build: dict) -> tuple[Path, Path | None]:
    """(train file, valid file); valid None = the last 10 % of the train file."""
    from lpzero_fw.data.batches import default_corpus_root

    if build.get("train_path"):
        valid = build.get("valid_path")
        return Path(build["train_path"]), Path(valid) if valid else None
    name = data.get("name")
    if name == "wikitext2":
        root = Path(data["path"]).parent if data.get("path") else default_corpus_root() / "wikitext-2"
        return root / "valid.txt", Path(build.get("valid_path") or root / "test.txt")
    if name == "text_file":
        if not data.get("path"):
            raise LPZeroError("data=text_file needs data.path (a UTF-8 text file)")
        return Path(data["path"]), Path(build["valid_path"]) if build.get("valid_path") else None
    raise LPZeroError(f"task=build_benchmark trains on text: data={name!r}; choose one of: wikitext2, text_file")


def token_streams(data: dict, build: dict, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from lpzero_fw.data.batches import tokenize_file

    train_path, valid_path = text_paths(data, build)
    train = tokenize_file(train_path)
    if valid_path is None:
        cut = int(TRAIN_FRACTION * train.numel())
        train, valid = train[:cut], train[cut:]
    else:
        valid = tokenize_file(valid_path)
    if vocab_size < GPT2_VOCAB:
        train, valid = train % vocab_size, valid % vocab_size
    return train, valid


def windows(tokens: torch.Tensor, length: int, count: int, seed: int | None) -> torch.Tensor:
    """``count`` windows of ``length`` tokens: seeded random starts, or consecutive (seed None)."""
    if tokens.numel() < length * (1 if seed is not None else count):
        raise LPZeroError(f"the text has {tokens.numel()} tokens, too few for {count} windows of {length}")
    if seed is None:
        starts = torch.arange(count) * length
    else:
        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, tokens.numel() - length + 1, (count,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


# ----------------------------------------------------------------------------- training
def lightning_module(lm: torch.nn.Module, lr: float, warmup: int, steps: int, weight_decay: float):
    """One LightningModule for any transformers causal LM (labels = inputs, shifted inside)."""
    import lightning as L

    class CausalLMModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def training_step(self, batch, _index):
            loss = self.lm(input_ids=batch, labels=batch).loss
            self.log("train_loss", loss, prog_bar=False, sync_dist=True)
            return loss

        def validation_step(self, batch, _index):
            loss = self.lm(input_ids=batch, labels=batch).loss
            self.log("valid_loss", loss, sync_dist=True, batch_size=batch.shape[0])

        def configure_optimizers(self):
            decay = [p for p in self.lm.parameters() if p.ndim >= 2]
            other = [p for p in self.lm.parameters() if p.ndim < 2]
            optimizer = torch.optim.AdamW(
                [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}], lr=lr
            )

            def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
                if step < warmup:
                    return (step + 1) / warmup
                progress = (step - warmup) / max(1, steps - warmup)
                return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return CausalLMModule()


def train_one(lm, train_tokens, valid_tokens, build: dict, seed: int) -> dict[str, Any]:
    """Train ``lm`` with a Lightning Trainer; return the metric columns of its row."""
    import lightning as L
    from torch.utils.data import DataLoader

    for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)  # one progress bar, not per-arch banners
    steps, batch_size, length = int(build["steps"]), int(build["batch_size"]), int(build["seq_len"]) + 1
    train = windows(train_tokens, length, steps * batch_size, seed)
    valid = windows(valid_tokens, length, int(build["valid_windows"]), None)
    module = lightning_module(
        lm, float(build["lr"]), int(build["warmup"]), steps, float(build.get("weight_decay", 0.0))
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator=build["accelerator"],
        devices=build["devices"],
        strategy=build["strategy"],
        precision=build["precision"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=build.get("grad_clip"),
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, DataLoader(train, batch_size=batch_size, shuffle=False))
        train_loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
        results = trainer.validate(module, DataLoader(valid, batch_size=batch_size), verbose=False)
    valid_loss = float(results[0]["valid_loss"])
    return {
        "valid_ppl": math.exp(valid_loss),
        "valid_loss": valid_loss,
        "train_loss": train_loss,
        "steps": int(trainer.global_step),
        "_rank0": trainer.is_global_zero,
    }


# --------------------------------------------------------------------------------- task
def table_path(build: dict) -> Path:
    path = Path(build["table"]) if build.get("table") else run_dir() / "benchmark.jsonl"
    if path.suffix != ".jsonl":
        raise LPZeroError(f"build.table={str(path)!r} must end in .jsonl")
    return path.expanduser()


@TASKS.register("build_benchmark", description="train architectures with Lightning into a benchmark table")
def run(cfg: DictConfig) -> dict:
    from lpzero_fw.search_spaces.models.hf_taps import build_causal_lm, config_keys, family_config

    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    build, data = to_dict(cfg.build), to_dict(cfg.data)
    family = build["family"]
    keys = config_keys(family)
    base, choices = dict(build.get("base") or {}), dict(build.get("choices") or {})
    per_layer = list(build.get("per_layer") or [])
    for key in [*base, *choices]:
        if key not in keys:
            raise LPZeroError(f"build: {key!r} is not a {family} config key")
    for key in ("steps", "batch_size", "seq_len", "n_archs", "valid_windows"):
        value = build.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LPZeroError(f"build.{key}={value!r} must be a positive integer")
    configs = draw_configs(choices, per_layer, base, int(build["n_archs"]), int(build["seed"]))
    path = table_path(build)
    done = {str(r.get(ID)): r for r in read_rows(path)} if path.exists() else {}
    vocab = int(base.get("vocab_size", family_config(family).vocab_size))
    train_tokens, valid_tokens = token_streams(data, build, vocab)
    tracker = build_tracker(to_dict(cfg.logger), out, to_dict(cfg), run_name=f"build-{out.name}")
    summary = {"table": str(path), "family": family, "trained": 0, "skipped": 0, "failed": 0}
    try:
        with progress_bar() as progress:
            task = progress.add_task("build", total=len(configs), info="")
            for index, config in enumerate(configs):
                arch = f"arch_{index:03d}"
                if arch in done:
                    previous = {k: v for k, v in done[arch].items() if k in config}
                    if previous != config:
                        raise LPZeroError(
                            f"{path.name} id={arch} was built with another config; "
                            f"use a new build.table or the same build settings"
                        )
                    summary["skipped"] += 1
                    progress.update(task, advance=1, info=f"{arch} (done)")
                    continue
                progress.update(task, info=arch)
                row: dict[str, Any] = {ID: arch, **config}
                t0 = time.perf_counter()
                try:
                    lm = build_causal_lm(family, config, seed=int(build["seed"]) + index)
                    row["params"] = sum(p.numel() for p in lm.parameters())
                    metrics = train_one(lm, train_tokens, valid_tokens, build, seed=int(build["seed"]) + index)
                    rank0 = metrics.pop("_rank0")
                    row.update(metrics)
                    summary["trained"] += 1
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # recorded, skipped: one bad architecture never stops a build
                    rank0 = True
                    row[ERROR] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    summary["failed"] += 1
                    console.print(f"[yellow]{arch} failed: {row[ERROR]}")
                row["seconds"] = round(time.perf_counter() - t0, 2)
                if rank0:
                    append_row(path, row)
                    tracker.log({k: v for k, v in row.items() if isinstance(v, (int, float))} | {"arch": index})
                progress.update(task, advance=1, info=f"{arch} ppl={row.get('valid_ppl', float('nan')):.1f}")
        summary["seconds"] = round(time.perf_counter() - start, 2)
        summary["rows"] = len(read_rows(path)) if path.exists() else 0
        write_json(out / "build.json", summary)
        tracker.summary(summary)
    finally:
        tracker.finish()
    console.print(
        f"benchmark table {path}: {summary['trained']} trained, {summary['skipped']} already done, "
        f"{summary['failed']} failed"
    )
    return summary
