"""Search-strategy contract: ask for proxies, tell their fitness."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Callable

from lpzero_fw.formula.genotype import Formula
from lpzero_fw.registry import LPZeroError

#: how many proposals in a row the acceptance filter may refuse before we give up
MAX_REJECTED_PROPOSALS = 100_000


class SearchStrategy(ABC):
    """Proposes proxies and learns from their fitness; knows nothing about scoring.

    ``ask`` returns candidates to score; ``tell`` gets back one fitness per candidate
    (``None`` for an invalid proxy, which never enters the population). ``accept``
    is a cheap filter (the static pruning rules): refused proposals are re-drawn and
    cost no iteration. One call of ``tell`` on a proposal made after the initial
    population counts as one iteration.
    """

    def __init__(self, space: Any, seed: int, accept: Callable[[Formula], bool] | None = None) -> None:
        self.space = space
        self.rng = random.Random(seed)
        self.accept = accept or (lambda proxy: True)
        self.iteration = 0
        self.best: tuple[Formula, float] | None = None

    @abstractmethod
    def ask(self) -> list[Formula]:
        """Candidates to score next."""

    @abstractmethod
    def tell(self, proxies: list[Formula], fitness: list[float | None]) -> None:
        """Fitness (Spearman rho) of the proxies from the last :meth:`ask`."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True when the budget is used up."""

    @property
    @abstractmethod
    def total_iterations(self) -> int:
        """The iteration budget, for progress bars."""

    def population_fitness(self) -> list[float]:
        """Fitness values currently held (for history: mean fitness)."""
        return [] if self.best is None else [self.best[1]]

    # -- shared helpers -----------------------------------------------------------
    def _draw(self, propose: Callable[[], Formula]) -> Formula:
        """First accepted proposal from ``propose``."""
        for _ in range(MAX_REJECTED_PROPOSALS):
            proxy = propose()
            if self.accept(proxy):
                return proxy
        raise LPZeroError(
            f"the pruning rules rejected {MAX_REJECTED_PROPOSALS} proposals in a row; "
            "the proxy space is (nearly) empty: allow more operators or use pruning=none"
        )

    def _record(self, proxy: Formula, fitness: float | None) -> None:
        if fitness is not None and (self.best is None or fitness > self.best[1]):
            self.best = (proxy, fitness)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (RNG, counters, best) for checkpoints."""
        best = None if self.best is None else [str(self.best[0]), self.best[1]]
        return {"rng": _rng_state(self.rng), "iteration": self.iteration, "best": best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from lpzero_fw.formula.parse import parse

        self.rng.setstate(_rng_unstate(state["rng"]))
        self.iteration = state["iteration"]
        self.best = None if state["best"] is None else (parse(state["best"][0]), state["best"][1])


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_unstate(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
