"""Time a `.tflite` file in LiteRT on this machine's CPU: the one timing loop shared by the host device
and the emulated phone's fake `benchmark_model`.

Whole-model timings follow `benchmark_model`: `init_us` is interpreter construction plus
`allocate_tensors()`, `first_us` the first `invoke()`, then `warmup_runs` warm-up invokes, then `num_runs`
timed invokes. Each invoke is timed with `time.perf_counter_ns()` around `Interpreter.invoke()` only
(inputs are written once, before the loop, with random values of the right dtype).

Per-op timings: the Python LiteRT API exposes no op profiler, so each operator of the main subgraph is
cut out of the flatbuffer as a single-op model (its constant inputs kept, its other inputs turned into
model inputs) and timed alone with the same interpreter settings. An op's `avg_ms` is therefore the
*isolated* cost of that op, including one `invoke()` call overhead (a few microseconds) and without the
cache state the op would see inside the full graph; the sum over ops is close to, but not equal to, the
whole-model time. With XNNPACK on, each single-op model is delegated on its own, so the rows are named by
TFLite op (CONV_2D, ...), never by XNNPACK delegate kernel. Ops that cannot be cut out alone (control flow
ops that call other subgraphs, ops on string tensors) are left out of the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.base import OpTiming
from mnas.errors import UserError


@dataclass(frozen=True)
class RunTimings:
    """Raw timings of one benchmark run, in microseconds (the unit `benchmark_model` prints)."""

    init_us: float
    first_us: float
    warmup_us: list[float]
    times_us: list[float]
    ops: list[OpTiming] | None = None
    # Per timed run, the sum of the isolated op times (what `benchmark_model` prints as the profiler's
    # "Timings (microseconds)" line); None without op profiling.
    op_run_totals_us: list[float] | None = None


def run_benchmark(
    model_path: str | Path,
    *,
    num_threads: int = 1,
    warmup_runs: int = 1,
    num_runs: int = 50,
    op_profiling: bool = False,
    use_xnnpack: bool = True,
    warmup_min_secs: float = 0.0,
    min_secs: float = 0.0,
    max_secs: float = float("inf"),
    clock: str = "wall",
) -> RunTimings:
    """Run `model_path` in LiteRT: init, first, `warmup_runs`, then `num_runs` timed invokes.

    Like `benchmark_model`, the warm-up (first run included) goes on until `warmup_min_secs` have passed
    and the timed runs until `min_secs` have passed, but neither beyond `max_secs` once its count is met.
    `clock="thread-cpu"` times each invoke by the calling thread's CPU time instead of the wall clock: with one
    interpreter thread all work runs on the caller, so this is the invoke's latency without the time other
    processes of a shared machine took the core away (cache pollution by them still counts).
    """
    if clock not in CLOCKS:
        raise UserError(f"clock {clock!r} not in {tuple(CLOCKS)}")
    if clock == "thread-cpu" and num_threads != 1:
        raise UserError("thread CPU time measures single-threaded latency only: use 1 thread")
    if num_runs < 1:
        raise UserError(f"num_runs must be >= 1, got {num_runs}")
    if warmup_runs < 0:
        raise UserError(f"warmup_runs must be >= 0, got {warmup_runs}")
    content = read_model_bytes(model_path)
    limits = _Limits(warmup_min_secs=warmup_min_secs, min_secs=min_secs, max_secs=max_secs)
    init_us, first_us, warmup_us, times_us = _time_model(
        content, str(model_path), num_threads=num_threads, warmup_runs=warmup_runs, num_runs=num_runs,
        use_xnnpack=use_xnnpack, limits=limits, clock=CLOCKS[clock])
    ops = totals = None
    if op_profiling:
        ops, totals = profile_ops_with_totals(content, num_threads=num_threads, warmup_runs=warmup_runs,
                                              num_runs=len(times_us), use_xnnpack=use_xnnpack)
    return RunTimings(init_us=init_us, first_us=first_us, warmup_us=warmup_us, times_us=times_us, ops=ops,
                      op_run_totals_us=totals)


CLOCKS = {"wall": time.perf_counter_ns, "thread-cpu": time.thread_time_ns}


@dataclass(frozen=True)
class _Limits:
    warmup_min_secs: float = 0.0
    min_secs: float = 0.0
    max_secs: float = float("inf")


def read_model_bytes(model_path: str | Path) -> bytes:
    path = Path(model_path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"model file not found: {path}") from None
    except OSError as err:
        raise UserError(f"cannot read model file {path}: {err.strerror or err}") from None
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise UserError(f"not a TFLite model (no TFL3 identifier): {path}")
    return content


def _make_interpreter(content: bytes, *, num_threads: int, use_xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=content, num_threads=max(1, int(num_threads)),
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def _fill_random_inputs(interpreter, rng: np.random.Generator) -> None:
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], random_tensor(detail["shape"], detail["dtype"], rng))


def random_tensor(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """Random values of the right dtype; integer inputs stay small so index-like inputs stay valid."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = (int(info.min), int(info.max)) if info.bits <= 16 else (0, 8)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        return rng.standard_normal(size=shape).astype(dtype)
    raise UserError(f"model input of dtype {dtype} is not supported by the LiteRT timing runner")


def _time_model(content: bytes, label: str, *, num_threads: int, warmup_runs: int, num_runs: int,
                use_xnnpack: bool, limits: _Limits = _Limits(),
                clock=time.perf_counter_ns) -> tuple[float, float, list[float], list[float]]:
    start = clock()
    try:
        interpreter = _make_interpreter(content, num_threads=num_threads, use_xnnpack=use_xnnpack)
    except (ValueError, RuntimeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"LiteRT cannot load model {label}: {first_line}") from None
    init_us = (clock() - start) / 1e3
    _fill_random_inputs(interpreter, np.random.default_rng(0))
    invoke = interpreter.invoke

    def timed() -> float:
        t0 = clock()
        invoke()
        return (clock() - t0) / 1e3

    def repeat(count: int, min_secs: float) -> list[float]:
        out: list[float] = []
        begin = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - begin
            if len(out) >= count and (elapsed >= min_secs or elapsed >= limits.max_secs):
                return out
            out.append(timed())

    try:
        began = time.perf_counter()
        first_us = timed()
        warmup_us = repeat(warmup_runs, max(0.0, limits.warmup_min_secs - (time.perf_counter() - began)))
        times_us = repeat(num_runs, limits.min_secs)
    except RuntimeError as err:
        raise UserError(f"LiteRT failed to run model {label}: {str(err).strip().splitlines()[0]}") from None
    return init_us, first_us, warmup_us, times_us


# --- per-op timing: single-op sub-models cut out of the flatbuffer ---------------------------------------

def single_op_models(content: bytes) -> list[tuple[str, str, bytes]]:
    """(op type name, output tensor name, single-op model bytes) for each op of subgraph 0, in run order."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
        op_type = (code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode) \
            if builtin == schema.BuiltinOperator.CUSTOM else op_names.get(builtin, f"OP_{builtin}")
        outputs = [t for t in (op.outputs or []) if t >= 0]
        name = _tensor_name(graph.tensors[outputs[0]]) if outputs else op_type
        piece = _cut_single_op(model, graph, op, schema)
        if piece is not None:
            out.append((op_type, name, piece))
    return out


def _tensor_name(tensor) -> str:
    name = tensor.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")


def _cut_single_op(model, graph, op, schema) -> bytes | None:
    from ai_edge_litert.tools import flatbuffer_utils

    if _calls_subgraph(op, schema):
        return None
    used = [t for t in list(op.inputs or []) + list(op.outputs or []) + list(op.intermediates or []) if t >= 0]
    remap: dict[int, int] = {}
    tensors, buffers = [], [schema.BufferT()]
    for old in used:
        if old in remap:
            continue
        tensor = _copy_tensor(graph.tensors[old], schema)
        if tensor.type == schema.TensorType.STRING:
            return None
        src = model.buffers[tensor.buffer] if tensor.buffer else None
        if src is not None and src.data is not None and len(src.data):
            buffers.append(src)
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        remap[old] = len(tensors)
        tensors.append(tensor)
    constant = {remap[t] for t in used if tensors[remap[t]].buffer != 0}
    new_op = schema.OperatorT()
    for field_name, value in vars(op).items():
        setattr(new_op, field_name, value)
    new_op.opcodeIndex = op.opcodeIndex
    new_op.inputs = [remap[t] if t >= 0 else -1 for t in (op.inputs or [])]
    new_op.outputs = [remap[t] for t in (op.outputs or []) if t >= 0]
    new_op.intermediates = [remap[t] for t in (op.intermediates or []) if t >= 0]
    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.operators = [new_op]
    # Variable tensors are state owned by the op, not inputs to feed.
    sub.inputs = sorted({t for t in new_op.inputs if t >= 0 and t not in constant and not tensors[t].isVariable})
    sub.outputs = list(new_op.outputs)
    sub.name = "single_op"
    piece = schema.ModelT()
    piece.version = model.version
    piece.operatorCodes = model.operatorCodes
    piece.subgraphs = [sub]
    piece.buffers = buffers
    piece.description = "single-op cut"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(piece))


def _copy_tensor(tensor, schema):
    copy = schema.TensorT()
    for field_name, value in vars(tensor).items():
        setattr(copy, field_name, value)
    return copy


def _calls_subgraph(op, schema) -> bool:
    options = op.builtinOptions
    return any(hasattr(options, attr) for attr in
               ("thenSubgraphIndex", "elseSubgraphIndex", "condSubgraphIndex", "bodySubgraphIndex",
                "subgraph", "initSubgraphIndex", "decompositionSubgraphIndex"))


def profile_ops(content: bytes, *, num_threads: int = 1, warmup_runs: int = 1, num_runs: int = 50,
                use_xnnpack: bool = True) -> list[OpTiming]:
    """Isolated per-op timings (see module docstring for what the numbers mean)."""
    return profile_ops_with_totals(content, num_threads=num_threads, warmup_runs=warmup_runs, num_runs=num_runs,
                                   use_xnnpack=use_xnnpack)[0]


def profile_ops_with_totals(content: bytes, *, num_threads: int = 1, warmup_runs: int = 1, num_runs: int = 50,
                            use_xnnpack: bool = True) -> tuple[list[OpTiming], list[float]]:
    """Per-op timings plus, per run index, the sum of the op times of that run (us)."""
    rows = []
    totals = np.zeros(num_runs)
    for op_type, name, piece in single_op_models(content):
        try:
            _, first_us, _, times_us = _time_model(piece, name, num_threads=num_threads, warmup_runs=warmup_runs,
                                                   num_runs=num_runs, use_xnnpack=use_xnnpack)
        except UserError:
            continue  # an op that LiteRT refuses to run alone: left out of the table, as documented
        totals += np.asarray(times_us[:num_runs])
        rows.append((op_type, name, first_us / 1e3, float(np.mean(times_us)) / 1e3))
    total = sum(avg for *_, avg in rows) or 1.0
    ops = [OpTiming(node_type=op_type, name=name, avg_ms=avg, first_ms=first, percent=100.0 * avg / total,
                    times_called=1) for op_type, name, first, avg in rows]
    return ops, [float(t) for t in totals]


def main(argv: list[str] | None = None) -> int:
    """`python -m devices.litert_runner MODEL.tflite [--runs N] [--threads T] [--op-profile] [--no-xnnpack]`:
    print the whole-model median and, with --op-profile, the sum of the isolated op times beside it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m devices.litert_runner", description=main.__doc__)
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--op-profile", action="store_true")
    parser.add_argument("--no-xnnpack", action="store_true")
    args = parser.parse_args(argv)
    try:
        t = run_benchmark(args.model, num_threads=args.threads, warmup_runs=args.warmup, num_runs=args.runs,
                          op_profiling=args.op_profile, use_xnnpack=not args.no_xnnpack)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"init {t.init_us / 1e3:.3f} ms, first {t.first_us / 1e3:.3f} ms, "
          f"median of {len(t.times_us)} runs {float(np.median(t.times_us)) / 1e3:.3f} ms")
    if t.ops is not None:
        print(f"{len(t.ops)} ops; sum of isolated op averages {sum(op.avg_ms for op in t.ops):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
