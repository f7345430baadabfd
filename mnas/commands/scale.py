"""`mnas scale`: compound scaling of an architecture, aimed at latency targets on a device.

    mnas scale [family] --arch NAME|ARCH_FILE (--phi K | --target-ms T[,T...] (--device ID | --table FILE))
               [--alpha A --beta B --gamma G] [--lite] [--allow-downscale] --out DIR [--json]
    mnas scale search   --arch ... [--data DIR] [--epochs E] [--step S] [--tolerance T] --out DIR [--json]
    mnas scale compare  --arch ... --target-ms T[,T...] (--device ID | --table FILE) [--data DIR] --out DIR

The action is an optional first positional word (default `family`), so plain `mnas scale --arch ... --phi 1`
and `mnas scale search ...` share one parser and one set of flag checks.

- family: one model at --phi, or one model per latency target (NAME-d0 .. dK, solved for phi on the device
  or the table); arch files + TFLite exports + family.csv/.md. With both --device and --table the solve uses
  the device (measured) and the table's prediction is reported beside it. The table must hold the ops of
  every scaled network: `mnas table build --scale-arch` builds it from `reachable_from_args` below.
- search: the paper's step 1: a grid of (alpha, beta, gamma) >= 1 with alpha*beta^2*gamma^2 within
  --tolerance of 2, each trained on the proxy at phi=1; results stored as they finish (resumable).
- compare: compound vs depth-only / width-only / resolution-only families at the same latency targets,
  each member trained on the proxy; one plot.

The pure parts (scaling rule, phi solving) are in `mnas.scaling`; this module does the I/O around them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mnas.errors import UserError
from mnas.executors import add_executor_arguments
from mnas.reward import parse_targets
from mnas.scaling import (DEFAULT_RESOLUTION_MULTIPLE, DOWNSCALE_FLOOR, EFFICIENTNET_COEFFICIENTS,
                          SINGLE_DIMENSION, CachedLatency, Coefficients, Solution, check_phi, coefficient_grid,
                          Scaler, compound_scaler, cost_shares, describe, proxy_resolution,
                          reachable_specs, scale, solve_family)
from mnas.spec import REPEATS_ROUNDINGS, ModelSpec

ACTIONS = ("family", "search", "compare")
DEVICE_STATISTICS = ("median", "p5")
SEARCH_NAMESPACE = "scale-search"
COMPARE_NAMESPACE = "scale-compare"


# -- parser -----------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scale", help="compound-scale an architecture (to latency targets on a device)",
        description="Compound scaling (EfficientNet) aimed at latency targets. ACTION: family (default): one "
                    "model at --phi or a family for --target-ms; search: grid-search alpha/beta/gamma on the "
                    "proxy at phi=1; compare: compound vs single-dimension scaling at equal latency.")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="family", metavar="ACTION",
                   help="family (default) | search | compare")
    p.add_argument("--arch", required=True, help="zoo model name or arch file to scale")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--resolution", type=int, help="override the base model's resolution before scaling")
    p.add_argument("--phi", type=float, help="compound coefficient (family action)")
    p.add_argument("--target-ms", help="comma-separated latency targets in ms (family, compare)")
    p.add_argument("--device", help="device id: latency is measured on it")
    p.add_argument("--table", type=Path,
                   help="latency table file: latency is predicted from it (it must hold the scaled models' ops: "
                        "build it with `mnas table build --scale-arch`)")
    add_scaling_arguments(p, max_phi=12.0)
    p.add_argument("--name", help="family name (default: the arch's name)")
    p.add_argument("--no-export", action="store_true", help="write arch files only, no TFLite exports")
    p.add_argument("--threads", type=int, default=1, help="device threads for latency measurement")
    p.add_argument("--runs", type=int, default=30, help="timed runs per round on the device")
    p.add_argument("--statistic", choices=DEVICE_STATISTICS, default="median",
                   help="which statistic of the timed runs is the latency: median (a quiet device) or p5 "
                        "(a shared host, where other processes inflate the median)")
    # proxy training (search, compare)
    p.add_argument("--data", help="proxy data: folder of class folders or .npz (default: bundled MNIST subset)")
    p.add_argument("--epochs", type=int, default=1, help="proxy training epochs per candidate (default 1)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--proxy-resolution", type=int, default=32,
                   help="proxy resolution of the base model; scaled models get it times their resolution factor")
    p.add_argument("--train-examples", type=int, help="use only the first N training examples")
    p.add_argument("--val-examples", type=int, help="use only the first N validation examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=float, default=0.1, help="coefficient grid step (search; default 0.1)")
    p.add_argument("--tolerance", type=float, default=0.1,
                   help="accepted |alpha*beta^2*gamma^2 - 2| (search; default 0.1)")
    p.add_argument("--max-candidates", type=int,
                   help="train only the N candidates closest to the constraint (search)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    add_executor_arguments(p)
    p.set_defaults(func=run)


def add_scaling_arguments(p: argparse.ArgumentParser, max_phi: float | None) -> None:
    """The flags that decide which scaled networks exist (`mnas scale` and `mnas table build --scale-arch`)."""
    p.add_argument("--num-classes", type=int, help="override the base model's class count before scaling")
    a, b, g = EFFICIENTNET_COEFFICIENTS
    p.add_argument("--alpha", type=float, default=a, help=f"depth coefficient (default {a})")
    p.add_argument("--beta", type=float, default=b, help=f"width coefficient (default {b})")
    p.add_argument("--gamma", type=float, default=g, help=f"resolution coefficient (default {g})")
    p.add_argument("--lite", action="store_true", help="keep stem/head and first/last stage repeats fixed")
    p.add_argument("--allow-downscale", action="store_true",
                   help=f"allow phi < 0 (down to {DOWNSCALE_FLOOR:g}) for targets below the base model")
    p.add_argument("--max-phi", type=float, default=max_phi,
                   help="largest phi tried when solving" + (f" (default {max_phi:g})" if max_phi else ""))
    p.add_argument("--resolution-multiple", type=int, default=DEFAULT_RESOLUTION_MULTIPLE,
                   help="scaled resolutions are rounded to a multiple of this (default 8)")
    p.add_argument("--repeats-rounding", choices=REPEATS_ROUNDINGS,
                   help="how depth x repeats rounds to a layer count: ceil (the authors' rule; the default, and "
                        "what an arch file that names none gets) or nearest (follows the MACs cost law more "
                        "closely at small phi; see docs/scaling.md)")


def check_scaling_args(args: argparse.Namespace) -> Coefficients:
    coefficients = Coefficients(args.alpha, args.beta, args.gamma)
    if args.resolution_multiple < 1:
        raise UserError(f"--resolution-multiple must be >= 1, got {args.resolution_multiple}")
    if args.max_phi is None or not args.max_phi > 0:
        raise UserError(f"--max-phi must be > 0, got {args.max_phi}")
    return coefficients


def scaler_from_args(args: argparse.Namespace, base: ModelSpec,
                     coefficients: Coefficients) -> tuple[Scaler, float, float]:
    """(make, min_phi, max_phi): the scaled networks a solve may visit, as the flags define them."""
    make = compound_scaler(base, coefficients, lite=args.lite, allow_downscale=args.allow_downscale,
                           resolution_multiple=args.resolution_multiple)
    return make, DOWNSCALE_FLOOR if args.allow_downscale else 0.0, args.max_phi


def reachable_from_args(args: argparse.Namespace, ref: str) -> tuple[ModelSpec, list[tuple[float, str, ModelSpec]]]:
    """(base, every distinct network a `mnas scale --target-ms` solve with these flags can visit): what a
    latency table for the solve must cover (`mnas table build --scale-arch`)."""
    coefficients = check_scaling_args(args)
    base = base_spec(args, ref)
    make, min_phi, max_phi = scaler_from_args(args, base, coefficients)
    return base, reachable_specs(make, min_phi, max_phi)


@dataclass(frozen=True)
class Plan:
    """The checked command line: what to do, with every flag conflict already ruled out."""

    action: str
    coefficients: Coefficients
    phi: float | None
    targets_ms: tuple[float, ...]


def check_args(args: argparse.Namespace) -> Plan:
    """Every flag conflict as one UserError line, before anything heavy runs."""
    coefficients = check_scaling_args(args)
    targets: tuple[float, ...] = ()
    if args.target_ms is not None:
        targets = tuple(parse_targets(args.target_ms))
    phi = None
    if args.action == "family":
        if args.phi is not None and targets:
            raise UserError("--phi and --target-ms conflict: give one (a fixed phi, or latency targets to solve for)")
        if args.phi is None and not targets:
            raise UserError("give --phi K or --target-ms T[,T...]")
        if args.phi is not None:
            phi = check_phi(args.phi, args.allow_downscale)
    else:
        if args.phi is not None:
            raise UserError(f"--phi does not apply to 'scale {args.action}'")
    if args.action == "search" and (targets or args.device or args.table):
        raise UserError("'scale search' trains at phi=1 on the proxy: --target-ms/--device/--table do not apply")
    if args.action == "compare" and not targets:
        raise UserError("'scale compare' needs --target-ms T[,T...]")
    if targets and not (args.device or args.table):
        raise UserError("--target-ms needs --device ID or --table FILE to know the latency")
    if args.table is not None and not Path(args.table).exists():
        raise UserError(f"latency table {str(args.table)!r} does not exist")
    for flag in ("epochs", "batch_size", "threads", "runs", "proxy_resolution"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.max_candidates is not None and args.max_candidates < 1:
        raise UserError(f"--max-candidates must be >= 1, got {args.max_candidates}")
    return Plan(args.action, coefficients, phi, targets)


def base_spec(args: argparse.Namespace, ref: str | None = None) -> ModelSpec:
    """--arch (or `ref`) with the base overrides. The repeats rounding is set on the base, so every scaled spec
    (and its arch file) inherits it; None keeps the arch's own (ceil for every zoo model)."""
    from mnas.archfile import resolve_arch

    return resolve_arch(ref or args.arch, resolution=args.resolution, num_classes=args.num_classes,
                        repeats_rounding=args.repeats_rounding)


def run(args: argparse.Namespace) -> int:
    plan = check_args(args)
    base = base_spec(args)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if plan.action == "search":
            payload = run_search(args, plan, base)
        elif plan.action == "compare":
            payload = run_compare(args, plan, base)
        else:
            payload = run_family(args, plan, base)
    except UserError as err:
        if args.table is None:
            raise
        from latency.predictor import MissingOpError

        if not isinstance(err, MissingOpError):
            raise
        raise UserError(f"{str(err).split('; ')[0]}: a table for scaling must hold the ops of every scaled model; "
                        f"build it with `mnas table build --device ID --scale-arch {args.arch} --max-phi "
                        f"{args.max_phi:g}` and the same scaling flags") from None
    if args.json:
        from mnas.commands._common import print_json

        print_json(payload)
    return 0


# -- latency ----------------------------------------------------------------------------------------
# Relative gap below a target at which a device solve stops looking: about the noise of one measurement.
DEVICE_CLOSE_ENOUGH = 0.01


@dataclass
class LatencyPlan:
    """Which source the phi solve uses (the device when given: it is the truth), and what is reported.

    solve: cached latency used while solving (device: the fast timing file, same profile options as below);
    device: re-measures each final member's exported .tflite with the full profile (an independent check);
    table: its prediction reported beside the measurement.
    """

    solve: CachedLatency
    solve_measured: bool
    describe: str
    device: object | None = None
    table: object | None = None
    options: object | None = None
    statistic: str = "median"

    def predicted_ms(self, spec: ModelSpec) -> float | None:
        return None if self.table is None else float(self.table.latency_ms([spec])[0])

    def measure(self, spec: ModelSpec, tflite: Path | None) -> dict | None:
        """Median (and spread) of the member on the device: its exported file when there is one."""
        if self.device is None:
            return None
        if tflite is None:  # --no-export: time the timing-only file (same ops, random weights)
            import tempfile

            from latency.tflite_writer import write_tflite

            with tempfile.TemporaryDirectory(prefix="mnas-scale-") as tmp:
                path = Path(tmp) / "member.tflite"
                write_tflite(spec, path)
                return self._profile(path)
        return self._profile(tflite)

    def _profile(self, path: Path) -> dict:
        profile = self.device.profile(path, self.options)
        return {"median_ms": profile.median_ms, "p5_ms": profile.p5_ms, "p95_ms": profile.p95_ms,
                "rel_ci95": profile.noise.get("rel_ci95"), "value_ms": getattr(profile, f"{self.statistic}_ms")}

    def close(self) -> None:
        if self.device is not None:
            self.device.close()


def open_latency(args: argparse.Namespace, cache=None) -> LatencyPlan | None:
    """--device (measured) and/or --table (predicted); `cache` keeps device timings across reruns."""
    if not (args.device or args.table):
        return None
    from devices.base import ProfileOptions
    from mnas.latency_sources import DeviceLatency, TableLatency
    from mnas.runstore import MemoryCache, spec_key

    table = device = None
    names = []
    if args.table:
        from latency.predictor import Predictor

        table = TableLatency(Predictor.load(args.table))
        names.append(f"table {args.table}")
    options = ProfileOptions(threads=args.threads, runs=args.runs)
    solve = table.latency_ms if table is not None else None
    if args.device:
        from devices.registry import open_device

        device = open_device(args.device)
        cache = cache if cache is not None else MemoryCache()
        # The solve uses the same profile as the final re-measurement: a percentile estimated from fewer runs
        # is biased (p5 of 15 runs is near the minimum), which put re-measured members above their targets.
        source = DeviceLatency(device, options, cache=cache)
        solve = source.latency_ms
        if args.statistic != "median":  # DeviceLatency returns medians; its cache entry holds the rest
            def solve(specs, source=source, cache=cache, stat=args.statistic):
                source.latency_ms(specs)
                return [float(cache.get(spec_key(s, **source.settings()))[f"{stat}_ms"]) for s in specs]
        names.insert(0, f"device {args.device} ({args.statistic})")
    return LatencyPlan(CachedLatency(solve), device is not None, " + ".join(names), device, table, options,
                       args.statistic)


def _progress(label: str):
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn(label), BarColumn(), TextColumn("{task.completed} done"),
                    TimeElapsedColumn(), console=_stderr_console(), transient=False)


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


def _counting(fn: Callable, progress, task) -> Callable:
    def wrapped(specs):
        out = fn(specs)
        progress.advance(task, len(specs))
        return out
    return wrapped


# -- family -----------------------------------------------------------------------------------------
def run_family(args: argparse.Namespace, plan: Plan, base: ModelSpec) -> dict:
    from mnas.runstore import RunStore

    name = args.name or base.name
    with RunStore(args.out / "scale.sqlite") as store:
        latency = open_latency(args, cache=store.cache("latency"))
        try:
            if plan.phi is not None:
                spec = scale(base, *plan.coefficients.as_tuple(), plan.phi, lite=args.lite,
                             allow_downscale=args.allow_downscale, resolution_multiple=args.resolution_multiple,
                             name=f"{name}-phi{plan.phi:g}")
                members: list[tuple[ModelSpec, Solution | None]] = [(spec, None)]
            else:
                assert latency is not None  # check_args: targets need a source
                make, min_phi, max_phi = scaler_from_args(args, base, plan.coefficients)
                with _progress(f"solving phi on {latency.describe}: networks timed") as progress:
                    task = progress.add_task("solve", total=None)
                    solutions = solve_family(
                        make, _counting(latency.solve, progress, task), plan.targets_ms, name=name,
                        min_phi=min_phi, max_phi=max_phi,
                        close_enough=DEVICE_CLOSE_ENOUGH if latency.solve_measured else 0.0)
                members = [(s.spec, s) for s in solutions]
            rows = [_emit_member(args, spec, sol, latency) for spec, sol in members]
        finally:
            if latency is not None:
                latency.close()
    payload = {"action": "family", "base": base.name, "coefficients": _coeff_dict(plan.coefficients),
               "lite": args.lite, "repeats_rounding": base.repeats_rounding,
               "latency_source": latency.describe if latency else None, "models": rows}
    _write_table(args.out / "family", rows, FAMILY_COLUMNS)
    (args.out / "family.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    if not args.json:
        _print_rows(rows)
    return payload


FAMILY_COLUMNS = ["name", "target_ms", "phi", "rounding", "repeats_rounding", "depth", "width", "resolution",
                  "params", "macs",
                  "solve_ms", "next_above_ms", "predicted_ms", "measured_ms", "measured_median_ms", "measured_p5_ms",
                  "measured_p95_ms",
                  "measured_rel_ci95", "latency_ms", "latency_measured", "arch_file", "tflite"]


def _emit_member(args: argparse.Namespace, spec: ModelSpec, sol: Solution | None,
                 latency: LatencyPlan | None) -> dict:
    from mnas.archfile import save_arch_file

    arch_path = save_arch_file(spec, args.out / f"{spec.name}.json")
    tflite = None
    if not args.no_export:
        from mnas.export import export_tflite

        tflite = export_tflite(spec, args.out / f"{spec.name}.tflite")
    row = describe(spec)
    predicted = latency.predicted_ms(spec) if latency else None
    measured = latency.measure(spec, tflite) if latency else None
    row.update({"target_ms": sol.target_ms if sol else None, "rounding": sol.rounding if sol else "nearest",
                "solve_ms": sol.latency_ms if sol else None, "predicted_ms": predicted,
                "measured_ms": measured["value_ms"] if measured else None,
                "measured_median_ms": measured["median_ms"] if measured else None,
                "measured_p5_ms": measured["p5_ms"] if measured else None,
                "measured_p95_ms": measured["p95_ms"] if measured else None,
                "measured_rel_ci95": measured.get("rel_ci95") if measured else None,
                "next_above_ms": sol.next_above_ms if sol else None,
                "latency_ms": measured["value_ms"] if measured else predicted,
                "latency_measured": measured is not None,
                "arch_file": str(arch_path), "tflite": str(tflite) if tflite else None})
    return row


# -- coefficient search (paper step 1) ------------------------------------------------------------------
def standalone_evaluator(data_ref: str | None, resolution: int, seed: int, train_examples: int | None,
                         val_examples: int | None, epochs: int, batch_size: int, cache=None):
    """A stand-alone evaluator at one proxy resolution (module level: Ray ships it by reference)."""
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator

    data = load_proxy_data(data_ref, resolution=resolution, seed=seed)
    if train_examples or val_examples:
        data = data.subset(train_examples, val_examples)
    return StandaloneEvaluator(data=data, epochs=epochs, batch_size=batch_size, proxy_resolution=resolution,
                               seed=seed, cache=cache)


class ProxyEvaluators:
    """One stand-alone evaluator per proxy resolution (data is resized once per resolution), sharing a cache."""

    def __init__(self, args: argparse.Namespace, cache) -> None:
        self.args, self.cache = args, cache
        self._by_res: dict = {}

    def accuracy(self, spec: ModelSpec, resolution: int) -> tuple[float, dict]:
        if resolution not in self._by_res:
            a = self.args
            self._by_res[resolution] = standalone_evaluator(a.data, resolution, a.seed, a.train_examples,
                                                            a.val_examples, a.epochs, a.batch_size, self.cache)
        result = self._by_res[resolution].evaluate([spec])[0]
        return result.accuracy, {"seconds": result.seconds, "cached": result.cached, **result.detail}

    def accuracy_on(self, executor, jobs: list[tuple[ModelSpec, int]]) -> list[tuple[float, dict]]:
        """Score (spec, proxy resolution) jobs as parallel Ray tasks; each task loads the proxy data itself."""
        import functools

        from mnas.executors.children import evaluate_parallel

        out: list[tuple[float, dict] | None] = [None] * len(jobs)
        for res in sorted({r for _, r in jobs}):
            indices = [i for i, (_, r) in enumerate(jobs) if r == res]
            factory = functools.partial(
                standalone_evaluator, self.args.data, res, self.args.seed, self.args.train_examples,
                self.args.val_examples, self.args.epochs, self.args.batch_size)
            results = evaluate_parallel(factory, [jobs[i][0] for i in indices], executor)
            for i, result in zip(indices, results):
                out[i] = (result.accuracy, {"seconds": result.seconds, "cached": result.cached, **result.detail})
        return out  # type: ignore[return-value]

    def settings(self) -> dict:
        a = self.args
        return {"data": a.data or "default", "epochs": a.epochs, "batch_size": a.batch_size,
                "proxy_resolution": a.proxy_resolution, "train_examples": a.train_examples,
                "val_examples": a.val_examples, "seed": a.seed}


def run_search(args: argparse.Namespace, plan: Plan, base: ModelSpec) -> dict:
    from mnas.runstore import RunStore

    grid = coefficient_grid(step=args.step, tolerance=args.tolerance)
    if not grid:
        raise UserError(f"no (alpha, beta, gamma) on a {args.step:g} grid is within {args.tolerance:g} of 2")
    if args.max_candidates:
        grid = grid[:args.max_candidates]
    candidates = [Coefficients(1.0, 1.0, 1.0)] + grid  # phi=0 base first: the reference every candidate beats
    with RunStore(args.out / "scale-search.sqlite") as store:
        evaluators = ProxyEvaluators(args, store.cache("accuracy"))
        store.start_or_resume({"kind": "scale-search", "arch": base.name, "base": base.block_strings(),
                               "base_params": base.global_params(), "lite": args.lite,
                               "resolution_multiple": args.resolution_multiple, **evaluators.settings()},
                              resume=True)
        def candidate(c: Coefficients) -> tuple[ModelSpec, int]:
            is_base = c.as_tuple() == (1.0, 1.0, 1.0)
            spec = base if is_base else scale(base, *c.as_tuple(), 1.0, lite=args.lite,
                                              resolution_multiple=args.resolution_multiple)
            return spec, proxy_resolution(spec, base, args.proxy_resolution)

        keys = {c: "%.4f,%.4f,%.4f" % c.as_tuple() for c in candidates}
        ready: dict = {}
        if args.executor == "ray":  # train every missing candidate at once; rows are stored below as before
            from mnas.executors import executor_from_args

            todo = [c for c in candidates if store.cache_get(SEARCH_NAMESPACE, keys[c]) is None]
            if len(todo) > 1:
                executor = executor_from_args(args)
                try:
                    ready = dict(zip(todo, evaluators.accuracy_on(executor, [candidate(c) for c in todo])))
                finally:
                    executor.close()
        rows = []
        with _progress("coefficient search (phi=1 on the proxy)") as progress:
            task = progress.add_task("search", total=len(candidates))
            for c in candidates:
                key = keys[c]
                row = store.cache_get(SEARCH_NAMESPACE, key)
                if row is None:
                    is_base = c.as_tuple() == (1.0, 1.0, 1.0)
                    spec, res = candidate(c)
                    acc, detail = ready[c] if c in ready else evaluators.accuracy(spec, res)
                    row = {**describe(spec), "phi": 0.0 if is_base else 1.0, "alpha": c.alpha, "beta": c.beta,
                           "gamma": c.gamma, "cost_ratio": c.cost_ratio, "proxy_resolution": res,
                           "accuracy": acc, "train_s": detail.get("train_s"), "reference": is_base}
                    store.cache_put(SEARCH_NAMESPACE, key, row)  # stored as it finishes: a rerun resumes here
                rows.append(row)
                progress.advance(task)
    scored = [r for r in rows if not r["reference"]]
    best = max(scored, key=lambda r: (r["accuracy"], -abs(r["cost_ratio"] - 2)))
    columns = ["alpha", "beta", "gamma", "cost_ratio", "depth", "width", "resolution", "proxy_resolution",
               "params", "macs", "accuracy", "train_s", "reference"]
    _write_table(args.out / "search", rows, columns)
    _plot_search(args.out / "search.png", scored, best, base.name, next(r for r in rows if r["reference"]))
    payload = {"action": "search", "base": base.name, "best": {k: best[k] for k in ("alpha", "beta", "gamma")},
               "best_accuracy": best["accuracy"], "candidates": rows,
               "table": str(args.out / "search.csv"), "plot": str(args.out / "search.png")}
    if not args.json:
        print(f"best: alpha={best['alpha']:g} beta={best['beta']:g} gamma={best['gamma']:g} "
              f"proxy accuracy {best['accuracy']:.4f} ({len(scored)} candidates; table {args.out / 'search.md'})")
    return payload


def _plot_search(path: Path, rows: list[dict], best: dict, base_name: str, reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ordered = sorted(rows, key=lambda r: r["accuracy"])
    labels = [f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}" for r in ordered]
    colors = ["tab:red" if r is best else "tab:blue" for r in ordered]
    ax1.barh(range(len(ordered)), [r["accuracy"] for r in ordered], color=colors)
    ax1.axvline(reference["accuracy"], color="gray", ls="--", label=f"base (phi=0) {reference['accuracy']:.3f}")
    ax1.set_yticks(range(len(ordered)), labels, fontsize=7)
    ax1.set_xlabel("proxy accuracy at phi=1")
    ax1.set_ylabel("alpha / beta / gamma")
    lo = min(r["accuracy"] for r in rows + [reference])
    ax1.set_xlim(max(0.0, lo - 0.05), min(1.0, max(r["accuracy"] for r in rows) + 0.02))
    ax1.legend(fontsize=8, loc="lower right")
    shares = [cost_shares(Coefficients(r["alpha"], r["beta"], r["gamma"])) for r in rows]
    sc = ax2.scatter([s[0] for s in shares], [s[2] for s in shares], c=[r["accuracy"] for r in rows],
                     cmap="viridis", s=60)
    bs = cost_shares(Coefficients(best["alpha"], best["beta"], best["gamma"]))
    ax2.scatter([bs[0]], [bs[2]], marker="*", s=300, facecolors="none", edgecolors="red", label="best")
    ax2.set_xlabel("share of the cost growth spent on depth  ln(alpha)/ln(a b^2 g^2)")
    ax2.set_ylabel("share spent on resolution  2 ln(gamma)/ln(a b^2 g^2)")
    ax2.set_title("width takes the rest")
    fig.colorbar(sc, ax=ax2, label="proxy accuracy")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Coefficient search on {base_name} (phi=1, alpha*beta^2*gamma^2 ~ 2)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- compound vs single-dimension scaling ---------------------------------------------------------------
def scaling_rules(plan: Plan) -> dict[str, Coefficients]:
    rules = {"compound": plan.coefficients}
    rules.update({f"{dim}-only": Coefficients(*c) for dim, c in SINGLE_DIMENSION.items()})
    return rules


def run_compare(args: argparse.Namespace, plan: Plan, base: ModelSpec) -> dict:
    from mnas.runstore import RunStore

    rows: list[dict] = []
    with RunStore(args.out / "scale-compare.sqlite") as store:
        latency = open_latency(args, cache=store.cache("latency"))
        assert latency is not None  # check_args: compare needs --target-ms and a source
        try:
            evaluators = ProxyEvaluators(args, store.cache("accuracy"))
            store.start_or_resume({"kind": "scale-compare", "arch": base.name, "base": base.block_strings(),
                                   "base_params": base.global_params(), "targets_ms": list(plan.targets_ms),
                                   "coefficients": list(plan.coefficients.as_tuple()), "lite": args.lite,
                                   "latency": latency.describe, **evaluators.settings()}, resume=True)
            with _progress("compound vs single-dimension: networks timed + trained") as progress:
                task = progress.add_task("compare", total=None)
                for rule, coeffs in scaling_rules(plan).items():
                    rows.extend(_compare_rule(args, plan, base, rule, coeffs, latency, evaluators, store,
                                              _counting(latency.solve, progress, task)))
        finally:
            latency.close()
    columns = ["rule", "target_ms", "phi", "depth", "width", "resolution", "proxy_resolution", "params", "macs",
               "latency_ms", "latency_measured", "accuracy", "train_s"]
    _write_table(args.out / "compare", rows, columns)
    _plot_compare(args.out / "compare.png", rows, base.name, latency.describe)
    payload = {"action": "compare", "base": base.name, "latency_source": latency.describe,
               "coefficients": _coeff_dict(plan.coefficients), "models": rows, "summary": compare_summary(rows),
               "table": str(args.out / "compare.csv"), "plot": str(args.out / "compare.png")}
    if not args.json:
        for line in compare_summary(rows)["lines"]:
            print(line)
    return payload


def _compare_rule(args: argparse.Namespace, plan: Plan, base: ModelSpec, rule: str, coeffs: Coefficients,
                  latency: LatencyPlan, evaluators: ProxyEvaluators, store, solve: Callable) -> list[dict]:
    """One scaling rule's family at the targets, each member trained on the proxy; rows stored as they finish."""
    keys = [f"{rule}|{t:g}" for t in sorted(plan.targets_ms)]
    done = [store.cache_get(COMPARE_NAMESPACE, k) for k in keys]
    if all(d is not None for d in done):
        return done  # type: ignore[return-value]
    make, min_phi, max_phi = scaler_from_args(args, base, coeffs)
    family = solve_family(make, solve, plan.targets_ms, name=f"{base.name}-{rule}", min_phi=min_phi, max_phi=max_phi,
                          close_enough=DEVICE_CLOSE_ENOUGH if latency.solve_measured else 0.0)
    rows = []
    for key, sol in zip(keys, family):
        row = store.cache_get(COMPARE_NAMESPACE, key)
        if row is None:
            res = proxy_resolution(sol.spec, base, args.proxy_resolution)
            acc, detail = evaluators.accuracy(sol.spec, res)
            row = {**describe(sol.spec), "rule": rule, "target_ms": sol.target_ms, "phi": sol.phi,
                   "rounding": sol.rounding, "latency_ms": sol.latency_ms,
                   "latency_measured": latency.solve_measured, "proxy_resolution": res,
                   "accuracy": acc, "train_s": detail.get("train_s")}
            store.cache_put(COMPARE_NAMESPACE, key, row)
        rows.append(row)
    return rows


def compare_summary(rows: list[dict]) -> dict:
    """Per target: is compound's proxy accuracy >= each single-dimension baseline's? Mean accuracy per rule."""
    by_rule: dict[str, list[dict]] = {}
    for r in rows:
        by_rule.setdefault(r["rule"], []).append(r)
    mean = {rule: sum(r["accuracy"] for r in rs) / len(rs) for rule, rs in by_rule.items()}
    wins, lines = {}, []
    compound = {r["target_ms"]: r for r in by_rule.get("compound", [])}
    for rule, rs in by_rule.items():
        if rule == "compound":
            continue
        pairs = [(compound[r["target_ms"]]["accuracy"], r["accuracy"]) for r in rs if r["target_ms"] in compound]
        wins[rule] = sum(c >= b for c, b in pairs)
        lines.append(f"compound >= {rule}: {wins[rule]}/{len(pairs)} targets "
                     f"(mean accuracy {mean.get('compound', float('nan')):.4f} vs {mean[rule]:.4f})")
    return {"mean_accuracy": mean, "compound_wins": wins, "lines": lines}


def _plot_compare(path: Path, rows: list[dict], base_name: str, source: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    markers = {"compound": "o-", "depth-only": "s--", "width-only": "^--", "resolution-only": "v--"}
    for rule in sorted({r["rule"] for r in rows}, key=lambda x: (x != "compound", x)):
        rs = sorted((r for r in rows if r["rule"] == rule), key=lambda r: r["latency_ms"])
        ax.plot([r["latency_ms"] for r in rs], [r["accuracy"] for r in rs], markers.get(rule, "o-"), label=rule,
                lw=2.2 if rule == "compound" else 1.2)
    for t in sorted({r["target_ms"] for r in rows}):
        ax.axvline(t, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(f"latency (ms, {source})")
    ax.set_ylabel("proxy accuracy")
    ax.set_title(f"Scaling {base_name} to equal latency: compound vs one dimension")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- output helpers ------------------------------------------------------------------------------------
def _coeff_dict(c: Coefficients) -> dict:
    return {"alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "cost_ratio": c.cost_ratio}


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ""
    return str(value)


def _write_table(stem: Path, rows: list[dict], columns: list[str]) -> None:
    """`stem`.csv (every value) and `stem`.md (the same columns, formatted)."""
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in columns})
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in columns) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _print_rows(rows: list[dict]) -> None:
    for r in rows:
        lat = ""
        if r.get("measured_ms") is not None:
            lat += f" measured {r['measured_ms']:.3f} ms"
        if r.get("predicted_ms") is not None:
            lat += f" predicted {r['predicted_ms']:.3f} ms"
        target = f" target {r['target_ms']:g} ms" if r.get("target_ms") is not None else ""
        solved, above = r.get("solve_ms"), r.get("next_above_ms")
        if solved is not None and above is not None and solved < 0.95 * r["target_ms"]:
            target += f" (no scaled model between {solved:.3g} and {above:.3g} ms)"
        print(f"{r['name']}: phi={r['phi']:.4g} depth={r['depth']:.3f} width={r['width']:.3f} "
              f"res={r['resolution']} params={r['params'] / 1e6:.2f}M MACs={r['macs'] / 1e6:.1f}M"
              f"{target}{lat}")
