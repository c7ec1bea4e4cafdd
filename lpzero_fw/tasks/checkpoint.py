"""Atomic search checkpoints and resume (``resume=<run dir>``)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lpzero_fw.registry import LPZeroError

FILENAME = "checkpoint.json"


def _diff(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [k for key in keys for k in _diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


class Checkpointer:
    """Saves strategy + scorer + history every ``every`` iterations, atomically."""

    def __init__(self, out: Path, digest: str, config: dict, every: int) -> None:
        self.path = Path(out) / FILENAME
        self.digest = digest
        self.config = {k: v for k, v in config.items() if k not in ("logger", "hydra", "resume")}
        self.every = every

    def restore(self, resume, strategy, scorer, history: list) -> bool:
        """Load a checkpoint from ``resume`` (or this run dir); False when starting fresh."""
        source = Path(str(resume)) / FILENAME if resume else self.path
        if resume and not source.exists():
            raise LPZeroError(f"resume={str(resume)!r} holds no {FILENAME}")
        if not source.exists():
            return False
        try:
            state = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LPZeroError(f"checkpoint {source} is unreadable: {exc}") from None
        if state["digest"] != self.digest:
            keys = _diff(state["config"], self.config) or ["(unknown)"]
            raise LPZeroError(
                f"checkpoint {source} was written with a different config; differing keys: {', '.join(keys)}"
            )
        strategy.load_state_dict(state["strategy"])
        scorer.memo = {k: v for k, v in state["memo"]}
        scorer.rejected = Counter(state["rejected"])
        scorer.scored = state["scored"]
        scorer.evaluations = state["evaluations"]
        history[:] = state["history"]
        return True

    def maybe_save(self, strategy, scorer, history: list) -> None:
        if self.every > 0 and history and history[-1]["iteration"] % self.every == 0:
            self.save(strategy, scorer, history)

    def save(self, strategy, scorer, history: list) -> None:
        from lpzero_fw.tasks.common import write_json

        write_json(
            self.path,
            {
                "digest": self.digest,
                "config": self.config,
                "strategy": strategy.state_dict(),
                "memo": [[k, v] for k, v in scorer.memo.items()],
                "rejected": dict(scorer.rejected),
                "scored": scorer.scored,
                "evaluations": scorer.evaluations,
                "history": history,
            },
            indent=None,  # written every few iterations: compact is ~10x faster
        )

    def finish(self) -> None:
        """The run completed: its result supersedes the checkpoint."""
        if self.path.exists():
            self.path.unlink()
