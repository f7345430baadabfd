"""`mnas zero`: AutoML-Zero, evolving whole learning algorithms (Setup / Predict / Learn) from basic math ops.

    mnas zero demo [--seed S] [--out DIR] [--resume] [--no-fec] [--max-minutes M] [--json]
    mnas zero search --task linear|mnist-pairs --out DIR (--minutes M | --individuals N) [--resume]
                     [--population P] [--ops LIST] [--setup-ops/--predict-ops/--learn-ops LIST]
                     [--scalars S --vectors V --matrices M] [--init-sizes/--min-sizes/--max-sizes S,P,L]
                     [--islands N --migrate-every N --migrants K] [--executor local|ray] [--json]
    mnas zero eval PROGRAM --task linear|mnist-pairs [--split final|search] [--json]

demo reproduces the reference's run_demo.sh (rediscover linear regression); search runs the general search;
both print the best program, write it to OUT/best.txt and keep their state in OUT/run.db (resumable). eval
re-scores a program file (or a hand-written baseline: linear-regression, logistic-regression, two-layer-nn).
The work is in `mnas.zero`; this module parses flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnas.commands._common import print_json
from mnas.errors import UserError
from mnas.executors import add_executor_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("zero", help="AutoML-Zero: evolve learning algorithms from basic math ops",
                              description="Evolve Setup/Predict/Learn programs over scalars, vectors and matrices "
                                          "with regularized evolution (see docs/zero.md).")
    sub = p.add_subparsers(dest="zero_command", metavar="ACTION")
    _demo_parser(sub)
    _search_parser(sub)
    _eval_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out (starts it if there is none)")
    p.add_argument("--no-fec", action="store_true", help="no functional-equivalence cache")
    p.add_argument("--const-mutation", default="uniform",
                   help="how a constant mutates: uniform (x * U[0.5, 2], the paper) or lognormal "
                        "(exp(log|x| + N(0, 1)), the released code) (default uniform)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="rediscover linear regression (the reference's 5-minute demo)")
    _common(p)
    p.add_argument("--out", type=Path, help="run directory (default runs/zero-demo-seedS)")
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--max-minutes", type=float, default=30.0, help="give up after this long (default 30)")
    p.add_argument("--max-train-steps", type=int, default=200_000_000,
                   help="train steps per experiment before selection and a restart (default 2e8, run_demo.sh)")
    p.set_defaults(func=_demo)


def _search_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="evolve algorithms for a task (linear or mnist-pairs)")
    p.add_argument("--task", required=True, help="linear | mnist-pairs")
    _common(p)
    p.add_argument("--out", required=True, type=Path, help="run directory (run.db, best.txt)")
    p.add_argument("--minutes", type=float, help="search time budget")
    p.add_argument("--individuals", type=int, help="budget in evaluated individuals")
    p.add_argument("--target-fitness", type=float, help="stop once the best search fitness reaches this")
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--tournament", type=int, default=10)
    p.add_argument("--mutate-prob", type=float, default=0.9)
    p.add_argument("--mutations", help="comma-separated: alter_param, randomize_instruction, randomize_function, "
                                       "insert, remove, insert_or_remove (default: the task's preset)")
    p.add_argument("--ops", help="ops of all three functions: names (SCALAR_SUM_OP), ids or 'all'")
    for fn in ("setup", "predict", "learn"):
        p.add_argument(f"--{fn}-ops", help=f"ops of {fn.capitalize()} (overrides --ops)")
    for kind in ("scalars", "vectors", "matrices"):
        p.add_argument(f"--{kind}", type=int, help=f"memory {kind} (default: the task's preset)")
    for which in ("init", "min", "max"):
        p.add_argument(f"--{which}-sizes", metavar="S,P,L", help=f"{which} instructions of Setup,Predict,Learn")
    p.add_argument("--tasks", type=int, help="search tasks (default 10)")
    p.add_argument("--features", type=int, help="F (default: linear 4, mnist-pairs 16)")
    p.add_argument("--train-examples", type=int, help="training examples per task")
    p.add_argument("--valid-examples", type=int, help="validation examples per task")
    p.add_argument("--islands", type=int, default=1, help="populations (one per executor task; default 1)")
    p.add_argument("--migrate-every", type=int, default=20_000,
                   help="individuals per island between migrations (default 20000)")
    p.add_argument("--migrants", type=int, default=10, help="best programs sent to the next island (default 10)")
    add_executor_arguments(p)
    p.set_defaults(func=_search)


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a program file (or a baseline name) on a task's tasks")
    p.add_argument("program", metavar="PROGRAM",
                   help="program file (as written by demo/search), or linear-regression, logistic-regression, "
                        "two-layer-nn")
    p.add_argument("--task", required=True, help="linear | mnist-pairs")
    p.add_argument("--split", default="final", help="final (tasks no search sees; default) | search")
    p.add_argument("--seed", type=int, default=0, help="the search split's seed")
    for kind in ("scalars", "vectors", "matrices"):
        p.add_argument(f"--{kind}", type=int, help=f"memory {kind} (default: the file's, else the task's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_eval)


# -- helpers ------------------------------------------------------------------------------------------------
def _sizes(text: str | None, default: tuple[int, int, int], flag: str) -> tuple[int, int, int]:
    if text is None:
        return default
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{flag} takes three integers S,P,L (Setup, Predict, Learn), got {text!r}")
    return values  # type: ignore[return-value]


def _memory(args: argparse.Namespace, default):
    import dataclasses

    return dataclasses.replace(default, **{k: getattr(args, k) for k in ("scalars", "vectors", "matrices")
                                           if getattr(args, k) is not None})


def _space(args: argparse.Namespace, preset_space):
    import dataclasses

    from mnas.zero.ops import parse_op_list

    ops = list(preset_space.ops)
    if args.ops:
        ops = [parse_op_list(args.ops)] * 3
    for f, fn in enumerate(("setup", "predict", "learn")):
        if getattr(args, f"{fn}_ops"):
            ops[f] = parse_op_list(getattr(args, f"{fn}_ops"))
    mutations = tuple(m.strip() for m in args.mutations.split(",")) if args.mutations else preset_space.mutations
    return dataclasses.replace(
        preset_space, ops=tuple(ops), memory=_memory(args, preset_space.memory), mutations=mutations,
        init_sizes=_sizes(args.init_sizes, preset_space.init_sizes, "--init-sizes"),
        min_sizes=_sizes(args.min_sizes, preset_space.min_sizes, "--min-sizes"),
        max_sizes=_sizes(args.max_sizes, preset_space.max_sizes, "--max-sizes"),
        mutate_prob=args.mutate_prob, tournament=args.tournament, const_mutation=args.const_mutation)


def _task(args: argparse.Namespace, preset_task):
    import dataclasses

    overrides = {"num_tasks": args.tasks, "features": args.features, "train": args.train_examples,
                 "valid": args.valid_examples}
    return dataclasses.replace(preset_task, **{k: v for k, v in overrides.items() if v is not None})


def _print_program(title: str, text: str) -> None:
    print(title)
    print(text, end="")


# -- handlers -----------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from mnas.zero.search import DemoConfig, run_demo
    from mnas.zero.store import ZeroStore

    if args.max_minutes <= 0 or args.population < 2 or args.max_train_steps < 1:
        raise UserError("--max-minutes must be > 0, --population >= 2 and --max-train-steps >= 1")
    config = DemoConfig(seed=args.seed, fec=not args.no_fec, population=args.population,
                        max_train_steps=args.max_train_steps, max_seconds=60.0 * args.max_minutes,
                        const_mutation=args.const_mutation)
    out = args.out or Path("runs") / f"zero-demo-seed{args.seed}"
    with ZeroStore(out / "run.db") as store:
        result = run_demo(config, store, resume=args.resume, progress=not args.no_progress, out_dir=out)
    summary = result.summary()
    if args.json:
        print_json(summary)
        return 0 if result.success else 1
    verdict = "success" if result.success else "no success within --max-minutes"
    print(f"{verdict}: selection fitness {result.selection_fitness:.6f} (needs > 0.9999), final fitness on "
          f"unseen tasks {result.final_fitness:.6f}")
    print(f"{result.individuals:,} algorithms in {result.wall_s:.1f} s ({result.evals_per_s:,.0f}/s on 1 core), "
          f"{result.experiments} experiment(s)" + (f", FEC hits {result.fec_hit_rate:.0%}"
                                                    if result.fec_hit_rate is not None else ""))
    _print_program(f"algorithm ({result.program_path}):", summary["program"])
    return 0 if result.success else 1


def _search(args: argparse.Namespace) -> int:
    from mnas.executors import executor_from_args
    from mnas.zero.population import Evaluation
    from mnas.zero.search import Budget, SearchConfig, preset, run_search
    from mnas.zero.store import ZeroStore

    task, space = preset(args.task.strip())
    budget = Budget(seconds=60.0 * args.minutes if args.minutes is not None else None,
                    individuals=args.individuals, target_fitness=args.target_fitness)
    config = SearchConfig(_task(args, task), _space(args, space), Evaluation(fec=not args.no_fec),
                          population=args.population, seed=args.seed, islands=args.islands,
                          migrate_every=args.migrate_every, migrants=args.migrants)
    if args.population < 2:
        raise UserError(f"--population must be >= 2, got {args.population}")
    executor = executor_from_args(args)
    try:
        with ZeroStore(args.out / "run.db") as store:
            result = run_search(config, store, budget, resume=args.resume, executor=executor,
                                progress=not args.no_progress, out_dir=args.out)
    finally:
        executor.close()
    summary = result.summary(config.space.memory)
    if args.json:
        print_json(summary)
        return 0
    print(f"search fitness {result.search_fitness:.6f}; on {result.final_tasks}: {result.final_fitness:.4f}"
          + "".join(f"; {name} {fit:.4f}" for name, fit in result.baselines.items()))
    print(f"{result.individuals:,} algorithms in {result.wall_s:.1f} s ({result.evals_per_s:,.0f}/s, "
          f"{result.islands} island(s))" + (f", FEC hits {result.fec_hit_rate:.0%}"
                                            if result.fec_hit_rate is not None else ""))
    _print_program(f"best algorithm ({result.program_path}):", summary["program"])
    return 0


def _eval(args: argparse.Namespace) -> int:
    from mnas.zero.search import evaluate_source

    overrides = {k: getattr(args, k) for k in ("scalars", "vectors", "matrices") if getattr(args, k) is not None}
    result = evaluate_source(args.program, args.task.strip(), args.split, args.seed, overrides)
    if args.json:
        print_json(result)
        return 0
    metric = "accuracy" if result["task"] == "mnist-pairs" else "fitness 1 - (2/pi) atan(RMSE)"
    per_task = result["fitness_per_task"]
    print(f"{args.program}: mean {metric} {result['fitness']:.6f} on {result['tasks']} (min {min(per_task):.4f}, "
          f"max {max(per_task):.4f}; memory {result['memory']})")
    return 0
