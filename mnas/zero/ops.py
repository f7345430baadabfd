"""The 65 ops of AutoML-Zero, with the names and ids of the reference's `instruction.proto` (OP0..OP64).

Each op reads up to two typed inputs and writes one typed output: kinds are scalar (s), vector (v) and matrix
(m). Data-setting ops carry constants instead of inputs. The readable form of every op follows the reference's
`Instruction::ToString` (`s1 = dot(v0, v1)`, `v2 = s3 * v0`, ...); `mnas.zero.program` prints and parses it.

Pure Python and numpy: the numba kernels read the kind tables below as frozen arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnas.errors import UserError

NONE, SCALAR, VECTOR, MATRIX = 0, 1, 2, 3
KIND_PREFIX = {SCALAR: "s", VECTOR: "v", MATRIX: "m"}
KIND_NAME = {SCALAR: "scalars", VECTOR: "vectors", MATRIX: "matrices"}

# Constants an op carries (columns d0..d2 of an instruction).
NO_DATA, CONST_S, CONST_V, CONST_M, GAUSSIAN, UNIFORM = range(6)

# Addresses the reference never writes at random (kFirstOut*Address): s0 is the label, v0 the features.
FIRST_OUT = {SCALAR: 1, VECTOR: 1, MATRIX: 0}


@dataclass(frozen=True)
class Op:
    id: int
    name: str
    in1: int
    in2: int
    out: int
    data: int
    template: str  # readable form: {o} {a} {b} addresses, {d0} {d1} {d2} constants

    @property
    def arity(self) -> int:
        return (self.in1 != NONE) + (self.in2 != NONE)


S, V, M = SCALAR, VECTOR, MATRIX
_TABLE = [
    ("NO_OP", NONE, NONE, NONE, NO_DATA, "NoOp()"),
    ("SCALAR_SUM_OP", S, S, S, NO_DATA, "{o} = {a} + {b}"),
    ("SCALAR_DIFF_OP", S, S, S, NO_DATA, "{o} = {a} - {b}"),
    ("SCALAR_PRODUCT_OP", S, S, S, NO_DATA, "{o} = {a} * {b}"),
    ("SCALAR_DIVISION_OP", S, S, S, NO_DATA, "{o} = {a} / {b}"),
    ("SCALAR_ABS_OP", S, NONE, S, NO_DATA, "{o} = abs({a})"),
    ("SCALAR_RECIPROCAL_OP", S, NONE, S, NO_DATA, "{o} = 1 / {a}"),
    ("SCALAR_SIN_OP", S, NONE, S, NO_DATA, "{o} = sin({a})"),
    ("SCALAR_COS_OP", S, NONE, S, NO_DATA, "{o} = cos({a})"),
    ("SCALAR_TAN_OP", S, NONE, S, NO_DATA, "{o} = tan({a})"),
    ("SCALAR_ARCSIN_OP", S, NONE, S, NO_DATA, "{o} = arcsin({a})"),
    ("SCALAR_ARCCOS_OP", S, NONE, S, NO_DATA, "{o} = arccos({a})"),
    ("SCALAR_ARCTAN_OP", S, NONE, S, NO_DATA, "{o} = arctan({a})"),
    ("SCALAR_EXP_OP", S, NONE, S, NO_DATA, "{o} = exp({a})"),
    ("SCALAR_LOG_OP", S, NONE, S, NO_DATA, "{o} = log({a})"),
    ("SCALAR_HEAVYSIDE_OP", S, NONE, S, NO_DATA, "{o} = heaviside({a}, 1.0)"),
    ("VECTOR_HEAVYSIDE_OP", V, NONE, V, NO_DATA, "{o} = heaviside({a}, 1.0)"),
    ("MATRIX_HEAVYSIDE_OP", M, NONE, M, NO_DATA, "{o} = heaviside({a}, 1.0)"),
    ("SCALAR_VECTOR_PRODUCT_OP", S, V, V, NO_DATA, "{o} = {a} * {b}"),
    ("SCALAR_BROADCAST_OP", S, NONE, V, NO_DATA, "{o} = bcast({a})"),
    ("VECTOR_RECIPROCAL_OP", V, NONE, V, NO_DATA, "{o} = 1 / {a}"),
    ("VECTOR_NORM_OP", V, NONE, S, NO_DATA, "{o} = norm({a})"),
    ("VECTOR_ABS_OP", V, NONE, V, NO_DATA, "{o} = abs({a})"),
    ("VECTOR_SUM_OP", V, V, V, NO_DATA, "{o} = {a} + {b}"),
    ("VECTOR_DIFF_OP", V, V, V, NO_DATA, "{o} = {a} - {b}"),
    ("VECTOR_PRODUCT_OP", V, V, V, NO_DATA, "{o} = {a} * {b}"),
    ("VECTOR_DIVISION_OP", V, V, V, NO_DATA, "{o} = {a} / {b}"),
    ("VECTOR_INNER_PRODUCT_OP", V, V, S, NO_DATA, "{o} = dot({a}, {b})"),
    ("VECTOR_OUTER_PRODUCT_OP", V, V, M, NO_DATA, "{o} = outer({a}, {b})"),
    ("SCALAR_MATRIX_PRODUCT_OP", S, M, M, NO_DATA, "{o} = {a} * {b}"),
    ("MATRIX_RECIPROCAL_OP", M, NONE, M, NO_DATA, "{o} = 1 / {a}"),
    ("MATRIX_VECTOR_PRODUCT_OP", M, V, V, NO_DATA, "{o} = dot({a}, {b})"),
    ("VECTOR_COLUMN_BROADCAST_OP", V, NONE, M, NO_DATA, "{o} = bcast({a}, axis=0)"),
    ("VECTOR_ROW_BROADCAST_OP", V, NONE, M, NO_DATA, "{o} = bcast({a}, axis=1)"),
    ("MATRIX_NORM_OP", M, NONE, S, NO_DATA, "{o} = norm({a})"),
    ("MATRIX_COLUMN_NORM_OP", M, NONE, V, NO_DATA, "{o} = norm({a}, axis=0)"),
    ("MATRIX_ROW_NORM_OP", M, NONE, V, NO_DATA, "{o} = norm({a}, axis=1)"),
    ("MATRIX_TRANSPOSE_OP", M, NONE, M, NO_DATA, "{o} = transpose({a})"),
    ("MATRIX_ABS_OP", M, NONE, M, NO_DATA, "{o} = abs({a})"),
    ("MATRIX_SUM_OP", M, M, M, NO_DATA, "{o} = {a} + {b}"),
    ("MATRIX_DIFF_OP", M, M, M, NO_DATA, "{o} = {a} - {b}"),
    ("MATRIX_PRODUCT_OP", M, M, M, NO_DATA, "{o} = {a} * {b}"),
    ("MATRIX_DIVISION_OP", M, M, M, NO_DATA, "{o} = {a} / {b}"),
    ("MATRIX_MATRIX_PRODUCT_OP", M, M, M, NO_DATA, "{o} = matmul({a}, {b})"),
    ("SCALAR_MIN_OP", S, S, S, NO_DATA, "{o} = minimum({a}, {b})"),
    ("VECTOR_MIN_OP", V, V, V, NO_DATA, "{o} = minimum({a}, {b})"),
    ("MATRIX_MIN_OP", M, M, M, NO_DATA, "{o} = minimum({a}, {b})"),
    ("SCALAR_MAX_OP", S, S, S, NO_DATA, "{o} = maximum({a}, {b})"),
    ("VECTOR_MAX_OP", V, V, V, NO_DATA, "{o} = maximum({a}, {b})"),
    ("MATRIX_MAX_OP", M, M, M, NO_DATA, "{o} = maximum({a}, {b})"),
    ("VECTOR_MEAN_OP", V, NONE, S, NO_DATA, "{o} = mean({a})"),
    ("MATRIX_MEAN_OP", M, NONE, S, NO_DATA, "{o} = mean({a})"),
    ("MATRIX_ROW_MEAN_OP", M, NONE, V, NO_DATA, "{o} = mean({a}, axis=1)"),
    ("MATRIX_ROW_ST_DEV_OP", M, NONE, V, NO_DATA, "{o} = std({a}, axis=1)"),
    ("VECTOR_ST_DEV_OP", V, NONE, S, NO_DATA, "{o} = std({a})"),
    ("MATRIX_ST_DEV_OP", M, NONE, S, NO_DATA, "{o} = std({a})"),
    ("SCALAR_CONST_SET_OP", NONE, NONE, S, CONST_S, "{o} = {d0}"),
    ("VECTOR_CONST_SET_OP", NONE, NONE, V, CONST_V, "{o}[{d0}] = {d1}"),
    ("MATRIX_CONST_SET_OP", NONE, NONE, M, CONST_M, "{o}[{d0}, {d1}] = {d2}"),
    ("SCALAR_UNIFORM_SET_OP", NONE, NONE, S, UNIFORM, "{o} = uniform({d0}, {d1})"),
    ("VECTOR_UNIFORM_SET_OP", NONE, NONE, V, UNIFORM, "{o} = uniform({d0}, {d1}, n_features)"),
    ("MATRIX_UNIFORM_SET_OP", NONE, NONE, M, UNIFORM, "{o} = uniform({d0}, {d1}, (n_features, n_features))"),
    ("SCALAR_GAUSSIAN_SET_OP", NONE, NONE, S, GAUSSIAN, "{o} = gaussian({d0}, {d1})"),
    ("VECTOR_GAUSSIAN_SET_OP", NONE, NONE, V, GAUSSIAN, "{o} = gaussian({d0}, {d1}, n_features)"),
    ("MATRIX_GAUSSIAN_SET_OP", NONE, NONE, M, GAUSSIAN, "{o} = gaussian({d0}, {d1}, (n_features, n_features))"),
]
OPS: tuple[Op, ...] = tuple(Op(i, *row) for i, row in enumerate(_TABLE))
NUM_OPS = len(OPS)
BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
assert NUM_OPS == 65 and OPS[64].name == "MATRIX_GAUSSIAN_SET_OP"

# Frozen into the numba kernels: (in1, in2, out, data) kind per op id.
KINDS = np.array([[op.in1, op.in2, op.out, op.data] for op in OPS], dtype=np.int64)

# The demo's op set (run_demo.sh: setup, predict and learn all draw from it).
DEMO_OPS = ("SCALAR_CONST_SET_OP", "VECTOR_INNER_PRODUCT_OP", "SCALAR_DIFF_OP", "SCALAR_PRODUCT_OP",
            "SCALAR_VECTOR_PRODUCT_OP", "VECTOR_SUM_OP")
ALL_OPS = tuple(op.name for op in OPS[1:])  # NO_OP is a placeholder, never drawn


def op_by_name(name: str) -> Op:
    """`SCALAR_SUM_OP`, `scalar_sum` or `56` -> the op; an unknown one is a UserError naming the choices."""
    key = name.strip().upper()
    if key.isdigit() and int(key) < NUM_OPS:
        return OPS[int(key)]
    op = BY_NAME.get(key) or BY_NAME.get(key + "_OP")
    if op is None:
        raise UserError(f"unknown op {name!r}: ops are OP0..OP64 of instruction.proto, e.g. SCALAR_SUM_OP, "
                        "VECTOR_INNER_PRODUCT_OP (see docs/zero.md)")
    return op


def parse_op_list(text: str) -> tuple[int, ...]:
    """A comma-separated op list (names, short names or ids; `all` = every op but NO_OP) -> sorted op ids."""
    if text.strip().lower() == "all":
        return tuple(range(1, NUM_OPS))
    names = [t for t in text.split(",") if t.strip()]
    if not names:
        raise UserError("an op list needs at least one op")
    return tuple(sorted({op_by_name(t).id for t in names}))
