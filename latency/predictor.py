"""Predict a network's latency on one device from its latency table.

Model (documented in docs/latency.md):

    t(layer)  = entry[op_key(layer)] - overhead                    (the op without its invoke overhead)
    term(l)   = (slope + size_slope[l.in_size]) * t(l) + ms_per_weight_mb * weight_mb(l)
    predicted = intercept + slope * overhead + sum over layers of term(l)

- `entry` is the median of the op's single-op model measured on the device (the published mean for
  imported phone tables).
- `overhead` is the time of invoking an (almost) empty model on the same device: every single-op
  measurement contains it once, a whole model contains it once too, so it is subtracted per op and added
  back once. Published tables have none (0).
- The calibration (`slope`, `intercept`, and for the `features` kind `size_slope`, `ms_per_weight_mb`) is
  fitted on whole-model measurements made when the table was built. A single-op model runs with its input
  and its weights hot in cache, invoke after invoke; inside a whole network each op reads what the previous
  op wrote and weights the previous ops evicted, so the op sum under-predicts, by an amount that depends on
  the activation size (a multiplier per input resolution, `size_slope`) and on the weight bytes streamed in
  (`ms_per_weight_mb`): the kernel-level correction, in the way of nn-Meter, learned from the measurements.
  With few calibration models the fit is a plain line (`slope * sum + intercept`). Imported published
  tables use the identity, so OFA's own figures come out exactly.

A layer whose key the table lacks is refused with an error naming the first such key in network order
(ProxylessNAS's code silently returns 200 ms instead).

Batch prediction: `predict_ms(specs)` caches per-layer terms; `predict_samples(space, samples)` compiles
the space once into per-block lookup arrays, indexed by the choices each block depends on (found by
probing the space, then checked against the plain per-spec path), so a batch of samples becomes a few
numpy gathers and sums. A space that declares itself a sum over its choices (`layers_by_choice`, the fbnet
space) compiles without probing, one slot per choice, checked the same way.

A few-shot fit for a device measured on a handful of whole networks (`latency.fewshot`) is a calibration of
kind `adapted`: `size_slope` plus `factor_slope`, an extra slope per op factor (`latency.opkeys.op_factors`)
that every layer with that factor gets.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from latency.opkeys import op_factors, op_key, overhead_key
from latency.store import TableStore
from mnas.costs import layer_cost
from mnas.errors import UserError
from mnas.spec import Layer, ModelSpec, SpaceLike

# Which statistic of the runs a table sums and a measurement is compared with. `median` suits a device
# that runs nothing else (a phone set up for benchmarking); `p5`, the 5th percentile, suits a shared
# host, where other processes preempt long invokes and inflate medians by up to several times while
# the fast tail stays put (see docs/latency.md). Published tables have means only.
STATISTICS = ("median", "p5", "mean")


def profile_value(profile, statistic: str) -> float:
    """The `statistic` of a `devices.base.Profile` (whole-model measurement)."""
    return {"median": profile.median_ms, "p5": profile.p5_ms, "mean": profile.mean_ms}[statistic]


@dataclass(frozen=True)
class Calibration:
    """predicted = intercept + slope * overhead + sum of per-layer terms (module docstring), fitted on `n`
    whole-model measurements. Without `size_slope` / `ms_per_weight_mb` it is the line slope * sum + intercept."""

    slope: float = 1.0
    intercept_ms: float = 0.0
    n: int = 0
    kind: str = "identity"  # identity | linear | offset | ratio | features | adapted
    size_slope: tuple[tuple[int, float], ...] = ()  # (layer input size, extra slope) pairs
    ms_per_weight_mb: float = 0.0
    factor_slope: tuple[tuple[str, float], ...] = ()  # (op factor, extra slope): a few-shot fit (latency.fewshot)

    def layer_term(self, t_ms: float, layer: Layer) -> float:
        slope = self.slope + dict(self.size_slope).get(layer.in_size, 0.0)
        if self.factor_slope:
            factors = dict(self.factor_slope)
            slope += sum(factors.get(f, 0.0) for f in op_factors(layer))
        return slope * t_ms + (self.ms_per_weight_mb * weight_mb(layer) if self.ms_per_weight_mb else 0.0)

    def constant_ms(self, overhead_ms: float) -> float:
        return self.intercept_ms + self.slope * overhead_ms

    def describe(self) -> str:
        line = f"{self.kind} (n={self.n}): predicted = {self.slope:.4f} * sum {self.intercept_ms:+.4f} ms"
        if self.kind == "features":
            # Sizes every network has once (stem, classifier) fold into the intercept: their extra is ~0.
            sizes = ", ".join(f"{size}px {extra:+.3f}" for size, extra in self.size_slope if abs(extra) >= 5e-4)
            line += f"; extra slope by input size: {sizes}; {self.ms_per_weight_mb:.4f} ms per MB of weights"
        if self.kind == "adapted":
            sizes = ", ".join(f"{size}px {extra:+.3f}" for size, extra in self.size_slope if abs(extra) >= 5e-4)
            factors = ", ".join(f"{name} {extra:+.3f}" for name, extra in self.factor_slope if abs(extra) >= 5e-4)
            line += f"; extra slope by input size: {sizes or 'none'}; by op factor: {factors or 'none'}"
        return line

    def to_dict(self) -> dict:
        out = {"slope": self.slope, "intercept_ms": self.intercept_ms, "n": self.n, "kind": self.kind}
        if self.kind in ("features", "adapted"):
            out.update(size_slope={str(k): v for k, v in self.size_slope}, ms_per_weight_mb=self.ms_per_weight_mb)
        if self.factor_slope:
            out["factor_slope"] = dict(self.factor_slope)
        return out

    @classmethod
    def from_dict(cls, data: dict | None) -> "Calibration":
        if not data:
            return cls()
        size_slope = tuple(sorted((int(k), float(v)) for k, v in (data.get("size_slope") or {}).items()))
        factor_slope = tuple(sorted((str(k), float(v)) for k, v in (data.get("factor_slope") or {}).items()))
        return cls(float(data["slope"]), float(data["intercept_ms"]), int(data.get("n", 0)),
                   str(data.get("kind", "linear")), size_slope, float(data.get("ms_per_weight_mb", 0.0)),
                   factor_slope)


def weight_mb(layer: Layer) -> float:
    """Float32 weight bytes of a layer, in MiB: what a whole network streams in cold and a single-op model
    keeps hot."""
    return layer_cost(layer).params * 4 / 2**20


def fit_calibration(raw_ms: Sequence[float], measured_ms: Sequence[float]) -> Calibration:
    """Least-squares `measured ~ slope * raw + intercept`; fewer points, fewer parameters.

    One point fits an offset only; a fit with a non-positive slope (too few or too similar models)
    falls back to a ratio through the origin, which is always monotone.
    """
    raw, measured = np.asarray(raw_ms, float), np.asarray(measured_ms, float)
    if raw.size == 0:
        return Calibration()
    if raw.size == 1:
        return Calibration(1.0, float(measured[0] - raw[0]), 1, "offset")
    if np.ptp(raw) > 1e-9:
        slope, intercept = np.polyfit(raw, measured, 1)
        if slope > 0:
            return Calibration(float(slope), float(intercept), int(raw.size), "linear")
    return Calibration(float(measured.sum() / raw.sum()), 0.0, int(raw.size), "ratio")


# Models per fitted parameter below which the feature calibration falls back to a line (it has one
# parameter per input size of the space, about 8 at 224 px, so about 40 models).
MODELS_PER_FEATURE = 4
# Ridge strengths tried on the standardised extra columns (chosen by cross-validation; the largest is
# practically the plain line): a strong ridge keeps a noisy fit close to slope * sum + intercept.
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1e3)
CV_FOLDS = 5


@dataclass(frozen=True)
class CalibrationPoint:
    """One whole-model measurement, reduced to what the calibration fit needs."""

    raw_ms: float  # overhead + sum of t over the layers
    t_by_size: dict[int, float]  # sum of t over the layers of each input size
    weight_mb: float
    measured_ms: float


def calibration_point(predictor: "Predictor", spec: ModelSpec, measured_ms: float = float("nan")) -> CalibrationPoint:
    by_size: dict[int, float] = {}
    for layer in spec.layers():
        by_size[layer.in_size] = by_size.get(layer.in_size, 0.0) + predictor.op_ms(layer)
    return CalibrationPoint(predictor.raw_ms(spec), by_size, sum(weight_mb(layer) for layer in spec.layers()),
                            float(measured_ms))


def fit_feature_calibration(points: Sequence[CalibrationPoint]) -> Calibration:
    """Relative least squares of measured over [raw, t by input size, weight MB, 1]; a line when too few points.

    Relative (each row weighted by 1 / measured): the goal is a percentage error, and large models would
    otherwise dominate. A ridge on the standardised extra columns, its strength chosen by `CV_FOLDS`-fold
    cross-validation among `RIDGES`, keeps the learned terms only as large as held-out models support.
    """
    sizes = sorted({size for p in points for size in p.t_by_size})
    if len(points) < MODELS_PER_FEATURE * (3 + len(sizes)):
        return fit_calibration([p.raw_ms for p in points], [p.measured_ms for p in points])
    raw = np.array([p.raw_ms for p in points])
    extra = np.array([[p.t_by_size.get(size, 0.0) for size in sizes] + [p.weight_mb] for p in points])
    measured = np.array([p.measured_ms for p in points])
    scale = np.sqrt(np.mean(extra ** 2, axis=0)) + 1e-12
    design = np.column_stack([raw, extra / scale, np.ones(len(points))]) / measured[:, None]
    folds = np.arange(len(points)) % CV_FOLDS
    ridge = min(RIDGES, key=lambda r: _cv_error(design, folds, r))
    coef = _ridge_solve(design, np.ones(len(points)), ridge)
    if coef[0] <= 0:
        return fit_calibration(raw, measured)
    extra_coef = coef[1:-1] / scale
    return Calibration(float(coef[0]), float(coef[-1]), len(points), "features",
                       tuple((size, float(c)) for size, c in zip(sizes, extra_coef[:-1])), float(extra_coef[-1]))


def _ridge_solve(design: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    """Least squares with `ridge` * rows on every column but the first (sum) and the last (intercept)."""
    penalty = np.full(design.shape[1], ridge * len(design))
    penalty[[0, -1]] = 0.0
    return np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ target)


def _cv_error(design: np.ndarray, folds: np.ndarray, ridge: float) -> float:
    """Mean squared relative error on held-out folds (rows of `design` are already divided by measured)."""
    errors = []
    for fold in np.unique(folds):
        held = folds == fold
        coef = _ridge_solve(design[~held], np.ones(int((~held).sum())), ridge)
        errors.append(design[held] @ coef - 1.0)
    return float(np.mean(np.concatenate(errors) ** 2))


class MissingOpError(UserError):
    """The table has no entry for an op of the architecture."""

    def __init__(self, key: str, table: str, fingerprint_key: str, published: bool = False) -> None:
        hint = ("the published table does not cover this op (other width, resolution or layer type)" if published
                else "build the table for this space and resolution with `mnas table build`")
        super().__init__(f"latency table {table} has no entry for op {key} (device {fingerprint_key}); {hint}")
        self.key = key


def choose_fingerprint(store: TableStore, fingerprint_key: str | None = None, device_key: str | None = None,
                       force: bool = False, resolution: int | None = None) -> str:
    """Which device's entries to use. A table measured on another device is refused unless `force`.

    Published tables are stored one fingerprint per input resolution (`...@224`, their values differ
    per resolution even for the same op key), picked by `resolution`; `fingerprint_key` may name the
    base key without `@R`.
    """
    counts = store.counts()
    known = sorted(counts)
    if not known:
        raise UserError(f"latency table {store.path} has no entries")
    if device_key is not None:
        if device_key in known:
            return device_key
        if not force:
            raise UserError(f"latency table {store.path} was measured on {', '.join(known)}, not on this device "
                            f"({device_key}); pass --force to use it anyway")
        print(f"warning: using latency table {store.path} measured on {', '.join(known)} for device "
              f"{device_key} (--force)", file=sys.stderr)
    candidates = known
    if fingerprint_key is not None:
        candidates = [k for k in known if k == fingerprint_key or k.startswith(fingerprint_key + "@")]
        if not candidates:
            raise UserError(f"latency table {store.path} has no device {fingerprint_key!r}; it has: "
                            f"{', '.join(known)}")
    if len(candidates) > 1 and resolution is not None:
        infos = store.fingerprints()
        at = [k for k in candidates if infos.get(k, {}).get("resolution") in (None, resolution)]
        if not at:
            have = sorted({infos.get(k, {}).get("resolution") for k in candidates} - {None})
            raise UserError(f"latency table {store.path} covers resolutions {', '.join(map(str, have))}, "
                            f"not {resolution}")
        candidates = at
    if len(candidates) > 1:
        raise UserError(f"latency table {store.path} holds several devices ({', '.join(candidates)}); choose one "
                        "with --fingerprint")
    return candidates[0]


class Predictor:
    """Latency predictions for one device fingerprint of one table (all in ms)."""

    def __init__(self, values: dict[str, float], fingerprint_key: str, calibration: Calibration = Calibration(),
                 overhead_ms: float = 0.0, source: str = "<memory>", info: dict | None = None,
                 statistic: str = "median") -> None:
        self.values = dict(values)
        self.statistic = statistic
        self.fingerprint_key = fingerprint_key
        self.calibration = calibration
        self.overhead_ms = float(overhead_ms)
        self.source = source
        self.info = info or {}
        self.published = self.info.get("kind") == "published"
        self._layer_cache: dict[Layer, float] = {}
        self._compiled: dict[tuple[int, int | None], "_CompiledSpace"] = {}

    @classmethod
    def load(cls, table_path: str | Path, fingerprint_key: str | None = None, force: bool = False,
             device_key: str | None = None, resolution: int | None = None) -> "Predictor":
        """The predictor of one device of a table file (`resolution` picks among per-resolution tables)."""
        with TableStore.open(table_path) as store:
            key = choose_fingerprint(store, fingerprint_key, device_key, force, resolution)
            entries = store.entries(key)
            info = store.fingerprints().get(key, {})
            calibration = Calibration.from_dict(store.calibration(key))
        statistic = info.get("statistic") or "median"
        overhead = entries.pop(overhead_key(), None)
        values = {k: e.value(statistic) for k, e in entries.items()}
        return cls(values, key, calibration, overhead.value(statistic) if overhead else 0.0, str(table_path), info,
                   statistic)

    # -- one architecture ---------------------------------------------------------------------------
    def op_ms(self, layer: Layer) -> float:
        """The layer's table entry without the invoke overhead (uncalibrated)."""
        key = op_key(layer)
        if key not in self.values:
            raise MissingOpError(key, self.source, self.fingerprint_key, self.published)
        return self.values[key] - self.overhead_ms

    def _layer_ms(self, layer: Layer) -> float:
        """The layer's calibrated term of the prediction (cached: a search asks for the same layers often)."""
        value = self._layer_cache.get(layer)
        if value is None:
            value = self._layer_cache[layer] = self.calibration.layer_term(self.op_ms(layer), layer)
        return value

    def raw_ms(self, spec: ModelSpec) -> float:
        """Sum of table entries (overhead counted once), before calibration."""
        return self.overhead_ms + sum(self.op_ms(layer) for layer in spec.layers())

    def predict(self, spec: ModelSpec) -> float:
        return self.calibration.constant_ms(self.overhead_ms) + sum(self._layer_ms(layer) for layer in spec.layers())

    def missing_keys(self, spec: ModelSpec) -> list[str]:
        """Distinct uncovered op keys, in network order."""
        return list(dict.fromkeys(k for k in (op_key(layer) for layer in spec.layers()) if k not in self.values))

    def breakdown(self, spec: ModelSpec) -> list[tuple[str, float]]:
        """(op key, table value in ms) per layer, in network order."""
        out = []
        for layer in spec.layers():
            key = op_key(layer)
            if key not in self.values:
                raise MissingOpError(key, self.source, self.fingerprint_key, self.published)
            out.append((key, self.values[key]))
        return out

    # -- batches ------------------------------------------------------------------------------------
    def predict_ms(self, specs: Iterable[ModelSpec]) -> np.ndarray:
        return np.fromiter((self.predict(spec) for spec in specs), dtype=float)

    def predict_samples(self, space: SpaceLike, samples: np.ndarray, resolution: int | None = None) -> np.ndarray:
        """Latency of every row of `samples` (one choice index per column) of a search space, vectorised."""
        samples = np.asarray(samples)
        if samples.ndim == 1:
            samples = samples[None, :]
        cache_key = (id(space), resolution)
        compiled = self._compiled.get(cache_key)
        if compiled is None or compiled.space is not space:  # an id can be reused after garbage collection
            compiled = self._compiled[cache_key] = _CompiledSpace.build(self, space, resolution)
        return compiled.predict(samples)


# -- search-space compilation ---------------------------------------------------------------------------
Grouper = Callable[[np.ndarray, ModelSpec], dict]


def space_api(space: SpaceLike, resolution: int | None = None) -> tuple[list[int], Callable[[np.ndarray], ModelSpec],
                                                                    Grouper]:
    """(options per choice, sample -> spec, layer grouper) of a search space (`mnas.spaces.Space`).

    The grouper assigns each layer to a slot: (stage, position in the stage) when the space exposes its
    stages (so a stage whose depth is a choice does not shift the slots of later stages), else the
    block index; the stem and the tail (head, pool, final, classifier) have slots of their own.
    """
    sizes = getattr(space, "num_options", None)
    if sizes is None and hasattr(space, "choices"):
        sizes = [len(c.options) for c in space.choices]
    to_spec = getattr(space, "to_spec", None)
    if sizes is None or not callable(to_spec):
        raise TypeError(f"{type(space).__name__} has no num_options / to_spec(sample)")
    sizes = [int(n) for n in sizes]

    def spec_of(sample: np.ndarray) -> ModelSpec:
        indices = [int(v) for v in sample]
        return to_spec(indices, resolution=resolution) if resolution else to_spec(indices)

    stages = getattr(space, "stages", None)
    stem_width = int(getattr(space, "params", {}).get("stem_filters", 32))

    def block_stages(sample: np.ndarray) -> list[int]:
        out, width, lo = [], stem_width, 0
        for si, stage in enumerate(stages):
            hi = lo + len(stage.choices)
            values = tuple(c.options[int(i)] for c, i in zip(stage.choices, sample[lo:hi]))
            out += [si] * len(stage.blocks(values, width))
            width, lo = stage.out_filters(values), hi
        return out

    def grouper(sample: np.ndarray, spec: ModelSpec) -> dict:
        owner = block_stages(sample) if stages else None
        groups: dict = {}
        for layer in spec.layers():
            if layer.block_index < 0:
                slot = ("stem",) if layer.kind == "stem" else ("tail",)
            elif owner is not None:
                stage = owner[layer.block_index]
                slot = (stage, sum(len(v) for k, v in groups.items() if k[0] == stage))
            else:
                slot = (layer.block_index, layer.repeat_index)
            groups.setdefault(slot, []).append(layer)
        return groups

    return sizes, spec_of, grouper


@dataclass
class _Slot:
    """One slot's lookup array over the choices it depends on; `filled` marks computed entries."""

    key: object
    cols: np.ndarray
    shape: tuple[int, ...]
    table: np.ndarray  # NaN where the latency table lacks an op of the slot
    filled: np.ndarray

    def index(self, samples: np.ndarray) -> np.ndarray:
        if self.cols.size == 0:
            return np.zeros(samples.shape[0], dtype=np.intp)
        return np.ravel_multi_index(tuple(samples[:, self.cols].T), self.shape)


@dataclass
class _CompiledSpace:
    """Per-slot lookup arrays: predicted = constant + sum over slots g of table[g][ravel(sample[deps[g]])],
    each entry the sum of the slot's calibrated layer terms.

    Small arrays are filled at once; large ones (a slot that depends on many choices, as in spaces with
    per-layer skips) are filled lazily from the first samples that reach each entry.
    """

    predictor: Predictor
    space: SpaceLike
    spec_of: Callable[[np.ndarray], ModelSpec]
    grouper: Grouper
    sizes: list[int]
    slots: list[_Slot]
    fast: bool

    EAGER_MAX = 4096  # entries per slot computed up front
    LAZY_MAX = 2_000_000  # beyond this a slot is too entangled: predict per spec

    @classmethod
    def build(cls, predictor: Predictor, space: SpaceLike, resolution: int | None, probes: int = 24,
              checks: int = 256, seed: int = 0) -> "_CompiledSpace":
        sizes, spec_of, grouper = space_api(space, resolution)
        rng = np.random.default_rng(seed)
        if callable(getattr(space, "layers_by_choice", None)):
            compiled = cls._from_choices(predictor, space, resolution, spec_of, grouper, sizes, rng)
            if compiled is not None:
                return compiled
        bases = [np.array([rng.integers(n) for n in sizes]) for _ in range(probes)]

        def keys_by_slot(sample: np.ndarray) -> dict:
            return {g: tuple(op_key(layer) for layer in ls_) for g, ls_ in grouper(sample, spec_of(sample)).items()}

        # 1. Which choices change which slot's layers, probed from several random bases so that a choice
        #    whose effect depends on another (an identity skip needs equal widths) is still caught.
        deps: dict = {}
        for base in bases:
            ref = keys_by_slot(base)
            for g in ref:
                deps.setdefault(g, set())
            for j, n in enumerate(sizes):
                for v in range(n):
                    if v == base[j]:
                        continue
                    alt = base.copy()
                    alt[j] = v
                    other = keys_by_slot(alt)
                    for g in set(ref) | set(other):
                        deps.setdefault(g, set())
                        if ref.get(g, ()) != other.get(g, ()):
                            deps[g].add(j)
        slots = []
        for g in sorted(deps, key=repr):
            cols = np.array(sorted(deps[g]), dtype=int)
            shape = tuple(sizes[j] for j in cols)
            size = int(np.prod(shape)) if shape else 1
            if size > cls.LAZY_MAX:
                print("warning: search space too entangled for lookup arrays; predicting per spec (slower)",
                      file=sys.stderr)
                return cls(predictor, space, spec_of, grouper, sizes, [], fast=False)
            slots.append(_Slot(g, cols, shape, np.full(size, np.nan), np.zeros(size, dtype=bool)))
        compiled = cls(predictor, space, spec_of, grouper, sizes, slots, fast=True)
        # 2. Fill the small arrays over every combination of their dependencies (the other choices held
        #    at a base sample).
        base = bases[0]
        for slot in slots:
            if slot.table.size > cls.EAGER_MAX:
                continue
            for flat, combo in enumerate(itertools.product(*[range(n) for n in slot.shape])):
                sample = base.copy()
                sample[slot.cols] = combo
                slot.table[flat] = _slot_sum(predictor, grouper(sample, spec_of(sample)).get(slot.key, []))
                slot.filled[flat] = True
        # 3. Check the decomposition against the plain per-spec path; fall back if it does not hold.
        compiled._sum(np.array([[rng.integers(n) for n in sizes] for _ in range(checks)]))  # lazy entries
        check = np.array([[rng.integers(n) for n in sizes] for _ in range(checks)])
        fast = compiled._sum(check)
        slow = np.array([_predict_or_nan(predictor, spec_of(s)) for s in check])
        if not np.allclose(fast, slow, rtol=1e-9, atol=1e-9, equal_nan=True):
            print("warning: search space does not decompose per layer slot; predicting per spec (slower)",
                  file=sys.stderr)
            compiled.fast = False
        return compiled

    @classmethod
    def _from_choices(cls, predictor: Predictor, space: SpaceLike, resolution: int | None, spec_of, grouper,
                      sizes: list[int], rng: np.random.Generator, checks: int = 32) -> "_CompiledSpace | None":
        """A space that says it is a sum over its choices (`layers_by_choice`: the fixed layers, and the layers
        each option of each choice adds, whatever the other choices are) compiles without probing: one slot per
        choice. The claim is checked against the per-spec path on `checks` random samples."""
        fixed, per_choice = space.layers_by_choice(resolution)  # type: ignore[attr-defined]
        slots = [_Slot(("fixed",), np.zeros(0, dtype=int), (), np.array([_slot_sum(predictor, list(fixed))]),
                       np.ones(1, dtype=bool))]
        for j, options in enumerate(per_choice):
            table = np.array([_slot_sum(predictor, list(layers)) for layers in options])
            slots.append(_Slot(("choice", j), np.array([j]), (len(options),), table, np.ones(len(options), bool)))
        compiled = cls(predictor, space, spec_of, grouper, sizes, slots, fast=True)
        check = np.array([[rng.integers(n) for n in sizes] for _ in range(checks)])
        slow = np.array([_predict_or_nan(predictor, spec_of(s)) for s in check])
        if np.allclose(compiled._sum(check), slow, rtol=1e-9, atol=1e-9, equal_nan=True):
            return compiled
        print("warning: the space's per-choice layers do not add up to its networks; probing it instead",
              file=sys.stderr)
        return None

    def _fill(self, samples: np.ndarray, indices: list[np.ndarray]) -> None:
        need = np.zeros(samples.shape[0], dtype=bool)
        for slot, idx in zip(self.slots, indices):
            need |= ~slot.filled[idx]
        for row in np.flatnonzero(need):
            sample = samples[row]
            groups = self.grouper(sample, self.spec_of(sample))
            for slot, idx in zip(self.slots, indices):
                if not slot.filled[idx[row]]:
                    slot.table[idx[row]] = _slot_sum(self.predictor, groups.get(slot.key, []))
                    slot.filled[idx[row]] = True

    def _sum(self, samples: np.ndarray) -> np.ndarray:
        indices = [slot.index(samples) for slot in self.slots]
        self._fill(samples, indices)
        total = np.full(samples.shape[0], self.predictor.calibration.constant_ms(self.predictor.overhead_ms))
        for slot, idx in zip(self.slots, indices):
            total += slot.table[idx]
        return total

    def predict(self, samples: np.ndarray) -> np.ndarray:
        if samples.shape[1] != len(self.sizes):
            raise UserError(f"samples have {samples.shape[1]} choices; the space has {len(self.sizes)}")
        if not self.fast:
            return self.predictor.predict_ms(self.spec_of(s) for s in samples)
        raw = self._sum(samples)
        bad = np.flatnonzero(np.isnan(raw))
        if bad.size:
            self.predictor.predict(self.spec_of(samples[bad[0]]))  # raises, naming the first missing key
        return raw


def _slot_sum(predictor: Predictor, layers: list[Layer]) -> float:
    try:
        return sum(predictor._layer_ms(layer) for layer in layers)
    except MissingOpError:
        return float("nan")


def _predict_or_nan(predictor: Predictor, spec: ModelSpec) -> float:
    try:
        return predictor.predict(spec)
    except MissingOpError:
        return float("nan")
