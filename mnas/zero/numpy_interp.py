"""A second interpreter, in numpy, batched over tasks: the alternative the compiled one is measured against
(benchmarks/zero_throughput.py) and an independent oracle for its semantics (tests/test_zero.py).

Memory carries a leading task axis: s (T, S), v (T, V, F), m (T, M, F, F); every instruction is one numpy
expression over all T tasks at once, so the Python cost is paid per instruction, not per task. Random ops
draw from numpy's generator, so only their distributions (not their values) match the compiled interpreter.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mnas.zero.kernels import ACCURACY
from mnas.zero.ops import CONST_M, CONST_V, GAUSSIAN, MATRIX, NONE, OPS, SCALAR, UNIFORM, VECTOR
from mnas.zero.program import Memory, Program
from mnas.zero.tasks import TaskSet


def _std(x: np.ndarray, axes) -> np.ndarray:
    mean = x.mean(axis=axes)
    return np.sqrt((x * x).mean(axis=axes) - mean * mean)


def _ones(x: np.ndarray) -> np.ndarray:
    return (x > 0).astype(float)


# op id -> f(x, y) for the ops that read inputs; shapes: scalar (T,), vector (T, F), matrix (T, F, F)
_VALUES: dict[int, Callable] = {
    1: lambda x, y: x + y, 2: lambda x, y: x - y, 3: lambda x, y: x * y, 4: lambda x, y: x / y,
    5: lambda x, y: np.abs(x), 6: lambda x, y: 1.0 / x, 7: lambda x, y: np.sin(x), 8: lambda x, y: np.cos(x),
    9: lambda x, y: np.tan(x), 10: lambda x, y: np.arcsin(x), 11: lambda x, y: np.arccos(x),
    12: lambda x, y: np.arctan(x), 13: lambda x, y: np.exp(x), 14: lambda x, y: np.log(x),
    15: lambda x, y: (x >= 0).astype(float), 16: lambda x, y: _ones(x), 17: lambda x, y: _ones(x),
    18: lambda x, y: x[:, None] * y, 20: lambda x, y: 1.0 / x,
    21: lambda x, y: np.sqrt((x * x).sum(-1)), 22: lambda x, y: np.abs(x), 23: lambda x, y: x + y,
    24: lambda x, y: x - y, 25: lambda x, y: x * y, 26: lambda x, y: x / y, 27: lambda x, y: (x * y).sum(-1),
    28: lambda x, y: x[:, :, None] * y[:, None, :], 29: lambda x, y: x[:, None, None] * y,
    30: lambda x, y: 1.0 / x, 31: lambda x, y: np.einsum("tij,tj->ti", x, y),
    34: lambda x, y: np.sqrt((x * x).sum((1, 2))), 35: lambda x, y: np.sqrt((x * x).sum(1)),
    36: lambda x, y: np.sqrt((x * x).sum(2)), 37: lambda x, y: x.transpose(0, 2, 1).copy(),
    38: lambda x, y: np.abs(x), 39: lambda x, y: x + y, 40: lambda x, y: x - y, 41: lambda x, y: x * y,
    42: lambda x, y: x / y, 43: lambda x, y: x @ y, 44: lambda x, y: np.where(y < x, y, x),
    45: lambda x, y: np.where(x < y, x, y), 46: lambda x, y: np.where(x < y, x, y),
    47: lambda x, y: np.where(x < y, y, x), 48: lambda x, y: np.where(x > y, x, y),
    49: lambda x, y: np.where(x > y, x, y), 50: lambda x, y: x.mean(-1), 51: lambda x, y: x.mean((1, 2)),
    52: lambda x, y: x.mean(2), 53: lambda x, y: _std(x, 2), 54: lambda x, y: _std(x, -1),
    55: lambda x, y: _std(x, (1, 2)),
}


def _memory_of(kind: int, s: np.ndarray, v: np.ndarray, m: np.ndarray) -> np.ndarray:
    return {SCALAR: s, VECTOR: v, MATRIX: m}[kind]


def _shape(kind: int, tasks: int, features: int) -> tuple[int, ...]:
    return {SCALAR: (tasks,), VECTOR: (tasks, features), MATRIX: (tasks, features, features)}[kind]


def execute_numpy(rows, s: np.ndarray, v: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> None:
    """Run instructions (mnas.zero.program.Instruction) on the batched memory in place."""
    tasks, features = v.shape[0], v.shape[2]
    for ins in rows:
        op = OPS[ins.op]
        if op.id == 0:
            continue
        out = _memory_of(op.out, s, v, m)
        if op.id in _VALUES:
            x = _memory_of(op.in1, s, v, m)[:, ins.in1]
            y = _memory_of(op.in2, s, v, m)[:, ins.in2] if op.in2 != NONE else None
            out[:, ins.out] = _VALUES[op.id](x, y)
        elif op.id == 19:
            out[:, ins.out] = s[:, ins.in1, None]
        elif op.id in (32, 33):
            vec = v[:, ins.in1]
            out[:, ins.out] = vec[:, :, None] if op.id == 32 else vec[:, None, :]
        elif op.data == CONST_V:
            out[:, ins.out, int(features * ins.d0)] = ins.d1
        elif op.data == CONST_M:
            out[:, ins.out, int(features * ins.d0), int(features * ins.d1)] = ins.d2
        elif op.data == UNIFORM:
            out[:, ins.out] = rng.uniform(ins.d0, ins.d1, size=_shape(op.out, tasks, features))
        elif op.data == GAUSSIAN:
            out[:, ins.out] = rng.normal(ins.d0, ins.d1, size=_shape(op.out, tasks, features))
        else:  # SCALAR_CONST_SET
            out[:, ins.out] = ins.d0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def evaluate_numpy(program: Program, tasks: TaskSet, memory: Memory, max_abs_error: float = 100.0,
                   seed: int = 0) -> np.ndarray:
    """Per-task fitness, the reference's Executor semantics (early stop -> 0), all tasks in lock step."""
    T, F = tasks.num_tasks, tasks.features
    s, v, m = np.zeros((T, memory.scalars)), np.zeros((T, memory.vectors, F)), np.zeros((T, memory.matrices, F, F))
    rng = np.random.default_rng(seed)
    alive = np.ones(T, dtype=bool)
    accuracy = tasks.eval_type == ACCURACY
    with np.errstate(all="ignore"):
        execute_numpy(program.setup, s, v, m, rng)
        for e in range(tasks.train_examples):
            v[:, 0], s[:, 0] = tasks.xtr[:, e], 0.0
            execute_numpy(program.predict, s, v, m, rng)
            if accuracy:
                s[:, 1] = _sigmoid(s[:, 1])
            alive &= np.abs(tasks.ytr[:, e] - s[:, 1]) <= max_abs_error
            v[:, 0], s[:, 0] = tasks.xtr[:, e], tasks.ytr[:, e]
            execute_numpy(program.learn, s, v, m, rng)
        loss = np.zeros(T)
        for e in range(tasks.valid_examples):
            v[:, 0], s[:, 0] = tasks.xva[:, e], 0.0
            execute_numpy(program.predict, s, v, m, rng)
            if accuracy:
                err = ((tasks.yva[:, e] > 0.5) != (_sigmoid(s[:, 1]) > 0.5)).astype(float)
            else:
                err = tasks.yva[:, e] - s[:, 1]
            alive &= np.abs(err) <= max_abs_error
            loss += err * err if not accuracy else err
        loss /= tasks.valid_examples
        fitness = 1.0 - loss if accuracy else 1.0 - 2.0 / np.pi * np.arctan(np.sqrt(loss))
    return np.where(alive & np.isfinite(fitness), fitness, 0.0)
