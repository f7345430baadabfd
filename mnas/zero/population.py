"""A population under regularized evolution: the kernels' arrays, wrapped.

Holds P programs in fixed-size buffers (rows = the sum of the functions' maximum sizes), their fitnesses, the
best program seen, the generator state and the counters; `run` hands them all to `kernels.evolve`. The arrays
are the whole state: `state()` / `load()` are what the run store saves, and a Population pickles as it is
(Ray islands travel this way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnas.errors import UserError
from mnas.zero import kernels as K
from mnas.zero.ops import NUM_OPS
from mnas.zero.program import Memory, Program
from mnas.zero.tasks import TaskSet

MUTATIONS = {"alter_param": K.ALTER_PARAM, "randomize_instruction": K.RANDOMIZE_INSTRUCTION,
             "randomize_function": K.RANDOMIZE_FUNCTION, "insert": K.INSERT, "remove": K.REMOVE,
             "insert_or_remove": K.INSERT_OR_REMOVE}
_NO_SCORES = np.zeros((0, 0))  # EVOLVE mode writes no per-task scores
CONST_MUTATIONS = {"uniform": K.CONST_SCALE_UNIFORM, "lognormal": K.CONST_SCALE_LOGNORMAL}


@dataclass(frozen=True)
class SearchSpace:
    """What evolution may write: ops per function, memory, sizes, and how a child differs from its parent."""

    ops: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # setup, predict, learn
    memory: Memory
    init_sizes: tuple[int, int, int]
    min_sizes: tuple[int, int, int]
    max_sizes: tuple[int, int, int]
    mutations: tuple[str, ...]
    mutate_prob: float = 0.9
    tournament: int = 10
    const_mutation: str = "uniform"  # the paper's x * U[0.5, 2]; "lognormal": the released code's

    def __post_init__(self) -> None:
        unknown = [m for m in self.mutations if m not in MUTATIONS]
        if unknown or not self.mutations:
            raise UserError(f"unknown mutation {unknown[0] if unknown else '(none given)'!r}: choose from "
                            f"{', '.join(MUTATIONS)}")
        if self.const_mutation not in CONST_MUTATIONS:
            raise UserError(f"unknown constant mutation {self.const_mutation!r}: {', '.join(CONST_MUTATIONS)}")
        if not any(self.ops):
            raise UserError("no function has any op to evolve")
        for f, (lo, init, hi) in enumerate(zip(self.min_sizes, self.init_sizes, self.max_sizes)):
            if not 0 <= lo <= init <= hi:
                raise UserError(f"function sizes need 0 <= min <= initial <= max, got {lo}, {init}, {hi} "
                                f"for {('setup', 'predict', 'learn')[f]}")
        if not 0.0 <= self.mutate_prob <= 1.0 or self.tournament < 1:
            raise UserError(f"need 0 <= mutate probability <= 1 and tournament >= 1, got {self.mutate_prob}, "
                            f"{self.tournament}")

    @property
    def rows(self) -> int:
        return max(1, sum(self.max_sizes))

    def kernel_args(self) -> tuple:
        allowed = np.zeros((3, NUM_OPS), dtype=np.int64)
        for f, ops in enumerate(self.ops):
            allowed[f, :len(ops)] = ops
        sizes = np.array([*self.init_sizes, *self.min_sizes, *self.max_sizes], dtype=np.int64)
        params = np.array([self.tournament, CONST_MUTATIONS[self.const_mutation]], dtype=np.int64)
        return (allowed, np.array([len(o) for o in self.ops], dtype=np.int64),
                np.array([MUTATIONS[m] for m in self.mutations], dtype=np.int64), sizes, self.memory.as_array(),
                params, np.array([self.mutate_prob]))


@dataclass(frozen=True)
class Evaluation:
    """How a program is scored. FEC: 10 train + 10 validation examples per task, hashed, an LRU of 100k."""

    fec: bool = True
    fec_train: int = 10
    fec_valid: int = 10
    fec_cache: int = 100_000
    fec_forget: int = 100
    max_abs_error: float = 100.0

    def fec_args(self) -> np.ndarray:
        return np.array([int(self.fec), self.fec_train, self.fec_valid, self.fec_forget], dtype=np.int64)


class Population:
    def __init__(self, space: SearchSpace, evaluation: Evaluation, size: int, seed: int) -> None:
        if size < 2:
            raise UserError(f"population must be >= 2, got {size}")
        self.space, self.evaluation = space, evaluation
        rows = space.rows
        self.code = np.zeros((size, rows, 4), dtype=np.int32)
        self.data = np.zeros((size, rows, 3))
        self.lens = np.zeros((size, 3), dtype=np.int64)
        self.fit = np.full(size, -np.inf)
        self.best_code = np.zeros((rows, 4), dtype=np.int32)
        self.best_data = np.zeros((rows, 3))
        self.best_lens = np.zeros(3, dtype=np.int64)
        self.best_fit = np.array([-np.inf])
        self.counters = np.zeros(K.NUM_COUNTERS, dtype=np.int64)
        self.rng = np.zeros(4, dtype=np.uint64)
        K.seed_rng(self.rng, seed)
        self.cache = K.new_cache(evaluation.fec_cache if evaluation.fec else 1)
        self._space_args = space.kernel_args()

    def __setstate__(self, state: dict) -> None:
        # Ray hands arrays back read-only (zero-copy from its object store); the kernels write them in place.
        self.__dict__.update({k: _writable(v) for k, v in state.items()})

    # -- evolution ---------------------------------------------------------------------------------------
    def run(self, tasks: TaskSet, children: int, stop_fitness: float = np.inf) -> int:
        """Evaluate up to `children` more individuals; returns how many (fewer when the best passes
        stop_fitness)."""
        if tasks.train_examples < self.evaluation.fec_train or tasks.valid_examples < self.evaluation.fec_valid:
            raise UserError(f"FEC needs {self.evaluation.fec_train} train / {self.evaluation.fec_valid} valid "
                            f"examples per task; the tasks have {tasks.train_examples} / {tasks.valid_examples}")
        evaluation = (tasks.train_examples, tasks.valid_examples, tasks.eval_type,
                      float(self.evaluation.max_abs_error))
        return int(K.kernel(K.EVOLVE, (self.code, self.data, self.lens, self.fit),
                            (self.best_code, self.best_data, self.best_lens, self.best_fit), self.counters,
                            self.rng, int(children), float(stop_fitness), self._space_args, tasks.arrays(),
                            evaluation, self.evaluation.fec_args(), self.cache,
                            K.memory_arrays(self._space_args[4], tasks.features), _NO_SCORES))

    def inject(self, programs: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]) -> None:
        """Migrants: each replaces the oldest member (as a child would), without counting as evaluated."""
        for code, data, lens, fit in programs:
            slot = int(self.counters[K.C_NEXT])
            self.code[slot], self.data[slot], self.lens[slot], self.fit[slot] = code, data, lens, fit
            self.counters[K.C_NEXT] = (slot + 1) % len(self.fit)
            if fit > self.best_fit[0]:
                self.best_code[:], self.best_data[:], self.best_lens[:], self.best_fit[0] = code, data, lens, fit

    def top(self, k: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
        order = np.argsort(-self.fit, kind="stable")[:k]
        return [(self.code[i].copy(), self.data[i].copy(), self.lens[i].copy(), float(self.fit[i])) for i in order
                if np.isfinite(self.fit[i])]

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.fit)

    @property
    def individuals(self) -> int:
        return int(self.counters[K.C_INDIVIDUALS])

    @property
    def train_steps(self) -> int:
        return int(self.counters[K.C_TRAIN_STEPS])

    @property
    def fec_hits(self) -> int:
        return int(self.counters[K.C_FEC_HITS])

    @property
    def fec_lookups(self) -> int:
        return int(self.counters[K.C_FEC_HITS] + self.counters[K.C_FEC_MISSES])

    def best(self) -> tuple[Program, float]:
        """The best program evaluated so far (it may have died of age)."""
        return Program.from_arrays(self.best_code, self.best_data, self.best_lens), float(self.best_fit[0])

    def population_best(self) -> tuple[Program, float]:
        """The fittest living member (the reference's candidate at an experiment's end)."""
        i = int(np.argmax(self.fit))
        return Program.from_arrays(self.code[i], self.data[i], self.lens[i]), float(self.fit[i])

    # -- saving --------------------------------------------------------------------------------------------
    _SAVED = ("code", "data", "lens", "fit", "best_code", "best_data", "best_lens", "best_fit", "counters", "rng")

    def state(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + name: getattr(self, name) for name in self._SAVED}

    def load(self, arrays: dict[str, np.ndarray], prefix: str = "") -> "Population":
        for name in self._SAVED:
            stored = arrays[prefix + name]
            current = getattr(self, name)
            if stored.shape != current.shape or stored.dtype != current.dtype:
                raise UserError(f"stored population array {name} is {stored.dtype}{stored.shape}, this run needs "
                                f"{current.dtype}{current.shape}: the store belongs to another configuration")
            current[...] = stored
        return self


def _writable(value):
    if isinstance(value, np.ndarray):
        return value if value.flags.writeable else value.copy()
    if isinstance(value, tuple):
        return tuple(_writable(v) for v in value)
    return value


def evaluate_program(program: Program, tasks: TaskSet, memory: Memory, max_abs_error: float = 100.0) -> np.ndarray:
    """Per-task fitness of one program (the interpreter the search uses, random ops seeded per task)."""
    program.check_memory(memory)
    code, data, lens = program.arrays()
    evaluation = (tasks.train_examples, tasks.valid_examples, tasks.eval_type, float(max_abs_error))
    return K.score(code[None], data[None], lens[None], tasks.arrays(), evaluation, memory.as_array())[0]
