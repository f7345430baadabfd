"""Few-shot latency predictors: a new device's latency from K whole-network runs and another device's table.

    CSV (sample, latency_ms) ──read_measurements──► Measurements
    networks ──key_counts──► KeyCounts: how many layers of each op key every network has
    import   solve_additive(counts, latency) -> one value per op key, and the residual that says whether the
             data is a per-op sum at all (exact when it is; the constant layers and the first layers of stages
             trade against each other, so that split is chosen closest to a MAC-proportional one)
    adapt    fit_adapted(prior, counts, latency) -> Calibration(kind="adapted"):
                 predicted = c + a * raw + sum over op factors d_f * T_f + sum over input sizes e_s * T_s
             raw = the prior table's sum; T_f (T_s) = the prior's op times summed over the network's layers
             whose op type has factor f (`latency.opkeys.op_factors`: kernel:5, ratio:6, groups:2.2, ...) or
             input size s. Relative least squares; a ridge pulls every d, e toward 0, i.e. toward the prior's
             relative op costs, its strength picked by leave-one-out cross-validation; the leave-one-out RMSPE
             is the error stored with the fit. A factor is shared by many op types, so ten networks say more
             about it than about one scale per op type.
    choose   choose_covering(features, K): greedy I-optimal design over the same per-factor / per-size features
             (prior op times, or MACs without a prior): each pick most lowers the fit's prediction variance
             averaged over the candidates, so K networks cover the op types and sizes, extremes and middle.

Pure numpy (and scipy.optimize for the non-negative split of undetermined entries). Works on any space; a
space that declares itself a sum over its choices (`layers_by_choice`) is counted without building a spec per
network.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from latency.opkeys import op_factors, op_key, op_type
from latency.predictor import Calibration, Predictor
from mnas.costs import layer_cost
from mnas.errors import UserError
from mnas.spec import Layer, SpaceLike

ADDITIVE_TOLERANCE = 1e-3  # relative RMS residual below which per-network data counts as a per-op sum
# Ridge strengths on the standardised extra columns; the largest leaves practically a line (slope and intercept).
RIDGES = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1e4)


# -- measurements --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurements:
    """Whole networks of one space measured on one device: one row per network."""

    samples: np.ndarray  # (n, choices) option indices
    latency_ms: np.ndarray  # (n,)
    source: str

    def __len__(self) -> int:
        return len(self.latency_ms)

    def encoded(self) -> list[str]:
        return [".".join(str(int(i)) for i in row) for row in self.samples]

    def subset(self, rows: Sequence[int]) -> "Measurements":
        rows = np.asarray(rows, dtype=int)
        return Measurements(self.samples[rows], self.latency_ms[rows], self.source)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, newline="", encoding="utf-8")


def read_measurements(path: str | Path, space: SpaceLike) -> Measurements:
    """The `sample, latency_ms` CSV (optionally .gz) of networks of `space`; UserError naming the first bad row."""
    path = Path(path)
    rows = _read_rows(path, ("sample", "latency_ms"))
    samples = _samples(rows, space, path)
    try:
        latency = np.array([float(row["latency_ms"]) for _, row in rows])
        ok = bool(np.all(np.isfinite(latency) & (latency > 0)))
    except (TypeError, ValueError):
        ok = False
    if not ok:  # name the first bad row
        latency = np.array([_latency(row["latency_ms"], f"{path} line {line}") for line, row in rows])
    return Measurements(samples, latency, str(path))


def read_samples(path: str | Path, space: SpaceLike) -> np.ndarray:
    """The `sample` column of a CSV (other columns ignored), as option indices."""
    path = Path(path)
    return _samples(_read_rows(path, ("sample",)), space, path)


def _samples(rows: list[tuple[int, dict]], space: SpaceLike, path: Path) -> np.ndarray:
    """Every row's sample parsed at once; row by row only to name the first bad one."""
    sizes = np.array([int(n) for n in space.num_options])
    try:
        samples = np.array([str(row["sample"]).strip().split(".") for _, row in rows], dtype=int)
        ok = samples.ndim == 2 and samples.shape[1] == len(sizes) and bool(np.all((samples >= 0) & (samples < sizes)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        samples = np.array([parse_sample(row["sample"], sizes, space.name, f"{path} line {line}")
                            for line, row in rows])
    return samples


def _read_rows(path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise UserError(f"CSV file not found: {path}")
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if not set(needed) <= set(columns):
                raise UserError(f"{path}: needs the column(s) {', '.join(needed)}; it has "
                                f"{', '.join(columns) or 'none'}")
            rows = [(i + 2, row) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


def parse_sample(text: str | None, sizes: Sequence[int], space_name: str, where: str) -> list[int]:
    """Option indices joined by '.', checked against the space's option counts."""
    try:
        indices = [int(t) for t in str(text).strip().split(".")]
    except ValueError:
        raise UserError(f"{where}: sample {text!r} is not integers joined by '.'") from None
    if len(indices) != len(sizes):
        raise UserError(f"{where}: a {space_name} sample has {len(sizes)} option indices, got {len(indices)} "
                        f"({text!r}: another space?)")
    for j, (index, n) in enumerate(zip(indices, sizes)):
        if not 0 <= index < n:
            raise UserError(f"{where}: option {index} of choice {j} is out of range 0..{n - 1} for {space_name}")
    return indices


def _latency(text: str | None, where: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise UserError(f"{where}: latency_ms {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{where}: latency_ms must be a positive number, got {text}")
    return value


# -- networks as op-key counts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyCounts:
    """counts[i, k]: how many layers with op key `keys[k]` network i has (`layers[k]` is one such layer)."""

    keys: list[str]
    layers: list[Layer]
    counts: np.ndarray

    def per_key(self, values: np.ndarray) -> np.ndarray:
        """Each network's sum of a per-key quantity."""
        return self.counts @ values

    def grouped(self, values: np.ndarray, labels: Sequence[object]) -> tuple[list[object], np.ndarray]:
        """(group labels, (n, groups) sums of `values` over each network's keys of each label)."""
        groups = list(dict.fromkeys(labels))
        index = {g: i for i, g in enumerate(groups)}
        member = np.zeros((len(labels), len(groups)))
        member[np.arange(len(labels)), [index[g] for g in labels]] = 1.0
        return groups, self.counts @ (values[:, None] * member)


def key_counts(space: SpaceLike, samples: np.ndarray, resolution: int) -> KeyCounts:
    """The op-key counts of every sample: per choice when the space is a sum over its choices, else per spec."""
    samples = np.asarray(samples, dtype=int)
    by_choice = getattr(space, "layers_by_choice", None)
    if callable(by_choice):
        return _counts_by_choice(by_choice(resolution), samples)
    keys: dict[str, int] = {}
    layers: list[Layer] = []
    rows: list[dict[int, int]] = []
    for sample in samples:
        row: dict[int, int] = {}
        for layer in space.to_spec([int(i) for i in sample], resolution=resolution).layers():
            k = keys.setdefault(op_key(layer), len(keys))
            if k == len(layers):
                layers.append(layer)
            row[k] = row.get(k, 0) + 1
        rows.append(row)
    counts = np.zeros((len(samples), len(keys)))
    for i, row in enumerate(rows):
        counts[i, list(row)] = list(row.values())
    return KeyCounts(list(keys), layers, counts)


def _counts_by_choice(structure: tuple, samples: np.ndarray) -> KeyCounts:
    fixed, per_choice = structure
    keys: dict[str, int] = {}
    layers: list[Layer] = []

    def column(layer: Layer) -> int:
        k = keys.setdefault(op_key(layer), len(keys))
        if k == len(layers):
            layers.append(layer)
        return k

    fixed_cols = [column(layer) for layer in fixed]
    option_cols = [[[column(layer) for layer in option] for option in options] for options in per_choice]
    counts = np.zeros((len(samples), len(keys)))
    for col in fixed_cols:
        counts[:, col] += 1
    rows = np.arange(len(samples))
    for j, options in enumerate(option_cols):
        for o, cols in enumerate(options):
            chosen = rows[samples[:, j] == o]
            for col in cols:
                counts[chosen, col] += 1
    return KeyCounts(list(keys), layers, counts)


# -- import: is the data a per-op sum? --------------------------------------------------------------------
@dataclass(frozen=True)
class AdditiveSolution:
    values: dict[str, float]  # op key -> ms
    residual_rel_rms: float  # of the per-op sum against the measurements
    spearman: float
    unknowns: int
    rank: int
    rows: int

    @property
    def additive(self) -> bool:
        """A per-op sum, shown by networks beyond those that fix the entries (with no more rows than the rank
        every data set fits exactly)."""
        return self.residual_rel_rms < ADDITIVE_TOLERANCE and self.rows > self.rank

    def predict(self, counts: KeyCounts) -> np.ndarray:
        return counts.per_key(np.array([self.values[k] for k in counts.keys]))


def solve_additive(counts: KeyCounts, latency_ms: np.ndarray) -> AdditiveSolution:
    """Least squares of the latencies on the op-key counts (one value per op key).

    Whole-network sums cannot tell some entries apart: the ops every network has, and the options of a position
    that always holds one of them (a stage's first layer: there a skip is a conv, never nothing), trade against
    each other. Those combinations are set closest to a reference fitted on the entries the data does fix: per
    op type, time proportional to MACs (`_reference`). Every network's sum is the least-squares one either way."""
    y = np.asarray(latency_ms, float)
    x = counts.counts
    gram = x.T @ x
    eigen, vectors = np.linalg.eigh(gram)
    null = vectors[:, eigen <= eigen.max() * 1e-10]  # (keys, undetermined directions)
    rank = len(eigen) - null.shape[1]
    values = np.linalg.lstsq(gram, x.T @ y, rcond=None)[0]  # the normal equations: keys x keys, not rows x keys
    if null.shape[1]:
        reference = _reference(counts, values, np.all(np.abs(null) < 1e-8, axis=1))
        values = _closest(values, null, reference)
    fit = counts.per_key(values)
    rel = float(np.sqrt(np.mean(((fit - y) / y) ** 2)))
    return AdditiveSolution(dict(zip(counts.keys, map(float, values))), rel, spearman(fit, y),
                            len(counts.keys), rank, len(y))


def _closest(values: np.ndarray, null: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """values + null @ z closest to `reference`, every entry >= 0 where that is possible."""
    from scipy.optimize import minimize

    z0 = np.linalg.lstsq(null, reference - values, rcond=None)[0]
    if np.all(values + null @ z0 >= 0):
        return values + null @ z0
    result = minimize(lambda z: float(np.sum((values + null @ z - reference) ** 2)), z0,
                      jac=lambda z: 2 * null.T @ (values + null @ z - reference), method="SLSQP",
                      constraints=[{"type": "ineq", "fun": lambda z: values + null @ z, "jac": lambda z: null}])
    return values + null @ (result.x if result.success else z0)


def _reference(counts: KeyCounts, values: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """ms per MAC of each op type, from the entries the data fixes (all of them when it fixes none of a type)."""
    macs = np.array([float(layer_cost(layer).macs) for layer in counts.layers])
    types = np.array([op_type(layer) for layer in counts.layers])

    def ratio(members: np.ndarray) -> float:
        return float(values[members] @ macs[members] / max(macs[members] @ macs[members], 1e-12))

    overall = ratio(fixed) if fixed.any() else ratio(np.ones(len(macs), bool))
    out = np.empty(len(macs))
    for t in set(types):
        members = types == t
        known = members & fixed
        out[members] = macs[members] * (ratio(known) if known.any() else overall)
    return out


# -- adapt: a prior table + K measured networks -> a calibration -------------------------------------------
@dataclass(frozen=True)
class PriorFeatures:
    """The regression inputs of `fit_adapted`, from a prior table, for a set of networks."""

    raw: np.ndarray  # (n,) the prior's sum (its overhead once)
    factors: list[str]
    by_factor: np.ndarray  # (n, factors)
    sizes: list[int]
    by_size: np.ndarray  # (n, sizes)

    def matrix(self) -> np.ndarray:
        return np.column_stack([self.by_factor, self.by_size])

    def subset(self, rows: Sequence[int]) -> "PriorFeatures":
        rows = np.asarray(rows, dtype=int)
        return PriorFeatures(self.raw[rows], self.factors, self.by_factor[rows], self.sizes, self.by_size[rows])


def prior_features(prior: Predictor, counts: KeyCounts) -> PriorFeatures:
    """Per-network sums of the prior's op times (without its invoke overhead), by op factor and by input size."""
    t = np.array([prior.op_ms(layer) for layer in counts.layers])  # MissingOpError names the first uncovered op
    factors, by_factor = _by_factor(counts, t)
    sizes, by_size = counts.grouped(t, [layer.in_size for layer in counts.layers])
    return PriorFeatures(prior.overhead_ms + counts.per_key(t), factors, by_factor, [int(s) for s in sizes], by_size)


def _by_factor(counts: KeyCounts, values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(factors, (n, factors) sums of `values` over each network's keys that have the factor)."""
    per_key = [op_factors(layer) for layer in counts.layers]
    factors = list(dict.fromkeys(f for fs in per_key for f in fs))
    index = {f: i for i, f in enumerate(factors)}
    member = np.zeros((len(per_key), len(factors)))
    for k, fs in enumerate(per_key):
        member[k, [index[f] for f in fs]] = 1.0
    # a factor every op of its kind has (`se:0` in a space without SE) is its kind again: keep the first
    _, first = np.unique(member, axis=1, return_index=True)
    keep = sorted(first)
    return [factors[i] for i in keep], counts.counts @ (values[:, None] * member[:, keep])


def mac_features(counts: KeyCounts) -> np.ndarray:
    """Per-network MACs by op factor and by input size: the coverage features when there is no prior table."""
    macs = np.array([float(layer_cost(layer).macs) for layer in counts.layers])
    _, by_factor = _by_factor(counts, macs)
    _, by_size = counts.grouped(macs, [layer.in_size for layer in counts.layers])
    return np.column_stack([by_factor, by_size])


@dataclass(frozen=True)
class AdaptedFit:
    calibration: Calibration
    model: str  # ratio | line | ridge
    ridge: float | None
    cv_rmspe: float | None  # leave-one-out RMSPE over the K networks (None for K = 1)

    def describe(self) -> str:
        cv = "n/a (one network)" if self.cv_rmspe is None else f"{self.cv_rmspe:.1%}"
        how = f"ridge {self.ridge:g}" if self.model == "ridge" else self.model
        return f"K={self.calibration.n}, {how}, leave-one-out RMSPE {cv}"


def fit_adapted(features: PriorFeatures, latency_ms: np.ndarray) -> AdaptedFit:
    """The calibration (module docstring) of a prior for a device measured on `latency_ms`."""
    y = np.asarray(latency_ms, float)
    k = len(y)
    if k == 1:
        return _result(np.array([y[0] / features.raw[0]]), features, [], "ratio", None, None, k)
    extra = features.matrix()
    varying = np.flatnonzero(_varying(extra))
    scale = np.sqrt(np.mean(extra[:, varying] ** 2, axis=0)) + 1e-12
    ones = np.ones((k, 1))
    candidates = [("ratio", None, features.raw[:, None])]
    if k >= 4 and varying.size:  # the largest ridge is practically the line, so the ridges stand alone
        full = np.column_stack([features.raw, extra[:, varying] / scale, ones])
        candidates = [("ridge", r, full) for r in RIDGES]
    elif k >= 3:
        candidates.append(("line", None, np.column_stack([features.raw, ones])))
    scored = []
    for model, ridge, design in candidates:
        cv = _loo_rmspe(design / y[:, None], ridge)
        coef = _solve(design / y[:, None], ridge)
        if coef[0] > 0 and math.isfinite(cv):
            scored.append((cv, model, ridge, coef))
    if not scored:  # every fit inverted the prior's order: keep the prior's, scaled
        coef = np.array([float(np.sum(y) / np.sum(features.raw))])
        return _result(coef, features, [], "ratio", None, _loo_rmspe(features.raw[:, None] / y[:, None], None), k)
    cv, model, ridge, coef = min(scored, key=lambda item: item[0])
    if model == "ridge":
        coef = np.concatenate([coef[:1], coef[1:-1] / scale, coef[-1:]])
    return _result(coef, features, list(varying) if model == "ridge" else [], model, ridge, cv, k)


def _varying(x: np.ndarray) -> np.ndarray:
    """Columns that differ between rows (a column every network has the same of is the intercept's)."""
    return np.std(x, axis=0) > 1e-9 * (np.abs(x).mean(axis=0) + 1e-12)


def _solve(design: np.ndarray, ridge: float | None) -> np.ndarray:
    """Least squares of design @ coef ~ 1 (rows already divided by the measurement); a ridge on every column but
    the first (the prior's sum) and, when there are extra columns, the last (the intercept)."""
    penalty = np.zeros(design.shape[1])
    if ridge is not None:
        penalty[1:-1] = ridge
    gram = design.T @ design + np.diag(penalty)
    return np.linalg.lstsq(gram, design.T @ np.ones(len(design)), rcond=None)[0]


def _loo_rmspe(design: np.ndarray, ridge: float | None) -> float:
    n = len(design)
    free = design.shape[1] if ridge is None else min(2, design.shape[1])  # unpenalized columns
    if n - 1 < free:
        return float("nan")
    errors = []
    for i in range(n):
        keep = np.arange(n) != i
        errors.append(design[i] @ _solve(design[keep], ridge) - 1.0)
    return float(np.sqrt(np.mean(np.square(errors))))


def _result(coef: np.ndarray, features: PriorFeatures, varying: list[int], model: str, ridge: float | None,
            cv: float | None, k: int) -> AdaptedFit:
    slope = float(coef[0])
    intercept = float(coef[-1]) if len(coef) > 1 else 0.0
    names = [("factor", f) for f in features.factors] + [("size", s) for s in features.sizes]
    extras = dict(zip((names[j] for j in varying), map(float, coef[1:-1]))) if varying else {}
    calibration = Calibration(slope, intercept, k, "adapted",
                              tuple(sorted((int(s), v) for (kind, s), v in extras.items() if kind == "size")),
                              0.0, tuple(sorted((str(f), v) for (kind, f), v in extras.items() if kind == "factor")))
    return AdaptedFit(calibration, model, ridge, None if cv is None or not math.isfinite(cv) else cv)


def predict_features(calibration: Calibration, features: PriorFeatures) -> np.ndarray:
    """What a predictor with the prior's entries and `calibration` predicts for these networks (vectorised)."""
    factors, sizes = dict(calibration.factor_slope), dict(calibration.size_slope)
    return (calibration.intercept_ms + calibration.slope * features.raw
            + features.by_factor @ np.array([factors.get(f, 0.0) for f in features.factors])
            + features.by_size @ np.array([sizes.get(s, 0.0) for s in features.sizes]))


# -- choose the K networks to measure ---------------------------------------------------------------------
def choose_covering(features: np.ndarray, k: int, *, ridge: float = 1.0) -> list[int]:
    """K rows of `features` (networks) to measure: a greedy I-optimal design for a linear fit with an intercept on
    the standardised features. Each pick is the network that most lowers the fit's prediction variance averaged
    over all rows (the population the predictor will be asked about), under a ridge prior of strength `ridge`.

    Per-op-factor and per-size features make that a choice that covers the op types: a network whose types the
    picks so far leave uncertain lowers the variance most. Unlike a D-optimal design it does not go only for the
    extremes, whose fit is worst in the middle where most networks are."""
    if k > len(features):
        raise UserError(f"cannot choose {k} networks out of {len(features)}")
    x = np.asarray(features, float)
    x = x[:, _varying(x)]
    z = np.column_stack([np.ones(len(x)), (x - x.mean(axis=0)) / x.std(axis=0)])
    population = z.T @ z / len(z)
    inverse = np.eye(z.shape[1]) / ridge  # posterior covariance of the coefficients (noise variance 1)
    chosen: list[int] = []
    for _ in range(k):
        spread = inverse @ population @ inverse
        gain = np.einsum("ij,jk,ik->i", z, spread, z) / (1.0 + np.einsum("ij,jk,ik->i", z, inverse, z))
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        v = inverse @ z[best]
        inverse -= np.outer(v, v) / (1.0 + z[best] @ v)
    return chosen


# -- accuracy figures --------------------------------------------------------------------------------------
def accuracy(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """Spearman rho, Kendall tau-b, share within +-10% (and +-5%), RMSPE and mean error of predictions."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    rel = predicted / measured - 1.0
    return {"n": int(measured.size), "spearman": spearman(predicted, measured),
            "kendall": kendall(predicted, measured),
            "within_10pct": float(np.mean(np.abs(rel) <= 0.10)), "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
            "rmspe": float(np.sqrt(np.mean(rel ** 2))), "mean_error": float(np.mean(rel))}


# Rank statistics in numpy: scipy.stats takes seconds to import, longer than a whole few-shot fit.
def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (as scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))[0, 1])


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b, ties corrected for as in scipy.stats.kendalltau; O(n log n) (Knight's algorithm)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    pairs = len(a) * (len(a) - 1) / 2.0

    def tied(*columns: np.ndarray) -> float:
        counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)[1]
        return float(np.sum(counts * (counts - 1) / 2.0))

    tied_a, tied_b, tied_both = tied(a), tied(b), tied(a, b)
    swaps = _inversions(_ranks(b).astype(int) if len(b) else np.zeros(0, int))
    return (pairs - tied_a - tied_b + tied_both - 2.0 * swaps) / np.sqrt((pairs - tied_a) * (pairs - tied_b))


def _inversions(ranks: np.ndarray) -> int:
    """Pairs i < j with ranks[i] > ranks[j] (a Fenwick tree over the ranks seen so far)."""
    size = int(ranks.max()) + 1 if len(ranks) else 1
    tree = [0] * (size + 1)
    total = 0
    for seen, r in enumerate(ranks.tolist()):
        i, at_most = r, 0
        while i > 0:
            at_most += tree[i]
            i -= i & -i
        total += seen - at_most
        i = r
        while i <= size:
            tree[i] += 1
            i += i & -i
    return total
