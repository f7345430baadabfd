"""Table accuracy on a device: predicted vs measured latency of random architectures, with the noise floor.

    .venv/bin/mnas table build --device host --space mnasnet --resolution 224 --out runs/host-mnasnet-224.db
    .venv/bin/python benchmarks/table_accuracy.py --table runs/host-mnasnet-224.db [--device host]
        [--space mnasnet] [--samples 50] [--noise-repeats 10] [--plot runs/table_accuracy.png] [--json]
    # on a shared machine: build + validate with the host timed by thread CPU time
    .venv/bin/python benchmarks/table_accuracy.py --clock thread-cpu --build --table runs/host-cpu-mnasnet-224.db

The comparison uses the table's statistic of the runs (median, or p5 for a table built with
`--statistic p5`); the error against measured medians is reported too.
Measures `--samples` random architectures of the space (seed 2024, not the calibration seed) end to end
(fast TFLite writer, LiteRT, 1 thread) and compares with the table's prediction: share within +-5% and
+-10%, RMSPE, scatter PNG. With --build the `--calibrate` calibration models (seed 12345) and the validation
models are measured in the same interleaved passes (every pass over all of them, in a new random order), the
calibration is fitted on the first set and judged on the second: a device whose speed drifts between a
calibration phase and a validation phase (this shared VM: up to ~7% within minutes) would otherwise show its
drift as prediction error. `--separate` measures them one phase after the other instead, as a table build
and a later `mnas table validate` do. Noise floor, reported beside it: the first `--noise-repeats` models are
measured a second time, after all the others; the run-to-run difference |m2 - m1| / m1 (median and 90th
percentile) is what a perfect predictor would still show as error. Also reports the uncalibrated error
(plain sum with the overhead correction) so the calibration's effect is visible.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from devices.registry import open_device  # noqa: E402
from latency.predictor import Calibration, Predictor, fit_calibration, profile_value  # noqa: E402
from latency.store import TableStore  # noqa: E402
from latency.table_builder import (build_table, calibrate, fit_stored_calibration, measure_specs,  # noqa: E402
                                   ops_of_space, random_specs, table_fingerprint_key)
from latency.validate import ValidationResult, compare, write_scatter  # noqa: E402
from mnas import spaces  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--device", default="host")
    parser.add_argument("--space", default="mnasnet")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--noise-repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--plot", type=Path, default=Path("runs/table_accuracy.png"))
    parser.add_argument("--clock", choices=("wall", "thread-cpu"), default="wall",
                        help="thread-cpu: time the host by the thread's CPU time (a shared machine)")
    parser.add_argument("--build", action="store_true", help="build (or resume) the table first")
    parser.add_argument("--statistic", default="median", help="with --build: median | p5")
    parser.add_argument("--calibrate", type=int, default=60, help="with --build: whole models fitted (default 60)")
    parser.add_argument("--passes", type=int, default=2,
                        help="interleaved passes over the calibration and validation models (default 2)")
    parser.add_argument("--separate", action="store_true",
                        help="with --build: measure the calibration models first and the validation models after "
                             "them (as a build and a later validate), so a drift of the device between the two "
                             "phases counts as error; default: one set of interleaved passes over both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # thread-cpu = the `host-cpu` device: the host timed by the calling thread's CPU time (a shared machine)
    device = open_device("host-cpu" if args.clock == "thread-cpu" else args.device)
    space = spaces.get(args.space)
    build = None
    specs = random_specs(space, args.samples, args.resolution, args.seed)
    profiles = None
    if args.build:
        with TableStore.open(args.table, create=True) as store:
            report = build_table(device, store, ops_of_space(space, args.resolution), threads=args.threads,
                                 statistic=args.statistic,
                                 description={"space": args.space, "resolution": args.resolution,
                                              "threads": args.threads, "clock": args.clock})
            cal_specs = random_specs(space, args.calibrate, args.resolution, 12345)
            if args.separate:  # as `mnas table build` + a later `mnas table validate`: device drift counts
                report.calibration, report.calibration_points = calibrate(
                    device, store, report.fingerprint_key, cal_specs, threads=args.threads, passes=args.passes)
            else:  # one set of interleaved passes over both: calibration and validation see the same device
                t0 = time.perf_counter()
                both = measure_specs(device, cal_specs + specs, threads=args.threads, passes=args.passes, seed=2,
                                     label="calibration + validation models")
                report.calibration, report.calibration_points = fit_stored_calibration(
                    store, report.fingerprint_key, cal_specs, both[:len(cal_specs)])
                profiles = both[len(cal_specs):]
        build = report.to_dict()
    predictor = Predictor.load(args.table, device_key=table_fingerprint_key(device, args.threads))
    predictor.predict_ms(specs)  # refuses uncovered ops before measuring anything
    if profiles is None:
        t0 = time.perf_counter()
        profiles = measure_specs(device, specs, threads=args.threads, label="validation models",
                                 passes=args.passes, seed=2)
    measure_s = time.perf_counter() - t0
    repeats = measure_specs(device, specs[:args.noise_repeats], threads=args.threads, label="noise repeats",
                            passes=args.passes, seed=3)
    result = compare(predictor, specs, profiles)
    first = np.array([profile_value(p, predictor.statistic) for p in profiles[:args.noise_repeats]])
    second = np.array([profile_value(p, predictor.statistic) for p in repeats])
    median_view = ValidationResult(result.names, result.predicted_ms, np.array([p.median_ms for p in profiles]),
                                   statistic="median")
    run_to_run = np.abs(second - first) / first
    raw = Predictor(predictor.values, predictor.fingerprint_key, Calibration(), predictor.overhead_ms,
                    statistic=predictor.statistic)
    uncalibrated = ValidationResult(result.names, raw.predict_ms(specs), result.measured_ms,
                                    statistic=predictor.statistic)
    # The same table with a plain line fitted on the same calibration models: what the learned terms add.
    line_fit = None
    if build and build["calibration_points"]:
        points = build["calibration_points"]
        line = fit_calibration([q["raw_ms"] for q in points], [q["measured_ms"] for q in points])
        line_view = ValidationResult(result.names, Predictor(predictor.values, predictor.fingerprint_key, line,
                                                             predictor.overhead_ms).predict_ms(specs),
                                     result.measured_ms, statistic=predictor.statistic)
        line_fit = {"calibration": line.to_dict(), "within_5pct": line_view.within(0.05),
                    "within_10pct": line_view.within(0.10), "rmspe": line_view.rmspe,
                    "mean_error": float(np.mean(line_view.rel_errors))}
    kind = predictor.fingerprint_key.split(":")[0]
    write_scatter(result, args.plot, title=f"{args.space} @ {args.resolution}, {kind} ({args.clock}): "
                                         f"{result.within(0.10):.0%} within +-10% (n={result.n})")
    out = {k: v for k, v in result.to_dict().items() if k != "models"}
    out.update({
        "space": args.space, "resolution": args.resolution, "table": str(args.table),
        "fingerprint_key": predictor.fingerprint_key, "calibration": predictor.calibration.to_dict(),
        "overhead_ms": predictor.overhead_ms, "measure_s": measure_s,
        "uncalibrated": {"within_5pct": uncalibrated.within(0.05), "within_10pct": uncalibrated.within(0.10),
                         "rmspe": uncalibrated.rmspe, "mean_error": float(np.mean(uncalibrated.rel_errors))},
        "statistic": predictor.statistic, "line_calibration": line_fit, "passes": args.passes,
        "against_measured_median": {"within_5pct": median_view.within(0.05),
                                    "within_10pct": median_view.within(0.10), "rmspe": median_view.rmspe},
        "noise_run_to_run_median": float(np.median(run_to_run)) if run_to_run.size else None,
        "noise_run_to_run_p90": float(np.percentile(run_to_run, 90)) if run_to_run.size else None,
        "measured_ms_range": [float(result.measured_ms.min()), float(result.measured_ms.max())],
        "plot": str(args.plot), "clock": args.clock, "build": build, "separate": args.separate,
        "models": result.to_dict()["models"],
    })
    device.close()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        if build:
            print(f"build: {build['total_ops']} ops, {build['measured']} measured in {build['seconds']:.0f} s; "
                  f"calibration {predictor.calibration.describe()}")
        print(f"{result.n} random {args.space} archs @ {args.resolution} on {predictor.fingerprint_key} "
              f"(statistic: {predictor.statistic})")
        print(f"  calibrated:   {out['within_5pct']:.0%} within +-5%, {out['within_10pct']:.0%} within +-10%, "
              f"RMSPE {out['rmspe']:.1%}, mean error {out['mean_error']:+.1%}")
        if line_fit:
            print(f"  line only:    {line_fit['within_5pct']:.0%} within +-5%, {line_fit['within_10pct']:.0%} within "
                  f"+-10%, RMSPE {line_fit['rmspe']:.1%}, mean error {line_fit['mean_error']:+.1%} (same models, "
                  "slope * sum + intercept)")
        u = out["uncalibrated"]
        print(f"  uncalibrated: {u['within_5pct']:.0%} within +-5%, {u['within_10pct']:.0%} within +-10%, "
              f"RMSPE {u['rmspe']:.1%}, mean error {u['mean_error']:+.1%}")
        m = out["against_measured_median"]
        print(f"  vs measured medians: {m['within_5pct']:.0%} within +-5%, {m['within_10pct']:.0%} within +-10%, "
              f"RMSPE {m['rmspe']:.1%}")
        print(f"  noise floor: run-to-run median {out['noise_run_to_run_median']:.1%}, "
              f"p90 {out['noise_run_to_run_p90']:.1%}; per-model 95% CI median +-{out['noise_floor_rel_ci95']:.1%}")
        print(f"  measured {out['measured_ms_range'][0]:.1f}-{out['measured_ms_range'][1]:.1f} ms; plot {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
