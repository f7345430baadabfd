"""Bring your own phone: few-shot latency predictors adapted from the host's fbnet table, checked on real phones.

    .venv/bin/mnas table build --device host --space fbnet --resolution 32 --out runs/host-fbnet-32.db
    .venv/bin/python benchmarks/byo_phone.py --host-table runs/host-fbnet-32.db [--draws 20] [--json FILE]

For each device of data/real_devices/fbnet_cifar (Pixel 3, Raspberry Pi 4, Samsung A50: 5,000 networks each,
measured by others) and K in {5, 10, 20, 50}: adapt the host table with K networks chosen by coverage (the
method of `mnas table adapt --samples K`: greedy D-optimal over per-op-type / per-size prior op times) and with
K drawn at random (`--draws` draws), predict the other 5,000 - K, and report Spearman rho, Kendall tau, the
share within +-10% and RMSPE; beside the ceiling of a per-op sum on that device (least squares on all 5,000) and
HELP's published 0.887 (Raspberry Pi 4, 10 networks, NeurIPS'21). "K=0" is the host table unadapted.

The other direction: the host's own whole-network measurements (the table's calibration models, measured when
it was built) predicted from the Pixel 3 table (imported, exact) adapted with K = 10 of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.fewshot import (accuracy, choose_covering, fit_adapted, key_counts, predict_features,  # noqa: E402
                             prior_features, read_measurements, solve_additive)
from latency.predictor import Predictor  # noqa: E402
from latency.store import TableStore  # noqa: E402
from mnas import spaces  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "real_devices" / "fbnet_cifar"
DEVICES = {"pixel3": "Pixel 3", "raspi4": "Raspberry Pi 4", "samsung_a50": "Samsung A50"}
KS = (5, 10, 20, 50)
HELP_RASPI4_K10 = 0.887
CALIBRATION_SEED = 12345  # mnas.table_jobs.CALIBRATION_SEED: the host table's calibration models
RESOLUTION = 32


def evaluate(features, latency: np.ndarray, chosen: np.ndarray) -> dict:
    """Fit on `chosen`, judge on every other network."""
    fit = fit_adapted(features.subset(chosen), latency[chosen])
    rest = np.setdiff1d(np.arange(len(latency)), chosen)
    return accuracy(predict_features(fit.calibration, features.subset(rest)), latency[rest]) | {
        "model": fit.model, "cv_rmspe": fit.cv_rmspe}


def summarise(runs: list[dict]) -> dict:
    keys = ("spearman", "kendall", "within_10pct", "rmspe")
    return {k: float(np.mean([r[k] for r in runs])) for k in keys} | {
        f"{k}_min": float(np.min([r[k] for r in runs])) for k in ("spearman", "within_10pct")} | {"draws": len(runs)}


def device_rows(name: str, host: Predictor, space, draws: int) -> dict:
    data = read_measurements(DATA / f"{name}.csv.gz", space)
    counts = key_counts(space, data.samples, RESOLUTION)
    features = prior_features(host, counts)
    y = data.latency_ms
    ceiling = solve_additive(counts, y)
    out = {"device": DEVICES[name], "networks": len(y),
           "ceiling": accuracy(ceiling.predict(counts), y) | {"additive": ceiling.additive},
           "unadapted": accuracy(features.raw * (y.sum() / features.raw.sum()), y), "k": {}}
    rng = np.random.default_rng(0)
    for k in KS:
        start = time.perf_counter()
        chosen = np.array(choose_covering(features.matrix(), k))
        covering = evaluate(features, y, chosen) | {"seconds": time.perf_counter() - start}
        random = summarise([evaluate(features, y, rng.choice(len(y), k, replace=False)) for _ in range(draws)])
        out["k"][k] = {"coverage": covering, "random": random}
    return out


def host_direction(host_table: Path, host: Predictor, space, k: int, draws: int) -> dict | None:
    """The host's calibration models (measured when the table was built) predicted from the Pixel 3 table."""
    with TableStore.open(host_table) as store:
        points = (store.calibration(host.fingerprint_key) or {}).get("points") or []
    if len(points) < k + 5:
        return None
    rng = np.random.default_rng(CALIBRATION_SEED)
    samples = np.array([space.sample_random(rng) for _ in range(len(points))])
    names = [space.to_spec(list(s), resolution=RESOLUTION).name for s in samples]
    assert names == [p["arch"]["name"] for p in points], "calibration models are not the seeded random samples"
    measured = np.array([p["measured_ms"] for p in points])
    pixel3 = read_measurements(DATA / "pixel3.csv.gz", space)
    solution = solve_additive(key_counts(space, pixel3.samples, RESOLUTION), pixel3.latency_ms)
    prior = Predictor(solution.values, "imported:pixel3")
    features = prior_features(prior, key_counts(space, samples, RESOLUTION))
    chosen = np.array(choose_covering(features.matrix(), k))
    pick = np.random.default_rng(1)
    random = summarise([evaluate(features, measured, pick.choice(len(measured), k, replace=False))
                        for _ in range(draws)])
    return {"networks": len(measured), "k": k, "statistic": host.statistic,
            "unadapted": accuracy(features.raw * (measured.sum() / features.raw.sum()), measured),
            "coverage": evaluate(features, measured, chosen), "random": random}


def timings(host_table: Path) -> dict:
    """Wall and CPU seconds of `table adapt` with K = 50 (from the host table, on the Pixel 3 CSV) and of 5,000
    batch predictions from the imported Pixel 3 table (both in process, as the commands run them)."""
    import tempfile

    from mnas.fewshot_jobs import (AdaptConfig, BatchPredictConfig, ImportMeasuredConfig, adapt, import_measured,
                                   predict_samples)

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "pixel3.db"
        import_measured(ImportMeasuredConfig(DATA / "pixel3.csv.gz", table, "fbnet"))
        for name, job in (("adapt_k50", lambda: adapt(AdaptConfig(host_table, Path(tmp) / "a.db",
                                                                 measured=DATA / "pixel3.csv.gz", samples=50))),
                          ("predict_5000", lambda: predict_samples(BatchPredictConfig(table, "fbnet",
                                                                                      DATA / "raspi4.csv.gz")))):
            wall, cpu = time.perf_counter(), time.process_time()
            job()
            out[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    return out


def table_lines(results: dict) -> list[str]:
    lines = ["| device | K | selection | Spearman | Kendall | within +-10% | RMSPE |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row in results["devices"]:
        c, u = row["ceiling"], row["unadapted"]
        lines.append(f"| {row['device']} | all | per-op ceiling | {c['spearman']:.3f} | {c['kendall']:.3f} | "
                     f"{c['within_10pct']:.1%} | {c['rmspe']:.1%} |")
        lines.append(f"| {row['device']} | 0 | host table, unadapted (scaled) | {u['spearman']:.3f} | "
                     f"{u['kendall']:.3f} | {u['within_10pct']:.1%} | {u['rmspe']:.1%} |")
        for k, by in row["k"].items():
            cov, rnd = by["coverage"], by["random"]
            lines.append(f"| {row['device']} | {k} | coverage | {cov['spearman']:.3f} | {cov['kendall']:.3f} | "
                         f"{cov['within_10pct']:.1%} | {cov['rmspe']:.1%} |")
            lines.append(f"| {row['device']} | {k} | random ({rnd['draws']} draws, mean; min) | {rnd['spearman']:.3f}; "
                         f"{rnd['spearman_min']:.3f} | {rnd['kendall']:.3f} | {rnd['within_10pct']:.1%}; "
                         f"{rnd['within_10pct_min']:.1%} | {rnd['rmspe']:.1%} |")
    host = results.get("host")
    if host:
        for label, r in (("coverage", host["coverage"]), ("random, mean", host["random"]),
                         ("Pixel 3 table unadapted", host["unadapted"])):
            lines.append(f"| host (measured, {host['networks']} nets) | {host['k'] if 'unadapted' not in label else 0} "
                         f"| {label} | {r['spearman']:.3f} | {r['kendall']:.3f} | {r['within_10pct']:.1%} | "
                         f"{r['rmspe']:.1%} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-table", type=Path, required=True, help="the host's fbnet table at 32")
    parser.add_argument("--draws", type=int, default=20, help="random draws of K networks (default 20)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    space = spaces.get("fbnet")
    host = Predictor.load(args.host_table)
    start = time.perf_counter()
    results = {"host_table": str(args.host_table), "host_fingerprint": host.fingerprint_key,
               "help_raspi4_k10": HELP_RASPI4_K10,
               "devices": [device_rows(name, host, space, args.draws) for name in DEVICES],
               "host": host_direction(args.host_table, host, space, 10, args.draws)}
    results["seconds"] = time.perf_counter() - start
    results["timings"] = timings(args.host_table)
    print("\n".join(table_lines(results)))
    print("timings (s, wall / CPU): " + ", ".join(f"{k} {v['wall_s']:.2f} / {v['cpu_s']:.2f}"
                                                  for k, v in results["timings"].items()))
    print(f"HELP (Raspberry Pi 4, K=10): Spearman {HELP_RASPI4_K10}; {results['seconds']:.1f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
