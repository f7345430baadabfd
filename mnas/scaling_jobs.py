"""Scaling jobs (`mnas scale`'s work): a family at a phi or at latency targets, the coefficient search, and
compound vs single-dimension scaling, each taking a frozen config and returning (payload, text lines).

- `run_family`: one model at a phi, or one model per latency target (NAME-d0 .. dK, solved for phi on the
  device or the table); arch files + TFLite exports + family.csv/.md/.json. With both a device and a table the
  solve uses the device (measured) and the table's prediction is reported beside it. The table must hold the
  ops of every scaled network: `reachable_networks` lists them (`mnas table build --scale-arch`).
- `coefficient_search`: the paper's step 1: a grid of (alpha, beta, gamma) >= 1 with alpha*beta^2*gamma^2
  within a tolerance of 2, each trained on the proxy at phi=1; rows stored as they finish (resumable).
- `compare`: compound vs depth-only / width-only / resolution-only families at the same latency targets,
  each member trained on the proxy; one plot.

The pure parts (scaling rule, phi solving) are in `mnas.scaling`; this module does the I/O around them.
Every check runs before anything is written; error texts name the CLI flags, which are the configs' fields.
"""

from __future__ import annotations

import csv
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from mnas.errors import UserError
from mnas.executors import ExecutorChoice
from mnas.progress import progress_bar
from mnas.scaling import (DEFAULT_RESOLUTION_MULTIPLE, DOWNSCALE_FLOOR, EFFICIENTNET_COEFFICIENTS,
                          SINGLE_DIMENSION, CachedLatency, Coefficients, Scaler, Solution, check_phi,
                          coefficient_grid, compound_scaler, describe, proxy_resolution, reachable_specs, scale,
                          solve_family)
from mnas.spec import ModelSpec

DEVICE_STATISTICS = ("median", "p5")
SEARCH_NAMESPACE = "scale-search"
COMPARE_NAMESPACE = "scale-compare"
# Relative gap below a target at which a device solve stops looking: about the noise of one measurement.
DEVICE_CLOSE_ENOUGH = 0.01
FAMILY_COLUMNS = ["name", "target_ms", "phi", "rounding", "repeats_rounding", "depth", "width", "resolution",
                  "params", "macs",
                  "solve_ms", "next_above_ms", "predicted_ms", "measured_ms", "measured_median_ms", "measured_p5_ms",
                  "measured_p95_ms",
                  "measured_rel_ci95", "latency_ms", "latency_measured", "arch_file", "tflite"]
SEARCH_COLUMNS = ["alpha", "beta", "gamma", "cost_ratio", "depth", "width", "resolution", "proxy_resolution",
                  "params", "macs", "accuracy", "train_s", "reference"]
COMPARE_COLUMNS = ["rule", "target_ms", "phi", "depth", "width", "resolution", "proxy_resolution", "params", "macs",
                   "latency_ms", "latency_measured", "accuracy", "train_s"]

Output = tuple[dict, list[str]]  # (JSON payload, lines for a person)


def at_least_one(flag: str, value: int | None) -> None:
    """`value` (None: not given) must be >= 1; the error names the flag (`batch_size` -> --batch-size)."""
    if value is not None and value < 1:
        raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")


# -- configs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScalingFlags:
    """What decides which scaled networks exist: the same for a scale solve and the table built for it."""

    coefficients: Coefficients = Coefficients(*EFFICIENTNET_COEFFICIENTS)
    lite: bool = False
    allow_downscale: bool = False
    max_phi: float | None = 12.0
    resolution_multiple: int = DEFAULT_RESOLUTION_MULTIPLE
    repeats_rounding: str | None = None  # None keeps the arch's own (ceil for every zoo model)
    num_classes: int | None = None  # base overrides, applied before scaling
    resolution: int | None = None

    def check(self) -> None:
        if self.resolution_multiple < 1:
            raise UserError(f"--resolution-multiple must be >= 1, got {self.resolution_multiple}")
        if self.max_phi is None or not self.max_phi > 0:
            raise UserError(f"--max-phi must be > 0, got {self.max_phi}")

    def base(self, arch: str) -> ModelSpec:
        """`arch` with the base overrides. The repeats rounding is set on the base, so every scaled spec (and
        its arch file) inherits it."""
        from mnas.archfile import resolve_arch

        return resolve_arch(arch, resolution=self.resolution, num_classes=self.num_classes,
                            repeats_rounding=self.repeats_rounding)

    def scaler(self, base: ModelSpec, coefficients: Coefficients | None = None) -> tuple[Scaler, float, float]:
        """(make, min_phi, max_phi): the scaled networks a solve may visit."""
        make = compound_scaler(base, coefficients or self.coefficients, lite=self.lite,
                               allow_downscale=self.allow_downscale, resolution_multiple=self.resolution_multiple)
        assert self.max_phi is not None  # check()
        return make, DOWNSCALE_FLOOR if self.allow_downscale else 0.0, self.max_phi


@dataclass(frozen=True)
class LatencyConfig:
    """Where latency comes from: `device` (measured) and/or `table` (predicted)."""

    device: str | None = None
    table: Path | None = None
    threads: int = 1
    runs: int = 30
    statistic: str = "median"  # of the timed runs: median (a quiet device) or p5 (a shared host)

    def check(self, targets_ms: tuple[float, ...] = ()) -> None:
        if targets_ms and not (self.device or self.table):
            raise UserError("--target-ms needs --device ID or --table FILE to know the latency")
        if self.table is not None and not Path(self.table).exists():
            raise UserError(f"latency table {str(self.table)!r} does not exist")
        if self.statistic not in DEVICE_STATISTICS:
            raise UserError(f"--statistic must be one of {', '.join(DEVICE_STATISTICS)}, got {self.statistic!r}")
        at_least_one("threads", self.threads)
        at_least_one("runs", self.runs)


@dataclass(frozen=True)
class ProxyConfig:
    """Proxy training of each candidate; scaled models train at `proxy_resolution` times their resolution
    factor."""

    data: str | None = None  # folder of class folders or .npz; None: the bundled MNIST subset
    epochs: int = 1
    batch_size: int = 128
    proxy_resolution: int = 32
    train_examples: int | None = None
    val_examples: int | None = None
    seed: int = 0

    def check(self) -> None:
        for flag in ("epochs", "batch_size", "proxy_resolution"):
            at_least_one(flag, getattr(self, flag))

    def settings(self) -> dict:
        return {"data": self.data or "default", "epochs": self.epochs, "batch_size": self.batch_size,
                "proxy_resolution": self.proxy_resolution, "train_examples": self.train_examples,
                "val_examples": self.val_examples, "seed": self.seed}


@dataclass(frozen=True)
class _Job:
    arch: str  # zoo name or arch file
    out: Path  # output folder (its stores make a rerun resume)
    flags: ScalingFlags


@dataclass(frozen=True)
class FamilyConfig(_Job):
    """One model at `phi`, or one per latency target (give exactly one of the two)."""

    phi: float | None = None
    targets_ms: tuple[float, ...] = ()
    latency: LatencyConfig = LatencyConfig()
    name: str | None = None  # family name (default: the arch's name)
    export: bool = True  # TFLite exports beside the arch files

    def check(self) -> None:
        self.flags.check()
        if self.phi is not None and self.targets_ms:
            raise UserError("--phi and --target-ms conflict: give one (a fixed phi, or latency targets to solve for)")
        if self.phi is None and not self.targets_ms:
            raise UserError("give --phi K or --target-ms T[,T...]")
        if self.phi is not None:
            check_phi(self.phi, self.flags.allow_downscale)
        self.latency.check(self.targets_ms)


@dataclass(frozen=True)
class CoefficientSearchConfig(_Job):
    proxy: ProxyConfig = ProxyConfig()
    step: float = 0.1  # coefficient grid step
    tolerance: float = 0.1  # accepted |alpha*beta^2*gamma^2 - 2|
    max_candidates: int | None = None  # train only the N candidates closest to the constraint
    executor: ExecutorChoice = ExecutorChoice()

    def check(self) -> None:
        self.flags.check()
        self.proxy.check()
        at_least_one("max_candidates", self.max_candidates)


@dataclass(frozen=True)
class CompareConfig(_Job):
    targets_ms: tuple[float, ...] = ()
    latency: LatencyConfig = LatencyConfig()
    proxy: ProxyConfig = ProxyConfig()

    def check(self) -> None:
        self.flags.check()
        if not self.targets_ms:
            raise UserError("'scale compare' needs --target-ms T[,T...]")
        self.latency.check(self.targets_ms)
        self.proxy.check()


def _prepare(cfg: FamilyConfig | CoefficientSearchConfig | CompareConfig) -> ModelSpec:
    """Checks, the base model, then the output folder: bad input leaves nothing behind."""
    cfg.check()
    base = cfg.flags.base(cfg.arch)
    cfg.out.mkdir(parents=True, exist_ok=True)
    return base


def reachable_networks(flags: ScalingFlags, arch: str) -> tuple[ModelSpec, list[tuple[float, str, ModelSpec]]]:
    """(base, every distinct network a latency-target solve with these flags can visit): what a latency table
    for the solve must cover."""
    flags.check()
    base = flags.base(arch)
    make, min_phi, max_phi = flags.scaler(base)
    return base, reachable_specs(make, min_phi, max_phi)


@contextmanager
def _missing_ops_hint(cfg: FamilyConfig | CompareConfig) -> Iterator[None]:
    """A table without a scaled network's ops: say how to build the right one."""
    try:
        yield
    except UserError as err:
        if cfg.latency.table is None:
            raise
        from latency.predictor import MissingOpError

        if not isinstance(err, MissingOpError):
            raise
        raise UserError(f"{str(err).split('; ')[0]}: a table for scaling must hold the ops of every scaled model; "
                        f"build it with `mnas table build --device ID --scale-arch {cfg.arch} --max-phi "
                        f"{cfg.flags.max_phi:g}` and the same scaling flags") from None


# -- latency ----------------------------------------------------------------------------------------
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
        if tflite is None:  # no export: time the timing-only file (same ops, random weights)
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


def open_latency(cfg: LatencyConfig, cache=None) -> LatencyPlan | None:
    """The device (measured) and/or the table (predicted); `cache` keeps device timings across reruns."""
    if not (cfg.device or cfg.table):
        return None
    from devices.base import ProfileOptions
    from mnas.latency_sources import DeviceLatency, TableLatency
    from mnas.runstore import MemoryCache, spec_key

    table = device = None
    names = []
    if cfg.table:
        from latency.predictor import Predictor

        table = TableLatency(Predictor.load(cfg.table))
        names.append(f"table {cfg.table}")
    options = ProfileOptions(threads=cfg.threads, runs=cfg.runs)
    solve = table.latency_ms if table is not None else None
    if cfg.device:
        from devices.registry import open_device

        device = open_device(cfg.device)
        cache = cache if cache is not None else MemoryCache()
        # The solve uses the same profile as the final re-measurement: a percentile estimated from fewer runs
        # is biased (p5 of 15 runs is near the minimum), which put re-measured members above their targets.
        source = DeviceLatency(device, options, cache=cache)
        solve = source.latency_ms
        if cfg.statistic != "median":  # DeviceLatency returns medians; its cache entry holds the rest
            def solve(specs, source=source, cache=cache, stat=cfg.statistic):
                source.latency_ms(specs)
                return [float(cache.get(spec_key(s, **source.settings()))[f"{stat}_ms"]) for s in specs]
        names.insert(0, f"device {cfg.device} ({cfg.statistic})")
    return LatencyPlan(CachedLatency(solve), device is not None, " + ".join(names), device, table, options,
                       cfg.statistic)


def _counting(fn: Callable, progress, task) -> Callable:
    def wrapped(specs):
        out = fn(specs)
        progress.advance(task, len(specs))
        return out
    return wrapped


# -- family -----------------------------------------------------------------------------------------
def run_family(cfg: FamilyConfig) -> Output:
    from mnas.runstore import RunStore

    base = _prepare(cfg)
    name = cfg.name or base.name
    coefficients = cfg.flags.coefficients
    with _missing_ops_hint(cfg), RunStore(cfg.out / "scale.sqlite") as store:
        latency = open_latency(cfg.latency, cache=store.cache("latency"))
        try:
            if cfg.phi is not None:
                phi = check_phi(cfg.phi, cfg.flags.allow_downscale)
                spec = scale(base, *coefficients.as_tuple(), phi, lite=cfg.flags.lite,
                             allow_downscale=cfg.flags.allow_downscale,
                             resolution_multiple=cfg.flags.resolution_multiple, name=f"{name}-phi{phi:g}")
                members: list[tuple[ModelSpec, Solution | None]] = [(spec, None)]
            else:
                assert latency is not None  # check(): targets need a source
                make, min_phi, max_phi = cfg.flags.scaler(base)
                with progress_bar(label=f"solving phi on {latency.describe}: networks timed") as progress:
                    task = progress.add_task("", total=None)
                    solutions = solve_family(
                        make, _counting(latency.solve, progress, task), cfg.targets_ms, name=name,
                        min_phi=min_phi, max_phi=max_phi,
                        close_enough=DEVICE_CLOSE_ENOUGH if latency.solve_measured else 0.0)
                members = [(s.spec, s) for s in solutions]
            rows = [_emit_member(cfg, spec, sol, latency) for spec, sol in members]
        finally:
            if latency is not None:
                latency.close()
    payload = {"action": "family", "base": base.name, "coefficients": _coeff_dict(coefficients),
               "lite": cfg.flags.lite, "repeats_rounding": base.repeats_rounding,
               "latency_source": latency.describe if latency else None, "models": rows}
    write_table(cfg.out / "family", rows, FAMILY_COLUMNS)
    (cfg.out / "family.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    return payload, family_lines(rows)


def _emit_member(cfg: FamilyConfig, spec: ModelSpec, sol: Solution | None, latency: LatencyPlan | None) -> dict:
    from mnas.archfile import save_arch_file

    arch_path = save_arch_file(spec, cfg.out / f"{spec.name}.json")
    tflite = None
    if cfg.export:
        from mnas.export import export_tflite

        tflite = export_tflite(spec, cfg.out / f"{spec.name}.tflite")
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


def family_lines(rows: list[dict]) -> list[str]:
    lines = []
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
        lines.append(f"{r['name']}: phi={r['phi']:.4g} depth={r['depth']:.3f} width={r['width']:.3f} "
                     f"res={r['resolution']} params={r['params'] / 1e6:.2f}M MACs={r['macs'] / 1e6:.1f}M"
                     f"{target}{lat}")
    return lines


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

    def __init__(self, cfg: ProxyConfig, cache) -> None:
        self.cfg, self.cache = cfg, cache
        self._by_res: dict = {}

    def _evaluator(self, resolution: int, cache=None):
        c = self.cfg
        return standalone_evaluator(c.data, resolution, c.seed, c.train_examples, c.val_examples, c.epochs,
                                    c.batch_size, cache)

    def accuracy(self, spec: ModelSpec, resolution: int) -> tuple[float, dict]:
        if resolution not in self._by_res:
            self._by_res[resolution] = self._evaluator(resolution, self.cache)
        result = self._by_res[resolution].evaluate([spec])[0]
        return result.accuracy, {"seconds": result.seconds, "cached": result.cached, **result.detail}

    def accuracy_on(self, executor, jobs: list[tuple[ModelSpec, int]]) -> list[tuple[float, dict]]:
        """Score (spec, proxy resolution) jobs as parallel Ray tasks; each task loads the proxy data itself."""
        import functools

        from mnas.executors.children import evaluate_parallel

        c = self.cfg
        out: list[tuple[float, dict] | None] = [None] * len(jobs)
        for res in sorted({r for _, r in jobs}):
            indices = [i for i, (_, r) in enumerate(jobs) if r == res]
            factory = functools.partial(standalone_evaluator, c.data, res, c.seed, c.train_examples,
                                        c.val_examples, c.epochs, c.batch_size)
            results = evaluate_parallel(factory, [jobs[i][0] for i in indices], executor)
            for i, result in zip(indices, results):
                out[i] = (result.accuracy, {"seconds": result.seconds, "cached": result.cached, **result.detail})
        return out  # type: ignore[return-value]


def coefficient_search(cfg: CoefficientSearchConfig) -> Output:
    from mnas.runstore import RunStore

    base = _prepare(cfg)
    flags = cfg.flags
    grid = coefficient_grid(step=cfg.step, tolerance=cfg.tolerance)
    if not grid:
        raise UserError(f"no (alpha, beta, gamma) on a {cfg.step:g} grid is within {cfg.tolerance:g} of 2")
    if cfg.max_candidates:
        grid = grid[:cfg.max_candidates]
    candidates = [Coefficients(1.0, 1.0, 1.0)] + grid  # phi=0 base first: the reference every candidate beats
    with RunStore(cfg.out / "scale-search.sqlite") as store:
        evaluators = ProxyEvaluators(cfg.proxy, store.cache("accuracy"))
        store.start_or_resume({"kind": "scale-search", "arch": base.name, "base": base.block_strings(),
                               "base_params": base.global_params(), "lite": flags.lite,
                               "resolution_multiple": flags.resolution_multiple, **cfg.proxy.settings()},
                              resume=True)

        def candidate(c: Coefficients) -> tuple[ModelSpec, int]:
            is_base = c.as_tuple() == (1.0, 1.0, 1.0)
            spec = base if is_base else scale(base, *c.as_tuple(), 1.0, lite=flags.lite,
                                              resolution_multiple=flags.resolution_multiple)
            return spec, proxy_resolution(spec, base, cfg.proxy.proxy_resolution)

        keys = {c: "%.4f,%.4f,%.4f" % c.as_tuple() for c in candidates}
        ready: dict = {}
        if cfg.executor.name == "ray":  # train every missing candidate at once; rows are stored below as before
            todo = [c for c in candidates if store.cache_get(SEARCH_NAMESPACE, keys[c]) is None]
            if len(todo) > 1:
                executor = cfg.executor.open()
                try:
                    ready = dict(zip(todo, evaluators.accuracy_on(executor, [candidate(c) for c in todo])))
                finally:
                    executor.close()
        rows = []
        with progress_bar(label="coefficient search (phi=1 on the proxy)") as progress:
            task = progress.add_task("", total=len(candidates))
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
    write_table(cfg.out / "search", rows, SEARCH_COLUMNS)
    from mnas.scaling_plots import plot_search

    plot_search(cfg.out / "search.png", scored, best, base.name, next(r for r in rows if r["reference"]))
    payload = {"action": "search", "base": base.name, "best": {k: best[k] for k in ("alpha", "beta", "gamma")},
               "best_accuracy": best["accuracy"], "candidates": rows,
               "table": str(cfg.out / "search.csv"), "plot": str(cfg.out / "search.png")}
    line = (f"best: alpha={best['alpha']:g} beta={best['beta']:g} gamma={best['gamma']:g} "
            f"proxy accuracy {best['accuracy']:.4f} ({len(scored)} candidates; table {cfg.out / 'search.md'})")
    return payload, [line]


# -- compound vs single-dimension scaling ---------------------------------------------------------------
def scaling_rules(coefficients: Coefficients) -> dict[str, Coefficients]:
    rules = {"compound": coefficients}
    rules.update({f"{dim}-only": Coefficients(*c) for dim, c in SINGLE_DIMENSION.items()})
    return rules


def compare(cfg: CompareConfig) -> Output:
    from mnas.runstore import RunStore

    base = _prepare(cfg)
    rows: list[dict] = []
    with _missing_ops_hint(cfg), RunStore(cfg.out / "scale-compare.sqlite") as store:
        latency = open_latency(cfg.latency, cache=store.cache("latency"))
        assert latency is not None  # check(): compare needs targets and a source
        try:
            evaluators = ProxyEvaluators(cfg.proxy, store.cache("accuracy"))
            store.start_or_resume({"kind": "scale-compare", "arch": base.name, "base": base.block_strings(),
                                   "base_params": base.global_params(), "targets_ms": list(cfg.targets_ms),
                                   "coefficients": list(cfg.flags.coefficients.as_tuple()), "lite": cfg.flags.lite,
                                   "latency": latency.describe, **cfg.proxy.settings()}, resume=True)
            with progress_bar(label="compound vs single-dimension: networks timed + trained") as progress:
                task = progress.add_task("", total=None)
                for rule, coeffs in scaling_rules(cfg.flags.coefficients).items():
                    rows.extend(_compare_rule(cfg, base, rule, coeffs, latency, evaluators, store,
                                              _counting(latency.solve, progress, task)))
        finally:
            latency.close()
    write_table(cfg.out / "compare", rows, COMPARE_COLUMNS)
    from mnas.scaling_plots import plot_compare

    plot_compare(cfg.out / "compare.png", rows, base.name, latency.describe)
    summary = compare_summary(rows)
    payload = {"action": "compare", "base": base.name, "latency_source": latency.describe,
               "coefficients": _coeff_dict(cfg.flags.coefficients), "models": rows, "summary": summary,
               "table": str(cfg.out / "compare.csv"), "plot": str(cfg.out / "compare.png")}
    return payload, list(summary["lines"])


def _compare_rule(cfg: CompareConfig, base: ModelSpec, rule: str, coeffs: Coefficients, latency: LatencyPlan,
                  evaluators: ProxyEvaluators, store, solve: Callable) -> list[dict]:
    """One scaling rule's family at the targets, each member trained on the proxy; rows stored as they finish."""
    keys = [f"{rule}|{t:g}" for t in sorted(cfg.targets_ms)]
    done = [store.cache_get(COMPARE_NAMESPACE, k) for k in keys]
    if all(d is not None for d in done):
        return done  # type: ignore[return-value]
    make, min_phi, max_phi = cfg.flags.scaler(base, coeffs)
    family = solve_family(make, solve, cfg.targets_ms, name=f"{base.name}-{rule}", min_phi=min_phi,
                          max_phi=max_phi, close_enough=DEVICE_CLOSE_ENOUGH if latency.solve_measured else 0.0)
    rows = []
    for key, sol in zip(keys, family):
        row = store.cache_get(COMPARE_NAMESPACE, key)
        if row is None:
            res = proxy_resolution(sol.spec, base, cfg.proxy.proxy_resolution)
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


def write_table(stem: Path, rows: list[dict], columns: list[str]) -> None:
    """`stem`.csv (every value) and `stem`.md (the same columns, formatted)."""
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in columns})
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in columns) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
