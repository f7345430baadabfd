"""Wall time per search child, broken down: build, train (first step = trace), BN recalibration, scoring,
latency export (fast writer; and the TF converter for comparison) and host profiling.

    .venv/bin/python benchmarks/child_walltime.py [--children 3] [--epochs 1] [--train-size 4000] [--json]

Children: mnasnet-a1 plus N random samples of the mnasnet space (seeded), trained as `mnas search` does
(standalone evaluator defaults), latency at 224px on the host device with the search's profile options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=3, help="random mnasnet children besides mnasnet-a1")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default: the evaluator's")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--converter", action="store_true", help="also time the TF converter export")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from devices.registry import open_device
    from mnas import spaces, zoo
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator
    from mnas.latency_sources import DeviceLatency

    t0 = time.perf_counter()
    data = load_proxy_data(seed=args.seed)
    if args.train_size:
        data = data.subset(args.train_size)
    load_s = time.perf_counter() - t0
    kwargs = {} if args.lr is None else {"learning_rate": args.lr}
    evaluator = StandaloneEvaluator(data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, **kwargs)
    host = DeviceLatency(open_device("host"))
    space = spaces.get("mnasnet")
    rng = np.random.default_rng(args.seed)
    specs = [zoo.get("mnasnet-a1")] + [space.to_spec(space.sample_random(rng)) for _ in range(args.children)]
    rows = []
    for spec in specs:
        t = time.perf_counter()
        result = evaluator.evaluate([spec])[0]
        acc_s = time.perf_counter() - t
        lat = host.latency_ms([spec])[0]
        row = {"name": spec.name, "accuracy": result.accuracy, "accuracy_before_bn_recal":
               result.detail["accuracy_before_bn_recal"], "latency_ms": lat, "params": result.detail["params"],
               **{k: round(v, 3) for k, v in result.detail.items() if k.endswith("_s")},
               "accuracy_total_s": round(acc_s, 3), **{k: round(v, 3) for k, v in host.last_seconds.items()}}
        if args.converter:
            from mnas.export import export_tflite

            t = time.perf_counter()
            export_tflite(spec, Path("/tmp") / f"child-walltime-{os.getpid()}.tflite", use_cache=False)
            row["converter_export_s"] = round(time.perf_counter() - t, 3)
        rows.append(row)
        if not args.json:
            print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k.endswith("_s")]
    mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}
    report = {"children": rows, "mean_s": mean, "data_load_s": round(load_s, 3), "cpus": os.cpu_count(),
              "load_avg_end": os.getloadavg(), "settings": evaluator.settings()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("mean seconds per child:", json.dumps(mean))
        print("load average at the end:", os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
