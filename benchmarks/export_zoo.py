"""Median seconds per TFLite export (Keras build + conversion) for zoo models.

    .venv/bin/python benchmarks/export_zoo.py [--models a,b,...] [--resolution R] [--repeats N] [--quantize int8]
    .venv/bin/python benchmarks/export_zoo.py --compare-paths --models mobilenetv3-small --resolution 64

`--compare-paths` times the Keras 3 -> TFLite conversion routes instead (why `mnas.export` uses the
frozen concrete function): frozen `tf.function` + `from_concrete_functions`, `model.export` (SavedModel)
+ `from_saved_model`, and `from_keras_model`.

The cache is bypassed (every export converts). One warm-up export runs first and is reported apart:
the first conversion in a process pays one-off TF / MLIR initialisation. Build, convert and total are
wall-clock medians over the repeats, so they include whatever else the machine was doing; "total CPU s"
is this process's CPU time (all threads), which other load inflates much less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mnas import zoo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.names()), help="comma-separated zoo names (default: all)")
    parser.add_argument("--resolution", type=int, default=None, help="override every model's resolution")
    parser.add_argument("--repeats", type=int, default=3, help="exports per model (median reported)")
    parser.add_argument("--quantize", choices=["int8"], default=None)
    parser.add_argument("--compare-paths", action="store_true", help="time the conversion routes instead")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    specs = [zoo.get(n, **({"resolution": args.resolution} if args.resolution else {})) for n in names]

    from mnas import builder, export  # imports TF

    if args.compare_paths:
        return compare_paths(specs, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.tflite"
        start = time.perf_counter()
        export.export_tflite(zoo.get("mnasnet-small", resolution=32), out, use_cache=False)
        print(f"warm-up export (mnasnet-small @32): {time.perf_counter() - start:.2f} s", file=sys.stderr)
        print("| model | res | quantize | build s | convert s | total s | total CPU s | MiB |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        totals = []
        for spec in specs:
            builds, converts, cpus = [], [], []
            for _ in range(args.repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                model = builder.build_keras(spec)
                t1 = time.perf_counter()
                export.export_tflite(spec, out, quantize=args.quantize, model=model)
                t2 = time.perf_counter()
                builds.append(t1 - t0)
                converts.append(t2 - t1)
                cpus.append(time.process_time() - c0)
                del model
                builder.keras.backend.clear_session()
            total = statistics.median(b + c for b, c in zip(builds, converts))
            totals.append(total)
            print(f"| {spec.name} | {spec.resolution} | {args.quantize or 'float32'} | "
                  f"{statistics.median(builds):.2f} | {statistics.median(converts):.2f} | {total:.2f} | "
                  f"{statistics.median(cpus):.2f} | {out.stat().st_size / 2**20:.1f} |", flush=True)
        print(f"\nmedian over models of the per-model median: {statistics.median(totals):.2f} s "
              f"({len(specs)} models x {args.repeats} repeats)")
    return 0


def compare_paths(specs, repeats: int) -> int:
    import tensorflow as tf

    from mnas import builder, export

    def frozen(model) -> bytes:  # what mnas.export uses
        return export.convert_keras(model)

    def saved_model(model) -> bytes:
        with tempfile.TemporaryDirectory() as tmp, export.quiet_fds():
            model.export(tmp, format="tf_saved_model", verbose=False)
            return tf.lite.TFLiteConverter.from_saved_model(tmp).convert()

    def keras_model(model) -> bytes:
        with export.quiet_fds():
            return tf.lite.TFLiteConverter.from_keras_model(model).convert()

    routes = {"frozen concrete fn": frozen, "SavedModel": saved_model, "from_keras_model": keras_model}
    print("| model | res | route | convert s (median) | bytes |")
    print("|---|---:|---|---:|---:|")
    for spec in specs:
        model = builder.build_keras(spec)
        frozen(model)  # warm-up
        for label, route in routes.items():
            times, size = [], 0
            for _ in range(repeats):
                start = time.perf_counter()
                size = len(route(model))
                times.append(time.perf_counter() - start)
            print(f"| {spec.name} | {spec.resolution} | {label} | {statistics.median(times):.2f} | {size} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
