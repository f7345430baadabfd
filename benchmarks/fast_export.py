"""Fast latency-model export vs the TF converter: seconds per model, speedup, same ops, same latency.

For each model (default: zoo models at their default resolution and 1000 classes):
- converter: `mnas.export.export_tflite(spec, use_cache=False)` (Keras build + freeze + TFLiteConverter),
  timed once per model after TF has been imported (the import is not charged to any model);
- writer: `latency.tflite_writer.write_tflite(spec)`, median of `--writer-runs` runs (and the first run);
  and the mean time to write each of its layers alone (`write_layers([layer])`, a table build's unit);
- ops: whether the two op sequences are identical (`latency.tflite_ops.op_sequence`);
- latency on the host: LiteRT, 1 thread, XNNPACK, `--rounds` interleaved rounds of `--runs` invokes
  per model and round (the order alternates each round): the median thread CPU time per invoke (the
  compute time, which other work on shared cores does not inflate) and the median (IQR) of the
  per-round wall-time medians.

    .venv/bin/python benchmarks/fast_export.py [--models a,b,c] [--rounds 15] [--runs 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.tflite_ops import op_sequence  # noqa: E402
from latency.tflite_writer import write_layers, write_tflite  # noqa: E402
from mnas import zoo  # noqa: E402

DEFAULT_MODELS = "mobilenetv3-small,mnasnet-a1,efficientnet-b0"


def time_writer(spec, runs: int) -> tuple[float, float, bytes]:
    """(first run s, median s over `runs`, bytes)."""
    times, content = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        content = write_tflite(spec)
        times.append(time.perf_counter() - start)
    return times[0], float(np.median(times)), content


def time_layer_models(spec) -> float:
    """Mean seconds to write one single-layer timing model (what a latency table build writes per op)."""
    layers = spec.layers()
    start = time.perf_counter()
    for layer in layers:
        write_layers([layer])
    return (time.perf_counter() - start) / len(layers)


def time_converter(spec, out_dir: Path) -> tuple[float, bytes]:
    from mnas.export import export_tflite

    start = time.perf_counter()
    path = export_tflite(spec, out_dir / f"{spec.name}.tflite", use_cache=False)
    return time.perf_counter() - start, path.read_bytes()


def interleaved_latency(models: dict[str, bytes], rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """Per model (ms): median thread CPU time per invoke, and the median and IQR of per-round wall medians.

    With one interpreter thread, thread CPU time is the invoke's compute time and does not count time
    that other work on shared cores takes; wall time does. Rounds interleave the models, order alternating.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name, content in models.items():
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(detail["shape"], np.float32))
        for _ in range(3):
            interpreter.invoke()
        interpreters[name] = interpreter
    wall_medians: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(rounds):
        order = list(models) if round_index % 2 == 0 else list(reversed(models))
        for name in order:
            wall = []
            for _ in range(runs):
                start, start_cpu = time.perf_counter(), time.thread_time()
                interpreters[name].invoke()
                cpu[name].append(time.thread_time() - start_cpu)
                wall.append(time.perf_counter() - start)
            wall_medians[name].append(float(np.median(wall)) * 1e3)
    out = {}
    for name, values in wall_medians.items():
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        out[name] = {"cpu_ms": float(np.median(cpu[name])) * 1e3, "wall_ms": float(q2), "wall_iqr_ms": float(q3 - q1)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated zoo names")
    parser.add_argument("--resolution", type=int, default=None, help="override every model's resolution")
    parser.add_argument("--writer-runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=10, help="invokes per model and round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from mnas.export import quiet_fds

    start = time.perf_counter()
    with quiet_fds():
        import tensorflow  # noqa: F401  (imported once, before any model is timed)
    tf_import_s = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            overrides = {"resolution": args.resolution} if args.resolution else {}
            spec = zoo.get(name.strip(), **overrides)
            convert_s, converted = time_converter(spec, Path(tmp))
            first_s, write_s, written = time_writer(spec, args.writer_runs)
            layer_s = time_layer_models(spec)
            latency = interleaved_latency({"converter": converted, "writer": written}, args.rounds, args.runs)
            conv, writ = latency["converter"], latency["writer"]
            rows.append({
                "model": spec.name, "resolution": spec.resolution, "ops": len(op_sequence(written)),
                "same_ops": op_sequence(converted) == op_sequence(written),
                "converter_s": round(convert_s, 3), "writer_first_s": round(first_s, 4),
                "writer_s": round(write_s, 4), "speedup": round(convert_s / write_s, 1),
                "layer_model_ms": round(layer_s * 1e3, 2),
                "converter_cpu_ms": round(conv["cpu_ms"], 3), "writer_cpu_ms": round(writ["cpu_ms"], 3),
                "cpu_diff_pct": round(100 * (writ["cpu_ms"] - conv["cpu_ms"]) / conv["cpu_ms"], 2),
                "converter_wall_ms": round(conv["wall_ms"], 3), "converter_wall_iqr_ms": round(conv["wall_iqr_ms"], 3),
                "writer_wall_ms": round(writ["wall_ms"], 3), "writer_wall_iqr_ms": round(writ["wall_iqr_ms"], 3),
                "wall_diff_pct": round(100 * (writ["wall_ms"] - conv["wall_ms"]) / conv["wall_ms"], 2),
            })
            if not args.json:
                print(_format(rows[-1]), flush=True)
    summary = {"tf_import_s": round(tf_import_s, 2), "cpu_count": os.cpu_count(), "models": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"(TF import, not charged to any model: {tf_import_s:.1f} s; {os.cpu_count()} CPUs)")
    return 0


def _format(row: dict) -> str:
    return (f"{row['model']:<18} r{row['resolution']:<4} ops {row['ops']:>4} same_ops {row['same_ops']!s:<5} "
            f"converter {row['converter_s']:6.2f} s  writer {row['writer_s'] * 1e3:6.1f} ms "
            f"(first {row['writer_first_s'] * 1e3:.1f})  speedup {row['speedup']:6.1f}x  "
            f"one layer {row['layer_model_ms']:.1f} ms | latency cpu "
            f"{row['converter_cpu_ms']:.2f} / {row['writer_cpu_ms']:.2f} ms ({row['cpu_diff_pct']:+.1f}%)  wall "
            f"{row['converter_wall_ms']:.2f} (IQR {row['converter_wall_iqr_ms']:.2f}) / {row['writer_wall_ms']:.2f} "
            f"(IQR {row['writer_wall_iqr_ms']:.2f}) ms ({row['wall_diff_pct']:+.1f}%)")


if __name__ == "__main__":
    raise SystemExit(main())
