"""Regularized (aging) evolution, Real et al. AAAI'19.

Until `initial` children have been told, ask returns random samples. Then each child is a copy of the
best of `sample_size` members drawn at random from the population (all of them while it has fewer), with one
choice mutated to another option; every told child joins the population and, once it holds `population`
members, the oldest leaves (age, not fitness, decides who dies: the "regularization").

`initial` defaults to 1: mutation starts with the first step's children, so a search of a few dozen children
(`make search`) evolves from its second step on; Real et al.'s setting, a full random initial population, is
`initial=population` (with the default 50 a 20-child search would be random search).
"""

from __future__ import annotations

from collections import deque

from mnas.controllers.base import Controller
from mnas.spaces import Sample, Space


class RegularizedEvolution(Controller):
    name = "evolution"

    def __init__(self, space: Space, seed: int = 0, population: int = 50, sample_size: int = 10,
                 initial: int = 1) -> None:
        super().__init__(space, seed)
        if population < 2 or not 1 <= sample_size <= population or not 1 <= initial <= population:
            raise ValueError(f"need population >= 2, 1 <= sample_size <= population and 1 <= initial <= "
                             f"population, got {population}, {sample_size}, {initial}")
        self.population_size = int(population)
        self.sample_size = int(sample_size)
        self.initial = int(initial)
        self.population: deque[tuple[Sample, float]] = deque()
        self._mutable = [i for i, n in enumerate(space.num_options) if n > 1]

    def config(self) -> dict:
        return {"population": self.population_size, "sample_size": self.sample_size, "initial": self.initial}

    def first_update_after(self, batch: int) -> int:
        return -(-self.initial // batch) * batch  # tells come `batch` at a time

    def _ask(self, n: int) -> list[Sample]:
        return [self._child() for _ in range(n)]

    def _child(self) -> Sample:
        if self.num_told < self.initial or not self.population:
            return self.space.sample_random(self.rng)
        size = min(self.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=size, replace=False)
        parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]
        return self.mutate(parent)

    def mutate(self, parent: Sample) -> Sample:
        """`parent` with one choice (among those with options to spare) set to a different option."""
        child = list(parent)
        if not self._mutable:
            return tuple(child)
        i = self._mutable[int(self.rng.integers(len(self._mutable)))]
        shift = 1 + int(self.rng.integers(self.space.num_options[i] - 1))
        child[i] = (child[i] + shift) % self.space.num_options[i]
        return tuple(child)

    def _tell(self, samples: list[Sample], rewards: list[float]) -> None:
        for sample, reward in zip(samples, rewards):
            self.population.append((sample, reward))
            if len(self.population) > self.population_size:
                self.population.popleft()

    def _state(self) -> dict:
        return {"population": [[list(s), r] for s, r in self.population]}

    def _load(self, state: dict) -> None:
        self.population = deque((tuple(int(i) for i in s), float(r)) for s, r in state["population"])
