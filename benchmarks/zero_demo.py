"""The AutoML-Zero demo (run_demo.sh) over several seeds on one core: time to success and its median.

    .venv/bin/python benchmarks/zero_demo.py [--seeds 0,1,2,3,4] [--no-fec] [--max-minutes 30] [--json]
                                             [--out FILE]

Each seed is `mnas zero demo --seed S` in this process (a fresh run store in a temporary folder), pinned to
one core. Reported per seed: success (selection fitness > 0.9999), the wall time of the search (the kernels'
compilation, done once before the first seed, excluded and reported apart), algorithms evaluated, algorithms
per second, FEC hit rate, experiments, selection and final fitness; then the median wall time over the seeds
(a seed that does not succeed within --max-minutes counts as that limit: the median is then a lower bound).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.zero.search import DemoConfig, run_demo, warm_up  # noqa: E402
from mnas.zero.store import ZeroStore  # noqa: E402


def one_seed(seed: int, fec: bool, max_minutes: float, const_mutation: str) -> dict:
    config = DemoConfig(seed=seed, fec=fec, max_seconds=60.0 * max_minutes, const_mutation=const_mutation)
    with tempfile.TemporaryDirectory() as tmp, ZeroStore(Path(tmp) / "run.db") as store:
        result = run_demo(config, store, progress=False, out_dir=Path(tmp))
    summary = result.summary()
    return {k: summary[k] for k in ("success", "wall_s", "individuals", "evals_per_s", "fec_hit_rate",
                                    "experiments", "selection_fitness", "final_fitness", "program")} | {"seed": seed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--no-fec", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--const-mutation", default="uniform")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    compile_s = warm_up()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        runs.append(one_seed(seed, not args.no_fec, args.max_minutes, args.const_mutation))
        if not args.json:
            r = runs[-1]
            print(f"seed {seed}: {'success' if r['success'] else 'NO SUCCESS'} in {r['wall_s']:.1f} s, "
                  f"{r['individuals']:,} algorithms ({r['evals_per_s']:,.0f}/s), {r['experiments']} experiment(s), "
                  f"selection {r['selection_fitness']:.6f}, final {r['final_fitness']:.6f}", flush=True)
    walls = [r["wall_s"] if r["success"] else 60.0 * args.max_minutes for r in runs]
    result = {"fec": not args.no_fec, "const_mutation": args.const_mutation, "compile_s": compile_s,
              "cores": sorted(os.sched_getaffinity(0)), "median_wall_s": statistics.median(walls),
              "successes": sum(r["success"] for r in runs), "runs": runs}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(f"median time to success {result['median_wall_s']:.1f} s over {len(runs)} seeds "
              f"({result['successes']} succeeded; compile/load {compile_s:.1f} s, excluded)")
        best = min((r for r in runs if r["success"]), key=lambda r: r["wall_s"], default=None)
        if best:
            print(f"fastest seed {best['seed']}'s algorithm:\n{best['program']}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
