"""Random search: every sample uniform over each choice's options (the baseline the others must beat)."""

from __future__ import annotations

from mnas.controllers.base import Controller
from mnas.spaces import Sample


class RandomSearch(Controller):
    name = "random"

    def _ask(self, n: int) -> list[Sample]:
        return [self.space.sample_random(self.rng) for _ in range(n)]

    def _tell(self, samples: list[Sample], rewards: list[float]) -> None:
        pass  # nothing to learn
