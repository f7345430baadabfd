"""Build a device's latency table: time every distinct op of a space (or of a list of models) on the device.

    ops  = distinct op keys of space.distinct_layers(resolution) (or of the specs' layers)
    for each op not yet in the table for this device:      (resumable: never re-measures a stored op)
        write a single-op .tflite (latency.tflite_writer: random weights, the converter's op sequence)
        device.profile(model) -> Profile                    (median, mean, std over the kept runs)
        store.put(...)  -- committed at once                (a killed build loses at most this op)

What a single-op model measures: the op itself plus one interpreter `invoke()` (dispatch, input/output
tensor handling, delegate entry). A whole model pays that once, not once per op, so the builder also
times an (almost) empty model (one 1x1 fully-connected op) and stores it under the key `overhead`; the
predictor subtracts it from every op and adds it back once (see `latency.predictor`).

Then whole models (random architectures of the space, or the given specs) are measured end to end, in
interleaved passes, and the calibration (`latency.predictor`: per-input-size slopes and weight bytes when there
are enough models, else a line) is fitted and stored with the table.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from devices.base import Device, Fingerprint, Profile, ProfileOptions
from latency.opkeys import op_key, overhead_key
from latency.predictor import (STATISTICS, Calibration, Predictor, calibration_point, fit_feature_calibration,
                               profile_value)
from latency.store import TableStore
from mnas.archfile import spec_to_dict
from mnas.errors import UserError
from mnas.progress import progress_bar
from mnas.spec import Layer, ModelSpec, SpaceLike

# Single ops are timed with fewer runs than whole models: there are many, most take well under a ms.
OP_OPTIONS = ProfileOptions(warmup_runs=3, runs=20, max_rounds=3)
MODEL_OPTIONS = ProfileOptions(warmup_runs=3, runs=20, max_rounds=3)
OVERHEAD_LAYER = Layer("classifier", 1, 1, 1)


def table_fingerprint_key(device: Device, threads: int) -> str:
    """Tables are keyed by device fingerprint and interpreter thread count (latency depends on both)."""
    return f"{device.fingerprint().key}:t{threads}"


def distinct_ops(layers: Iterable[Layer]) -> dict[str, Layer]:
    """op key -> one layer with that key, in first-seen order."""
    out: dict[str, Layer] = {}
    for layer in layers:
        out.setdefault(op_key(layer), layer)
    return out


def ops_of_space(space: SpaceLike, resolution: int) -> dict[str, Layer]:
    return distinct_ops(space.distinct_layers(resolution))


def ops_of_specs(specs: Iterable[ModelSpec]) -> dict[str, Layer]:
    return distinct_ops(layer for spec in specs for layer in spec.layers())


def write_op_model(layers: Sequence[Layer], path: Path) -> Path:
    """A timing model of `layers` (one op, or a whole net's layer list) written without the converter."""
    from latency.tflite_writer import write_layers

    return Path(write_layers(list(layers), path))


def write_spec_model(spec: ModelSpec, path: Path) -> Path:
    from latency.tflite_writer import write_tflite

    return Path(write_tflite(spec, path))


def entry_extra(profile: Profile, layer: Layer | None) -> dict:
    extra = {"p5_ms": profile.p5_ms, "p95_ms": profile.p95_ms, "rounds": profile.rounds,
             "bimodal": profile.bimodal, "noise": profile.noise, "warnings": list(profile.warnings),
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if layer is not None:
        extra["kind"] = layer.kind
    return extra


@dataclass
class BuildReport:
    fingerprint_key: str
    total_ops: int
    measured: int
    skipped: int
    seconds: float
    overhead_ms: float | None = None
    calibration: Calibration | None = None
    calibration_points: list[tuple[str, float, float]] = field(default_factory=list)  # (name, raw, measured)

    def to_dict(self) -> dict:
        return {"fingerprint_key": self.fingerprint_key, "total_ops": self.total_ops, "measured": self.measured,
                "skipped": self.skipped, "seconds": self.seconds, "overhead_ms": self.overhead_ms,
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "calibration_points": [{"name": n, "raw_ms": r, "measured_ms": m}
                                       for n, r, m in self.calibration_points]}


def plan_build(store: TableStore, fingerprint: Fingerprint, ops: dict[str, Layer], threads: int, statistic: str,
               description: dict | None) -> tuple[str, dict[str, Layer]]:
    """Record the device (and this build) in the table; return its table key and the ops still to measure
    (the overhead model first). Shared by every builder, so each can resume the others' tables."""
    if statistic not in STATISTICS:
        raise UserError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    fp_key = f"{fingerprint.key}:t{threads}"
    info = {**fingerprint.to_dict(), "key": fp_key, "device_key": fingerprint.key, "threads": threads}
    known = store.fingerprints().get(fp_key, {})
    if known.get("statistic") and known["statistic"] != statistic and store.op_keys(fp_key):
        raise UserError(f"{store.path} sums the {known['statistic']} for {fp_key}; rebuild into a new file to use "
                        f"{statistic}")
    info["statistic"] = statistic
    info["builds"] = known.get("builds", []) + ([description] if description else [])
    store.add_fingerprint(fp_key, info)
    done = store.op_keys(fp_key)
    todo = {k: layer for k, layer in ops.items() if k not in done}
    if overhead_key() not in done:
        todo = {overhead_key(): OVERHEAD_LAYER, **todo}
    return fp_key, todo


def build_table(device: Device, store: TableStore, ops: dict[str, Layer], *, threads: int = 1,
                op_options: ProfileOptions | None = None, progress: bool = True, statistic: str = "median",
                description: dict | None = None, on_op: Callable[[str, Profile], None] | None = None) -> BuildReport:
    """Measure every op of `ops` that the table lacks for this device; store each as it comes.

    Every entry keeps median, mean, std and (in `extra`) p5 / p95; `statistic` is the one predictions
    of this device's table sum, recorded once with the fingerprint (a resumed build must not change it).
    """
    start = time.perf_counter()
    options = op_options or OP_OPTIONS
    options = ProfileOptions(**{**options.__dict__, "threads": threads})
    fingerprint = device.fingerprint()
    fp_key, todo = plan_build(store, fingerprint, ops, threads, statistic, description)
    measured = 0
    with tempfile.TemporaryDirectory(prefix="mnas-ops-") as tmp, progress_bar(progress, eta=True) as bar:
        task = bar.add_task(f"ops on {fingerprint.model}", total=len(todo))
        for key, layer in todo.items():
            path = write_op_model([layer], Path(tmp) / f"op{measured}.tflite")
            profile = device.profile(path, options)
            store.put(fp_key, key, profile.runs, profile.mean_ms, profile.median_ms, profile.std_ms,
                      entry_extra(profile, None if key == overhead_key() else layer))
            os.unlink(path)
            measured += 1
            if on_op is not None:
                on_op(key, profile)
            bar.advance(task)
    entries = store.entries(fp_key)
    overhead = entries.get(overhead_key())
    skipped = sum(1 for k in ops if k not in todo)
    return BuildReport(fp_key, len(ops), measured, skipped, time.perf_counter() - start,
                       overhead.value(statistic) if overhead else None)


# Whole models measured for a calibration or a validation: each pass measures every model once, in a new
# shuffled order, and a model's figures are the median over passes. On a shared or throttling device slow
# spells last seconds to minutes; passes minutes apart spread them over all models instead of hitting a few.
MODEL_PASSES = 2


def measure_specs(device: Device, specs: Sequence[ModelSpec], *, threads: int = 1,
                  options: ProfileOptions | None = None, progress: bool = True,
                  label: str = "models", passes: int = 1, seed: int = 0) -> list[Profile]:
    """End-to-end profiles of whole models (fast TFLite writer; same op sequence as the converter).

    With `passes` > 1 every model is measured once per pass, each pass in its own random order (`seed`), and
    the passes are merged per model (`merge_profiles`).
    """
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    options = options or MODEL_OPTIONS
    options = ProfileOptions(**{**options.__dict__, "threads": threads})
    rng = np.random.default_rng(seed)
    per_model: list[list[Profile]] = [[] for _ in specs]
    with tempfile.TemporaryDirectory(prefix="mnas-models-") as tmp, progress_bar(progress, eta=True) as bar:
        task = bar.add_task(label, total=len(specs) * passes)
        for _ in range(passes):
            order = range(len(specs)) if passes == 1 else rng.permutation(len(specs))
            for i in order:  # written afresh each time (milliseconds): 100 models would fill /tmp otherwise
                path = write_spec_model(specs[i], Path(tmp) / f"model{i}.tflite")
                per_model[i].append(device.profile(path, options))
                os.unlink(path)
                bar.advance(task)
    return [merge_profiles(profiles) for profiles in per_model]


def merge_profiles(profiles: Sequence[Profile]) -> Profile:
    """One profile from several measurements of the same model: the median of each statistic over them."""
    if len(profiles) == 1:
        return profiles[0]
    first = profiles[0]

    def med(name: str) -> float:
        return float(np.median([getattr(p, name) for p in profiles]))

    medians = [p.median_ms for p in profiles]
    noise = {**first.noise, "passes": len(profiles), "pass_spread": float(max(medians) / min(medians) - 1.0)}
    return dataclasses.replace(
        first, median_ms=med("median_ms"), mean_ms=med("mean_ms"), std_ms=med("std_ms"), p5_ms=med("p5_ms"),
        p95_ms=med("p95_ms"), runs=sum(p.runs for p in profiles), rounds=sum(p.rounds for p in profiles),
        round_medians_ms=tuple(m for p in profiles for m in p.round_medians_ms),
        bimodal=any(p.bimodal for p in profiles), noise=noise,
        warnings=tuple(dict.fromkeys(w for p in profiles for w in p.warnings)))


def calibrate(device: Device, store: TableStore, fingerprint_key: str, specs: Sequence[ModelSpec], *,
              threads: int = 1, progress: bool = True,
              passes: int = MODEL_PASSES) -> tuple[Calibration, list[tuple[str, float, float]]]:
    """Measure `specs` end to end, fit the calibration (`latency.predictor.fit_feature_calibration`), store it."""
    Predictor.load(store.path, fingerprint_key=fingerprint_key).predict_ms(specs)  # refuses a missing op first
    profiles = measure_specs(device, specs, threads=threads, progress=progress, label="calibration models",
                             passes=passes, seed=1)
    return fit_stored_calibration(store, fingerprint_key, specs, profiles)


def fit_stored_calibration(store: TableStore, fingerprint_key: str, specs: Sequence[ModelSpec],
                           profiles: Sequence[Profile]) -> tuple[Calibration, list[tuple[str, float, float]]]:
    """Fit the calibration on whole-model profiles of `specs` and store it with the device's table."""
    predictor = Predictor.load(store.path, fingerprint_key=fingerprint_key)
    points = [calibration_point(predictor, spec, profile_value(profile, predictor.statistic))
              for spec, profile in zip(specs, profiles)]
    calibration = fit_feature_calibration(points)
    # The measured models are kept with the fit, so that a later `table validate` can re-measure some of
    # them and tell a change of the device's speed apart from prediction error (`latency.validate`).
    stored = [{"arch": spec_to_dict(s), "raw_ms": p.raw_ms, "measured_ms": p.measured_ms}
              for s, p in zip(specs, points)]
    store.set_calibration(fingerprint_key, calibration.to_dict() | {"points": stored})
    return calibration, [(s.name, p.raw_ms, p.measured_ms) for s, p in zip(specs, points)]


def random_specs(space: SpaceLike, count: int, resolution: int, seed: int) -> list[ModelSpec]:
    rng = np.random.default_rng(seed)
    return [space.to_spec(space.sample_random(rng), resolution=resolution)
            for _ in range(count)]
