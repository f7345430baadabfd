"""The numba kernels: the interpreter, task evaluation, the FEC cache, mutation and the evolution loop.

Why one compiled loop: a Python loop around a compiled interpreter pays ~30-50 us of interpreter overhead per
child (tournament, copy, mutation, two dispatches), more than the demo's evaluation itself; with the loop
compiled too a child costs only its arithmetic (benchmarks/zero_throughput.py measures both). Every kernel is
compiled once per process (`cache=True` keeps the machine code in __pycache__ between processes) and always
called with the same argument types, so there is one specialisation each.

Programs are int32 rows (op, in1, in2, out) and float64 rows (d0, d1, d2), stored compactly as
[setup | predict | learn] with their three lengths. Memory is s (S,), v (V, F), m (M, F, F).
`error_model="numpy"`: 1/0 is inf and log(-1) is nan, as in the C++ reference, never an exception.
Random numbers: xoshiro256** with explicit uint64[4] states, so a run's generator state is saved with its
population and a resumed run continues the same stream.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mnas.zero.ops import CONST_M, CONST_S, CONST_V, FIRST_OUT, GAUSSIAN, KINDS, MATRIX, NONE, SCALAR, UNIFORM, \
    VECTOR

RMS_ERROR, ACCURACY = 0, 1
_KINDS = KINDS
_FIRST_OUT = np.array([0, FIRST_OUT[SCALAR], FIRST_OUT[VECTOR], FIRST_OUT[MATRIX]], dtype=np.int64)
_TWO_OVER_PI = 0.63661977236758138243
SIGN_FLIP_PROB = 0.1

# Mutation types (ids are ours; names are the reference's MutationType).
ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_FUNCTION, INSERT, REMOVE, INSERT_OR_REMOVE = range(6)
CONST_SCALE_UNIFORM, CONST_SCALE_LOGNORMAL = 0, 1

# counters[]: a population's bookkeeping, saved with it.
C_NEXT, C_INDIVIDUALS, C_TRAIN_STEPS, C_FEC_HITS, C_FEC_MISSES, C_INITIALISED = range(6)
NUM_COUNTERS = 6
# cache meta[]
K_HEAD, K_TAIL, K_SIZE, K_TOMBS, K_FREE = range(5)
_EMPTY, _TOMB = -1, -2


# -- random numbers ----------------------------------------------------------------------------------
@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def seed_rng(state, seed):
    """splitmix64 expansion of one integer into a xoshiro256** state."""
    z = np.uint64(seed)
    for i in range(4):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        state[i] = _mix64(z)


@njit(cache=True)
def _next(state):
    s1 = state[1]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@njit(cache=True)
def uniform(state):
    return float(_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def randint(state, n):
    k = int(uniform(state) * n)
    return k if k < n else n - 1


@njit(cache=True)
def gaussian(state):
    u1 = 1.0 - uniform(state)  # (0, 1]: log is finite
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * uniform(state))


# -- copies: explicit loops, because numba's slice assignment (a[i] = b) costs ~1.5 s of compilation per type
@njit(cache=True)
def _copy_rows(dst, i, src, j):
    """dst[i] = src[j] for 2D arrays (rows of a program)."""
    for k in range(dst.shape[1]):
        dst[i, k] = src[j, k]


@njit(cache=True)
def _copy_program(dst, src):
    """dst[:] = src for a program's 2D arrays."""
    for r in range(dst.shape[0]):
        for k in range(dst.shape[1]):
            dst[r, k] = src[r, k]


@njit(cache=True)
def _copy_vector(dst, src):
    for k in range(dst.shape[0]):
        dst[k] = src[k]


# -- the interpreter ---------------------------------------------------------------------------------
# The ops fall into a few shapes; one generic loop per shape keeps the compiled interpreter small (numba's
# compile time grows with its size) at the price of a branch per element. Codes per op id, -1 = other shape:
_ADD, _SUB, _MUL, _DIV, _MIN, _MAX = range(6)
BINARY = np.full(65, -1, dtype=np.int64)  # elementwise, same kind in and out: s, v or m
for _op, _code in ((1, _ADD), (2, _SUB), (3, _MUL), (4, _DIV), (44, _MIN), (47, _MAX), (23, _ADD), (24, _SUB),
                   (25, _MUL), (26, _DIV), (45, _MIN), (48, _MAX), (39, _ADD), (40, _SUB), (41, _MUL), (42, _DIV),
                   (46, _MIN), (49, _MAX)):
    BINARY[_op] = _code
_ABS, _RECIP, _SIN, _COS, _TAN, _ASIN, _ACOS, _ATAN, _EXP, _LOG, _STEP_GE, _STEP_GT = range(12)
UNARY = np.full(65, -1, dtype=np.int64)  # elementwise, same kind in and out
for _op, _code in ((5, _ABS), (6, _RECIP), (7, _SIN), (8, _COS), (9, _TAN), (10, _ASIN), (11, _ACOS), (12, _ATAN),
                   (13, _EXP), (14, _LOG), (15, _STEP_GE), (16, _STEP_GT), (17, _STEP_GT), (20, _RECIP),
                   (22, _ABS), (30, _RECIP), (38, _ABS)):
    UNARY[_op] = _code
_DOT, _NORM, _MEAN, _STD = range(4)
REDUCE = np.full(65, -1, dtype=np.int64)  # a vector or matrix (flattened) to a scalar
for _op, _code in ((27, _DOT), (21, _NORM), (34, _NORM), (50, _MEAN), (51, _MEAN), (54, _STD), (55, _STD)):
    REDUCE[_op] = _code


@njit(cache=True, error_model="numpy")
def _binary(code, x, y):
    if code == _ADD:
        return x + y
    if code == _SUB:
        return x - y
    if code == _MUL:
        return x * y
    if code == _DIV:
        return x / y
    if code == _MIN:
        return y if y < x else x  # std::min(x, y)
    return y if x < y else x  # std::max(x, y)


@njit(cache=True, error_model="numpy")
def _unary(code, x):
    if code == _ABS:
        return abs(x)
    if code == _RECIP:
        return 1.0 / x
    if code == _SIN:
        return math.sin(x)
    if code == _COS:
        return math.cos(x)
    if code == _TAN:
        return math.tan(x)
    if code == _ASIN:
        return math.asin(x)
    if code == _ACOS:
        return math.acos(x)
    if code == _ATAN:
        return math.atan(x)
    if code == _EXP:
        return math.exp(x)
    if code == _LOG:
        return math.log(x)
    if code == _STEP_GE:
        return 1.0 if x >= 0.0 else 0.0
    return 1.0 if x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _reduce(code, x, y, n):
    """dot(x, y), norm, mean or st. dev. (the reference's sqrt(E[x^2] - mean^2), which round-off can make nan)."""
    if code == _DOT:
        acc = 0.0
        for k in range(n):
            acc += x[k] * y[k]
        return acc
    total, squares = 0.0, 0.0
    for k in range(n):
        total += x[k]
        squares += x[k] * x[k]
    if code == _NORM:
        return math.sqrt(squares)
    mean = total / n
    return mean if code == _MEAN else np.sqrt(squares / n - mean * mean)


@njit(cache=True, error_model="numpy")
def _matrix_op(op, a, b, o, s, v, m, tm):
    """Every op that reads or writes a matrix (the rare ones in a search, and the bulk of the interpreter's
    code): elementwise ones share one loop over the flattened matrix, the rest have their own."""
    F = v.shape[1]
    mf = m.reshape((m.shape[0], F * F))
    if BINARY[op] >= 0:
        for k in range(F * F):
            mf[o, k] = _binary(BINARY[op], mf[a, k], mf[b, k])
    elif UNARY[op] >= 0:
        for k in range(F * F):
            mf[o, k] = _unary(UNARY[op], mf[a, k])
    elif REDUCE[op] >= 0:
        s[o] = _reduce(REDUCE[op], mf[a], mf[a], F * F)
    elif op == 29:
        for k in range(F * F):
            mf[o, k] = s[a] * mf[b, k]
    else:
        for k in range(F):
            if op == 28:
                for j in range(F):
                    m[o, k, j] = v[a, k] * v[b, j]
            elif op == 31:
                acc = 0.0
                for j in range(F):
                    acc += m[a, k, j] * v[b, j]
                tm[0, k] = acc
            elif op == 32:
                for j in range(F):
                    m[o, k, j] = v[a, k]
            elif op == 33:
                for j in range(F):
                    m[o, k, j] = v[a, j]
            elif op == 35:
                acc = 0.0
                for j in range(F):
                    acc += m[a, j, k] * m[a, j, k]
                v[o, k] = math.sqrt(acc)
            elif op == 36:
                v[o, k] = _reduce(_NORM, m[a, k], m[a, k], F)
            elif op == 37:
                for j in range(F):
                    tm[k, j] = m[a, j, k]
            elif op == 43:
                for j in range(F):
                    acc = 0.0
                    for q in range(F):
                        acc += m[a, k, q] * m[b, q, j]
                    tm[k, j] = acc
            elif op == 52:
                v[o, k] = _reduce(_MEAN, m[a, k], m[a, k], F)
            elif op == 53:
                v[o, k] = _reduce(_STD, m[a, k], m[a, k], F)
        if op == 31:
            _copy_vector(v[o], tm[0])
        elif op == 37 or op == 43:
            _copy_program(m[o], tm)


@njit(cache=True, error_model="numpy")
def _fill(out, data0, data1, gauss, rng):
    for k in range(out.shape[0]):
        out[k] = data0 + data1 * gaussian(rng) if gauss else data0 + (data1 - data0) * uniform(rng)


@njit(cache=True, error_model="numpy")
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy")
def _finish(loss, nva, eval_type):
    loss /= nva
    if eval_type == ACCURACY:
        return 1.0 - loss
    rmse = math.sqrt(loss)
    return 1.0 - _TWO_OVER_PI * math.atan(rmse) if rmse < np.inf else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def run_task(code, data, lens, xtr, ytr, ntr, xva, yva, nva, eval_type, max_err, s, v, m, tv, tm, rng, errs,
             wipe):
    """The interpreter: Setup once, Predict+Learn per training example, Predict per validation example, as the
    reference's Executor. Returns (fitness, train steps, errors recorded); errs (when long enough) receives the
    per-example errors FEC hashes. A nan or an error above max_err stops the run with fitness 0 (the
    reference's early stop). wipe=False keeps the memory as given (tests run one instruction on chosen memory).

    One function on purpose: a helper called per block (with a dozen array arguments) cost ~60 ns a block in
    reference counting, more than the block's instructions; and numba compiles a large function once per call
    site. Scalar and vector ops are written out (the hot ones); matrix ops go to `_matrix_op`."""
    F = v.shape[1]
    if wipe:
        s[:] = 0.0
        v[:] = 0.0
        m[:] = 0.0
    record = errs.shape[0] >= ntr + nva
    p0 = lens[0]
    p1 = p0 + lens[1]
    p2 = p1 + lens[2]
    phase, e, steps, loss = 0, 0, 0, 0.0  # phase 0 Setup, 1 Predict (train), 2 Learn, 3 Predict (validation)
    start, end = 0, p0
    while True:
        for i in range(start, end):
            op = code[i, 0]
            a = code[i, 1]
            b = code[i, 2]
            o = code[i, 3]
            if op == 0:
                continue
            if op <= 15 or op == 44 or op == 47:  # scalar in, scalar out
                if op == 2:
                    s[o] = s[a] - s[b]
                elif op == 3:
                    s[o] = s[a] * s[b]
                elif BINARY[op] >= 0:
                    s[o] = _binary(BINARY[op], s[a], s[b])
                else:
                    s[o] = _unary(UNARY[op], s[a])
            elif op == 27:
                acc = 0.0
                for k in range(F):
                    acc += v[a, k] * v[b, k]
                s[o] = acc
            elif op == 18:
                w = s[a]
                for k in range(F):
                    v[o, k] = v[b, k] * w
            elif op == 23:
                for k in range(F):
                    v[o, k] = v[a, k] + v[b, k]
            elif op == 24 or op == 25 or op == 26 or op == 45 or op == 48:
                c = BINARY[op]
                for k in range(F):
                    v[o, k] = _binary(c, v[a, k], v[b, k])
            elif op == 16 or op == 20 or op == 22:
                c = UNARY[op]
                for k in range(F):
                    v[o, k] = _unary(c, v[a, k])
            elif op == 19:
                for k in range(F):
                    v[o, k] = s[a]
            elif op == 21 or op == 50 or op == 54:
                s[o] = _reduce(REDUCE[op], v[a], v[a], F)
            elif op == 56:
                s[o] = data[i, 0]
            elif op == 57:
                v[o, int(F * data[i, 0])] = data[i, 1]
            elif op == 58:
                m[o, int(F * data[i, 0]), int(F * data[i, 1])] = data[i, 2]
            elif op == 59 or op == 62:
                s[o] = data[i, 0] + data[i, 1] * gaussian(rng) if op == 62 else \
                    data[i, 0] + (data[i, 1] - data[i, 0]) * uniform(rng)
            elif op == 60 or op == 63:
                _fill(v[o], data[i, 0], data[i, 1], op == 63, rng)
            elif op == 61 or op == 64:
                _fill(m[o].ravel(), data[i, 0], data[i, 1], op == 64, rng)
            else:
                _matrix_op(op, a, b, o, s, v, m, tm)
        if phase == 0:
            phase = 1 if ntr > 0 else 3
        elif phase == 1:
            steps += 1
            if eval_type == ACCURACY:
                s[1] = _sigmoid(s[1])
            err = abs(ytr[e] - s[1])
            if not err <= max_err:  # nan included
                return 0.0, steps, e
            if record:
                errs[e] = err
            phase = 2
        elif phase == 2:
            e += 1
            if e == ntr:
                phase, e = 3, 0
            else:
                phase = 1
        else:
            if eval_type == RMS_ERROR:
                err = yva[e] - s[1]
                loss += err * err
            else:
                prob = _sigmoid(s[1])
                err = np.inf if prob > 1.0 or prob < 0.0 else (0.0 if (yva[e] > 0.5) == (prob > 0.5) else 1.0)
                loss += err
            if not abs(err) <= max_err:
                return 0.0, steps, ntr + e
            if record:
                errs[ntr + e] = err
            e += 1
            if e == nva:
                return _finish(loss, nva, eval_type), steps, ntr + nva
        # the next block's inputs: the features in v0, the label in s0 for Learn only (Predict never sees it)
        for k in range(F):
            v[0, k] = xva[e, k] if phase == 3 else xtr[e, k]
        s[0] = ytr[e] if phase == 2 else 0.0
        start, end = (p1, p2) if phase == 2 else (p0, p1)


FEC_SEED = 235732282  # the reference's kFunctionalCacheRandomSeed


@njit(cache=True, error_model="numpy", inline="always")
def run_tasks(code, data, lens, tasks, ntr, nva, eval_type, max_err, mem_arrays, seed, errs, bits, out, wipe):
    """Run one program on every task: (mean fitness, train steps, hash of the recorded errors). Task t's random
    ops draw from a generator seeded with (seed, t), so a program's fitness is a pure function of the program
    and the tasks. errs/bits (one float64 buffer and its uint64 view, or empty): record and hash the errors.
    out (T,) or empty: the per-task fitnesses."""
    xtr, ytr, xva, yva = tasks
    s, v, m, tv, tm = mem_arrays
    rng = np.zeros(4, dtype=np.uint64)
    h = np.uint64(0x84222325CBF29CE4)
    total, steps = 0.0, 0
    for t in range(xtr.shape[0]):
        seed_rng(rng, seed * 1000003 + t)
        fit, n, filled = run_task(code, data, lens, xtr[t], ytr[t], ntr, xva[t], yva[t], nva, eval_type, max_err,
                                  s, v, m, tv, tm, rng, errs, wipe)
        total += fit
        steps += n
        if out.shape[0] > t:
            out[t] = fit
        if bits.shape[0] > 0:
            h = _mix64(h ^ np.uint64(t + 1))
            for i in range(filled):
                h = _mix64(h ^ bits[i])
            h = _mix64(h ^ np.uint64(filled))
    return total / xtr.shape[0], steps, h


@njit(cache=True)
def memory_arrays(mem, features):
    """(s, v, m, tv, tm): a program's memory and the interpreter's scratch."""
    return (np.zeros(mem[0]), np.zeros((mem[1], features)), np.zeros((mem[2], features, features)),
            np.zeros(features), np.zeros((features, features)))


# -- the FEC cache: an LRU of (hash -> fitness), open addressing + a doubly linked recency list ---------
def new_cache(capacity: int) -> tuple:
    """(index, keys, fits, counts, prev, next, slots, free, meta): all arrays, so the cache lives in numba."""
    size = 1
    while size < 2 * capacity:
        size *= 2
    meta = np.array([-1, -1, 0, 0, capacity], dtype=np.int64)
    return (np.full(size, _EMPTY, dtype=np.int64), np.zeros(capacity, dtype=np.uint64),
            np.zeros(capacity), np.zeros(capacity, dtype=np.int64), np.full(capacity, -1, dtype=np.int64),
            np.full(capacity, -1, dtype=np.int64), np.zeros(capacity, dtype=np.int64),
            np.arange(capacity - 1, -1, -1, dtype=np.int64), meta)


_NO_CACHE = new_cache(1)  # SCORE/EXECUTE never touch it, but the kernel's signature wants one


@njit(cache=True)
def _cache_probe(index, keys, key):
    """(position holding key or -1, first reusable position)."""
    mask = index.shape[0] - 1
    pos = np.int64(key & np.uint64(mask))
    tomb = -1
    while True:
        e = index[pos]
        if e == _EMPTY:
            return -1, (tomb if tomb >= 0 else pos)
        if e == _TOMB:
            if tomb < 0:
                tomb = pos
        elif keys[e] == key:
            return pos, -1
        pos = (pos + 1) & mask


@njit(cache=True)
def _unlink(e, prev, nxt, meta):
    p, n = prev[e], nxt[e]
    if p >= 0:
        nxt[p] = n
    else:
        meta[K_HEAD] = n
    if n >= 0:
        prev[n] = p
    else:
        meta[K_TAIL] = p


@njit(cache=True)
def _push_front(e, prev, nxt, meta):
    prev[e] = -1
    nxt[e] = meta[K_HEAD]
    if meta[K_HEAD] >= 0:
        prev[meta[K_HEAD]] = e
    meta[K_HEAD] = e
    if meta[K_TAIL] < 0:
        meta[K_TAIL] = e


@njit(cache=True)
def _cache_remove(e, index, prev, nxt, slots, free, meta):
    _unlink(e, prev, nxt, meta)
    index[slots[e]] = _TOMB
    free[meta[K_FREE]] = e
    meta[K_FREE] += 1
    meta[K_SIZE] -= 1
    meta[K_TOMBS] += 1


@njit(cache=True)
def _cache_rebuild(index, keys, nxt, slots, meta):
    """Drop the tombstones (they lengthen probes): re-insert the live entries."""
    index[:] = _EMPTY
    mask = index.shape[0] - 1
    e = meta[K_HEAD]
    while e >= 0:
        pos = np.int64(keys[e] & np.uint64(mask))
        while index[pos] != _EMPTY:
            pos = (pos + 1) & mask
        index[pos] = e
        slots[e] = pos
        e = nxt[e]
    meta[K_TOMBS] = 0


@njit(cache=True)
def cache_find(cache, key, forget_every):
    """(fitness, found). A hit becomes the most recent entry; one seen forget_every times is dropped, so its
    fitness is measured again (the reference's forget_every)."""
    index, keys, fits, counts, prev, nxt, slots, free, meta = cache
    pos, _ = _cache_probe(index, keys, key)
    if pos < 0:
        return 0.0, False
    e = index[pos]
    fit = fits[e]
    counts[e] += 1
    if forget_every > 0 and counts[e] >= forget_every:
        _cache_remove(e, index, prev, nxt, slots, free, meta)
    else:
        _unlink(e, prev, nxt, meta)
        _push_front(e, prev, nxt, meta)
    return fit, True


@njit(cache=True)
def cache_insert(cache, key, fit):
    index, keys, fits, counts, prev, nxt, slots, free, meta = cache
    found, pos = _cache_probe(index, keys, key)
    if found >= 0:  # already cached: refresh
        fits[index[found]] = fit
        return
    if meta[K_SIZE] >= keys.shape[0]:  # full: the least recent goes (its slot becomes a tombstone)
        _cache_remove(meta[K_TAIL], index, prev, nxt, slots, free, meta)
    meta[K_FREE] -= 1
    e = free[meta[K_FREE]]
    if index[pos] == _TOMB:
        meta[K_TOMBS] -= 1
    index[pos] = e
    slots[e] = pos
    keys[e] = key
    fits[e] = fit
    counts[e] = 1
    _push_front(e, prev, nxt, meta)
    meta[K_SIZE] += 1
    if 4 * (meta[K_SIZE] + meta[K_TOMBS]) > 3 * index.shape[0]:
        _cache_rebuild(index, keys, nxt, slots, meta)


# -- mutation ----------------------------------------------------------------------------------------
@njit(cache=True)
def _random_out(kind, mem, rng):
    first = _FIRST_OUT[kind]
    return first + randint(rng, mem[kind - 1] - first)


@njit(cache=True)
def randomize_instruction(code, data, i, op, mem, rng):
    """A fresh instruction of op `op` at row i: random addresses (outputs never s0/v0) and constants, with the
    reference's ranges (constants U(-1, 1), indexes U(0, 1), st. devs U(0, 1))."""
    kinds = _KINDS[op]
    code[i, 0] = op
    code[i, 1] = randint(rng, mem[kinds[0] - 1]) if kinds[0] != NONE else 0
    code[i, 2] = randint(rng, mem[kinds[1] - 1]) if kinds[1] != NONE else 0
    code[i, 3] = _random_out(kinds[2], mem, rng) if kinds[2] != NONE else 0
    data[i, 0] = data[i, 1] = data[i, 2] = 0.0
    kind = kinds[3]
    if kind == CONST_S:
        data[i, 0] = 2.0 * uniform(rng) - 1.0
    elif kind == CONST_V:
        data[i, 0] = uniform(rng)
        data[i, 1] = 2.0 * uniform(rng) - 1.0
    elif kind == CONST_M:
        data[i, 0] = uniform(rng)
        data[i, 1] = uniform(rng)
        data[i, 2] = 2.0 * uniform(rng) - 1.0
    elif kind == GAUSSIAN:
        data[i, 0] = 2.0 * uniform(rng) - 1.0
        data[i, 1] = uniform(rng)
    elif kind == UNIFORM:
        lo, hi = 2.0 * uniform(rng) - 1.0, 2.0 * uniform(rng) - 1.0
        data[i, 0], data[i, 1] = min(lo, hi), max(lo, hi)


@njit(cache=True, error_model="numpy")
def _scale(x, mode, rng):
    """A constant's step: x * U[0.5, 2] (the paper) or sign(x) * exp(log|x| + N(0, 1)) (the released code)."""
    if mode == CONST_SCALE_UNIFORM:
        return x * (0.5 + 1.5 * uniform(rng))
    if x > 0:
        return math.exp(math.log(x) + gaussian(rng))
    return -math.exp(math.log(-x) + gaussian(rng))


@njit(cache=True, error_model="numpy")
def _scale_or_flip(x, mode, rng):
    if uniform(rng) < SIGN_FLIP_PROB:
        return -x
    return _scale(x, mode, rng)


@njit(cache=True, error_model="numpy")
def _alter_data(data, i, kind, mode, rng):
    if kind == CONST_S:
        data[i, 0] = _scale_or_flip(data[i, 0], mode, rng)
    elif kind == CONST_V:
        if randint(rng, 2) == 0:
            data[i, 0] = uniform(rng)
        else:
            data[i, 1] = _scale_or_flip(data[i, 1], mode, rng)
    elif kind == CONST_M:
        c = randint(rng, 3)
        if c < 2:
            data[i, c] = uniform(rng)
        else:
            data[i, 2] = _scale_or_flip(data[i, 2], mode, rng)
    elif kind == GAUSSIAN:
        if randint(rng, 2) == 0:
            data[i, 0] = _scale_or_flip(data[i, 0], mode, rng)
        else:
            data[i, 1] = _scale(data[i, 1], mode, rng)
    elif kind == UNIFORM:
        c = randint(rng, 2)
        data[i, c] = _scale_or_flip(data[i, c], mode, rng)
        lo, hi = data[i, 0], data[i, 1]
        data[i, 0], data[i, 1] = min(lo, hi), max(lo, hi)


@njit(cache=True, error_model="numpy")
def alter_param(code, data, i, mem, mode, rng):
    """Change one argument of row i (the reference's AlterParam): an input, the output or a constant."""
    op = code[i, 0]
    if op == 0:
        return
    kinds = _KINDS[op]
    if kinds[3] != 0:
        if randint(rng, 2) == 0:
            code[i, 3] = _random_out(kinds[2], mem, rng)
        else:
            _alter_data(data, i, kinds[3], mode, rng)
        return
    choices = 3 if kinds[1] != NONE else 2
    c = randint(rng, choices)
    if c == 0:
        code[i, 1] = randint(rng, mem[kinds[0] - 1])
    elif c == 1 and choices == 3:
        code[i, 2] = randint(rng, mem[kinds[1] - 1])
    else:
        code[i, 3] = _random_out(kinds[2], mem, rng)


@njit(cache=True)
def _random_op(allowed, n_allowed, f, rng):
    return allowed[f, randint(rng, n_allowed[f])]


@njit(cache=True)
def random_program(code, data, lens, sizes, allowed, n_allowed, mem, rng):
    """A random program with the initial sizes (sizes[0:3]) from each function's allowed ops (NO_OP where a
    function allows none)."""
    row = 0
    for f in range(3):
        lens[f] = sizes[f]
        for _ in range(sizes[f]):
            op = _random_op(allowed, n_allowed, f, rng) if n_allowed[f] > 0 else 0
            randomize_instruction(code, data, row, op, mem, rng)
            row += 1


@njit(cache=True)
def _insert_row(code, data, lens, f, pos, op, mem, rng):
    start = 0
    for g in range(f):
        start += lens[g]
    total = lens[0] + lens[1] + lens[2]
    at = start + pos
    for r in range(total, at, -1):
        _copy_rows(code, r, code, r - 1)
        _copy_rows(data, r, data, r - 1)
    randomize_instruction(code, data, at, op, mem, rng)
    lens[f] += 1


@njit(cache=True)
def _remove_row(code, data, lens, f, pos):
    start = 0
    for g in range(f):
        start += lens[g]
    total = lens[0] + lens[1] + lens[2]
    for r in range(start + pos, total - 1):
        _copy_rows(code, r, code, r + 1)
        _copy_rows(data, r, data, r + 1)
    lens[f] -= 1


@njit(cache=True, error_model="numpy")
def mutate(code, data, lens, mut_types, sizes, allowed, n_allowed, mem, mode, rng):
    """One mutation of a type drawn from mut_types, on a function drawn from those with allowed ops.
    sizes: initial[0:3], min[3:6], max[6:9] instructions per function."""
    n_mutable = 0
    for f in range(3):
        n_mutable += n_allowed[f] > 0
    pick = randint(rng, n_mutable)
    f = 0
    for g in range(3):
        if n_allowed[g] > 0:
            if pick == 0:
                f = g
                break
            pick -= 1
    kind = mut_types[randint(rng, mut_types.shape[0])]
    if kind == INSERT_OR_REMOVE:
        kind = INSERT if randint(rng, 2) == 0 else REMOVE
    start = 0
    for g in range(f):
        start += lens[g]
    n = lens[f]
    if kind == ALTER_PARAM and n > 0:
        alter_param(code, data, start + randint(rng, n), mem, mode, rng)
    elif kind == RANDOMIZE_INSTRUCTION and n > 0:
        randomize_instruction(code, data, start + randint(rng, n), _random_op(allowed, n_allowed, f, rng), mem,
                              rng)
    elif kind == RANDOMIZE_FUNCTION:
        for r in range(start, start + n):
            randomize_instruction(code, data, r, _random_op(allowed, n_allowed, f, rng), mem, rng)
    elif kind == INSERT and n < sizes[6 + f]:
        _insert_row(code, data, lens, f, randint(rng, n + 1), _random_op(allowed, n_allowed, f, rng), mem, rng)
    elif kind == REMOVE and n > sizes[3 + f]:
        _remove_row(code, data, lens, f, randint(rng, n))


# -- one program's fitness, with FEC ------------------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def child_fitness(code, data, lens, tasks, ntr, nva, eval_type, max_err, mem_arrays, use_fec, fec, cache, counters,
                  buffers, out, wipe):
    """Mean fitness over the tasks. With FEC: first a short run (fec[1] train, fec[2] validation examples per
    task, the reference's fixed seed) whose errors are hashed; a cache hit skips the full run. One call site of
    run_tasks (a loop of two passes). buffers = (errs, their uint64 view, empty float64, empty uint64)."""
    errs, bits, empty, empty_bits = buffers
    key = np.uint64(0)
    for full in range(2):
        if full == 0 and not use_fec:
            continue
        if full:
            e_buf, b_buf, n_train, n_valid, seed, per_task = empty, empty_bits, ntr, nva, 0, out
        else:
            e_buf, b_buf, n_train, n_valid, seed, per_task = errs, bits, fec[1], fec[2], FEC_SEED, empty
        fit, steps, h = run_tasks(code, data, lens, tasks, n_train, n_valid, eval_type, max_err, mem_arrays, seed,
                                  e_buf, b_buf, per_task, wipe)
        counters[C_TRAIN_STEPS] += steps
        if full:
            if use_fec:
                cache_insert(cache, key, fit)
            return fit
        key = h
        cached, found = cache_find(cache, key, fec[3])
        if found:
            counters[C_FEC_HITS] += 1
            return cached
        counters[C_FEC_MISSES] += 1
    return 0.0


# -- regularized evolution, and the one entry point ------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _tournament(fit, size, rng):
    """The reference's BestFitnessTournament: `size` draws with replacement, the first best wins."""
    best = -1
    best_fit = -np.inf
    for _ in range(size):
        i = randint(rng, fit.shape[0])
        if best < 0 or fit[i] > best_fit:
            best, best_fit = i, fit[i]
    return best


@njit(cache=True, error_model="numpy")
def _next_child(pop, counters, rng, space, child):
    """A random program while the initial population fills, then a tournament winner's copy, mutated with
    probability mutate_prob."""
    code, data, lens, fit = pop
    allowed, n_allowed, mut_types, sizes, mem, params, mutate_prob = space
    c_code, c_data, c_lens = child
    if counters[C_INITIALISED] < fit.shape[0]:
        random_program(c_code, c_data, c_lens, sizes, allowed, n_allowed, mem, rng)
        return
    parent = _tournament(fit, params[0], rng)
    _copy_program(c_code, code[parent])
    _copy_program(c_data, data[parent])
    _copy_vector(c_lens, lens[parent])
    if uniform(rng) < mutate_prob[0]:
        mutate(c_code, c_data, c_lens, mut_types, sizes, allowed, n_allowed, mem, params[1], rng)


@njit(cache=True, error_model="numpy")
def _replace_oldest(pop, best, counters, child, f):
    """The child takes the oldest member's slot; returns whether it is the best program so far."""
    code, data, lens, fit = pop
    c_code, c_data, c_lens = child
    slot = counters[C_NEXT]
    _copy_program(code[slot], c_code)
    _copy_program(data[slot], c_data)
    _copy_vector(lens[slot], c_lens)
    fit[slot] = f
    counters[C_NEXT] = (slot + 1) % fit.shape[0]
    if counters[C_INITIALISED] < fit.shape[0]:
        counters[C_INITIALISED] += 1
    counters[C_INDIVIDUALS] += 1
    best_code, best_data, best_lens, best_fit = best
    if f > best_fit[0]:
        best_fit[0] = f
        _copy_program(best_code, c_code)
        _copy_program(best_data, c_data)
        _copy_vector(best_lens, c_lens)
        return True
    return False


EVOLVE, SCORE, EXECUTE = 0, 1, 2


@njit(cache=True, error_model="numpy")
def kernel(mode, pop, best, counters, rng, n, stop_fitness, space, tasks, evaluation, fec, cache, mem_arrays, out):
    """The only compiled entry point that runs programs (so the interpreter is compiled once).

    EVOLVE: evaluate up to n more individuals (the random initial population first, then mutated tournament
    winners, each replacing the oldest); stops early once the best fitness exceeds stop_fitness; returns the
    number evaluated. SCORE: out[p, t] = fitness of pop program p (p < n) on task t. EXECUTE: run pop program 0
    on tasks without wiping mem_arrays first (tests: single instructions on chosen memory).

    pop = (code (P, L, 4), data (P, L, 3), lens (P, 3), fit (P,)); best = (code, data, lens, fit (1,));
    space = (allowed (3, 65), n_allowed (3,), mut_types, sizes (9,), mem (3,), params (tournament, constant
    mutation), mutate_prob (1,)); tasks = (xtr, ytr, xva, yva); evaluation = (train examples, validation
    examples, eval type, max abs error); fec = (on, train, valid, forget_every); cache: `new_cache`;
    mem_arrays: `memory_arrays`."""
    code, data, lens, fit = pop
    ntr, nva, eval_type, max_err = evaluation
    errs = np.zeros(fec[1] + fec[2])
    buffers = (errs, errs.view(np.uint64), np.zeros(0), np.zeros(0, dtype=np.uint64))
    child = (np.zeros_like(code[0]), np.zeros_like(data[0]), np.zeros_like(lens[0]))
    done = 0
    while done < n:
        if mode == EVOLVE:
            _next_child(pop, counters, rng, space, child)
            program, per_task = child, buffers[2]
        else:
            program, per_task = (code[done], data[done], lens[done]), out[done]
        f = child_fitness(program[0], program[1], program[2], tasks, ntr, nva, eval_type, max_err, mem_arrays,
                          mode == EVOLVE and fec[0] != 0, fec, cache, counters, buffers, per_task, mode != EXECUTE)
        done += 1
        if mode == EVOLVE and _replace_oldest(pop, best, counters, child, f) and f > stop_fitness:
            break
    return done


def score(code: np.ndarray, data: np.ndarray, lens: np.ndarray, tasks: tuple, evaluation: tuple, mem: np.ndarray,
          mem_arrays: tuple | None = None) -> np.ndarray:
    """Per-task fitness (P, T) of P programs (code (P, L, 4), data (P, L, 3), lens (P, 3)), by `kernel`.
    With mem_arrays: EXECUTE mode on that memory (not wiped first)."""
    P, T = code.shape[0], tasks[0].shape[0]
    out = np.zeros((P, T))
    pop = (code, data, lens, np.zeros(P))
    best = (np.zeros_like(code[0]), np.zeros_like(data[0]), np.zeros_like(lens[0]), np.zeros(1))
    space = (np.zeros((3, 65), dtype=np.int64), np.zeros(3, dtype=np.int64), np.zeros(1, dtype=np.int64),
             np.zeros(9, dtype=np.int64), mem, np.zeros(2, dtype=np.int64), np.zeros(1))
    mode = SCORE if mem_arrays is None else EXECUTE
    kernel(mode, pop, best, np.zeros(NUM_COUNTERS, dtype=np.int64), np.zeros(4, dtype=np.uint64), P, np.inf,
           space, tasks, evaluation, np.zeros(4, dtype=np.int64), _NO_CACHE,
           mem_arrays if mem_arrays is not None else memory_arrays(mem, tasks[0].shape[2]), out)
    return out
