"""Architecture strategies: propose genomes, learn from their proxy scores.

Like the proxy strategies (ask / tell), but over an :class:`~lpzero_fw.nas.space.ArchSpace`.
``feasible`` is a cheap filter (the parameter budget, computed analytically): refused
proposals are redrawn and cost nothing.
"""
from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections import deque
from typing import Callable

from lpzero_fw.nas.space import ArchSpace, Genome
from lpzero_fw.registry import ARCH_STRATEGIES, LPZeroError

#: proposals in a row the feasibility filter may refuse before the space counts as empty
MAX_REFUSED = 20_000


class ArchStrategy(ABC):
    """Proposes genomes; ``tell`` gets each one's proxy score (``None``: infeasible or failed)."""

    def __init__(self, space: ArchSpace, seed: int, feasible: Callable[[Genome], bool] | None = None) -> None:
        self.space = space
        self.rng = random.Random(seed)
        self.feasible = feasible or (lambda genome: True)

    @abstractmethod
    def ask(self) -> Genome:
        """The next genome to score."""

    @abstractmethod
    def tell(self, genome: Genome, score: float | None) -> None:
        """The proxy score of the genome from the last :meth:`ask`."""

    def _draw(self, propose: Callable[[], Genome]) -> Genome:
        for _ in range(MAX_REFUSED):
            genome = propose()
            if self.feasible(genome):
                return genome
        raise LPZeroError(f"{MAX_REFUSED} proposals in a row broke the constraints; "
                          "relax nas.max_params or widen nas.space")


@ARCH_STRATEGIES.register("random", description="uniform random architectures within the constraints")
class RandomArchSearch(ArchStrategy):
    """Every proposal is a fresh uniform draw (the baseline)."""

    def ask(self) -> Genome:
        return self._draw(lambda: self.space.sample(self.rng))

    def tell(self, genome: Genome, score: float | None) -> None:
        pass


@ARCH_STRATEGIES.register("evolution", description="regularised (aging) evolution with tournament selection")
class EvolutionArchSearch(ArchStrategy):
    """Aging evolution (Real et al., 2019): the first ``population`` proposals are random;
    then the best of ``tournament`` random members is mutated, and the oldest member dies."""

    def __init__(self, space: ArchSpace, seed: int, feasible: Callable[[Genome], bool] | None = None,
                 *, population: int = 50, tournament: int = 10) -> None:
        super().__init__(space, seed, feasible)
        if population < 2 or not 1 <= tournament <= population:
            raise LPZeroError(f"nas.population={population} must be >= 2 and nas.tournament={tournament} "
                              f"between 1 and the population")
        self.population: deque[tuple[Genome, float]] = deque()
        self.size, self.tournament = population, tournament
        self.proposed = 0

    def ask(self) -> Genome:
        self.proposed += 1
        if len(self.population) < self.size:
            return self._draw(lambda: self.space.sample(self.rng))
        contenders = self.rng.sample(list(self.population), self.tournament)
        parent = max(contenders, key=lambda member: member[1])[0]
        return self._draw(lambda: self.space.mutate(parent, self.rng))

    def tell(self, genome: Genome, score: float | None) -> None:
        if score is None or not math.isfinite(score):
            return
        self.population.append((genome, score))
        if len(self.population) > self.size:
            self.population.popleft()
