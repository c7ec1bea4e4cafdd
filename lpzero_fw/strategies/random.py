"""Random search: the paper's baseline at an equal budget of scored proxies."""
from __future__ import annotations

from typing import Any, Callable

from lpzero_fw.formula.genotype import Formula
from lpzero_fw.registry import STRATEGIES, LPZeroError
from lpzero_fw.strategies.base import SearchStrategy


@STRATEGIES.register("random", description="uniform random proxies, best one kept (baseline)")
class RandomSearch(SearchStrategy):
    """Draws ``population + iterations`` proxies uniformly (after static pruning), the
    budget of an evolution run with the same settings, and keeps the best."""

    def __init__(
        self,
        space: Any,
        seed: int,
        accept: Callable[[Formula], bool] | None = None,
        *,
        iterations: int = 1000,
        population: int = 80,
    ) -> None:
        super().__init__(space, seed, accept)
        if iterations < 0 or population < 0 or iterations + population < 1:
            raise LPZeroError(
                f"strategy.iterations={iterations} and strategy.population={population} must be >= 0 "
                "with at least one proxy to draw"
            )
        self.budget = iterations + population
        self.fitness_seen: list[float] = []

    @property
    def done(self) -> bool:
        return self.iteration >= self.budget

    @property
    def total_iterations(self) -> int:
        return self.budget

    def ask(self) -> list[Formula]:
        return [self._draw(lambda: self.space.sample(self.rng))]

    def tell(self, proxies: list[Formula], fitness: list[float | None]) -> None:
        for proxy, value in zip(proxies, fitness):
            self.iteration += 1
            self._record(proxy, value)
            if value is not None:
                self.fitness_seen.append(value)

    def population_fitness(self) -> list[float]:
        return self.fitness_seen

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["fitness_seen"] = self.fitness_seen
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.fitness_seen = list(state["fitness_seen"])
