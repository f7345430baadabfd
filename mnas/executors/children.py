"""Parallel child evaluation: a batch of architectures scored at once, one Ray task each (CPU/GPU requests).

    results = evaluate_parallel(partial(evaluators.create, "standalone", data=data, epochs=1), specs, executor)

MnasNet trained the children of a controller step in parallel; here `controller.ask(n)` gives the batch, and
`ParallelEvaluator` wraps the search's evaluator so that one `evaluate(batch)` call fans out. The wrapper keeps
the wrapped evaluator's `name` and `settings()`, so a run store started with `--executor local` resumes with
`--executor ray` and back: what scores a child does not change, only where it runs.

The factory (not an evaluator) travels to the workers: it is pickled once into Ray's object store, and each
task builds its evaluator there (TensorFlow is imported in the worker, never shipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from mnas.evaluators.base import EvalResult, Evaluator
from mnas.executors.base import Executor
from mnas.spec import ModelSpec


@dataclass(frozen=True)
class _EvaluateOne:
    """Picklable task body: build the evaluator in the worker, score one spec."""

    factory: Callable[[], Evaluator]

    def __call__(self, item: tuple[int, ModelSpec]) -> EvalResult:
        return self.factory().evaluate([item[1]])[0]


def evaluate_parallel(evaluator_factory: Callable[[], Evaluator], specs: Sequence[ModelSpec], executor: Executor, *,
                      num_cpus: float = 1.0, num_gpus: float = 0.0) -> list[EvalResult]:
    """Score `specs` as parallel tasks; results in the order of `specs` (whatever order they finish in)."""
    out: list[EvalResult | None] = [None] * len(specs)
    for (index, _spec), result in executor.map_unordered(_EvaluateOne(evaluator_factory), list(enumerate(specs)),
                                                          num_cpus=num_cpus, num_gpus=num_gpus):
        out[index] = result
    return out  # type: ignore[return-value]


class ParallelEvaluator:
    """An `Evaluator` that scores a batch in parallel on an executor, and otherwise is the evaluator it wraps.

    `parallel = True` tells the search loop to hand it a whole step's batch in one call."""

    parallel = True

    def __init__(self, evaluator: Evaluator, factory: Callable[[], Evaluator], executor: Executor, *,
                 num_cpus: float = 1.0, num_gpus: float = 0.0) -> None:
        self.inner = evaluator
        self.factory = factory
        self.executor = executor
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.name = evaluator.name

    def settings(self) -> dict:
        return self.inner.settings()

    def evaluate(self, specs: Sequence[ModelSpec]) -> list[EvalResult]:
        if len(specs) <= 1 or self.executor.name == "local":
            return self.inner.evaluate(specs)
        return evaluate_parallel(self.factory, specs, self.executor, num_cpus=self.num_cpus, num_gpus=self.num_gpus)
