"""The emulated `benchmark_model`: parses the real tool's flags, runs the model in LiteRT on the host
(devices.litert_runner) and prints the real tool's newer (`INFO:`-prefixed) output format, including the
op-profiling tables. Numbers are host-CPU numbers; the phone profile only shapes what the device shows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from devices.base import OpTiming
from mnas.errors import UserError

Write = Callable[[str], None]

# flag -> (type, default), as in tensorflow/lite/tools/benchmark/benchmark_model.cc
FLAGS: dict[str, tuple[type, object]] = {
    "graph": (str, ""), "num_threads": (int, -1), "num_runs": (int, 50), "warmup_runs": (int, 1),
    "warmup_min_secs": (float, 0.5), "min_secs": (float, 1.0), "max_secs": (float, 150.0),
    "run_delay": (float, -1.0), "enable_op_profiling": (bool, False), "profiling_output_csv_file": (str, ""),
    "use_xnnpack": (bool, True), "use_gpu": (bool, False), "use_nnapi": (bool, False),
    "max_profiling_buffer_entries": (int, 1024), "verbose": (bool, False),
    "report_peak_memory_footprint": (bool, False),
}


@dataclass
class BenchmarkFlags:
    values: dict
    unconsumed: list[str]
    explicit: set[str]


def parse_flags(argv: list[str]) -> BenchmarkFlags:
    values = {name: default for name, (_, default) in FLAGS.items()}
    unconsumed, explicit = [], set()
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg and arg[2:] not in FLAGS:
            unconsumed.append(arg)
            continue
        name, _, raw = arg[2:].partition("=")
        if name not in FLAGS:
            unconsumed.append(arg)
            continue
        kind = FLAGS[name][0]
        try:
            if kind is bool:
                if raw.lower() not in ("", "true", "false", "1", "0"):
                    raise ValueError(raw)
                values[name] = raw.lower() in ("", "true", "1")
            else:
                values[name] = kind(raw)
        except ValueError:
            raise UserError(f"Failed to parse flag --{name}={raw}") from None
        explicit.add(name)
    return BenchmarkFlags(values, unconsumed, explicit)


def _g(value: float) -> str:
    """C++ ostream default formatting of a double (6 significant digits, %g)."""
    return f"{value:g}"


def stat_line(values_us: list[float], *, percentiles: bool) -> str:
    """tensorflow::Stat<int64_t> output: int microseconds, avg as double, std as int."""
    ints = [int(round(v)) for v in values_us]
    if not ints:
        return "count=0"
    if min(ints) == max(ints):
        return f"count={len(ints)} curr={ints[-1]}" + ("(all same)" if len(ints) > 1 else "")
    arr = np.asarray(ints, dtype=np.float64)
    line = (f"count={len(ints)} first={ints[0]} curr={ints[-1]} min={min(ints)} max={max(ints)} "
            f"avg={_g(float(arr.mean()))} std={int(math.sqrt(float(arr.var())))}")
    if percentiles:
        p5, p50, p95 = (int(np.percentile(arr, q, method="lower")) for q in (5, 50, 95))
        line += f" p5={p5} median={p50} p95={p95}"
    return line


def run(argv: list[str], resolve_graph: Callable[[str], Path], out: Write, *, cores: int) -> int:
    """Emulate `benchmark_model argv...`; `resolve_graph` maps the device path to a host file or raises."""
    from devices import litert_runner

    try:
        flags = parse_flags(argv)
    except UserError as err:
        out(f"ERROR: {err}\n")
        return 1
    v = flags.values
    out("INFO: STARTING!\n")
    if flags.unconsumed:
        out(f"ERROR: Unconsumed cmdline flags: {' '.join(flags.unconsumed)}\n")
        return 1
    out("INFO: Log parameter values verbosely: [0]\n")
    # The real tool echoes only the flags given on the command line.
    echo = {"num_runs": "Min num runs", "warmup_runs": "Min warmup runs", "min_secs": "Min runs duration (seconds)",
            "warmup_min_secs": "Min warmup runs duration (seconds)", "max_secs": "Max runs duration (seconds)",
            "num_threads": "Num threads", "graph": "Graph", "enable_op_profiling": "Enable op profiling",
            "use_xnnpack": "Use xnnpack"}
    for name, label in echo.items():
        if name in flags.explicit:
            value = v[name]
            shown = int(value) if isinstance(value, bool) else _g(value) if isinstance(value, float) else value
            out(f"INFO: {label}: [{shown}]\n")
    graph = v["graph"]
    if not graph:
        out("ERROR: Please specify the name of your TF Lite input file with --graph\n")
        out("ERROR: Benchmarking failed.\n")
        return 1
    if v["use_gpu"] or v["use_nnapi"]:
        out("ERROR: GPU/NNAPI delegates are not available on the mnas emulated phone (LiteRT CPU only)\n")
        return 1
    try:
        host_path = resolve_graph(graph)
    except (OSError, ValueError) as err:
        out(f"ERROR: Could not open '{graph}'. {err}\n")
        out(f"ERROR: Failed to mmap model {graph}\n")
        out("ERROR: Benchmarking failed.\n")
        return 1
    threads = v["num_threads"] if v["num_threads"] > 0 else min(cores, os.cpu_count() or 1)
    out(f"INFO: #threads used for CPU inference: [{threads}]\n")
    out(f"INFO: Loaded model {graph}\n")
    try:
        timings = litert_runner.run_benchmark(
            host_path, num_threads=threads, warmup_runs=max(0, v["warmup_runs"] - 1), num_runs=max(1, v["num_runs"]),
            op_profiling=v["enable_op_profiling"], use_xnnpack=v["use_xnnpack"],
            warmup_min_secs=v["warmup_min_secs"], min_secs=v["min_secs"], max_secs=v["max_secs"])
    except UserError as err:
        out(f"ERROR: {err}\n")
        out(f"ERROR: Failed to mmap model {graph}\n")
        out("ERROR: Benchmarking failed.\n")
        return 1
    if v["use_xnnpack"]:
        out("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        out("INFO: XNNPACK delegate created.\n")
    size_mb = host_path.stat().st_size / 1e6
    out(f"INFO: The input model file size (MB): {_g(size_mb)}\n")
    out(f"INFO: Initialized session in {timings.init_us / 1e3:.3f}ms.\n")
    warmup = [timings.first_us] + list(timings.warmup_us)
    out(f"INFO: Running benchmark for at least {v['warmup_runs']} iterations and at least "
        f"{_g(v['warmup_min_secs'])} seconds but terminate if exceeding {_g(v['max_secs'])} seconds.\n")
    out(f"INFO: {stat_line(warmup, percentiles=False)}\n\n")
    out(f"INFO: Running benchmark for at least {v['num_runs']} iterations and at least "
        f"{_g(v['min_secs'])} seconds but terminate if exceeding {_g(v['max_secs'])} seconds.\n")
    out(f"INFO: {stat_line(timings.times_us, percentiles=True)}\n\n")
    out(f"INFO: Inference timings in us: Init: {int(round(timings.init_us))}, "
        f"First inference: {int(round(timings.first_us))}, Warmup (avg): {_g(float(np.mean(warmup)))}, "
        f"Inference (avg): {_g(float(np.mean(timings.times_us)))}\n")
    if timings.ops is not None:
        out("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n")
        out(op_tables(timings.ops, timings.op_run_totals_us or []))
    return 0


def _row(cells: list[tuple[str, int]], name: str | None = None) -> str:
    text = "\t" + "\t".join(cell.rjust(width) for cell, width in cells)
    return text + (f"\t[{name}]" if name is not None else "") + "\n"


def op_tables(ops: list[OpTiming], run_totals_us: list[float]) -> str:
    """The stats_calculator tables: Run Order, Top by Computation Time, Summary by node type, Timings."""
    head = [("[node type]", 24), ("[first]", 9), ("[avg ms]", 9), ("[%]", 8), ("[cdf%]", 8), ("[mem KB]", 10),
            ("[times called]", 14)]

    def rows(items: list[OpTiming]) -> str:
        text, cdf = "", 0.0
        for op in items:
            cdf += op.percent
            text += _row([(op.node_type, 24), (f"{op.first_ms:.3f}", 9), (f"{op.avg_ms:.3f}", 9),
                          (f"{op.percent:.3f}%", 8), (f"{cdf:.3f}%", 8), ("0.000", 10),
                          (str(op.times_called), 9)], op.name)
        return text

    bar = "=" * 30
    text = f"{bar} Run Order {bar}\n" + _row(head, "Name") + rows(ops) + "\n"
    top = sorted(ops, key=lambda op: op.avg_ms, reverse=True)[:10]
    text += f"{bar} Top by Computation Time {bar}\n" + _row(head, "Name") + rows(top) + "\n"
    text += f"Number of nodes executed: {len(ops)}\n"
    by_type: dict[str, list[OpTiming]] = {}
    for op in ops:
        by_type.setdefault(op.node_type, []).append(op)
    summary = sorted(by_type.items(), key=lambda kv: sum(o.avg_ms for o in kv[1]), reverse=True)
    text += f"{bar} Summary by node type {bar}\n"
    text += _row([("[Node type]", 24), ("[count]", 9), ("[avg ms]", 10), ("[avg %]", 11), ("[cdf %]", 11),
                  ("[mem KB]", 10), ("[times called]", 14)])
    cdf = 0.0
    for node_type, items in summary:
        pct = sum(o.percent for o in items)
        cdf += pct
        text += _row([(node_type, 24), (str(len(items)), 9), (f"{sum(o.avg_ms for o in items):.3f}", 10),
                      (f"{pct:.3f}%", 11), (f"{cdf:.3f}%", 11), ("0.000", 10),
                      (str(sum(o.times_called for o in items)), 14)])
    text += "\n" + f"Timings (microseconds): {stat_line(run_totals_us, percentiles=False)}\n"
    text += "Memory (bytes): count=0\n"
    text += f"{len(ops)} nodes observed\n\n"
    return text
