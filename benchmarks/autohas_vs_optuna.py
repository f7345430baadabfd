"""AutoHAS (architecture + hyperparameters on shared weights) against three baselines at equal wall-clock budget.

Methods, each given `--budget-s` seconds of wall time on this machine (one-time builds and traces included):
  autohas     the `autohas` evaluator on `HparamSpace(space, grid)`, REINFORCE (batch 1), latency-aware reward
  archonly    (a) architecture-only search: the `supernet` evaluator on the space, default recipe
  optuna      (b) Optuna TPE + ASHA (SuccessiveHalvingPruner; rungs in epochs, each rung trained afresh) over
              the same grid, for a fixed zoo model width-matched to the latency target (`mnas.baselines`),
              SQLite storage OUT/optuna.db
  sequential  (c) archonly's pick at half the budget, then Optuna on its hyperparameters for the other half
Every pick (architecture + hyperparameters) is retrained alone `--max-epochs` epochs with 3 seeds on the training
split and scored on a test split no search saw (the validation images after the first `--val`). Latency is the
analytic proxy LAT = MACs at 224 px (`mnas.costs`), target `--target-mmacs` (default: the median of 500 random
networks of the space), soft reward: the comparison is about accuracy cost, not a phone.

Also: AutoHAS's pick at earlier fractions of its budget (`--fractions`), retrained, against Optuna's final pick
(compute to reach it), and the rank swap check (`--swap-seeds`): the two searched architectures trained with
each other's hyperparameters.

Results go to OUT/results.json phase by phase; a rerun skips finished phases and retrains nothing (OUT/retrain.db),
an unfinished Optuna study continues from its SQLite storage with the time left.

    .venv/bin/python benchmarks/autohas_vs_optuna.py --out benchmarks/results/autohas            # full run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

SEEDS = (1000, 1001, 1002)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mnasnet", help="search space (default mnasnet)")
    p.add_argument("--blocks", type=int, default=None, help="reduced run: only the first N blocks of the "
                   "mnasnet skeleton (a space of its own, 'mnasnet-bN')")
    p.add_argument("--ops", default=None, help="reduced run: comma-separated conv ops of that space")
    p.add_argument("--zoo", default="mnasnet-a1", help="the fixed model Optuna tunes, width-matched to the target")
    p.add_argument("--target-mmacs", type=float, default=None)
    p.add_argument("--budget-s", type=float, default=1800.0, help="wall-clock budget of each method")
    p.add_argument("--train", type=int, default=4000, help="training images")
    p.add_argument("--val", type=int, default=500, help="validation images the searches score on")
    p.add_argument("--test", type=int, default=500, help="test images of the final retrains (after --val)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-epochs", type=int, default=9, help="Optuna's full resource = the retrain's epochs")
    p.add_argument("--eta", type=int, default=3, help="ASHA reduction factor (rungs 1, eta, eta^2.. epochs)")
    p.add_argument("--child-steps", type=int, default=5, help="autohas: K steps of W* per child")
    p.add_argument("--shared-steps", type=int, default=5, help="autohas: W steps per child; archonly: K")
    p.add_argument("--fractions", default="0.1,0.25,0.5", help="AutoHAS picks retrained at these budget fractions")
    p.add_argument("--swap-seeds", type=int, default=3, help="seeds of the rank swap check (0: skip it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/autohas")
    return p.parse_args()


class MacsSource:
    """The analytic latency proxy: MACs at the spec's resolution, in millions."""

    name, measured = "macs", False

    def latency_ms(self, specs) -> list[float]:
        from mnas.costs import count_macs

        return [count_macs(spec) / 1e6 for spec in specs]

    def settings(self) -> dict:
        return {"kind": "macs"}


class Bench:
    """Shared state of one benchmark run: data splits, space, reward, caches, results file."""

    def __init__(self, args: argparse.Namespace) -> None:
        from mnas.data import ProxyData, load_proxy_data
        from mnas.hparams import DEFAULT_GRID, HparamSpace
        from mnas.reward import Reward
        from mnas.runstore import RunStore

        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "results.json"
        self.results = json.loads(self.path.read_text()) if self.path.exists() else {}
        full = load_proxy_data(seed=args.seed)
        x_tr, y_tr = full.x_train[:args.train], full.y_train[:args.train]
        v, t = args.val, args.val + args.test
        self.search_data = ProxyData(x_tr, y_tr, full.x_val[:v], full.y_val[:v], full.class_names, full.source)
        self.test_data = ProxyData(x_tr, y_tr, full.x_val[v:t], full.y_val[v:t], full.class_names, full.source)
        self.space = make_space(args)
        self.joint = HparamSpace(self.space, DEFAULT_GRID)
        self.target = args.target_mmacs or median_mmacs(self.space)
        self.reward = Reward("soft", [self.target])
        self.store = RunStore(self.out / "retrain.db")
        self.results.setdefault("setup", {"args": vars(args), "target_mmacs": self.target,
                                          "space": self.space.name, "grid": {k: list(v) for k, v in
                                                                             DEFAULT_GRID.items()},
                                          "cpus": len(os.sched_getaffinity(0))})
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1, default=float))
        os.replace(tmp, self.path)

    def lat(self, spec) -> float:
        return MacsSource().latency_ms([spec.replace(resolution=224, num_classes=1000)])[0]

    def phase(self, name: str, run) -> dict:
        """Run phase `name` unless results.json has it; store what it returns."""
        if name not in self.results:
            t0 = time.perf_counter()
            print(f"== {name}", flush=True)
            self.results[name] = run() | {"phase_s": time.perf_counter() - t0,
                                          "load_avg_end": os.getloadavg()}
            self.save()
        return self.results[name]


def make_space(args: argparse.Namespace):
    from mnas import spaces
    from mnas.spaces.mnasnet import MOBILENETV2_SKELETON, mnasnet_space

    if args.blocks is None and args.ops is None:
        return spaces.get(args.space)
    options = {"ops": tuple(args.ops.split(","))} if args.ops else {}
    blocks = args.blocks or len(MOBILENETV2_SKELETON)
    return mnasnet_space(f"mnasnet-b{blocks}" + (f"-{args.ops.replace(',', '-')}" if args.ops else ""),
                         skeleton=MOBILENETV2_SKELETON[:blocks], **options)


def median_mmacs(space) -> float:
    from mnas.costs import count_macs

    rng = np.random.default_rng(0)
    return float(np.median([count_macs(space.to_spec(space.sample_random(rng))) / 1e6 for _ in range(500)]))


# -- one-shot searches ----------------------------------------------------------------------------------------
def search(bench: Bench, space, make_evaluator) -> dict:
    """REINFORCE (batch 1) with the evaluator `make_evaluator()` builds, until the budget is spent."""
    from mnas import controllers

    t0 = time.perf_counter()
    evaluator = make_evaluator()
    ctrl = controllers.create("reinforce", space, bench.args.seed)
    curve = []
    while not curve or time.perf_counter() - t0 < bench.args.budget_s:  # one child even past it: a pick
        sample = ctrl.ask(1)[0]
        spec = space.to_spec(sample)
        accuracy = evaluator.evaluate([spec])[0].accuracy
        lat = bench.lat(spec)
        reward = bench.reward(accuracy, [lat])
        ctrl.tell([sample], [reward])
        curve.append({"wall_s": time.perf_counter() - t0, "accuracy": accuracy, "reward": reward, "mmacs": lat,
                      "sample": space.encode_sample(sample)})
        if len(curve) % 10 == 1:
            print(f"  child {len(curve)}: acc {accuracy:.3f} reward {reward:.3f} at {curve[-1]['wall_s']:.0f} s",
                  flush=True)
    return {"curve": curve, "children": len(curve), "wall_s": time.perf_counter() - t0}


def pick_at(curve: list[dict], seconds: float, target: float) -> dict | None:
    """The best-reward child within the target (else the best reward) among those done by `seconds`."""
    done = [c for c in curve if c["wall_s"] <= seconds]
    if not done:
        return None
    within = [c for c in done if c["mmacs"] <= target]
    return max(within or done, key=lambda c: c["reward"])


def run_autohas(bench: Bench) -> dict:
    from mnas.evaluators.autohas import AutoHASEvaluator

    a = bench.args
    return search(bench, bench.joint, lambda: AutoHASEvaluator(
        bench.search_data, space=bench.joint, child_steps=a.child_steps, shared_steps=a.shared_steps,
        batch_size=a.batch_size, val_batch=a.val, seed=a.seed))


def run_archonly(bench: Bench) -> dict:
    from mnas.supernet.evaluator import SupernetEvaluator

    a = bench.args
    return search(bench, bench.space, lambda: SupernetEvaluator(
        bench.search_data, space=bench.space, steps_per_child=a.shared_steps, batch_size=a.batch_size,
        val_batch=a.val, seed=a.seed))


# -- Optuna TPE + ASHA ---------------------------------------------------------------------------------------
def rungs(max_epochs: int, eta: int) -> list[int]:
    out, r = [], 1
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out + [max_epochs]


def tune(bench: Bench, spec, study_name: str, budget_s: float) -> dict:
    """Optuna TPE + successive halving over the grid for the fixed architecture `spec`, `budget_s` of wall time
    (a resumed study gets what its finished trials left); every rung trains afresh for that many epochs."""
    import optuna

    from mnas.evaluators.standalone import StandaloneEvaluator

    a = bench.args
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=f"sqlite:///{bench.out / 'optuna.db'}", load_if_exists=True,
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=a.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=a.eta))
    trainers = {r: StandaloneEvaluator(bench.search_data, epochs=r, batch_size=a.batch_size, seed=a.seed,
                                       cache=bench.store.cache(f"optuna-{r}")) for r in rungs(a.max_epochs, a.eta)}

    def objective(trial) -> float:
        hp = {name: trial.suggest_categorical(name, list(values)) for name, values in bench.joint.grid.items()}
        child = spec.replace(extra={**spec.extra, "hparams": hp})
        accuracy = 0.0
        for epochs, trainer in trainers.items():
            accuracy = trainer.evaluate([child])[0].accuracy
            trial.report(accuracy, epochs)
            if epochs < a.max_epochs and trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    used = sum(_trial_s(t) for t in study.trials if t.datetime_complete)
    t0 = time.perf_counter()
    if budget_s - used > 0:
        study.optimize(objective, timeout=budget_s - used)
    done = [t for t in study.trials if t.datetime_complete]
    curve, best, clock = [], -1.0, 0.0
    for t in done:
        clock += _trial_s(t)
        if t.state.name == "COMPLETE" and t.value > best:
            best = t.value
        curve.append({"wall_s": clock, "state": t.state.name, "value": t.value, "best_so_far": best,
                      "rung_epochs": max(t.intermediate_values or {0: 0})})
    complete = [t for t in done if t.state.name == "COMPLETE"]
    if not complete:
        return {"curve": curve, "trials": len(done), "wall_s": used + time.perf_counter() - t0, "hparams": None}
    return {"curve": curve, "trials": len(done), "pruned": sum(t.state.name == "PRUNED" for t in done),
            "wall_s": clock, "hparams": study.best_trial.params, "best_value": study.best_value}


def _trial_s(trial) -> float:
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def zoo_baseline(bench: Bench):
    from mnas.baselines import match_width

    matched = match_width(bench.args.zoo, [MacsSource()], [bench.target], 224)
    if matched.spec is None:
        raise SystemExit(f"{bench.args.zoo} cannot be width-matched to {bench.target:.1f} MMACs: {matched.note}")
    return matched


# -- retraining -----------------------------------------------------------------------------------------------
def retrain(bench: Bench, spec, hp: dict, seeds=SEEDS) -> dict:
    """`spec` trained alone with `hp` for --max-epochs on the training split, scored on the test split."""
    from mnas.evaluators.standalone import seeded_trainer

    trainer = seeded_trainer(bench.test_data, bench.args.max_epochs, bench.args.batch_size, 2e-3,
                             cache=bench.store.cache("retrain"))
    child = spec.replace(extra={**spec.extra, "hparams": hp})
    runs = [trainer(child, seed) for seed in seeds]
    acc = [r[0] for r in runs]
    return {"accuracies": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc, ddof=1)) if len(acc) > 1
            else 0.0, "seconds": float(sum(r[1] for r in runs)), "mmacs": bench.lat(spec),
            "within_target": bench.lat(spec) <= bench.target, "hparams": hp, "name": spec.name}


def picks(bench: Bench) -> dict:
    """method -> (spec, hparams, how it was picked)."""
    from mnas.hparams import defaults

    r, end, target = bench.results, float("inf"), bench.target  # the end: a child that ran past the budget too
    auto = pick_at(r["autohas"]["curve"], end, target)
    arch, hp = bench.joint.split(bench.joint.decode_sample(auto["sample"]))
    out = {"autohas": (bench.space.to_spec(arch), hp, "best reward within target")}
    archonly = pick_at(r["archonly"]["curve"], end, target)
    out["archonly"] = (bench.space.to_spec(bench.space.decode_sample(archonly["sample"])), defaults(),
                       "best reward within target, default recipe")
    if r["optuna"]["hparams"]:
        out["optuna"] = (zoo_baseline(bench).spec, r["optuna"]["hparams"], f"{bench.args.zoo} width-matched")
    if r["sequential"]["hparams"]:
        half = bench.space.decode_sample(r["sequential"]["arch_sample"])
        out["sequential"] = (bench.space.to_spec(half), r["sequential"]["hparams"], "archonly at 1/2 + Optuna")
    return out


def run_sequential(bench: Bench) -> dict:
    half = pick_at(bench.results["archonly"]["curve"], bench.args.budget_s / 2, bench.target)
    if half is None:
        return {"hparams": None, "note": "archonly had no child by half its budget"}
    spec = bench.space.to_spec(bench.space.decode_sample(half["sample"]))
    tuned = tune(bench, spec, f"sequential-{bench.args.seed}", bench.args.budget_s / 2)
    return tuned | {"arch_sample": half["sample"], "arch_search_s": bench.args.budget_s / 2}


def run_retrains(bench: Bench) -> dict:
    out = {}
    for method, (spec, hp, how) in picks(bench).items():
        print(f"  retrain {method}: {spec.name} {hp}", flush=True)
        out[method] = retrain(bench, spec, hp) | {"rule": how}
    return out


def run_fractions(bench: Bench) -> dict:
    """AutoHAS's pick at earlier fractions of its budget, retrained: how early does it reach Optuna's final pick?"""
    out = {}
    for f in [float(v) for v in bench.args.fractions.split(",") if v.strip()]:
        chosen = pick_at(bench.results["autohas"]["curve"], f * bench.args.budget_s, bench.target)
        if chosen is None:
            out[str(f)] = {"note": "no child yet (the build and traces took longer)"}
            continue
        arch, hp = bench.joint.split(bench.joint.decode_sample(chosen["sample"]))
        out[str(f)] = retrain(bench, bench.space.to_spec(arch), hp)
    return out


def run_swap(bench: Bench) -> dict:
    """AutoHAS's and archonly's architectures, each under both recipes: does their order change?"""
    seeds = SEEDS[:bench.args.swap_seeds]
    chosen = picks(bench)
    specs = {m: chosen[m][0] for m in ("autohas", "archonly")}
    recipes = {"autohas": chosen["autohas"][1], "default": chosen["archonly"][1]}
    return {f"{m} arch, {k} recipe": retrain(bench, spec, hp, seeds)["mean"]
            for m, spec in specs.items() for k, hp in recipes.items()}


# -- report ---------------------------------------------------------------------------------------------------
def summary(bench: Bench) -> str:
    r = bench.results
    lines = [f"space {bench.space.name}, target {bench.target:.1f} MMACs at 224 px, budget {bench.args.budget_s:g} s "
             f"per method, retrain {bench.args.max_epochs} epochs x {len(SEEDS)} seeds on the test split", "",
             "| method | search | pick (MMACs) | hyperparameters | test accuracy, mean +- std |",
             "| --- | --- | --- | --- | --- |"]
    for method, row in _rows(r["retrains"]):
        hp = ", ".join(f"{k} {v:g}" for k, v in row["hparams"].items())
        lines.append(f"| {method} | {_how(r, method)} | {row['name']} ({row['mmacs']:.1f}) | {hp} | "
                     f"{row['mean']:.4f} +- {row['std']:.4f} |")
    for f, row in _rows(r.get("fractions", {})):
        lines.append(f"- AutoHAS pick at {float(f):g} x budget: " + (row["note"] if "note" in row else
                                                                    f"{row['mean']:.4f} +- {row['std']:.4f}"))
    if r.get("swap"):
        lines.append("- rank swap check: " + "; ".join(f"{k} {v:.4f}" for k, v in r["swap"].items()
                                                     if isinstance(v, float) and k != "phase_s"))
    return "\n".join(lines)


def _rows(phase: dict) -> list[tuple[str, dict]]:
    """A phase's per-item rows (not its phase_s / load_avg_end bookkeeping)."""
    return [(k, v) for k, v in phase.items() if isinstance(v, dict)]


def _how(r: dict, method: str) -> str:
    if method in ("autohas", "archonly"):
        return f"{r[method]['children']} children, {r[method]['wall_s']:.0f} s"
    if method == "sequential":
        return (f"archonly's first {r[method]['arch_search_s']:.0f} s + {r[method]['trials']} trials "
                f"({r[method].get('pruned', 0)} pruned) in {r[method]['wall_s']:.0f} s")
    return f"{r[method]['trials']} trials ({r[method].get('pruned', 0)} pruned), {r[method]['wall_s']:.0f} s"


def main() -> int:
    args = parse_args()
    import tensorflow  # noqa: F401  before any clock starts: every method needs it

    bench = Bench(args)
    bench.phase("autohas", lambda: run_autohas(bench))
    bench.phase("archonly", lambda: run_archonly(bench))
    bench.phase("optuna", lambda: tune(bench, zoo_baseline(bench).spec, f"optuna-{args.seed}", args.budget_s)
                | {"zoo": zoo_baseline(bench).to_dict()})
    bench.phase("sequential", lambda: run_sequential(bench))
    bench.phase("retrains", lambda: run_retrains(bench))
    if args.fractions.strip():
        bench.phase("fractions", lambda: run_fractions(bench))
    if args.swap_seeds:
        bench.phase("swap", lambda: run_swap(bench))
    text = summary(bench)
    (bench.out / "summary.md").write_text(text + "\n")
    print(text)
    bench.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
