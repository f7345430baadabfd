"""Across seeds: the supernet's speedup over stand-alone search, per stand-alone budget N, in one table and plot.

Each seed is one `supernet_vs_standalone.py` run, with its de-noised form from `standalone_noise.py`. The issue's
figure is a wall-time ratio at a stand-alone budget of N children. One seed's ratio depends on when that seed's
stand-alone search got lucky, so the figure that matters is its spread over seeds: the median, the worst seed, and
how many seeds reach 10x. A budget the supernet search never reaches counts as 0x (below every other seed), so
the median is not flattered by dropping misses.

    .venv/bin/python benchmarks/supernet_seeds.py --rule 'best|argmax' \
        --noise benchmarks/results/standalone_noise/2cores_seed{0,1,2,3,4}/noise.json \
        --out benchmarks/results/supernet_seeds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GOAL = 10.0
READINGS = {  # name -> (which yardstick, which ratio)
    "single draw": ("run", "speedup"),
    "de-noised": ("noise", "speedup"),
    "de-noised, retrains counted": ("noise", "speedup_with_one_retrain"),
}


def budget_ratios(yardstick: dict, key: str) -> dict[int, float]:
    """N -> speedup at a stand-alone budget of N children (0.0 where the supernet never reached it)."""
    return {row["standalone_children"]: row[key] or 0.0 for row in yardstick["budgets"]}


def seed_rows(noise_path: Path, rule: str) -> dict:
    """One seed: its ratios per reading and budget."""
    noise = json.loads(noise_path.read_text())
    run = json.loads(Path(noise["run"]).read_text())
    yardsticks = {"run": run["yardstick_by_pick"][rule], "noise": noise["yardstick"][rule]}
    return {"seed": run["args"]["seed"], "noise": str(noise_path),
            "ratios": {name: budget_ratios(yardsticks[which], key) for name, (which, key) in READINGS.items()}}


def spread(values: list[float]) -> dict:
    return {"median": float(np.median(values)), "worst": float(min(values)), "best": float(max(values)),
            "reach_goal": sum(v >= GOAL for v in values), "seeds": len(values)}


def summarise(seeds: list[dict]) -> dict:
    """reading -> N -> spread over the seeds that have that budget."""
    out: dict = {}
    for name in READINGS:
        budgets = sorted({n for s in seeds for n in s["ratios"][name]})
        out[name] = {n: spread([s["ratios"][name][n] for s in seeds if n in s["ratios"][name]]) for n in budgets}
    return out


def show(seeds: list[dict], summary: dict, n_shown: list[int]) -> None:
    def cell(v: float) -> str:
        return f"{v:.1f}x" if v else "not reached"

    for name in READINGS:
        print(f"\n{name}: speedup at a stand-alone budget of N children")
        print("| seed | " + " | ".join(f"N = {n}" for n in n_shown) + " |")
        print("| --- |" + " --- |" * len(n_shown))
        for s in seeds:
            print(f"| {s['seed']} | " + " | ".join(cell(s["ratios"][name].get(n, 0.0)) for n in n_shown) + " |")
        rows = [summary[name][n] for n in n_shown]
        print("| median | " + " | ".join(cell(r["median"]) for r in rows) + " |")
        print("| worst | " + " | ".join(cell(r["worst"]) for r in rows) + " |")
        print(f"| >= {GOAL:.0f}x | " + " | ".join(f"{r['reach_goal']} of {r['seeds']}" for r in rows) + " |")


def plot(seeds: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(READINGS), figsize=(5 * len(READINGS), 4), sharey=True)
    for ax, name in zip(axes, READINGS):
        for s in seeds:
            n, r = zip(*sorted(s["ratios"][name].items()))
            ax.plot(n, r, marker="o", label=f"seed {s['seed']}")
        ax.axhline(GOAL, color="k", linestyle="--", linewidth=1)
        ax.set(title=name, xlabel="stand-alone budget N (children)")
    axes[0].set_ylabel("wall-time speedup (0 = not reached)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise", nargs="+", required=True, help="noise.json of each seed (standalone_noise.py)")
    p.add_argument("--rule", default="best|argmax", help="pick rule (the one `mnas search` reports by default)")
    p.add_argument("--show", default="40,60", help="budgets N shown in the tables (all are in the JSON)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    seeds = sorted((seed_rows(Path(f), a.rule) for f in a.noise), key=lambda s: s["seed"])
    summary = summarise(seeds)
    show(seeds, summary, [int(n) for n in a.show.split(",")])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"rule": a.rule, "goal": GOAL, "seeds": seeds, "summary": summary},
                                               indent=1))
    plot(seeds, out / "seeds.png")
    print(f"\n{out / 'seeds.json'}, {out / 'seeds.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
