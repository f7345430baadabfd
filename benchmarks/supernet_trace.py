"""Supernet fixed costs: build, train-step trace, score trace, and per-step / per-child times, on this machine.

Separates the Python trace (`get_concrete_function`) from the first call (graph optimisation + first run), so one
sees where the one-time cost goes. Run it pinned to one core, as the figures in docs/supernet.md were:

    taskset -c 1 .venv/bin/python benchmarks/supernet_trace.py --out benchmarks/results/supernet_trace.json
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
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed shared-weight steps after the first")
    p.add_argument("--steps-per-child", type=int, default=10)
    p.add_argument("--children", type=int, default=3, help="timed children (K steps + score)")
    p.add_argument("--routing", default=None, help="Supernet routing (default: the evaluator's)")
    p.add_argument("--update", default="all", help="Adam on every shared weight (all, the evaluator's default) or on "
                   "the path's weights only (path)")
    p.add_argument("--grappler", action="store_true", help="optimise the steps' graphs with grappler (off by default)")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from mnas import spaces
    from mnas.data import load_proxy_data
    from mnas.supernet.evaluator import SupernetEvaluator

    space = spaces.get(args.space)
    data = load_proxy_data().subset(train=args.train, val=args.val)
    extra = {"grappler": args.grappler, "update": args.update}
    extra |= {} if args.routing is None else {"routing": args.routing}
    t0 = time.perf_counter()
    sup = SupernetEvaluator(data, space=space, warmup_steps=0, steps_per_child=args.steps_per_child,
                            batch_size=args.batch_size, val_batch=args.val, **extra)
    out: dict = {"args": vars(args), "load_avg": os.getloadavg(), "params": int(sup.model.count_params()),
                 "routing": sup.model.routing, "grappler": sup.grappler, "update": sup.update,
                 "build_s": time.perf_counter() - t0}
    rng = np.random.default_rng(99)
    t0 = time.perf_counter()
    sup.trace()
    out["trace_s"] = time.perf_counter() - t0
    print(f"trace (both steps, python): {out['trace_s']:.1f} s", flush=True)
    probe = space.sample_random(rng)
    t0 = time.perf_counter()
    sup.train_path(probe, 1)
    out["first_train_step_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sup.score(probe)
    out["first_score_s"] = time.perf_counter() - t0
    print(f"first train step {out['first_train_step_s']:.1f} s, first score {out['first_score_s']:.1f} s",
          flush=True)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        sup.train_path(space.sample_random(rng), 1)
    out["shared_step_s"] = (time.perf_counter() - t0) / max(1, args.steps)
    child = []
    for _ in range(args.children):
        sample = space.sample_random(rng)
        t0 = time.perf_counter()
        sup.train_path(sample, args.steps_per_child)
        t1 = time.perf_counter()
        sup.score(sample)
        child.append((t1 - t0, time.perf_counter() - t1))
    out["child_train_s"] = float(np.mean([c[0] for c in child]))
    out["child_score_s"] = float(np.mean([c[1] for c in child]))
    out["child_s"] = out["child_train_s"] + out["child_score_s"]
    out["traces"] = sup.traces
    out["load_avg_end"] = os.getloadavg()
    print(json.dumps(out, indent=1), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
