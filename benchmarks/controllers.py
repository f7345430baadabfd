"""Controllers on a fixed budget of children with a cheap synthetic objective: does each beat random?

    .venv/bin/python benchmarks/controllers.py                       # ofa-mbv3, Note10 table, 2000 children, seeds 0-2
    .venv/bin/python benchmarks/controllers.py --space mnasnet --latency macs --target-ms 30
    .venv/bin/python benchmarks/controllers.py --tune                # learning-rate / population grid on seeds 100-101

Objective (same for every controller; the soft MnasNet reward ACC * (LAT/T)^-0.07):
- LAT: the real Samsung Note10 latency table published with OFA (sum of per-op means, `latency.predictor`)
  for `ofa-mbv3`; or, with `--latency macs` (any space), MACs / 10 GMAC/s as a device-free proxy.
- ACC: a *synthetic* proxy accuracy, a fixed function of the architecture's layer list:
      acc = 0.80 - 0.30 exp(-MACs / 150M) + 0.012 (U + V) / sqrt(2)
  U = mean-normalised sum over layers of u(op key), V = the same over adjacent layer pairs of v(key, key'),
  u and v fixed standard normals drawn from a hash of the key(s). The first term is "bigger nets are more
  accurate, with diminishing returns" (saturating, so that under the soft reward the best size is inside
  the space, not its largest corner); U and V make some layers and some neighbours better than others
  (interactions between choices), so the best architecture under a latency target is not found by
  sorting choices independently. It is a stand-in for training, not a claim about real accuracy.
Reported: best reward found within the budget (mean and per seed), the mean reward of the last 20% of
children, and wall seconds (controller + objective). Results print as a table (or --json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.public_luts import default_luts_dir  # noqa: E402
from mnas import controllers, spaces  # noqa: E402
from mnas.costs import layer_cost  # noqa: E402
from mnas.reward import Reward  # noqa: E402

LUTS = default_luts_dir()  # the repository's data/public_luts (or $MNAS_PUBLIC_LUTS)

# Defaults chosen with --tune on seeds 100-101 (never on the reported seeds 0-2).
TUNED = {"ppo": {"lr": 0.002, "batch_size": 10}, "reinforce": {"lr": 0.1},
         "evolution": {"population": 50, "sample_size": 10}, "random": {}}
# The same grid run with --children 200 (a budget closer to a real proxy-training search) prefers larger
# steps; evolution's population did not matter within noise there.
SHORT = {"ppo": {"lr": 0.02, "batch_size": 10}, "reinforce": {"lr": 0.2},
         "evolution": {"population": 50, "sample_size": 10}, "random": {}}
GRID = {"ppo": [{"lr": lr, "batch_size": 10} for lr in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)],
        "reinforce": [{"lr": lr} for lr in (0.01, 0.02, 0.05, 0.1, 0.2)],
        "evolution": [{"population": p, "sample_size": s} for p, s in ((25, 5), (50, 10), (100, 25))],
        "random": [{}]}


def _normal(text: str) -> float:
    """A fixed standard normal per string (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return float(np.random.default_rng(seed).standard_normal())


class Objective:
    """Synthetic accuracy + latency (table or MACs) + soft reward, cached per sample."""

    def __init__(self, space, latency: str, target_ms: float, resolution: int = 224) -> None:
        self.space, self.resolution = space, resolution
        self.reward = Reward("soft", [target_ms])
        self.latency = latency
        self.predictor = _note10_predictor(resolution) if latency == "table" else None
        try:
            from latency.opkeys import op_key
        except ImportError:  # the key only names a layer here; any stable text does
            op_key = repr
        self._key = op_key
        self._normals: dict[str, float] = {}
        self._cache: dict[tuple, tuple[float, float, float]] = {}

    def _n(self, text: str) -> float:
        value = self._normals.get(text)
        if value is None:
            value = self._normals[text] = _normal(text)
        return value

    def accuracy_and_macs(self, sample: tuple) -> tuple[float, int]:
        layers = self.space.to_spec(sample, resolution=self.resolution).layers()
        macs = sum(layer_cost(layer).macs for layer in layers)
        keys = [self._key(layer) for layer in layers]
        unary = sum(self._n("u:" + k) for k in keys) / math.sqrt(len(keys))
        pairs = sum(self._n(f"v:{a}|{b}") for a, b in zip(keys, keys[1:])) / math.sqrt(len(keys) - 1)
        acc = 0.80 - 0.30 * math.exp(-macs / 150e6) + 0.012 * (unary + pairs) / math.sqrt(2)
        return min(max(acc, 0.0), 1.0), macs

    def __call__(self, samples: list[tuple]) -> list[float]:
        todo = [s for s in dict.fromkeys(samples) if s not in self._cache]
        if todo:
            acc_macs = [self.accuracy_and_macs(s) for s in todo]
            if self.predictor is not None:
                lat = self.predictor.predict_samples(self.space, np.array(todo), self.resolution)
            else:
                lat = np.array([macs / 1e7 for _, macs in acc_macs])  # 10 GMAC/s
            for s, (acc, _), ms in zip(todo, acc_macs, lat):
                self._cache[s] = (acc, float(ms), self.reward(acc, [float(ms)]))
        return [self._cache[s][2] for s in samples]


def _note10_predictor(resolution: int):
    import yaml
    from latency.predictor import Predictor

    path = LUTS / "ofa_note10" / f"{resolution}_lookup_table.yaml"
    table = yaml.safe_load(path.read_text())
    return Predictor({k: v["mean"] for k, v in table.items()}, "published:ofa-note10", source=str(path),
                     info={"kind": "published"})


def run_one(name: str, options: dict, objective: Objective, seed: int, children: int, batch: int) -> dict:
    controller = controllers.create(name, objective.space, seed, **options)
    start, rewards = time.perf_counter(), []
    while len(rewards) < children:
        samples = controller.ask(min(batch, children - len(rewards)))
        values = objective(samples)
        controller.tell(samples, values)
        rewards += values
    tail = rewards[int(0.8 * children):]
    return {"controller": name, "options": options, "seed": seed, "best": max(rewards),
            "late_mean": float(np.mean(tail)), "seconds": time.perf_counter() - start}


def compare(objective: Objective, seeds: list[int], children: int, batch: int, settings: dict) -> list[dict]:
    rows = []
    for name, options in settings.items():
        runs = [run_one(name, options, objective, seed, children, batch) for seed in seeds]
        best = [r["best"] for r in runs]
        rows.append({"controller": name, "options": options, "best_mean": float(np.mean(best)),
                     "best_std": float(np.std(best)), "best_per_seed": best,
                     "late_mean": float(np.mean([r["late_mean"] for r in runs])),
                     "seconds_per_run": float(np.mean([r["seconds"] for r in runs]))})
        print(f"  {name:9s} {json.dumps(options):40s} best {rows[-1]['best_mean']:.5f}", file=sys.stderr)
    return rows


def print_sizes() -> int:
    """Per space: choices, log10 distinct architectures / raw samples, distinct layers, MACs range."""
    from mnas.costs import count_macs

    print("| space | choices | log10 architectures (exact) | log10 samples (product of options) | "
          "distinct layers at 224 | smallest MACs (M) | random MACs median (M) |")
    print("|---|---|---|---|---|---|---|")
    for name in spaces.names():
        space = spaces.get(name)
        rng = np.random.default_rng(0)
        macs = [count_macs(space.to_spec(space.sample_random(rng))) / 1e6 for _ in range(200)]
        print(f"| {name} | {len(space.choices)} | {space.log10_size:.2f} | {space.log10_product:.2f} | "
              f"{len(space.distinct_layers(224))} | {count_macs(space.smallest_spec()) / 1e6:.1f} | "
              f"{np.median(macs):.0f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="ofa-mbv3")
    parser.add_argument("--latency", choices=["table", "macs"], default=None,
                        help="table: OFA Note10 (ofa-mbv3 only, the default there); macs: MACs / 10 GMAC/s")
    parser.add_argument("--target-ms", type=float, default=30.0)
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10, help="children asked (and told) at a time")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tune", action="store_true", help="grid over controller options on seeds 100-101")
    parser.add_argument("--preset", choices=["long", "short"], default="long",
                        help="controller options tuned at 2000 (long, the defaults) or 200 (short) children")
    parser.add_argument("--sizes", action="store_true", help="print the spaces' sizes and layer counts, then exit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.sizes:
        return print_sizes()
    space = spaces.get(args.space)
    latency = args.latency or ("table" if args.space == "ofa-mbv3" else "macs")
    objective = Objective(space, latency, args.target_ms)
    if args.tune:
        seeds = [100, 101]
        settings_list = [(n, o) for n, grid in GRID.items() for o in grid]
        rows = []
        for name, options in settings_list:
            rows += compare(objective, seeds, args.children, args.batch, {name: options})
    else:
        seeds = args.seeds
        rows = compare(objective, seeds, args.children, args.batch, TUNED if args.preset == "long" else SHORT)
    result = {"space": args.space, "latency": latency, "target_ms": args.target_ms, "children": args.children,
              "batch": args.batch, "seeds": seeds, "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"space {args.space}, LAT {latency}, soft reward target {args.target_ms} ms, {args.children} children, "
          f"seeds {seeds}")
    print("| controller | options | best reward (mean ± std) | per seed | mean reward, last 20% | s/run |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        per_seed = ", ".join(f"{b:.4f}" for b in r["best_per_seed"])
        print(f"| {r['controller']} | `{json.dumps(r['options'])}` | {r['best_mean']:.4f} ± {r['best_std']:.4f} | "
              f"{per_seed} | {r['late_mean']:.4f} | {r['seconds_per_run']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
