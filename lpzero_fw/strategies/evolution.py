"""The paper's genetic programming: tournament selection, crossover, mutation."""
from __future__ import annotations

import math
from typing import Any, Callable

from lpzero_fw.formula.genotype import Formula
from lpzero_fw.registry import STRATEGIES, LPZeroError
from lpzero_fw.strategies.base import SearchStrategy


@STRATEGIES.register("evolution", description="genetic programming (LPZero): tournament, crossover, mutation")
class Evolution(SearchStrategy):
    """Steady-state evolution as in LPZero.

    The initial population of ``population`` valid proxies is drawn uniformly (invalid
    draws are re-drawn). Each iteration picks two parents among the top
    ``tournament_ratio`` of the population, crosses them over with probability
    ``crossover_prob`` (each gene from either parent), mutates the child with
    probability ``mutation_prob`` (each gene re-sampled with ``gene_mutation_prob``),
    scores it, inserts it if valid and removes the worst member.
    """

    def __init__(
        self,
        space: Any,
        seed: int,
        accept: Callable[[Formula], bool] | None = None,
        *,
        iterations: int = 1000,
        population: int = 80,
        tournament_ratio: float = 0.1,
        crossover_prob: float = 0.5,
        mutation_prob: float = 0.5,
        gene_mutation_prob: float = 0.5,
        max_init_attempts: int = 100_000,
    ) -> None:
        super().__init__(space, seed, accept)
        if population < 2:
            raise LPZeroError(f"strategy.population={population} is too small; use an integer >= 2")
        if not 0 < tournament_ratio <= 1:
            raise LPZeroError(f"strategy.tournament_ratio={tournament_ratio} must lie in (0, 1]")
        if iterations < 0:
            raise LPZeroError(f"strategy.iterations={iterations} must be >= 0")
        for key, value in (("crossover_prob", crossover_prob), ("mutation_prob", mutation_prob),
                           ("gene_mutation_prob", gene_mutation_prob)):
            if not 0 <= value <= 1:
                raise LPZeroError(f"strategy.{key}={value} must lie in [0, 1]")
        self.iterations = iterations
        self.population_size = population
        self.tournament_ratio = tournament_ratio
        self.crossover_prob = crossover_prob
        self.mutation_prob = mutation_prob
        self.gene_mutation_prob = gene_mutation_prob
        self.max_init_attempts = max_init_attempts
        self.population: list[tuple[Formula, float]] = []
        self.init_attempts = 0

    @property
    def initialising(self) -> bool:
        return len(self.population) < self.population_size

    @property
    def done(self) -> bool:
        return not self.initialising and self.iteration >= self.iterations

    @property
    def total_iterations(self) -> int:
        return self.iterations

    def ask(self) -> list[Formula]:
        if self.initialising:
            if self.init_attempts >= self.max_init_attempts:
                raise LPZeroError(
                    f"only {len(self.population)} of {self.population_size} initial proxies were valid "
                    f"after {self.init_attempts} draws; lower strategy.population or relax pruning"
                )
            return [self._draw(lambda: self.space.sample(self.rng))]
        return [self._draw(self._offspring)]

    def _offspring(self) -> Formula:
        ranked = sorted(self.population, key=lambda member: member[1], reverse=True)
        top = ranked[: max(2, math.ceil(self.tournament_ratio * len(ranked)))]
        first, second = self.rng.choice(top)[0], self.rng.choice(top)[0]
        child = first
        if self.rng.random() < self.crossover_prob:
            child = self.space.crossover(first, second, self.rng)
        if self.rng.random() < self.mutation_prob:
            child = self.space.mutate(child, self.rng, self.gene_mutation_prob)
        return child

    def tell(self, proxies: list[Formula], fitness: list[float | None]) -> None:
        for proxy, value in zip(proxies, fitness):
            self._record(proxy, value)
            if self.initialising:
                self.init_attempts += 1
                if value is not None:
                    self.population.append((proxy, value))
                continue
            self.iteration += 1
            if value is not None:
                self.population.append((proxy, value))
                worst = min(range(len(self.population)), key=lambda i: self.population[i][1])
                del self.population[worst]

    def population_fitness(self) -> list[float]:
        return [value for _, value in self.population]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [[str(p), f] for p, f in self.population]
        state["init_attempts"] = self.init_attempts
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from lpzero_fw.formula.parse import parse

        super().load_state_dict(state)
        self.population = [(parse(p), f) for p, f in state["population"]]
        self.init_attempts = state["init_attempts"]
