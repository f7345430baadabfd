"""Prediction throughput: architectures per second, batch (`predict_samples`) and per spec (`predict_ms`).

    .venv/bin/python benchmarks/predict_throughput.py [--table FILE --space NAME] [--batch 100000] [--json]

Without --table: OFA's published Note10 224 table and the `ofa-mbv3` space (real data, no device needed).
The process is pinned to one core (sched_setaffinity) and numpy's BLAS to one thread: the figure is for
one core. Reported: one-off compile time (dependency probing + lookup arrays + the check against the
per-spec path), the first batch (fills lazy arrays), then the median of 5 warm batches of fresh random
samples; per-spec prediction on 2,000 specs for comparison (sampling and spec building excluded: samples
are drawn before the clock starts, specs built before `predict_ms` is timed).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.predictor import Predictor  # noqa: E402
from latency.public_luts import default_luts_dir, import_yaml  # noqa: E402
from latency.store import TableStore  # noqa: E402
from mnas import spaces  # noqa: E402


def _samples(space, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(k, size=n) for k in space.num_options])


def run(table: Path, space_name: str, resolution: int, batch: int) -> dict:
    space = spaces.get(space_name)
    predictor = Predictor.load(table, resolution=resolution)
    t0 = time.perf_counter()
    predictor.predict_samples(space, _samples(space, 1, 0), resolution=resolution)
    compile_s = time.perf_counter() - t0
    first = _samples(space, batch, 1)
    t0 = time.perf_counter()
    predictor.predict_samples(space, first, resolution=resolution)
    first_s = time.perf_counter() - t0
    warm = []
    for seed in range(2, 7):
        samples = _samples(space, batch, seed)
        t0 = time.perf_counter()
        out = predictor.predict_samples(space, samples, resolution=resolution)
        warm.append(time.perf_counter() - t0)
    specs = [space.to_spec(s, resolution=resolution) for s in _samples(space, 2000, 99)]
    t0 = time.perf_counter()
    predictor.predict_ms(specs)
    per_spec_s = time.perf_counter() - t0
    fresh = [space.to_spec(s, resolution=resolution) for s in _samples(space, 2000, 100)]
    t0 = time.perf_counter()
    predictor.predict_ms(fresh)
    per_spec_fresh_s = time.perf_counter() - t0
    median = float(np.median(warm))
    return {"space": space_name, "table": str(table), "fingerprint_key": predictor.fingerprint_key,
            "batch": batch, "compile_s": compile_s, "first_batch_s": first_s,
            "warm_batch_s_median": median, "archs_per_s_batch": batch / median,
            "archs_per_s_per_spec_cached": 2000 / per_spec_s, "archs_per_s_per_spec_fresh": 2000 / per_spec_fresh_s,
            "fast_path": predictor._compiled[(id(space), resolution)].fast,
            "mean_predicted_ms": float(out.mean()), "cores": sorted(os.sched_getaffinity(0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="a table file (default: OFA Note10 224, imported)")
    parser.add_argument("--space", default="ofa-mbv3")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        table = args.table
        if table is None:
            table = Path(tmp) / "note10.db"
            with TableStore.open(table, create=True) as store:
                import_yaml(default_luts_dir() / "ofa_note10" / f"{args.resolution}_lookup_table.yaml", store)
        result = run(table, args.space, args.resolution, args.batch)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(f"{result['space']} on {result['fingerprint_key']} (core {result['cores']}):")
        print(f"  compile {result['compile_s']:.2f} s, first batch of {args.batch}: {result['first_batch_s']:.2f} s")
        print(f"  batch: {result['archs_per_s_batch']:,.0f} architectures/s (median of 5 warm batches)")
        print(f"  per spec: {result['archs_per_s_per_spec_cached']:,.0f}/s (layer cache warm), "
              f"{result['archs_per_s_per_spec_fresh']:,.0f}/s (fresh specs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
