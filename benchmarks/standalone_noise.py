"""The yardstick of a finished supernet_vs_standalone run, de-noised: every child it compares retrained with other
seeds.

One stand-alone proxy training (1 epoch, 1000 images) varies with the seed by a few accuracy points. The yardstick
of `supernet_vs_standalone.py` compares ONE training of the supernet's pick with the best of N trainings (the
stand-alone search's best-so-far), and the best of N is partly the luckiest seed. Here both sides get the same
treatment: the stand-alone search's pick at each of its levels (its best-so-far child when it improved) and every
supernet pick (every rule, every point) is trained again with each seed of `--seeds` (seeds the run did not use,
so the stand-alone search's choice is not scored by the draws it was chosen on). A pick's value is its mean
reward over those seeds; time to reach level N = the wall time of the first supernet pick whose value reaches the
value of the stand-alone search's pick at N (`levels`: timed to the child that set the level; `budgets`: timed to
all N children of a search with that budget, the issue's reading).

Results go to OUT/noise.json as they come; a killed run resumes (trained (child, seed) pairs are kept).
OUT/denoised.png: both searches' pick values against wall time.

    .venv/bin/python benchmarks/standalone_noise.py --run benchmarks/results/supernet_2cores_seed1/results.json \
        --seeds 11,12,13 --out benchmarks/results/standalone_noise/2cores_seed1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from supernet_vs_standalone import budgets, improvements, level_rows  # benchmarks/ is on a script's path


def standalone_levels(curve: list[dict]) -> list[dict]:
    """The stand-alone search's pick each time its best-so-far reward improved."""
    return [{"standalone_children": n, "sample": c["sample"], "standalone_s": c["wall_s"],
             "run_reward": c["reward"], "lat": c["lat"]} for n, c in improvements(curve)]


def children_of(run: dict) -> dict[str, dict]:
    """sample -> its latency and why it is retrained."""
    chosen: dict[str, dict] = {}
    for lv in standalone_levels(run["standalone_search"]["curve"]):
        chosen.setdefault(lv["sample"], {"lat": lv["lat"], "why": []})["why"].append(
            f"stand-alone pick at {lv['standalone_children']}")
    for rule, y in (run.get("yardstick_by_pick") or {"best": run["yardstick"]}).items():
        for p in y["picks"]:
            chosen.setdefault(p["sample"], {"lat": p["lat"], "why": []})["why"].append(
                f"{rule} pick at {p['children']}")
    return chosen


def denoised_yardstick(run: dict, value: dict[str, float]) -> dict:
    """Per pick rule: for each stand-alone level, the first supernet pick whose value reaches that level's."""
    curve = run["standalone_search"]["curve"]
    out = {}
    for rule, y in (run.get("yardstick_by_pick") or {"best": run["yardstick"]}).items():
        rows = level_rows(y["picks"], curve, lambda sample, reward: value[sample])
        for row, (_, c) in zip(rows, improvements(curve)):
            row["run_reward"], row["value"] = c["reward"], row.pop("reward")
        best = max(rows, key=lambda r: r["value"])  # the stand-alone search's best pick by de-noised value
        # the best of N is always a level's child, so every child `budgets` compares has a value
        spent = budgets(y["picks"], curve, lambda sample, reward: value[sample])
        out[rule] = {"levels": rows, "best_level": best, "budgets": spent,
                     "picks": [{"children": p["children"], "wall_s": p["wall_s"], "sample": p["sample"],
                                "run_reward": p["standalone_reward"], "value": value[p["sample"]]}
                               for p in y["picks"]]}
    return out


def plot(run: dict, yard: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    first = next(iter(yard.values()))
    end = run["standalone_search"]["curve"][-1]["wall_s"]  # the step line runs to the search's last child
    ax.step([r["standalone_s"] for r in first["levels"]] + [end], [r["value"] for r in first["levels"]] +
            [first["levels"][-1]["value"]], "o-", where="post", markevery=len(first["levels"]) * [True] + [False],
            label="stand-alone search's pick")
    for rule, y in yard.items():
        ax.plot([p["wall_s"] for p in y["picks"]], [p["value"] for p in y["picks"]], "s--",
                label=f"supernet pick ({rule})")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    cpus = f", {run['cpus']} CPU core(s)" if run.get("cpus") else ""  # recorded since the 2-core runs
    ax.set_xlabel(f"search wall time (s, log){cpus}")
    ax.set_ylabel("mean reward of the pick, retrained with other seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="results.json of a supernet_vs_standalone run")
    p.add_argument("--seeds", default="11,12,13", help="comma-separated training seeds (not the run's)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    run = json.loads(Path(args.run).read_text())
    ra = run["args"]
    seeds = [int(s) for s in args.seeds.split(",")]
    if ra["seed"] in seeds:
        raise SystemExit(f"--seeds must not include the run's seed {ra['seed']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "noise.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update({"run": args.run, "seeds": seeds, "cpus": len(os.sched_getaffinity(0)),
                    "load_avg_start": results.get("load_avg_start", os.getloadavg())})
    children = results.setdefault("children", {})
    for sample, entry in children_of(run).items():
        children.setdefault(sample, {"accuracy_by_seed": {}}).update(entry)

    from mnas import spaces
    from mnas.data import load_proxy_data
    from mnas.reward import Reward
    from mnas.supernet.rank import standalone_evaluator

    space = spaces.get(ra["space"])
    data = load_proxy_data().subset(train=ra["train"], val=ra["val"])
    reward = Reward("soft", [run["latency_proxy"]["target"]])
    todo = sum(str(s) not in e["accuracy_by_seed"] for s in seeds for e in children.values())
    print(f"{len(children)} children x {len(seeds)} seeds: {todo} trainings to go", flush=True)
    for seed in seeds:
        trainer = standalone_evaluator(data, ra["epochs"], ra["batch_size"], seed)
        for sample, entry in children.items():
            if str(seed) in entry["accuracy_by_seed"]:
                continue
            t0 = time.perf_counter()
            result = trainer.evaluate([space.to_spec(space.decode_sample(sample))])[0]
            entry["accuracy_by_seed"][str(seed)] = result.accuracy
            todo -= 1
            print(f"[{todo} to go] seed {seed} accuracy {result.accuracy:.3f} ({time.perf_counter() - t0:.1f} s): "
                  f"{', '.join(entry['why'][:3])}", flush=True)
            path.write_text(json.dumps(results, indent=1))
    value = {}
    for sample, entry in children.items():
        accs = [entry["accuracy_by_seed"][str(s)] for s in seeds]
        entry["mean_accuracy"], entry["std_accuracy"] = float(np.mean(accs)), float(np.std(accs, ddof=1))
        value[sample] = entry["mean_reward"] = reward(entry["mean_accuracy"], [entry["lat"]])
    results["std_accuracy_median"] = float(np.median([e["std_accuracy"] for e in children.values()]))
    results["yardstick"] = denoised_yardstick(run, value)
    results["load_avg_end"] = os.getloadavg()
    path.write_text(json.dumps(results, indent=1))
    plot(run, results["yardstick"], out / "denoised.png")
    print(f"median seed std of accuracy: {results['std_accuracy_median']:.3f}")
    for rule, y in results["yardstick"].items():
        print(rule)
        for r in y["levels"]:
            sp = f"{r['speedup']:.1f}x ({r['speedup_with_one_retrain']:.1f}x)" if r["speedup"] else "not reached"
            print(f"  level of stand-alone child {r['standalone_children']:3d} ({r['standalone_s']:4.0f} s): run "
                  f"reward {r['run_reward']:.3f}, value {r['value']:.3f} -> supernet {r['supernet_children']}: {sp}")
        for r in y["budgets"]:
            sp = f"{r['speedup']:.1f}x ({r['speedup_with_one_retrain']:.1f}x)" if r["speedup"] else "not reached"
            print(f"  budget of {r['standalone_children']:3d} stand-alone children ({r['standalone_s']:4.0f} s): "
                  f"value {r['reward']:.3f} -> supernet {r['supernet_children']}: {sp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
