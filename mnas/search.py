"""The search loop: ask -> spec -> ACC (evaluator) + LAT (each latency source) -> reward -> tell -> store.

    setup = SearchSetup(space, "ppo", evaluator, [DeviceLatency(open_device("host"))], Reward("soft", [20.0]),
                        steps=10, batch=4, seed=0)
    with RunStore(out / "run.db") as store:
        result = run_search(setup, store, resume=True)
        summary = write_outputs(setup, store, out)

Each step asks the controller for `batch` samples inside the latency band (`mnas.band`: candidates predicted
or measured outside [low x T, high x T] are not trained; measured ones are kept in the store's `skipped`
table), evaluates them one by one (each child is committed to the run store as it finishes) and tells the
controller the rewards. The run store makes it resumable after any kill
(see `mnas.runstore`); a resumed run draws exactly the samples an uninterrupted one would have.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mnas import controllers
from mnas.band import Band, BandSampler, FilterStats
from mnas.errors import UserError
from mnas.evaluators.base import EvalResult, Evaluator
from mnas.latency_sources import LatencySource
from mnas.pareto import best_within, pareto_front, plot_front
from mnas.progress import progress_bar
from mnas.reward import Reward
from mnas.runstore import ChildRecord, RunStore, spec_key, spec_to_dict
from mnas.spaces import Space
from mnas.spec import ModelSpec


@dataclass
class SearchSetup:
    """Everything that defines a run. `settings()` is what the run store keeps and checks on resume."""

    space: Space
    controller: str
    evaluator: Evaluator
    sources: Sequence[LatencySource]
    reward: Reward
    steps: int
    batch: int = 1
    seed: int = 0
    resolution: int = 224  # the latency side: specs are built, measured and exported at this resolution
    num_classes: int = 1000  # the deployable head (ImageNet, as in MnasNet); the evaluator swaps in the proxy's
    controller_options: dict = field(default_factory=dict)
    band: Band = field(default_factory=Band)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise UserError(f"--steps and --batch must be >= 1, got {self.steps} and {self.batch}")
        if len(self.sources) != self.reward.num_devices:
            raise UserError(f"{len(self.sources)} latency source(s) but {self.reward.num_devices} target(s): "
                            "give one --target-ms value per --device/--table")

    def settings(self) -> dict:
        return {"space": self.space.name, "controller": self.controller,
                "controller_options": dict(self.controller_options), "reward": self.reward.to_dict(),
                "latency": [{"name": s.name, **s.settings()} for s in self.sources],
                "evaluator": self.evaluator.settings(), "steps": self.steps, "batch": self.batch,
                "seed": self.seed, "resolution": self.resolution, "num_classes": self.num_classes,
                "band": self.band.to_dict()}

    def budget_warning(self) -> str | None:
        """One line when the budget ends before the controller's first update (the search is then random)."""
        controller = controllers.create(self.controller, self.space, self.seed, **self.controller_options)
        first = controller.first_update_after(self.batch)
        budget = self.steps * self.batch
        if first is None or first + self.batch <= budget:
            return None
        return (f"warning: controller {self.controller!r} first updates after {first} children and the budget is "
                f"{budget} ({self.steps} steps x {self.batch}): no child is drawn from a learned policy, so this "
                "is random search; raise --steps")

    def spec(self, sample: Sequence[int]) -> ModelSpec:
        return self.space.to_spec(sample, resolution=self.resolution, num_classes=self.num_classes)

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


# -- targets ----------------------------------------------------------------------------------------
def latencies(sources: Sequence[LatencySource], spec: ModelSpec) -> list[float]:
    return [float(s.latency_ms([spec])[0]) for s in sources]


def check_targets(space: Space, sources: Sequence[LatencySource], targets_ms: Sequence[float],
                  resolution: int, num_classes: int = 1000) -> list[float]:
    """Refuse a target below the smallest model of the space on its device; return those smallest latencies."""
    smallest = space.smallest_spec(resolution=resolution, num_classes=num_classes)
    floor = latencies(sources, smallest)
    for source, target, low in zip(sources, targets_ms, floor):
        if target < low:
            raise UserError(f"target {target:g} ms on {source.name} is below the smallest model of space "
                            f"{space.name!r} ({low:.3g} ms at {resolution}px); no architecture can meet it")
    return floor


# -- the loop ---------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    children: list[ChildRecord]
    resumed: bool
    new_children: int
    seconds: float


# The controller's full state (PPO: ~50k floats with Adam's moments, ~1 MB of JSON) is stored every
# SNAPSHOT_EVERY steps; in between a step stores its samples and the controller's random-generator state after
# the asks, and the state after its tell is replayed from the step's stored children (asks change nothing but
# the generator; tells are deterministic). A few hundred bytes per step instead of two full states.
SNAPSHOT_EVERY = 100


def asked_state(controller) -> dict:
    return {"rng": controller.rng.bit_generator.state}


def told_state(controller, step: int) -> dict:
    return controller.state_dict() if (step + 1) % SNAPSHOT_EVERY == 0 else {"replay": True}


def _set_asked(controller, state: dict) -> None:
    if "controller" in state:  # a full state (run stores written before replay)
        controller.load_state_dict(state)
    else:
        controller.rng.bit_generator.state = state["rng"]


def restored_controller(setup: SearchSetup, store: RunStore):
    """The controller as the store's last closed step left it, and (that step, its state); (controller, None)
    for a fresh run. Rebuilt from the last full snapshot by replaying the later steps' tells."""
    controller = controllers.create(setup.controller, setup.space, setup.seed, **setup.controller_options)
    rows = store.closed_step_states()
    if not rows:
        return controller, None
    start = 0
    for i, (_, _, told) in enumerate(rows):
        if "controller" in told:
            start = i + 1
            snapshot = told
    if start:
        controller.load_state_dict(snapshot)
    for step, asked, _ in rows[start:]:
        _set_asked(controller, asked)
        done = store.children(step)
        controller.tell([tuple(c.sample) for c in done], [c.reward for c in done])
    return controller, (rows[-1][0], controller.state_dict())


def run_search(setup: SearchSetup, store: RunStore, resume: bool = False, progress: bool = True,
               on_child: Callable[[ChildRecord], None] | None = None) -> SearchResult:
    """Run (or continue) the search until `setup.steps` steps are closed in `store`."""
    start = time.perf_counter()
    resumed = store.start_or_resume(setup.settings(), resume)
    controller, last = restored_controller(setup, store)
    next_step = 0 if last is None else last[0] + 1
    total = setup.steps * setup.batch
    done_before = store.count_children()
    new = 0
    bar = _Progress(total, done_before, enabled=progress)
    best = _Best.from_children(store.children())
    bar.update(0, best.describe())
    sampler = _band_sampler(setup, store)
    try:
        open_step = store.open_step()
        step = next_step
        while step < setup.steps:
            if open_step is not None and open_step.step == step:
                samples = [tuple(s) for s in open_step.samples]
                _set_asked(controller, open_step.asked_state)
                open_step = None
            else:
                samples, stats = sampler.ask(controller, setup.batch)
                for skip in sampler.take_skipped():
                    store.add_skipped(step, skip.sample, skip.latency_ms, skip.reason)
                store.cache_put("band", f"step{step}", stats.to_dict())
                store.begin_step(step, [list(s) for s in samples], asked_state(controller))
            have = {c.idx for c in store.children(step, state=None)}  # failed ones too: they are not retried
            todo = [(idx, sample) for idx, sample in enumerate(samples) if idx not in have]
            ready = _evaluate_batch(setup, todo)
            for idx, sample in todo:
                child = _evaluate_or_record_failure(setup, step, idx, sample, ready.get(idx))
                store.add_child(child)
                new += 1
                best.offer(child)
                bar.update(1, best.describe())
                if on_child is not None:
                    on_child(child)
            done = store.children(step)  # complete children only: a failure has no reward to learn from
            controller.tell([tuple(c.sample) for c in done], [c.reward for c in done])
            store.close_step(step, told_state(controller, step))
            step += 1
    finally:
        bar.close()
    return SearchResult(store.children(), resumed, new, time.perf_counter() - start)


def _band_sampler(setup: SearchSetup, store: RunStore) -> BandSampler:
    """The band filter, its online models fed with every latency this run has measured: bootstrap networks
    (cached by the sources, so a resumed run measures nothing again), trained children and skipped ones."""
    sampler = BandSampler(setup.sources, setup.reward.targets_ms, setup.band, setup.spec)
    if not (setup.band.enabled and sampler.online):
        return sampler
    stats = sampler.bootstrap(setup.space)
    if store.cache_get("band", "bootstrap") is None:
        store.cache_put("band", "bootstrap", stats.to_dict())
    names = setup.source_names
    for child in store.children():
        sampler.observe(setup.spec(child.sample), [child.latency_ms[n] for n in names])
    for skip in store.skipped():
        sampler.observe(setup.spec(skip["sample"]), [skip["latency_ms"][n] for n in names])
    return sampler


def band_report(setup: SearchSetup, store: RunStore, children: list[ChildRecord]) -> dict:
    """What the band filter did: candidates proposed/rejected, children skipped after measurement, seconds, and
    the share of trained children whose latency is inside the band."""
    total = FilterStats()
    for key in ["bootstrap"] + [f"step{c}" for c in range(setup.steps)]:
        stats = store.cache_get("band", key)
        if stats is not None:
            total.add(FilterStats(**stats))
    lat = np.array([[c.latency_ms[n] for n in setup.source_names] for c in children]).reshape(len(children), -1)
    band = setup.band if setup.band.enabled else Band()  # band off: still say how many fell in the default one
    inside = band.contains(lat, setup.reward.targets_ms) if children else np.zeros(0, bool)
    return {"band": setup.band.to_dict(), **total.to_dict(), "skipped_children": len(store.skipped()),
            "trained": len(children), "trained_in_band": int(inside.sum()),
            "share_in_band": float(inside.mean()) if children else 0.0}


def _evaluate_batch(setup: SearchSetup, todo: list[tuple[int, Sequence[int]]]) -> dict[int, EvalResult]:
    """A parallel evaluator (Ray) gets the step's missing children in one call, so they train at once, and a
    parallel latency source (a phone farm) measures them at once; its cache then serves the per-child calls.
    Children are still stored one by one as `evaluate_child` finishes them, so resume is unchanged."""
    if len(todo) < 2:
        return {}
    specs = [setup.spec(sample) for _, sample in todo]
    for source in setup.sources:
        if getattr(source, "parallel", False):
            source.latency_ms(specs)
    if not getattr(setup.evaluator, "parallel", False):
        return {}
    return dict(zip([idx for idx, _ in todo], setup.evaluator.evaluate(specs)))


def _evaluate_or_record_failure(setup: SearchSetup, step: int, idx: int, sample: Sequence[int],
                                result: EvalResult | None) -> ChildRecord:
    """A child whose training or measurement raises is recorded as failed, with its error, and the search goes
    on (Optuna's FAIL state). Bad input (UserError) and interrupts still stop the run."""
    t0 = time.perf_counter()
    try:
        return evaluate_child(setup, step, idx, sample, result)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one child must not end the search
        error = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        print(f"warning: child {step}.{idx} failed ({error}); recorded as failed, the search goes on",
              file=sys.stderr, flush=True)
        spec = setup.spec(sample)
        return ChildRecord(step=step, idx=idx, sample=list(sample), spec=spec_to_dict(spec), spec_key=spec_key(spec),
                           accuracy=0.0, latency_ms={}, measured={}, reward=0.0,
                           seconds={"total_s": time.perf_counter() - t0}, cached=False, state="failed", error=error)


def evaluate_child(setup: SearchSetup, step: int, idx: int, sample: Sequence[int],
                   result: EvalResult | None = None) -> ChildRecord:
    t0 = time.perf_counter()
    spec = setup.spec(sample)
    batched = result is not None
    result = result or setup.evaluator.evaluate([spec])[0]
    t1 = time.perf_counter()
    if batched:  # trained in a parallel batch: its own wall time, not this (near-zero) interval
        t0 = t1 - result.seconds
    lat, lat_seconds = [], {}
    for source in setup.sources:
        lat.append(float(source.latency_ms([spec])[0]))
        for k, v in getattr(source, "last_seconds", {}).items():
            lat_seconds[k] = lat_seconds.get(k, 0.0) + v
    t2 = time.perf_counter()
    reward = setup.reward(result.accuracy, lat)
    seconds = {"accuracy_s": t1 - t0, "latency_s": t2 - t1, "total_s": t2 - t0, **lat_seconds}
    if not result.cached:
        seconds.update({k: float(v) for k, v in result.detail.items() if k.endswith("_s")})
    return ChildRecord(step=step, idx=idx, sample=list(sample), spec=spec_to_dict(spec), spec_key=spec_key(spec),
                       accuracy=float(result.accuracy), latency_ms=dict(zip(setup.source_names, lat)),
                       measured={s.name: bool(s.measured) for s in setup.sources}, reward=float(reward),
                       seconds=seconds, cached=bool(result.cached),
                       detail={k: v for k, v in result.detail.items() if not k.endswith("_s")})


class _Best:
    """The best child so far (highest reward), for the progress line."""

    def __init__(self) -> None:
        self.child: ChildRecord | None = None

    @classmethod
    def from_children(cls, children: list[ChildRecord]) -> "_Best":
        best = cls()
        for c in children:
            best.offer(c)
        return best

    def offer(self, child: ChildRecord) -> None:
        if self.child is None or child.reward > self.child.reward:
            self.child = child

    def describe(self) -> str:
        if self.child is None:
            return "best: -"
        lat = ", ".join(f"{v:.2f}" for v in self.child.latency_ms.values())
        return f"best reward {self.child.reward:.4f} (acc {self.child.accuracy:.3f}, {lat} ms)"


class _Progress:
    """The search's progress bar on stderr (nothing when disabled)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self._progress = None
        if not enabled:
            return
        self._progress = progress_bar(label="search")
        self._progress.start()
        self._task = self._progress.add_task("", total=total, completed=completed)

    def update(self, advance: int, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, description=description)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# -- outputs ----------------------------------------------------------------------------------------
HISTORY_FIELDS = ["step", "idx", "name", "accuracy", "reward", "cached", "sample", "blocks"]


def write_history(path: Path, children: list[ChildRecord]) -> Path:
    names = list(children[0].latency_ms) if children else []
    second_keys = sorted({k for c in children for k in c.seconds})
    header = HISTORY_FIELDS[:6] + [f"latency_ms[{n}]" for n in names] + [f"measured[{n}]" for n in names] \
        + second_keys + HISTORY_FIELDS[6:]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for c in children:
            writer.writerow([c.step, c.idx, c.name, f"{c.accuracy:.6f}", f"{c.reward:.6f}", int(c.cached)]
                            + [f"{c.latency_ms[n]:.4f}" for n in names] + [int(c.measured[n]) for n in names]
                            + [f"{c.seconds.get(k, 0.0):.3f}" for k in second_keys]
                            + [".".join(map(str, c.sample)), " ".join(c.spec["blocks"])])
    return path


def summarize(setup: SearchSetup, children: list[ChildRecord], failed: int = 0) -> dict:
    """Best child within the targets, the Pareto front, counts (`failed`: children recorded as failed, not in
    `children`): pure, for the CLI and the outputs."""
    if not children:
        raise UserError("the run has no evaluated children yet")
    names = setup.source_names
    acc = [c.accuracy for c in children]
    lat = [[c.latency_ms[n] for n in names] for c in children]
    rewards = [c.reward for c in children]
    best_idx, within = best_within(acc, lat, setup.reward.targets_ms, rewards)
    best = children[best_idx]
    front = pareto_front(acc, lat)
    distinct = len({c.spec_key for c in children})
    return {
        "best": {"name": best.name, "step": best.step, "idx": best.idx, "accuracy": best.accuracy,
                 "latency_ms": best.latency_ms, "measured": best.measured, "reward": best.reward,
                 "within_target": within, "blocks": best.spec["blocks"], "sample": best.sample},
        "best_index": best_idx,
        "targets_ms": dict(zip(names, setup.reward.targets_ms)),
        "pareto": [{"name": children[i].name, "accuracy": children[i].accuracy,
                    "latency_ms": children[i].latency_ms} for i in front],
        "counts": {"children": len(children), "distinct": distinct, "failed": failed, "steps": setup.steps,
                   "batch": setup.batch,
                   "budget": setup.steps * setup.batch,
                   "within_target": int(np.sum(np.all(np.asarray(lat) <= np.asarray(setup.reward.targets_ms),
                                                      axis=1)))},
        "best_reward_so_far": [float(v) for v in np.maximum.accumulate(rewards)],
        "seconds": {"total_child_s": float(sum(c.seconds.get("total_s", 0.0) for c in children))},
    }


def write_outputs(setup: SearchSetup, store: RunStore, out_dir: str | Path, export: bool = True,
                  comparison=None) -> dict:
    """history.csv, pareto.png, best.json and best.tflite in `out_dir`; returns the summary with file paths.
    `comparison` (a `mnas.baselines.Comparison`): the reference training of the best child and the baselines at
    equal latency, in the summary, best.json and pareto.png."""
    from mnas.archfile import save_arch_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    children = store.children()
    summary = summarize(setup, children, failed=store.count_children("failed"))
    best = children[summary.pop("best_index")]
    summary["band"] = band_report(setup, store, children)
    references = None
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
        references = comparison.references(setup.source_names, best.latency_ms)
    files = {"run_store": str(store.path), "history": str(write_history(out / "history.csv", children))}
    best_spec = best.to_spec()
    info = {"proxy_accuracy": best.accuracy, "latency_ms": best.latency_ms, "reward": best.reward,
            "within_target": summary["best"]["within_target"], "targets_ms": summary["targets_ms"]}
    if comparison is not None:
        info["comparison"] = summary["comparison"]
    files["best_json"] = str(save_arch_file(best_spec, out / "best.json", search=info))
    acc = [c.accuracy for c in children]
    lat = [[c.latency_ms[n] for n in setup.source_names] for c in children]
    files["pareto_png"] = str(plot_front(
        out / "pareto.png", acc, lat, setup.source_names, setup.reward.targets_ms,
        [s.measured for s in setup.sources], references=references, best=children.index(best),
        band=setup.band.bounds(setup.reward.targets_ms) if setup.band.enabled else None,
        title=f"{setup.space.name} / {setup.controller} / {setup.reward.kind}: {len(children)} children"))
    if export:
        from mnas.export import export_tflite

        files["best_tflite"] = str(export_tflite(best_spec, out / "best.tflite"))
    summary["files"] = files
    return summary


def default_targets(sources: Sequence[LatencySource], resolution: int, factor: float = 0.8,
                    reference: str = "mnasnet-a1", num_classes: int = 1000) -> list[float]:
    """`factor` x the latency of the reference zoo model on each source (the MnasNet-style default target)."""
    from mnas import zoo

    spec = zoo.get(reference, resolution=resolution, num_classes=num_classes)
    try:
        return [factor * v for v in latencies(sources, spec)]
    except UserError as err:  # e.g. a table of another space does not cover the reference's ops
        raise UserError(f"no --target-ms given and the default ({factor} x {reference}) cannot be computed: "
                        f"{err}") from None
