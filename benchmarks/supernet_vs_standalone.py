"""Supernet (one-shot, weight sharing) vs stand-alone search on the proxy task, on this machine's CPUs.

Phases, all in one process (one TF import, one supernet trace), results written to OUT/results.json as they come:
1. supernet search: build + trace the supernet, W warm-up steps on uniform paths, then M controller steps
   (batch 1): K shared-weight steps on the child's path + its accuracy on the held-out batch -> reward -> tell.
2. Kendall tau: R uniformly sampled children, one-shot accuracy (final shared weights) vs stand-alone accuracy.
3. stand-alone search: the same controller and seed, N children, each trained alone E epochs (the `standalone`
   evaluator, BN recalibrated).
4. common yardstick: one-shot rewards and stand-alone rewards are on different scales (a path trained K steps vs a
   network trained E epochs), so the supernet search's best-so-far child (by one-shot reward) is retrained alone
   at a few points of its run; "time to reach" compares stand-alone rewards of what each search picked. The pick
   rule is `--pick` (best one-shot reward, TuNAS policy argmax, ENAS re-score; several at once: one yardstick
   each, all on the same search); `--standalone-from` reuses an earlier run's stand-alone search and retrains.

Latency is the analytic proxy LAT = MACs at 224px (`mnas.costs`), target = 0.8 x mnasnet-a1's MACs: the reward's
latency term only needs ratios to the target, and MACs cost nothing to evaluate (the searches compare accuracy cost).

    .venv/bin/python benchmarks/supernet_vs_standalone.py --out benchmarks/results/supernet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    p.add_argument("--warmup", type=int, default=0, help="supernet warm-up steps (uniform paths; default 0, "
                   "the evaluator's)")
    p.add_argument("--steps-per-child", type=int, default=5)
    p.add_argument("--update", default="all", help="supernet Adam on every shared weight every step (all, the "
                   "evaluator's default) or on the path's weights only (path)")
    p.add_argument("--child-start", default="shared", help="supernet children start from the weights the earlier "
                   "children left (shared, the default) or all from the warm-up's weights (fixed)")
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
    p.add_argument("--pick", default="best",
                   help="final-pick rule(s) of the supernet search, comma-separated (each gets its own yardstick): "
                        "best (highest one-shot reward seen), argmax (TuNAS: the controller's most likely "
                        "architecture), rescore (ENAS: top-k distinct children re-scored on the current weights)")
    p.add_argument("--rescore-top", type=int, default=5, help="rescore: distinct candidates re-scored")
    p.add_argument("--rescore-steps", type=int, default=2,
                   help="rescore: path steps each candidate gets from the same snapshot of the shared weights")
    p.add_argument("--rescore-batch", type=int, default=500,
                   help="rescore: fresh held-out images (validation images after the first --val, used by "
                        "neither search)")
    p.add_argument("--standalone-from", default=None,
                   help="results.json of an earlier run with the same space/controller/seed/data/epochs: reuse "
                        "its stand-alone search and its stand-alone retrains (stand-alone training is "
                        "deterministic for a seed) and run only the supernet side; with more "
                        "--standalone-children than it holds, its search is replayed into the controller and "
                        "continued")
    p.add_argument("--out", default="benchmarks/results/supernet")
    p.add_argument("--resummarise", default=None, help="results.json of a finished run: recompute its yardstick "
                   "(time to reach each stand-alone level) and plot, run nothing; with --standalone-from, first "
                   "take that run's stand-alone search (the same children and accuracies, checked) and its wall "
                   "times, e.g. a re-timed stand-alone search")
    args = p.parse_args()
    if args.resummarise:
        if args.standalone_from:
            retime_standalone(Path(args.resummarise), Path(args.standalone_from))
        resummarise(Path(args.resummarise))
        return 0
    from mnas.errors import UserError
    from mnas.supernet.pick import parse_pick_rules

    try:
        rules = parse_pick_rules(args.pick)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    earlier = load_standalone(Path(args.standalone_from), args) if args.standalone_from else None

    from mnas import controllers, spaces
    from mnas.costs import count_macs
    from mnas.data import load_proxy_data
    from mnas.reward import Reward
    from mnas.zoo import get as zoo_get

    import tensorflow  # noqa: F401  imported before any clock starts: both searches need it, neither pays it

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "load_avg_start": os.getloadavg(), "cpus": len(os.sched_getaffinity(0))}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1))

    space = spaces.get(args.space)
    full = load_proxy_data()
    data = full.subset(train=args.train, val=args.val)
    fresh = (full.x_val[args.val:args.val + args.rescore_batch], full.y_val[args.val:args.val + args.rescore_batch])
    if "rescore" in rules and len(fresh[1]) < 2:
        raise SystemExit(f"--pick rescore: no validation images left after --val {args.val} for a fresh batch")
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
                            batch_size=args.batch_size, val_batch=args.score_batch or args.val, seed=args.seed,
                            update=args.update, child_start=args.child_start)
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
    # the supernet's picks at a few points (retrained alone later). They are made inside the search (argmax needs
    # the controller, rescore the shared weights of that moment); the time they take is kept off the search's
    # clock (`paused`) and each pick's own cost is added to its wall time instead.
    if args.yardstick_at:
        points = sorted({min(args.supernet_children, max(1, int(n))) for n in args.yardstick_at.split(",")})
    else:
        points = sorted({max(1, int(round(args.supernet_children * f / args.yardstick_points)))
                         for f in range(1, args.yardstick_points + 1)})
    picker = Picker(space, sup, reward, lat, fresh, args.rescore_top, args.rescore_steps)
    picks: dict[str, list[dict]] = {rule: [] for rule in rules}
    curve, child_s, ctrl_s, paused = [], [], [], 0.0
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
        curve.append({"wall_s": time.perf_counter() - t0 - paused, "accuracy": result.accuracy, "reward": r,
                      "sample": space.encode_sample(sample), "lat": lat(sample)})
        if i % 10 == 0:
            print(f"supernet child {i}: acc {result.accuracy:.3f} reward {r:.3f} ({c2 - c1:.1f} s)", flush=True)
        if i + 1 in points:
            p0 = time.perf_counter()
            for rule in rules:
                picks[rule].append(picker.pick(rule, curve, ctrl))
            paused += time.perf_counter() - p0
            print(f"picks after {i + 1} children: " + ", ".join(f"{k} {v[-1]['sample']}" for k, v in picks.items()),
                  flush=True)
    results["supernet_search"] = {"curve": curve, "child_s_mean": float(np.mean(child_s)),
                                  "controller_update_s_mean": float(np.mean(ctrl_s)),
                                  "shared_step_s_in_search": float(np.mean([c / args.steps_per_child
                                                                            for c in child_s]))
                                  if args.steps_per_child and child_s else None,
                                  "pick_rules": rules, "picks_paused_s": paused}
    save()

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
        from mnas.supernet.rank import write_rank

        write_rank(results["rank"], out / "rank.csv", out / "rank.png")
        return 0

    # -- 3. stand-alone search -------------------------------------------------------------------------
    trainer = standalone_evaluator(data, args.epochs, args.batch_size, args.seed)
    ctrl = controllers.create(args.controller, space, args.seed)
    t0 = time.perf_counter()
    scurve = []
    if earlier is not None:  # reused: same controller, seed and data, so the same children and accuracies
        scurve = earlier["standalone_search"]["curve"][:args.standalone_children]
        results["standalone_reused_from"] = args.standalone_from
        for c in scurve:  # replay them into the controller, so a longer search continues where that one stopped
            sample = ctrl.ask(1)[0]
            if space.encode_sample(sample) != c["sample"]:
                raise SystemExit("--standalone-from: the controller asks for other children than "
                                 f"{args.standalone_from}")
            ctrl.tell([sample], [c["reward"]])
        t0 -= scurve[-1]["wall_s"] if scurve else 0.0  # new children's wall times continue that run's clock
    for i in range(len(scurve), args.standalone_children):
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
    # sample -> (accuracy, seconds of its first training): what the stand-alone search (and an earlier run's
    # retrains, when reused) already trained is not trained again; a repeat in this process would report ~0 s
    known = {c["sample"]: (c["accuracy"], c["child_s"]) for c in scurve}
    if earlier is not None:
        for old in (earlier.get("yardstick_by_pick") or {"best": earlier.get("yardstick", {})}).values():
            for pick in old.get("picks", []):
                known.setdefault(pick["sample"], (pick["standalone_accuracy"], pick["retrain_s"]))
    for rule in rules:
        for pick in picks[rule]:
            if pick["sample"] not in known:
                result = trainer.evaluate([space.to_spec(space.decode_sample(pick["sample"]))])[0]
                known[pick["sample"]] = (result.accuracy, result.seconds)
            pick["standalone_accuracy"], pick["retrain_s"] = known[pick["sample"]]
            pick["standalone_reward"] = reward(pick["standalone_accuracy"], [pick["lat"]])
            print(f"{rule} pick after {pick['children']} children ({pick['wall_s']:.0f} s): standalone reward "
                  f"{pick['standalone_reward']:.3f}", flush=True)
        results.setdefault("yardstick_by_pick", {})[rule] = yardstick(picks[rule], scurve)
        save()
    add_better_of(results["yardstick_by_pick"], scurve)
    save()
    results["yardstick"] = results["yardstick_by_pick"][rules[0]]
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    plot(results, out / "supernet_vs_standalone.png")
    for rule, y in results["yardstick_by_pick"].items():
        print(rule)
        print_levels(y)
    return 0


BETTER_OF = "best|argmax"  # derived rule: both picks retrained, the better one kept (what `mnas search` reports)


def add_better_of(by_pick: dict, scurve: list[dict]) -> None:
    """With both `best` and `argmax` picks: at each point the one that retrained higher, costing both retrains
    (one when they are the same child) and the later of the two wall times."""
    if "best" not in by_pick or "argmax" not in by_pick:
        return
    picks = []
    for a, b in zip(by_pick["best"]["picks"], by_pick["argmax"]["picks"]):
        better = dict(a if a["standalone_reward"] >= b["standalone_reward"] else b)
        better.update(rule=BETTER_OF, wall_s=max(a["wall_s"], b["wall_s"]),
                      retrain_s=a["retrain_s"] + (b["retrain_s"] if a["sample"] != b["sample"] else 0.0))
        picks.append(better)
    by_pick[BETTER_OF] = yardstick(picks, scurve)


class Picker:
    """The supernet search's pick at one moment, by rule (mnas/supernet/pick.py); returns the pick with its
    wall time (the search's so far + what the pick itself cost)."""

    def __init__(self, space, sup, reward, lat, fresh, top: int, steps: int) -> None:
        self.space, self.sup, self.reward, self.lat = space, sup, reward, lat
        self.fresh, self.top, self.steps = fresh, top, steps

    def pick(self, rule: str, curve: list[dict], ctrl) -> dict:
        from mnas.supernet.pick import best_by_reward, controller_argmax

        n = len(curve)
        t0 = time.perf_counter()
        extra: dict = {}
        if rule == "best":
            best = best_by_reward(curve, n)
            sample, one_shot = best["sample"], best["reward"]
        elif rule == "argmax":
            sample, one_shot = self.space.encode_sample(controller_argmax(ctrl)), None
        else:
            sample, one_shot, extra = self._rescore(curve)
        cost = time.perf_counter() - t0 - extra.pop("rollback_s", 0.0)
        return {"rule": rule, "children": n, "wall_s": curve[-1]["wall_s"] + cost, "pick_s": cost,
                "sample": sample, "one_shot_reward": one_shot, "lat": self.lat(self.space.decode_sample(sample)),
                **extra}

    def _rescore(self, curve: list[dict]) -> tuple[str, float, dict]:
        """ENAS-style: the top-k distinct children, each given `steps` path steps from the same snapshot of the
        shared weights and scored on the fresh batch; the weights are rolled back after each, so the search goes
        on unchanged (the rollbacks are a benchmark device: their time is reported, not charged to the pick)."""
        from mnas.supernet.pick import rescore_pick, top_k_distinct

        candidates = [c["sample"] for c in top_k_distinct(curve, len(curve), self.top)]
        r0 = time.perf_counter()
        snapshot = self.sup.snapshot() if self.steps else None
        device_s = time.perf_counter() - r0  # snapshot + rollbacks: kept off the pick's cost

        def score(encoded: str) -> float:
            nonlocal device_s
            sample = self.space.decode_sample(encoded)
            if snapshot is not None:
                self.sup.train_path(sample, self.steps)
            accuracy = self.sup.score(sample, *self.fresh)
            if snapshot is not None:
                r1 = time.perf_counter()
                self.sup.rollback(snapshot)
                device_s += time.perf_counter() - r1
            return self.reward(accuracy, [self.lat(sample)])

        best, scores = rescore_pick(candidates, score)
        return best, max(scores), {"candidates": candidates, "rescored": scores, "rollback_s": device_s,
                                   "snapshot_and_rollback_s": device_s}


def load_standalone(path: Path, args) -> dict:
    """An earlier run whose stand-alone search this run can reuse: same space, controller, seed, data and
    stand-alone training, and at least as many stand-alone children."""
    earlier = json.loads(path.read_text())
    theirs = earlier.get("args", {})
    keys = ("space", "controller", "seed", "train", "val", "epochs", "batch_size")
    differ = [f"{k}: {theirs.get(k)!r} != {getattr(args, k)!r}" for k in keys if theirs.get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--standalone-from {path}: other settings ({', '.join(differ)})")
    return earlier


def yardstick(picks: list[dict], scurve: list[dict]) -> dict:
    """Time to reach stand-alone search's best reward, for its full run and for every shorter budget N at which
    its best-so-far improved (`levels`, timed to the child that set the level: the stricter reading); and per
    budget of N children (`budgets`, timed to all N children: a user pays the whole search, not up to its lucky
    child): the first supernet pick whose stand-alone reward reaches that level."""
    levels = level_rows(picks, scurve)
    last = levels[-1]
    return {"picks": picks, "levels": levels, "budgets": budgets(picks, scurve),
            "best_standalone_reward": last["reward"],
            "standalone_time_to_best_s": last["standalone_s"], "standalone_children_to_best":
            last["standalone_children"], "standalone_total_s": scurve[-1]["wall_s"],
            "supernet_time_to_reach_s": last["supernet_s"], "supernet_children_to_reach": last["supernet_children"],
            "speedup": last["speedup"], "speedup_with_one_retrain": last["speedup_with_one_retrain"],
            "load_avg_end": os.getloadavg()}


def improvements(scurve: list[dict]):
    """(N, child) each time the stand-alone search's best-so-far reward improved: its pick at N children."""
    best = float("-inf")
    for n, c in enumerate(scurve, 1):
        if c["reward"] > best:
            best = c["reward"]
            yield n, c


def _run_reward(sample: str, reward: float) -> float:
    return reward


def _reach(picks: list[dict], n: int, cost: float, target: float, value) -> dict:
    """The first supernet pick whose value reaches `target`, against a stand-alone cost of `cost` seconds."""
    first = next((p for p in picks if value(p["sample"], p["standalone_reward"]) >= target), None)
    return {"standalone_children": n, "standalone_s": cost, "reward": target,
            "supernet_children": first["children"] if first else None,
            "supernet_s": first["wall_s"] if first else None,
            "speedup": cost / first["wall_s"] if first else None,
            # the pick's stand-alone reward is only known after one stand-alone training of it
            "speedup_with_one_retrain": cost / (first["wall_s"] + first["retrain_s"]) if first else None}


def level_rows(picks: list[dict], scurve: list[dict], value=_run_reward) -> list[dict]:
    """The `levels` reading: each stand-alone improvement, timed to the child that made it. `value(sample,
    run_reward)`: the reward compared (default the run's own; standalone_noise.py passes means over other seeds)."""
    return [_reach(picks, n, c["wall_s"], value(c["sample"], c["reward"]), value) for n, c in improvements(scurve)]


def budgets(picks: list[dict], scurve: list[dict], value=_run_reward) -> list[dict]:
    """The issue's reading: a stand-alone search of N children costs all N (wall time of child N) and reaches the
    best reward among them; the first supernet pick whose stand-alone reward reaches that. N: every 10 children
    and the last. `value(sample, run_reward)`: the reward to compare (default the run's own; see
    standalone_noise.py for means over other seeds)."""
    rows = []
    for n in sorted({*range(10, len(scurve) + 1, 10), len(scurve)}):
        best = max(scurve[:n], key=lambda c: c["reward"])
        row = _reach(picks, n, scurve[n - 1]["wall_s"], value(best["sample"], best["reward"]), value)
        rows.append(row | {"best_child": best["sample"]})
    return rows


def retime_standalone(path: Path, source: Path) -> None:
    """Give the run at `path` the stand-alone search of the run at `source`: the same children with the same
    accuracies (stand-alone training is deterministic for a seed), timed again (e.g. after a fix that made
    stand-alone children faster). Its stand-alone retrains of supernet picks keep their old times."""
    results, other = json.loads(path.read_text()), json.loads(source.read_text())
    mine, theirs = results["standalone_search"]["curve"], other["standalone_search"]["curve"]
    same = [(c["sample"], round(c["accuracy"], 6)) for c in mine] == \
        [(c["sample"], round(c["accuracy"], 6)) for c in theirs[:len(mine)]]
    if not same or len(theirs) < len(mine):
        raise SystemExit(f"--standalone-from {source}: not the same stand-alone search as {path}")
    curve = theirs[:len(mine)]
    results["standalone_search"] = {"curve": curve, "child_s_mean": float(np.mean([c["child_s"] for c in curve]))}
    results["standalone_retimed_from"] = str(source)
    path.write_text(json.dumps(results, indent=1))


def resummarise(path: Path) -> None:
    """Recompute the yardstick and plot of a finished run (results.json) without rerunning anything."""
    results = json.loads(path.read_text())
    scurve = results["standalone_search"]["curve"]
    trained_s = {c["sample"]: c["child_s"] for c in scurve}
    by_pick = results.get("yardstick_by_pick") or {"best": results["yardstick"]}  # runs before --pick: best only
    by_pick.pop(BETTER_OF, None)
    for rule, old in by_pick.items():
        for pick in old["picks"]:
            pick["retrain_s"] = trained_s.get(pick["sample"], pick["retrain_s"])
        load = old.get("load_avg_end")
        by_pick[rule] = yardstick(old["picks"], scurve) | ({"load_avg_end": load} if load else {})
    add_better_of(by_pick, scurve)
    first = results.get("supernet_search", {}).get("pick_rules", ["best"])[0]
    results["yardstick"] = by_pick[first]
    if "yardstick_by_pick" in results:
        results["yardstick_by_pick"] = by_pick
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.parent / "supernet_vs_standalone.png")
    for rule, y in by_pick.items():
        print(rule)
        print_levels(y)


def print_levels(y: dict) -> None:
    def speedup(r: dict) -> str:
        if r["speedup"] is None:
            return "not reached"
        return (f"{r['speedup']:.1f}x ({r['speedup_with_one_retrain']:.1f}x counting the retraining) at "
                f"{r['supernet_children']}")
    for r in y["levels"]:
        print(f"  level set by stand-alone child {r['standalone_children']:3d} ({r['standalone_s']:4.0f} s), reward "
              f"{r['reward']:.3f}: {speedup(r)}")
    for r in y["budgets"]:
        print(f"  budget of {r['standalone_children']:3d} stand-alone children ({r['standalone_s']:4.0f} s), best "
              f"{r['reward']:.3f}: {speedup(r)}")


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
    by_pick = results.get("yardstick_by_pick") or {"best": results["yardstick"]}
    for rule, y in by_pick.items():
        ax1.plot([p["wall_s"] for p in y["picks"]], [p["standalone_reward"] for p in y["picks"]], "s--",
                 label=f"supernet pick ({rule}), retrained alone")
    cpus = results.get("cpus")  # recorded since the 2-core runs; earlier runs were pinned to one core (taskset)
    ax1.set_xlabel(f"search wall time (s), {cpus} CPU core(s)" if cpus else "search wall time (s)")
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
        for y in by_pick.values():
            ax2.plot([p["wall_s"] for p in y["picks"]], [p["standalone_reward"] for p in y["picks"]], "s--")
        ax2.set_xscale("log")
        ax2.set_xlabel("search wall time (s, log)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
