"""The default search (`make search`) against mnasnet-a1 scaled to the same latency.

    .venv/bin/python benchmarks/default_search.py [--run runs/default] [--json]

Reads the finished (or partial) run in --run (its run store: settings, children), takes its best child within
the target, then width-scales mnasnet-a1 (bisection on the width multiplier, latency measured on the same
device at the same resolution) until its latency matches the best child's, and trains that reference with the
run's own evaluator settings (same data, epochs, seed). Prints both accuracies and latencies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/default"))
    parser.add_argument("--reference", default="mnasnet-a1")
    parser.add_argument("--iterations", type=int, default=7, help="bisection steps on the width multiplier")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from devices.registry import open_device
    from mnas import zoo
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator
    from mnas.latency_sources import DeviceLatency
    from mnas.pareto import best_within
    from mnas.runstore import RunStore

    if not (args.run / "run.db").exists():
        print(f"skipped: no run in {args.run} (run `make search` first)")
        return 0
    with RunStore(args.run / "run.db") as store:
        settings = store.settings()
        children = store.children()
        if not children:
            print(f"error: no children in {args.run}", file=sys.stderr)
            return 2
        lat_settings = settings["latency"][0]
        if lat_settings.get("kind") != "device":
            print("error: this benchmark measures on the run's device; the run used a table", file=sys.stderr)
            return 2
        name = lat_settings["name"]
        targets = settings["reward"]["targets_ms"]
        idx, within = best_within([c.accuracy for c in children], [[c.latency_ms[name]] for c in children],
                                  targets, [c.reward for c in children])
        best = children[idx]
        ev = settings["evaluator"]
        data = load_proxy_data(None, resolution=ev["proxy_resolution"], seed=settings["seed"])
        data = data.subset(ev["train"], ev["val"])
        if data.fingerprint() != ev["data"]:
            print("warning: the proxy data differs from the run's (custom --data?)", file=sys.stderr)
        evaluator = StandaloneEvaluator(data, epochs=ev["epochs"], batch_size=ev["batch_size"],
                                        proxy_resolution=ev["proxy_resolution"], seed=ev["seed"],
                                        learning_rate=ev["lr"], optimizer=ev["optimizer"],
                                        recal_batches=ev["recal_batches"], cache=store.cache("accuracy"))
        # Fresh measurements (no run cache): the best child and every reference width are timed now, side by
        # side, so machine load affects them alike.
        device = DeviceLatency(open_device(lat_settings["device"]))
        resolution = settings["resolution"]
        target_lat = device.latency_ms([best.to_spec()])[0]

        def reference(width: float):
            return zoo.get(args.reference, resolution=resolution, width=round(width, 4))

        # Bracket the width: down from 1.0 when the reference is slower than the best child, up to 2.5 when
        # it is faster (then the reference gets more capacity for the same latency).
        full_lat = device.latency_ms([reference(1.0)])[0]
        lo, hi = (0.2, 1.0) if full_lat >= target_lat else (1.0, 2.5)
        scaled, scaled_lat = reference(1.0), full_lat
        for _ in range(args.iterations):
            mid = (lo + hi) / 2
            lat = device.latency_ms([reference(mid)])[0]
            if abs(lat - target_lat) < abs(scaled_lat - target_lat):
                scaled, scaled_lat = reference(mid), lat
            lo, hi = (mid, hi) if lat < target_lat else (lo, mid)
        ref_acc = evaluator.evaluate([scaled])[0]
        full = evaluator.evaluate([reference(1.0)])[0]
    report = {
        "run": str(args.run), "children": len(children), "target_ms": targets[0], "device": name,
        "best": {"name": best.name, "accuracy": best.accuracy, "latency_ms": target_lat,
                 "latency_ms_in_run": best.latency_ms[name], "within_target": within,
                 "blocks": best.spec["blocks"]},
        "reference_scaled": {"name": args.reference, "width": scaled.width, "accuracy": ref_acc.accuracy,
                             "latency_ms": scaled_lat},
        "reference_full": {"name": args.reference, "accuracy": full.accuracy, "latency_ms": full_lat},
        "best_beats_scaled_reference": best.accuracy > ref_acc.accuracy,
        "evaluator": ev,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"run {args.run}: {len(children)} children, target {targets[0]:.2f} ms on {name}")
        print(f"best child  {best.name}: accuracy {best.accuracy:.4f} at {target_lat:.2f} ms "
              f"({'within' if within else 'NOT within'} target)")
        print(f"{args.reference} x{scaled.width:g}: accuracy {ref_acc.accuracy:.4f} at {scaled_lat:.2f} ms")
        print(f"{args.reference} x1.0: accuracy {full.accuracy:.4f} at {full_lat:.2f} ms")
        print("best child beats the scaled reference" if report["best_beats_scaled_reference"]
              else "best child does NOT beat the scaled reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
