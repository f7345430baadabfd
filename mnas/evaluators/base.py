"""The accuracy-evaluator protocol shared by the stand-alone trainer and the weight-sharing supernet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from mnas.spec import ModelSpec


@dataclass(frozen=True)
class EvalResult:
    """ACC(m) of one child on the proxy validation split.

    seconds: wall time this call spent on the child (0-ish when `cached`);
    detail: evaluator-specific breakdown (build_s, train_s, bn_recal_s, eval_s, train accuracy, ...).
    """

    accuracy: float
    seconds: float
    cached: bool = False
    detail: dict = field(default_factory=dict)


@runtime_checkable
class Evaluator(Protocol):
    """Anything that scores architectures. `specs` are the searched specs (at the latency resolution and class
    count); the evaluator maps them to its proxy setting (resolution, classes) itself."""

    name: str

    def evaluate(self, specs: Sequence[ModelSpec]) -> list[EvalResult]: ...

    def settings(self) -> dict:
        """What changes its scores (stored with the run; caches are keyed by it)."""
        ...
