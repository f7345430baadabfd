"""AutoML-Zero interpreter throughput on the demo configuration: algorithms evaluated per second on one core.

    .venv/bin/python benchmarks/zero_throughput.py [--individuals 200000] [--json] [--out FILE]

The demo configuration (run_demo.sh): 10 linear tasks, F = 4, 100 train / 100 valid examples, memory
4/3/1, setup/predict/learn of 10/2/8 instructions from the demo's 6 ops, population 1000, tournament 10.
The process is pinned to one core (sched_setaffinity). Four ways to evaluate the same search are timed:

1. compiled loop, FEC on: `kernels.evolve` (tournament, mutation, FEC, interpreter all in numba);
2. compiled loop, FEC off;
3. Python loop around the compiled interpreter: tournament, copy and mutation in Python (the mutation itself
   is the compiled one), one compiled `kernels.score` call per child, no FEC: what the compiled loop saves;
4. the numpy interpreter batched over the 10 tasks (`mnas.zero.numpy_interp`), programs from the compiled
   loop's population, no FEC.

Each figure is the individuals after the random initial population divided by their wall time (the initial
population is excluded: its programs are random, cheaper or dearer than evolved ones). Compilation (or loading
numba's on-disk cache) is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.zero import kernels as K  # noqa: E402
from mnas.zero.numpy_interp import evaluate_numpy  # noqa: E402
from mnas.zero.population import Evaluation, Population  # noqa: E402
from mnas.zero.program import Program  # noqa: E402
from mnas.zero.search import preset, warm_up  # noqa: E402


def compiled_loop(individuals: int, fec: bool, seed: int) -> dict:
    task, space = preset("linear")
    tasks = task.search_tasks(seed)
    pop = Population(space, Evaluation(fec=fec), 1000, seed)
    pop.run(tasks, 1000)
    hits0, lookups0, steps0 = pop.fec_hits, pop.fec_lookups, pop.train_steps
    start = time.perf_counter()
    pop.run(tasks, individuals)
    wall = time.perf_counter() - start
    lookups = pop.fec_lookups - lookups0
    return {"individuals": individuals, "wall_s": wall, "per_s": individuals / wall,
            "fec_hit_rate": (pop.fec_hits - hits0) / lookups if lookups else None,
            "train_steps_per_individual": (pop.train_steps - steps0) / individuals,
            "best_fitness": pop.best()[1], "population": pop}


def python_loop(individuals: int, seed: int) -> dict:
    """Regularized evolution written in Python around the compiled interpreter (no FEC)."""
    task, space = preset("linear")
    tasks = task.search_tasks(seed)
    pop = Population(space, Evaluation(fec=False), 1000, seed)
    pop.run(tasks, 1000)  # the same random start as the compiled loop
    allowed, n_allowed, mut_types, sizes, mem, params, mutate_prob = space.kernel_args()
    rng = np.random.default_rng(seed)
    krng = pop.rng
    evaluation = (tasks.train_examples, tasks.valid_examples, tasks.eval_type, 100.0)
    oldest = 0
    start = time.perf_counter()
    for _ in range(individuals):
        picks = rng.integers(len(pop.fit), size=space.tournament)
        parent = int(picks[np.argmax(pop.fit[picks])])
        code, data, lens = pop.code[parent].copy(), pop.data[parent].copy(), pop.lens[parent].copy()
        if rng.random() < mutate_prob[0]:
            K.mutate(code, data, lens, mut_types, sizes, allowed, n_allowed, mem, params[1], krng)
        fit = K.score(code[None], data[None], lens[None], tasks.arrays(), evaluation, mem)[0].mean()
        pop.code[oldest], pop.data[oldest], pop.lens[oldest], pop.fit[oldest] = code, data, lens, fit
        oldest = (oldest + 1) % len(pop.fit)
    wall = time.perf_counter() - start
    return {"individuals": individuals, "wall_s": wall, "per_s": individuals / wall}


def numpy_batched(pop: Population, count: int, seed: int) -> dict:
    task, space = preset("linear")
    tasks = task.search_tasks(seed)
    programs = [Program.from_arrays(pop.code[i], pop.data[i], pop.lens[i]) for i in range(count)]
    start = time.perf_counter()
    for program in programs:
        evaluate_numpy(program, tasks, space.memory)
    wall = time.perf_counter() - start
    return {"individuals": count, "wall_s": wall, "per_s": count / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=200_000, help="per compiled-loop measurement")
    parser.add_argument("--python-individuals", type=int, default=20_000)
    parser.add_argument("--numpy-individuals", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    compile_s = warm_up()
    fec = compiled_loop(args.individuals, True, args.seed)
    no_fec = compiled_loop(args.individuals, False, args.seed)
    result = {"configuration": "run_demo.sh: 10 linear tasks, F=4, 100/100 examples, memory 4/3/1, sizes "
                               "10/2/8, 6 ops, population 1000, tournament 10",
              "compile_s": compile_s, "cores": sorted(os.sched_getaffinity(0)),
              "compiled_loop_fec": {k: v for k, v in fec.items() if k != "population"},
              "compiled_loop_no_fec": {k: v for k, v in no_fec.items() if k != "population"},
              "python_loop_compiled_interpreter": python_loop(args.python_individuals, args.seed),
              "numpy_batched_interpreter": numpy_batched(no_fec["population"], args.numpy_individuals, args.seed)}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
        return 0
    print(f"demo configuration, 1 core {result['cores']}; compile/load {compile_s:.1f} s")
    for name in ("compiled_loop_fec", "compiled_loop_no_fec", "python_loop_compiled_interpreter",
                 "numpy_batched_interpreter"):
        row = result[name]
        extra = f", FEC hits {row['fec_hit_rate']:.1%}" if row.get("fec_hit_rate") is not None else ""
        print(f"  {name:34s} {row['per_s']:>10,.0f} algorithms/s ({row['individuals']:,} in {row['wall_s']:.1f} s"
              f"{extra})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
