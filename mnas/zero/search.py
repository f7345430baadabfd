"""The search loops: `run_search` (one population, or islands on an executor) and `run_demo` (the reference's
run_demo.sh protocol). Both store their state in a `ZeroStore` as they go and resume from it.

run_search: regularized evolution on the search tasks until the budget (seconds or individuals) is spent; the
best program is then scored on tasks it never saw (linear: 100 fresh regressions with 1000 training examples;
mnist-pairs: the 9 held-out pairs x 10 projections) beside the hand-written baselines. Islands: one population
per executor task, `migrate_every` individuals per island per round, then each island's `migrants` best
replace the oldest members of the next island (a ring), as the paper's parallel runs.

run_demo: experiments of `max_train_steps` train steps each (run_demo.sh: 200M) on 10 fresh linear tasks from a
fresh random population; at the end of each, the population's best is scored on 100 fresh selection tasks
(1000 training examples), and the run stops when that selection fitness exceeds 0.9999 (the reference's
--sufficient_fitness); the selected algorithm is then scored on 100 unseen final tasks. One addition: a
program whose search fitness itself exceeds 0.9999 is selection-checked at once, instead of waiting for the
experiment's end (it can only end the run sooner).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnas.errors import UserError
from mnas.executors import get_executor
from mnas.progress import progress_bar
from mnas.zero.baselines import BASELINES, baseline
from mnas.zero.ops import ALL_OPS, DEMO_OPS, parse_op_list
from mnas.zero.population import Evaluation, Population, SearchSpace, evaluate_program
from mnas.zero.program import Memory, Program, load_program, parse_program
from mnas.zero.store import ZeroStore
from mnas.zero.tasks import TASK_KINDS, TaskSet, held_out_mnist_tasks, linear_tasks, sampled_mnist_tasks

CHECKPOINT_S = 10.0
CHUNK_S = 0.5  # one kernel call between progress updates
FINAL_LINEAR_SEED = 1_000_000  # run_demo.sh's final tasks: fixed data/param seeds
BASELINES_FOR = {"linear": ("linear-regression",), "mnist-pairs": ("logistic-regression", "two-layer-nn")}


@dataclass(frozen=True)
class TaskSpec:
    kind: str
    num_tasks: int
    features: int
    train: int
    valid: int

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise UserError(f"unknown task {self.kind!r}: choose one of {', '.join(TASK_KINDS)}")

    def search_tasks(self, seed: int) -> TaskSet:
        return _search_tasks(self, seed)

    def final_tasks(self) -> TaskSet:
        """Tasks no search sees: linear, 100 regressions with 1000 training examples (run_demo.sh's final
        tasks); mnist-pairs, the 9 held-out pairs x 10 projections."""
        if self.kind == "linear":
            return linear_tasks(100, FINAL_LINEAR_SEED, self.features, 1000, 100)
        return held_out_mnist_tasks(10, self.features, self.train, self.valid)


@lru_cache(maxsize=4)
def _search_tasks(spec: TaskSpec, seed: int) -> TaskSet:
    if spec.kind == "linear":
        return linear_tasks(spec.num_tasks, seed, spec.features, spec.train, spec.valid)
    return sampled_mnist_tasks(spec.num_tasks, seed, spec.features, spec.train, spec.valid)


def preset(kind: str) -> tuple[TaskSpec, SearchSpace]:
    """The defaults per task: linear = run_demo.sh's configuration; mnist-pairs = the paper's search from
    scratch (all 64 ops, insert/remove, randomize a function, alter an argument) at a size that fits an hour."""
    if kind == "linear":
        ops = parse_op_list(",".join(DEMO_OPS))
        return (TaskSpec("linear", 10, 4, 100, 100),
                SearchSpace((ops, ops, ops), Memory(4, 3, 1), (10, 2, 8), (10, 2, 8), (10, 2, 8),
                            ("alter_param", "randomize_instruction", "randomize_function")))
    if kind == "mnist-pairs":
        ops = parse_op_list(",".join(ALL_OPS))
        return (TaskSpec("mnist-pairs", 10, 16, 100, 100),
                SearchSpace((ops, ops, ops), Memory(8, 8, 3), (5, 5, 5), (0, 1, 0), (21, 21, 45),
                            ("insert_or_remove", "randomize_function", "alter_param")))
    raise UserError(f"unknown task {kind!r}: choose one of {', '.join(TASK_KINDS)}")


@dataclass(frozen=True)
class SearchConfig:
    task: TaskSpec
    space: SearchSpace
    evaluation: Evaluation = Evaluation()
    population: int = 1000
    seed: int = 0
    islands: int = 1
    migrate_every: int = 20_000
    migrants: int = 10

    def __post_init__(self) -> None:
        if self.islands < 1 or self.migrate_every < 1 or not 0 <= self.migrants <= self.population:
            raise UserError(f"need islands >= 1, migrate_every >= 1 and 0 <= migrants <= population, got "
                            f"{self.islands}, {self.migrate_every}, {self.migrants}")

    def settings(self) -> dict:
        return {"kind": "search", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Budget:
    seconds: float | None = None
    individuals: int | None = None
    target_fitness: float | None = None

    def __post_init__(self) -> None:
        if self.seconds is None and self.individuals is None:
            raise UserError("a search needs a budget: --minutes or --individuals")
        if (self.seconds is not None and self.seconds <= 0) or (self.individuals is not None and self.individuals < 1):
            raise UserError(f"the budget must be positive, got {self.seconds} s, {self.individuals} individuals")

    def spent(self, elapsed_s: float, individuals: int, best: float) -> bool:
        return ((self.seconds is not None and elapsed_s >= self.seconds)
                or (self.individuals is not None and individuals >= self.individuals)
                or (self.target_fitness is not None and best >= self.target_fitness))


# -- shared bookkeeping: progress bar, rate, checkpoints ---------------------------------------------------
@dataclass
class _Clock:
    """Search seconds across sessions (a resumed run adds to the stored figure); individuals of this session."""

    before_s: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    individuals_at_start: int = 0
    last_checkpoint: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.before_s + time.perf_counter() - self.start

    def rate(self, individuals: int) -> float:
        session = time.perf_counter() - self.start
        return (individuals - self.individuals_at_start) / session if session > 0 else 0.0

    def checkpoint_due(self) -> bool:
        if time.perf_counter() - self.last_checkpoint < CHECKPOINT_S:
            return False
        self.last_checkpoint = time.perf_counter()
        return True


def _describe(best: float, rate: float, hits: int, lookups: int) -> str:
    fec = f" · FEC hits {hits / lookups:.0%}" if lookups else ""
    return f"best {best:.6f} · {rate:,.0f} evals/s{fec}"


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel a run uses; returns the seconds it took."""
    start = time.perf_counter()
    task, space = preset("linear")
    tasks = linear_tasks(2, 0, 4, 10, 10)
    pop = Population(space, Evaluation(fec_cache=4), 4, 0)
    pop.run(tasks, 6)
    evaluate_program(pop.best()[0], tasks, space.memory)
    return time.perf_counter() - start


def write_program(path: Path, program: Program, memory: Memory, comment: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(program.to_text(memory, comment))
    tmp.replace(path)


# -- search ------------------------------------------------------------------------------------------------
@dataclass
class RunFigures:
    """What every run reports about its own speed."""

    individuals: int
    wall_s: float
    evals_per_s: float
    fec_hit_rate: float | None
    compile_s: float
    resumed: bool
    program_path: str | None


@dataclass
class SearchResult(RunFigures):
    program: Program
    search_fitness: float
    final_fitness: float
    final_tasks: str
    baselines: dict[str, float]
    islands: int

    def summary(self, memory: Memory) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["program"] = self.program.to_text(memory)
        return out


def _island_job(job: tuple[int, SearchConfig, Population, int, float]) -> Population:
    """One island's round (runs in a Ray task, or in this process): `n` more individuals."""
    _, config, pop, n, stop = job
    pop.run(config.task.search_tasks(config.seed), n, stop)
    return pop


def _migrate(islands: list[Population], migrants: int) -> None:
    if len(islands) < 2 or migrants < 1:
        return
    outgoing = [pop.top(migrants) for pop in islands]
    for i, pop in enumerate(islands):
        pop.inject(outgoing[i - 1])


def _islands_state(islands: list[Population]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for i, pop in enumerate(islands):
        arrays.update(pop.state(f"island{i}_"))
    return arrays


def _best_of(islands: list[Population]) -> tuple[Program, float]:
    return max((pop.best() for pop in islands), key=lambda pair: pair[1])


def run_search(config: SearchConfig, store: ZeroStore, budget: Budget, *, resume: bool = False,
               executor: Any = None, progress: bool = True, out_dir: Path | None = None) -> SearchResult:
    resumed = store.start_or_resume(config.settings(), resume)
    compile_s = warm_up()
    tasks = config.task.search_tasks(config.seed)
    islands = [Population(config.space, config.evaluation, config.population, config.seed * 1009 + i)
               for i in range(config.islands)]
    meta: dict[str, Any] = {"elapsed_s": 0.0, "rounds": 0}
    stored = store.load_state() if resumed else None
    if stored:
        meta, arrays = stored
        for i, pop in enumerate(islands):
            pop.load(arrays, f"island{i}_")
    total = lambda: sum(pop.individuals for pop in islands)  # noqa: E731
    clock = _Clock(before_s=meta["elapsed_s"], individuals_at_start=total())
    bar = progress_bar(progress, label="zero search")
    bar_task = bar.add_task("", total=budget.individuals, completed=total())
    bar.start()
    program_path = out_dir / "best.txt" if out_dir else None
    executor = executor or get_executor("local")
    in_process = config.islands == 1 and executor.name == "local"

    def checkpoint() -> None:
        meta["elapsed_s"] = clock.elapsed()
        best_program, best_fit = _best_of(islands)
        store.save_state(meta, _islands_state(islands), _progress_row(clock, total(), best_fit, islands))
        if program_path:
            write_program(program_path, best_program, config.space.memory,
                          f"AutoML-Zero search ({config.task.kind}), search fitness {best_fit:.6f}")

    try:
        while not budget.spent(clock.elapsed(), total(), _best_of(islands)[1]):
            if in_process:
                islands[0].run(tasks, _chunk(clock, total(), _remaining(budget, total())))
            else:
                islands = _round(executor, config, islands, budget, total())
                _migrate(islands, config.migrants)
                meta["rounds"] += 1
                store.add_event("migration", {"round": meta["rounds"], "individuals": total(),
                                              "best": [pop.best()[1] for pop in islands]})
            bar.update(bar_task, completed=total(), description=_describe(
                _best_of(islands)[1], clock.rate(total()), sum(p.fec_hits for p in islands),
                sum(p.fec_lookups for p in islands)))
            if clock.checkpoint_due():
                checkpoint()
    finally:
        bar.stop()
        checkpoint()
    return _search_result(config, islands, clock, compile_s, resumed, program_path)


def _chunk(clock: _Clock, done: int, remaining: int | None = None) -> int:
    """Individuals for about CHUNK_S seconds at the session's rate (never past `remaining`)."""
    n = max(1, int((clock.rate(done) or 1000.0) * CHUNK_S))
    return min(n, remaining) if remaining is not None else n


def _remaining(budget: Budget, done: int) -> int | None:
    return budget.individuals - done if budget.individuals is not None else None


def _round(executor: Any, config: SearchConfig, islands: list[Population], budget: Budget,
           done: int) -> list[Population]:
    n = config.migrate_every
    if budget.individuals is not None:
        n = max(1, min(n, -(-(budget.individuals - done) // len(islands))))
    jobs = [(i, config, pop, n, np.inf) for i, pop in enumerate(islands)]
    out = list(islands)
    for job, pop in executor.map_unordered(_island_job, jobs, num_cpus=1):
        out[job[0]] = pop
    return out


def _progress_row(clock: _Clock, individuals: int, best: float, islands: list[Population],
                  experiment: int = 0) -> dict:
    lookups = sum(p.fec_lookups for p in islands)
    return {"individuals": individuals, "elapsed_s": clock.elapsed(), "evals_per_s": clock.rate(individuals),
            "best_fitness": best if np.isfinite(best) else -1.0, "experiment": experiment,
            "fec_hit_rate": sum(p.fec_hits for p in islands) / lookups if lookups else None}


def _search_result(config: SearchConfig, islands: list[Population], clock: _Clock, compile_s: float,
                   resumed: bool, program_path: Path | None) -> SearchResult:
    program, fitness = _best_of(islands)
    final = config.task.final_tasks()
    memory = config.space.memory
    baselines = {name: float(evaluate_program(baseline(name), final, memory).mean())
                 for name in BASELINES_FOR[config.task.kind] if _fits(baseline(name), memory)}
    individuals = sum(p.individuals for p in islands)
    lookups = sum(p.fec_lookups for p in islands)
    wall = clock.elapsed()
    return SearchResult(individuals=individuals, wall_s=wall, evals_per_s=individuals / max(wall, 1e-9),
                        fec_hit_rate=sum(p.fec_hits for p in islands) / lookups if lookups else None,
                        compile_s=compile_s, resumed=resumed, program_path=str(program_path) if program_path else None,
                        program=program, search_fitness=fitness,
                        final_fitness=float(evaluate_program(program, final, memory).mean()),
                        final_tasks=final.describe(), baselines=baselines, islands=config.islands)


def _fits(program: Program, memory: Memory) -> bool:
    try:
        program.check_memory(memory)
    except UserError:
        return False
    return True


# -- re-scoring a program ---------------------------------------------------------------------------------
def resolve_program(source: str) -> tuple[Program, Memory | None]:
    """A program file, or the name of a hand-written baseline (when no file of that name exists)."""
    if source in BASELINES and not Path(source).exists():
        return baseline(source), None
    return load_program(source)


def evaluate_source(source: str, kind: str, split: str = "final", seed: int = 0,
                    memory_overrides: dict[str, int] | None = None) -> dict[str, Any]:
    """Score a program on a task's final (never searched) or search tasks. Memory: the overrides, else the
    file's `# memory:` line, else the task's preset (grown to fit a baseline that needs more)."""
    task, space = preset(kind)
    if split not in ("final", "search"):
        raise UserError(f"unknown split {split!r}: final or search")
    program, declared = resolve_program(source)
    memory = declared or (_grown(space.memory, program) if source in BASELINES else space.memory)
    memory = dataclasses.replace(memory, **(memory_overrides or {}))
    program.check_memory(memory, source)
    tasks = task.final_tasks() if split == "final" else task.search_tasks(seed)
    fitness = evaluate_program(program, tasks, memory)
    return {"program": source, "task": task.kind, "split": split, "tasks": tasks.describe(),
            "memory": memory.describe(), "fitness": float(fitness.mean()), "fitness_per_task": fitness.tolist(),
            "text": program.to_text(memory)}


def _grown(memory: Memory, program: Program) -> Memory:
    need = [memory.scalars, memory.vectors, memory.matrices]
    for body in program.functions:
        for ins in body:
            for kind, addr in ins.addresses():
                need[kind - 1] = max(need[kind - 1], addr + 1)
    return Memory(*need)


# -- the demo ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    fec: bool = True
    population: int = 1000
    max_train_steps: int = 200_000_000  # per experiment, run_demo.sh
    sufficient_fitness: float = 0.9999
    max_seconds: float = 1800.0
    const_mutation: str = "uniform"

    def space(self) -> SearchSpace:
        return dataclasses.replace(preset("linear")[1], const_mutation=self.const_mutation)

    def settings(self) -> dict:
        return {"kind": "demo", **{k: v for k, v in dataclasses.asdict(self).items() if k != "max_seconds"}}


@dataclass
class DemoResult(RunFigures):
    success: bool
    selection_fitness: float
    final_fitness: float
    program: Program
    experiments: int

    def summary(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["program"] = self.program.to_text(Memory(4, 3, 1))
        return out


def _experiment_seeds(seed: int, experiment: int) -> tuple[int, int, int]:
    task_seed, pop_seed, select_seed = np.random.SeedSequence([seed, experiment]).generate_state(3)
    return int(task_seed), int(pop_seed), int(select_seed)


def selection_fitness(program: Program, seed: int, memory: Memory = Memory(4, 3, 1)) -> float:
    """run_demo.sh's T_select: 100 fresh linear tasks with 1000 training and 100 validation examples."""
    return float(evaluate_program(program, linear_tasks(100, seed, 4, 1000, 100), memory).mean())


class _Demo:
    """The demo's state machine: experiments, selection checks, the best selected program."""

    def __init__(self, config: DemoConfig, store: ZeroStore, meta: dict | None) -> None:
        self.config, self.store = config, store
        self.space = config.space()
        self.evaluation = Evaluation(fec=config.fec)
        self.meta = meta or {"experiment": 0, "checks": 0, "stop": config.sufficient_fitness, "elapsed_s": 0.0,
                             "individuals_before": 0, "hits_before": 0, "lookups_before": 0, "best_select": None,
                             "success": False}
        self.pop = self._new_population()
        self.tasks = linear_tasks(10, _experiment_seeds(config.seed, self.meta["experiment"])[0])

    def _new_population(self) -> Population:
        _, pop_seed, _ = _experiment_seeds(self.config.seed, self.meta["experiment"])
        return Population(self.space, self.evaluation, self.config.population, pop_seed)

    @property
    def individuals(self) -> int:
        return self.meta["individuals_before"] + self.pop.individuals

    def fec(self) -> tuple[int, int]:
        return self.meta["hits_before"] + self.pop.fec_hits, self.meta["lookups_before"] + self.pop.fec_lookups

    def step(self, n: int) -> None:
        self.pop.run(self.tasks, n, self.meta["stop"])
        best_program, best_fit = self.pop.best()
        if best_fit > self.meta["stop"]:
            self.meta["stop"] = best_fit  # only a better one is checked again
            self.check(best_program, best_fit, "search fitness above the bar")
        if not self.meta["success"] and self.pop.train_steps >= self.config.max_train_steps:
            program, fit = self.pop.population_best()
            self.check(program, fit, "experiment end")
            if not self.meta["success"]:
                self._next_experiment()

    def check(self, program: Program, search_fit: float, why: str) -> None:
        seed = _experiment_seeds(self.config.seed, self.meta["experiment"])[2] + self.meta["checks"]
        self.meta["checks"] += 1
        fit = selection_fitness(program, seed)
        self.store.add_event("select", {"experiment": self.meta["experiment"], "individuals": self.individuals,
                                        "search_fitness": search_fit, "select_fitness": fit, "why": why})
        best = self.meta["best_select"]
        if best is None or fit >= best["fitness"]:
            self.meta["best_select"] = {"fitness": fit, "program": program.to_text(self.space.memory)}
        self.meta["success"] = self.meta["success"] or fit > self.config.sufficient_fitness

    def _next_experiment(self) -> None:
        self.store.add_event("experiment", {"experiment": self.meta["experiment"], "individuals": self.individuals,
                                            "train_steps": self.pop.train_steps})
        hits, lookups = self.fec()
        self.meta.update(experiment=self.meta["experiment"] + 1, individuals_before=self.individuals,
                         hits_before=hits, lookups_before=lookups, stop=self.config.sufficient_fitness)
        self.pop = self._new_population()
        self.tasks = linear_tasks(10, _experiment_seeds(self.config.seed, self.meta["experiment"])[0])


def run_demo(config: DemoConfig, store: ZeroStore, *, resume: bool = False, progress: bool = True,
             out_dir: Path | None = None, on_progress: Callable[[dict], None] | None = None) -> DemoResult:
    resumed = store.start_or_resume(config.settings(), resume)
    compile_s = warm_up()
    stored = store.load_state() if resumed else None
    demo = _Demo(config, store, stored[0] if stored else None)
    if stored:
        demo.pop.load(stored[1])
    clock = _Clock(before_s=demo.meta["elapsed_s"], individuals_at_start=demo.individuals)
    bar = progress_bar(progress, label="zero demo")
    bar_task = bar.add_task("", total=None, completed=demo.individuals)
    bar.start()

    def checkpoint() -> None:
        demo.meta["elapsed_s"] = clock.elapsed()
        store.save_state(demo.meta, demo.pop.state(), _progress_row(clock, demo.individuals, demo.pop.best()[1],
                                                                     [demo.pop], demo.meta["experiment"]))

    try:
        while not demo.meta["success"] and clock.elapsed() < config.max_seconds:
            demo.step(_chunk(clock, demo.individuals))
            hits, lookups = demo.fec()
            bar.update(bar_task, completed=demo.individuals, description=f"experiment {demo.meta['experiment']} · "
                       + _describe(demo.pop.best()[1], clock.rate(demo.individuals), hits, lookups))
            if on_progress:
                on_progress({"individuals": demo.individuals, "elapsed_s": clock.elapsed()})
            if clock.checkpoint_due():
                checkpoint()
    finally:
        bar.stop()
        checkpoint()
    return _demo_result(demo, clock, compile_s, resumed, out_dir)


def _demo_result(demo: _Demo, clock: _Clock, compile_s: float, resumed: bool, out_dir: Path | None) -> DemoResult:
    best = demo.meta["best_select"]
    if best is None:  # stopped before any selection: select the current best now
        program, fit = demo.pop.population_best()
        demo.check(program, fit, "run end")
        best = demo.meta["best_select"]
    program = parse_program(best["program"], "selected program")[0]
    final = float(evaluate_program(program, TaskSpec("linear", 100, 4, 1000, 100).final_tasks(),
                                   demo.space.memory).mean())
    path = None
    if out_dir:
        path = out_dir / "best.txt"
        write_program(path, program, demo.space.memory,
                      f"AutoML-Zero demo, selection fitness {best['fitness']:.6f}, final fitness {final:.6f}")
    hits, lookups = demo.fec()
    wall = clock.elapsed()
    return DemoResult(individuals=demo.individuals, wall_s=wall, evals_per_s=demo.individuals / max(wall, 1e-9),
                      fec_hit_rate=hits / lookups if lookups else None, compile_s=compile_s, resumed=resumed,
                      program_path=str(path) if path else None, success=bool(demo.meta["success"]),
                      selection_fitness=float(best["fitness"]), final_fitness=final, program=program,
                      experiments=demo.meta["experiment"] + 1)
