"""Supernet (one-shot, weight sharing) vs stand-alone search on the proxy task, on this machine's CPUs.

Phases, all in one process (one TF import, one supernet trace), results written to OUT/results.json as they come:
1. supernet search: build + trace the supernet, W warm-up steps on uniform paths, then M controller steps
   (batch 1): K shared-weight steps on the child's path + its accuracy on the held-out batch -> reward -> tell.
2. Kendall tau: R uniformly sampled children, one-shot accuracy (final shared weights) vs stand-alone accuracy.
3. stand-alone search: the same controller and seed, N children, each trained alone E epochs (the `standalone`
   evaluator, BN recalibrated).
4. common yardstick: one-shot rewards and stand-alone rewards are on different scales (a path trained K steps vs a
   network trained E epochs), so the supernet search's best-so-far child (by one-shot reward) is retrained alone
   at a few points of its run; "time to reach" compares stand-alone rewards of what each search picked.

Latency is the analytic proxy LAT = MACs at 224px (`mnas.costs`), target = 0.8 x mnasnet-a1's MACs: the reward's
latency term only needs ratios to the target, and MACs cost nothing to evaluate (the searches compare accuracy cost).

    .venv/bin/python benchmarks/supernet_vs_standalone.py --out benchmarks/results/supernet
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mnasnet")
    p.add_argument("--controller", default="reinforce")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=2000, help="proxy training images used (subset of 4000)")
    p.add_argument("--val", type=int, default=500, help="validation images (stand-alone evaluation)")
    p.add_argument("--score-batch", type=int, default=None,
                   help="supernet held-out batch (a seeded subset of the validation split; default: --val)")
    p.add_argument("--warmup", type=int, default=200, help="supernet warm-up steps (uniform paths)")
    p.add_argument("--steps-per-child", type=int, default=5)
    p.add_argument("--supernet-children", type=int, default=60)
    p.add_argument("--standalone-children", type=int, default=6)
    p.add_argument("--rank-children", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1, help="stand-alone epochs per child")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--yardstick-points", type=int, default=3, help="stand-alone retrains of the supernet's pick")
    p.add_argument("--yardstick-at", default=None,
                   help="comma-separated children counts at which the supernet's pick is retrained alone "
                        "(overrides --yardstick-points; a pick already retrained is not retrained again)")
    p.add_argument("--rank-finetune-steps", type=int, default=0,
                   help="train each ranked child's path K steps before scoring it (the search's reward signal)")
    p.add_argument("--reuse-standalone", default=None,
                   help="results.json of an earlier run (same seed/data/children): reuse its stand-alone "
                        "accuracies for the ranked children and stop after the Kendall tau")
    p.add_argument("--out", default="benchmarks/results/supernet")
    p.add_argument("--resummarise", default=None, help="results.json of a finished run: recompute its yardstick "
                   "(time to reach each stand-alone level) and plot, run nothing")
    args = p.parse_args()
    if args.resummarise:
        resummarise(Path(args.resummarise))
        return 0

    from mnas import controllers, spaces
    from mnas.costs import count_macs
    from mnas.data import load_proxy_data
    from mnas.reward import Reward
    from mnas.zoo import get as zoo_get

    import tensorflow  # noqa: F401  imported before any clock starts: both searches need it, neither pays it

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "load_avg_start": os.getloadavg()}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1))

    space = spaces.get(args.space)
    data = load_proxy_data().subset(train=args.train, val=args.val)
    target = 0.8 * count_macs(zoo_get("mnasnet-a1")) / 1e6
    reward = Reward("soft", [target])
    results["latency_proxy"] = {"unit": "MMACs at 224px", "target": target}

    def lat(sample) -> float:
        return count_macs(space.to_spec(sample)) / 1e6

    # -- 1. supernet search ------------------------------------------------------------------------------
    from mnas.supernet.evaluator import SupernetEvaluator
    from mnas.supernet.rank import rank_correlation, standalone_evaluator

    t0 = time.perf_counter()
    sup = SupernetEvaluator(data, space=space, warmup_steps=args.warmup, steps_per_child=args.steps_per_child,
                            batch_size=args.batch_size, val_batch=args.score_batch or args.val, seed=args.seed)
    build_s = time.perf_counter() - t0
    probe = space.sample_random(np.random.default_rng(99))
    t1 = time.perf_counter()
    sup.train_path(probe, 1)
    trace_train_s = time.perf_counter() - t1
    t1 = time.perf_counter()
    sup.score(probe)
    trace_score_s = time.perf_counter() - t1
    results["supernet_setup"] = {"build_s": build_s, "first_train_step_s (trace)": trace_train_s,
                                 "first_score_s (trace)": trace_score_s, "params": int(sup.model.count_params())}
    save()
    print("supernet setup", results["supernet_setup"], flush=True)
    t1 = time.perf_counter()
    sup.warmup()
    warm_s = time.perf_counter() - t1
    results["supernet_setup"]["warmup_s"] = warm_s
    results["supernet_setup"]["shared_step_s"] = warm_s / max(1, args.warmup)
    print(f"warm-up {args.warmup} steps: {warm_s:.1f} s", flush=True)
    ctrl = controllers.create(args.controller, space, args.seed)
    curve, child_s, ctrl_s = [], [], []
    for i in range(args.supernet_children):
        c0 = time.perf_counter()
        sample = ctrl.ask(1)[0]
        c1 = time.perf_counter()
        result = sup.evaluate([space.to_spec(sample)])[0]
        c2 = time.perf_counter()
        r = reward(result.accuracy, [lat(sample)])
        ctrl.tell([sample], [r])
        c3 = time.perf_counter()
        child_s.append(c2 - c1)
        ctrl_s.append((c1 - c0) + (c3 - c2))
        curve.append({"wall_s": time.perf_counter() - t0, "accuracy": result.accuracy, "reward": r,
                      "sample": space.encode_sample(sample), "lat": lat(sample)})
        if i % 10 == 0:
            print(f"supernet child {i}: acc {result.accuracy:.3f} reward {r:.3f} ({c2 - c1:.1f} s)", flush=True)
    results["supernet_search"] = {"curve": curve, "child_s_mean": float(np.mean(child_s)),
                                  "controller_update_s_mean": float(np.mean(ctrl_s)),
                                  "shared_step_s_in_search": float(np.mean([c / args.steps_per_child
                                                                            for c in child_s]))}
    save()

    # -- 4 (first half). the supernet's picks at a few points, to retrain alone later --------------------
    if args.yardstick_at:
        points = sorted({min(args.supernet_children, max(1, int(n))) for n in args.yardstick_at.split(",")})
    else:
        points = sorted({max(1, int(round(args.supernet_children * f / args.yardstick_points)))
                         for f in range(1, args.yardstick_points + 1)})
    picks = []
    for n in points:
        best = max(curve[:n], key=lambda c: c["reward"])
        picks.append({"children": n, "wall_s": curve[n - 1]["wall_s"], "sample": best["sample"],
                      "one_shot_reward": best["reward"], "lat": best["lat"]})

    # -- 2. Kendall tau --------------------------------------------------------------------------------
    rng = np.random.default_rng(args.seed + 7)
    samples = [space.sample_random(rng) for _ in range(args.rank_children)]

    def progress(row) -> None:
        print(f"rank child: one-shot {row.one_shot:.3f} standalone {row.standalone:.3f} ({row.standalone_s:.1f} s)",
              flush=True)

    reused = None
    if args.reuse_standalone:
        earlier = json.loads(Path(args.reuse_standalone).read_text())["rank"]["rows"]
        if [r["sample"] for r in earlier] != [space.encode_sample(s) for s in samples]:
            raise SystemExit("--reuse-standalone: that run ranked other children")
        reused = [r["standalone"] for r in earlier]
    if samples:
        rank = rank_correlation(sup, samples, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                on_child=progress, finetune_steps=args.rank_finetune_steps, standalone=reused)
        results["rank"] = rank
        save()
        print(f"kendall tau {rank['kendall_tau']:.3f} (p {rank['p_value']:.3g}) over {rank['children']}",
              flush=True)
    if reused is not None:
        plot_rank(results, out / "rank.png")
        return 0

    # -- 3. stand-alone search -------------------------------------------------------------------------
    trainer = standalone_evaluator(data, args.epochs, args.batch_size, args.seed)
    ctrl = controllers.create(args.controller, space, args.seed)
    t0 = time.perf_counter()
    scurve = []
    for i in range(args.standalone_children):
        sample = ctrl.ask(1)[0]
        result = trainer.evaluate([space.to_spec(sample)])[0]
        r = reward(result.accuracy, [lat(sample)])
        ctrl.tell([sample], [r])
        scurve.append({"wall_s": time.perf_counter() - t0, "accuracy": result.accuracy, "reward": r,
                       "sample": space.encode_sample(sample), "lat": lat(sample), "child_s": result.seconds})
        print(f"standalone child {i}: acc {result.accuracy:.3f} reward {r:.3f} ({result.seconds:.1f} s)", flush=True)
    results["standalone_search"] = {"curve": scurve, "child_s_mean": float(np.mean([c["child_s"] for c in scurve]))}
    save()

    # -- 4. the supernet's picks retrained alone -------------------------------------------------------
    trained_s = {c["sample"]: c["child_s"] for c in scurve}  # a pick the stand-alone search trained: its time
    retrained: dict = {}
    for pick in picks:
        if pick["sample"] not in retrained:
            retrained[pick["sample"]] = trainer.evaluate([space.to_spec(space.decode_sample(pick["sample"]))])[0]
        result = retrained[pick["sample"]]  # a cache hit (same child, same seed) reports ~0 s: use its first time
        pick["standalone_accuracy"] = result.accuracy
        pick["retrain_s"] = trained_s.get(pick["sample"], result.seconds)
        pick["standalone_reward"] = reward(result.accuracy, [pick["lat"]])
        print(f"supernet pick after {pick['children']} children ({pick['wall_s']:.0f} s): standalone reward "
              f"{pick['standalone_reward']:.3f}", flush=True)
    results["yardstick"] = yardstick(picks, scurve)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    plot(results, out / "supernet_vs_standalone.png")
    print(json.dumps({k: v for k, v in results["yardstick"].items() if k != "picks"}, indent=1))
    return 0


def yardstick(picks: list[dict], scurve: list[dict]) -> dict:
    """Time to reach stand-alone search's best reward, for its full run and for every shorter budget N at which
    its best-so-far improved (`levels`): the first supernet pick whose stand-alone reward reaches that level."""
    levels, best = [], float("-inf")
    for n, c in enumerate(scurve, 1):
        if c["reward"] <= best:
            continue
        best = c["reward"]
        first = next((p for p in picks if p["standalone_reward"] >= best), None)
        levels.append({"standalone_children": n, "reward": best, "standalone_s": c["wall_s"],
                       "supernet_children": first["children"] if first else None,
                       "supernet_s": first["wall_s"] if first else None,
                       "speedup": c["wall_s"] / first["wall_s"] if first else None,
                       # the pick's stand-alone reward is only known after one stand-alone training of it
                       "speedup_with_one_retrain": c["wall_s"] / (first["wall_s"] + first["retrain_s"])
                       if first else None})
    last = levels[-1]
    return {"picks": picks, "levels": levels, "best_standalone_reward": last["reward"],
            "standalone_time_to_best_s": last["standalone_s"], "standalone_children_to_best":
            last["standalone_children"], "standalone_total_s": scurve[-1]["wall_s"],
            "supernet_time_to_reach_s": last["supernet_s"], "supernet_children_to_reach": last["supernet_children"],
            "speedup": last["speedup"], "speedup_with_one_retrain": last["speedup_with_one_retrain"],
            "load_avg_end": os.getloadavg()}


def resummarise(path: Path) -> None:
    """Recompute the yardstick and plot of a finished run (results.json) without rerunning anything."""
    results = json.loads(path.read_text())
    picks, scurve = results["yardstick"]["picks"], results["standalone_search"]["curve"]
    trained_s = {c["sample"]: c["child_s"] for c in scurve}
    for pick in picks:
        pick["retrain_s"] = trained_s.get(pick["sample"], pick["retrain_s"])
    load = results["yardstick"].get("load_avg_end")
    results["yardstick"] = yardstick(picks, scurve) | ({"load_avg_end": load} if load else {})
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.parent / "supernet_vs_standalone.png")
    print(json.dumps(results["yardstick"]["levels"], indent=1))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    sc = results["supernet_search"]["curve"]
    st = results["standalone_search"]["curve"]
    ax1.plot([c["wall_s"] for c in sc], np.maximum.accumulate([c["reward"] for c in sc]),
             label="supernet (one-shot reward)")
    ax1.plot([c["wall_s"] for c in st], np.maximum.accumulate([c["reward"] for c in st]), "o-",
             label="stand-alone (reward)")
    picks = results["yardstick"]["picks"]
    ax1.plot([p["wall_s"] for p in picks], [p["standalone_reward"] for p in picks], "s--",
             label="supernet pick, retrained alone")
    ax1.set_xlabel("search wall time (s), one CPU core (taskset)")
    ax1.set_ylabel("best reward so far (soft, MACs proxy)")
    ax1.legend()
    rank = results.get("rank")
    if rank:
        rows = rank["rows"]
        ax2.scatter([r["one_shot"] for r in rows], [r["standalone"] for r in rows])
        ax2.set_xlabel("one-shot accuracy (shared weights)")
        ax2.set_ylabel("stand-alone accuracy")
        ax2.set_title(f"Kendall tau {rank['kendall_tau']:.2f} over {len(rows)} children")
    else:  # no rank phase in this run: the same curves on a log time axis (the early part is what counts)
        ax2.plot([c["wall_s"] for c in sc], np.maximum.accumulate([c["reward"] for c in sc]))
        ax2.plot([c["wall_s"] for c in st], np.maximum.accumulate([c["reward"] for c in st]), "o-")
        ax2.plot([p["wall_s"] for p in picks], [p["standalone_reward"] for p in picks], "s--")
        ax2.set_xscale("log")
        ax2.set_xlabel("search wall time (s, log)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_rank(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rank"]["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter([r["one_shot"] for r in rows], [r["standalone"] for r in rows])
    ax.set_xlabel(f"one-shot accuracy ({results['rank']['finetune_steps']} path steps, shared weights)")
    ax.set_ylabel("stand-alone accuracy")
    ax.set_title(f"Kendall tau {results['rank']['kendall_tau']:.2f} over {len(rows)} children")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
