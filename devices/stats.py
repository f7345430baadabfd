"""Latency statistics (pure numpy): summaries, CI of the median, stopping rule, bimodality, cool-down.

A measurement is a list of *rounds*; each round is one call of the benchmark (warm-up, then N timed runs).
Between rounds the machine may change state (frequency, scheduler, other load), so variation *between*
rounds is measured separately from variation *within* a round, and never hidden:

* `relative_ci(rounds)`: half-width of the 95% CI of the median, relative to the median. It is the larger of
  - within rounds: the distribution-free order-statistic CI of the pooled median (binomial, exact), or,
    when a device reports only per-round summaries (`benchmark_model` prints no per-run times), the normal
    approximation 1.96 * 1.2533 * sigma / sqrt(N) with a robust sigma = (p95 - p5) / 3.29;
  - between rounds (two rounds or more): Student-t interval of the mean of the round medians.
* `measure_rounds`: repeat rounds until `relative_ci <= target_rel_ci` (default +-2%), at least
  `MIN_ROUNDS` (2) rounds so that between-round drift can be seen, at most `max_rounds`.
* `find_modes` (bimodality), gap-based two-cluster split of sorted values: split at the widest relative gap
  whose both sides hold at least `min_share` of the values; call it bimodal when
  (a) the cluster medians differ by >= `min_separation`, (b) the gap itself is >= `min_gap`, and
  (c) the gap is at least `spread_factor` times the wider cluster's own relative spread (p90 - p10) / median,
  so a steady drift (6, 7, 8, 9, 10 ms) is not mistaken for two modes.
  Applied to round medians (`ROUNDS_RULE`: 15% separation, 8% gap, 20% share) and, when per-run times exist,
  to the pooled runs (`RUNS_RULE`: same with 10% share, so a few outlier runs are not a mode).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

MIN_ROUNDS = 2
Z975 = 1.959964
# sqrt(pi/2): asymptotic standard error of the sample median is 1.2533 * sigma / sqrt(n) for normal data.
MEDIAN_SE_FACTOR = 1.2533
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile; conservative (next smaller tabulated df) between table entries."""
    if df < 1:
        return math.inf
    keys = [k for k in _T975 if k <= df]
    return _T975[max(keys)] if df <= 120 else Z975


@dataclass(frozen=True)
class Round:
    """One benchmark call: its summary, plus per-run times when the device gives them (the host does)."""

    count: int
    median: float
    mean: float
    std: float
    p5: float = math.nan
    p95: float = math.nan
    times: tuple[float, ...] = ()

    @classmethod
    def from_times(cls, times: Sequence[float]) -> "Round":
        values = np.asarray(times, dtype=float)
        if values.size == 0:
            raise ValueError("a round needs at least one run")
        return cls(count=int(values.size), median=float(np.median(values)), mean=float(values.mean()),
                   std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
                   p5=float(np.percentile(values, 5)), p95=float(np.percentile(values, 95)),
                   times=tuple(float(v) for v in values))


@dataclass(frozen=True)
class BimodalRule:
    min_separation: float = 0.15  # high-cluster median / low-cluster median - 1
    min_gap: float = 0.08  # smallest high value / largest low value - 1
    min_share: float = 0.2  # each cluster holds at least this fraction of the values (and >= 1 value)
    spread_factor: float = 1.0  # gap >= factor * the wider cluster's (p90 - p10) / median


ROUNDS_RULE = BimodalRule()
RUNS_RULE = BimodalRule(min_share=0.1)


@dataclass(frozen=True)
class Modes:
    """Two clusters found in a set of latencies."""

    low: float  # median of the low cluster
    high: float
    low_count: int
    high_count: int
    separation: float  # high / low - 1
    gap: float  # relative width of the empty gap between the clusters

    def describe(self, what: str, unit: str = "ms") -> str:
        total = self.low_count + self.high_count
        return (f"bimodal {what}: {self.low_count} of {total} near {self.low:.3g} {unit}, "
                f"{self.high_count} near {self.high:.3g} {unit} (+{self.separation:.0%}); "
                "the machine switched state, so the pooled median mixes two modes")


def _relative_spread(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    p10, p90 = np.percentile(values, [10, 90])
    return float((p90 - p10) / np.median(values))


def find_modes(values: Sequence[float], rule: BimodalRule = ROUNDS_RULE) -> Modes | None:
    """Two well-separated clusters in `values` (all > 0), or None. See the module docstring."""
    v = np.sort(np.asarray(values, dtype=float))
    n = v.size
    if n < 2 or v[0] <= 0:
        return None
    smallest = max(1, math.ceil(rule.min_share * n))
    if 2 * smallest > n:
        return None
    gaps = np.log(v[1:] / v[:-1])  # gaps[i] lies between v[i] and v[i + 1]
    candidates = np.arange(smallest - 1, n - smallest)
    split = int(candidates[np.argmax(gaps[candidates])])
    low, high = v[: split + 1], v[split + 1:]
    low_med, high_med = float(np.median(low)), float(np.median(high))
    separation = high_med / low_med - 1.0
    gap = float(high[0] / low[-1] - 1.0)
    spread = max(_relative_spread(low), _relative_spread(high))
    if separation < rule.min_separation or gap < rule.min_gap or gap < rule.spread_factor * spread:
        return None
    return Modes(low=low_med, high=high_med, low_count=int(low.size), high_count=int(high.size),
                 separation=separation, gap=gap)


def median_ci(times: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median: order statistics (x_(l), x_(n+1-l)) with binomial coverage.

    For n < 6 no pair reaches 95%; the (min, max) pair is returned (coverage 1 - 2 / 2^n).
    """
    x = np.sort(np.asarray(times, dtype=float))
    n = x.size
    if n == 0:
        raise ValueError("no times")
    if n == 1:
        return float(x[0]), float(x[0])
    i = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1)]) - np.array([math.lgamma(k + 1) + math.lgamma(n - k + 1) for k in i])
               - n * math.log(2.0))
    cdf = np.cumsum(np.exp(log_pmf))
    # Coverage of (x_(j), x_(n+1-j)) (1-based) is P(j <= B <= n - j) = cdf[n - j] - cdf[j - 1].
    best = 1
    for j in range(1, n // 2 + 1):
        if cdf[n - j] - cdf[j - 1] >= confidence:
            best = j
        else:
            break
    return float(x[best - 1]), float(x[n - best])


def _robust_sigma(r: Round) -> float:
    if math.isfinite(r.p5) and math.isfinite(r.p95) and r.p95 > r.p5:
        return min(r.std, (r.p95 - r.p5) / 3.29) if r.std > 0 else (r.p95 - r.p5) / 3.29
    return r.std


def pooled_median(rounds: Sequence[Round]) -> float:
    if all(r.times for r in rounds):
        return float(np.median(np.concatenate([r.times for r in rounds])))
    return float(np.median([r.median for r in rounds]))


def within_rel_ci(rounds: Sequence[Round]) -> float:
    center = pooled_median(rounds)
    if all(r.times for r in rounds):
        lo, hi = median_ci(np.concatenate([r.times for r in rounds]))
        return max(center - lo, hi - center) / center
    total = sum(r.count for r in rounds)
    variance = sum(r.count * _robust_sigma(r) ** 2 for r in rounds) / max(total, 1)
    return Z975 * MEDIAN_SE_FACTOR * math.sqrt(variance) / math.sqrt(max(total, 1)) / center


def between_rel_ci(rounds: Sequence[Round]) -> float:
    """t-interval half-width of the mean of the round medians, relative; 0 for a single round."""
    k = len(rounds)
    if k < 2:
        return 0.0
    medians = np.array([r.median for r in rounds])
    return t975(k - 1) * float(medians.std(ddof=1)) / math.sqrt(k) / pooled_median(rounds)


def relative_ci(rounds: Sequence[Round]) -> float:
    if pooled_median(rounds) <= 0:
        return math.inf  # a median printed as 0 us (a sub-us op, integer-us output) has no relative precision
    return max(within_rel_ci(rounds), between_rel_ci(rounds))


def should_stop(rounds: Sequence[Round], target_rel_ci: float, max_rounds: int, min_rounds: int = MIN_ROUNDS) -> bool:
    if len(rounds) >= max_rounds:
        return True
    return len(rounds) >= min(min_rounds, max_rounds) and relative_ci(rounds) <= target_rel_ci


def measure_rounds(run_round: Callable[[int], Round], *, max_rounds: int, target_rel_ci: float,
                   min_rounds: int = MIN_ROUNDS, before_round: Callable[[int], None] | None = None) -> list[Round]:
    """Call `run_round(i)` until the median is stable or `max_rounds` is reached (the stopping rule)."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    rounds: list[Round] = []
    while True:
        if before_round is not None:
            before_round(len(rounds))
        rounds.append(run_round(len(rounds)))
        if should_stop(rounds, target_rel_ci, max_rounds, min_rounds):
            return rounds


@dataclass(frozen=True)
class Summary:
    """Whole-measurement statistics, in the unit of the input times."""

    median: float
    mean: float
    std: float
    p5: float
    p95: float
    runs: int
    round_medians: tuple[float, ...]
    rel_ci95: float
    cv: float  # std / mean over all runs
    rounds_cv: float  # std / mean of the round medians (0 for one round)
    stable: bool  # rel_ci95 <= target after >= MIN_ROUNDS rounds (or the only allowed round)
    modes: Modes | None
    warnings: tuple[str, ...] = ()

    @property
    def bimodal(self) -> bool:
        return self.modes is not None

    def noise(self, target_rel_ci: float) -> dict:
        out = {"cv": self.cv, "rel_ci95": self.rel_ci95, "rounds_cv": self.rounds_cv,
               "target_rel_ci": target_rel_ci, "stable": self.stable}
        if self.modes is not None:
            out["modes"] = [self.modes.low, self.modes.high]
            out["mode_counts"] = [self.modes.low_count, self.modes.high_count]
        return out


def summarize(rounds: Sequence[Round], *, target_rel_ci: float = 0.02, max_rounds: int | None = None,
              unit: str = "ms") -> Summary:
    if not rounds:
        raise ValueError("no rounds to summarize")
    k = len(rounds)
    medians = np.array([r.median for r in rounds])
    if all(r.times for r in rounds):
        times = np.concatenate([r.times for r in rounds])
        median, mean = float(np.median(times)), float(times.mean())
        std = float(times.std(ddof=1)) if times.size > 1 else 0.0
        p5, p95 = (float(v) for v in np.percentile(times, [5, 95]))
        runs = int(times.size)
    else:
        # Only per-round summaries (benchmark_model): median of medians, law of total variance.
        counts = np.array([max(r.count, 1) for r in rounds], dtype=float)
        means = np.array([r.mean for r in rounds])
        runs = int(sum(r.count for r in rounds))
        median = float(np.median(medians))
        mean = float(np.average(means, weights=counts))
        stds = np.array([r.std for r in rounds])
        std = float(math.sqrt(np.average(stds ** 2 + (means - mean) ** 2, weights=counts)))
        p5s = [r.p5 for r in rounds if math.isfinite(r.p5)]
        p95s = [r.p95 for r in rounds if math.isfinite(r.p95)]
        p5 = float(np.median(p5s)) if p5s else math.nan
        p95 = float(np.median(p95s)) if p95s else math.nan
        times = None
    rel_ci = relative_ci(rounds)
    allowed = max_rounds if max_rounds is not None else k
    stable = rel_ci <= target_rel_ci and k >= min(MIN_ROUNDS, allowed)
    # A model faster than the clock resolution (the 0 us overhead model on the emulated phone) has no CV.
    rounds_cv = float(medians.std(ddof=1) / medians.mean()) if k > 1 and medians.mean() > 0 else 0.0

    warnings: list[str] = []
    modes = find_modes(medians, ROUNDS_RULE) if k >= 2 else None
    if modes is not None:
        warnings.append(modes.describe("rounds", unit))
    elif times is not None:
        modes = find_modes(times, RUNS_RULE)
        if modes is not None:
            warnings.append(modes.describe("runs", unit))
    if not stable:
        warnings.append(f"median not stable: 95% CI +-{rel_ci:.1%} > target +-{target_rel_ci:.1%} after {k} "
                        f"round(s) (round medians CV {rounds_cv:.1%})")
    if math.isnan(p5):
        warnings.append("this benchmark_model build prints no percentiles: p5/p95 unavailable")
    return Summary(median=median, mean=mean, std=std, p5=p5, p95=p95, runs=runs,
                   round_medians=tuple(float(m) for m in medians), rel_ci95=rel_ci,
                   cv=std / mean if mean else 0.0, rounds_cv=rounds_cv, stable=stable, modes=modes,
                   warnings=tuple(warnings))


@dataclass(frozen=True)
class Cooldown:
    waited_s: float
    start_c: float | None
    end_c: float | None
    timed_out: bool


def wait_for_cooldown(read_max_temp_c: Callable[[], float | None], threshold_c: float, max_wait_s: float, *,
                      poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> Cooldown:
    """Wait while the hottest thermal zone is above `threshold_c`, at most `max_wait_s` (no zone: no wait)."""
    start = clock()
    first = temp = read_max_temp_c()
    while temp is not None and temp > threshold_c:
        if clock() - start >= max_wait_s:
            return Cooldown(clock() - start, first, temp, timed_out=True)
        sleep(poll_s)
        temp = read_max_temp_c()
    return Cooldown(clock() - start, first, temp, timed_out=False)


class CooldownGuard:
    """`before_round` for `measure_rounds`: waits out a hot device before each round and keeps the total wait
    and a warning per round that was still hot, for the profile's noise and warnings."""

    def __init__(self, read_max_temp_c: Callable[[], float | None], threshold_c: float, max_wait_s: float) -> None:
        self.read_max_temp_c, self.threshold_c, self.max_wait_s = read_max_temp_c, threshold_c, max_wait_s
        self.waited_s = 0.0
        self.warnings: list[str] = []

    def __call__(self, index: int) -> None:
        cooldown = wait_for_cooldown(self.read_max_temp_c, self.threshold_c, self.max_wait_s)
        self.waited_s += cooldown.waited_s
        if cooldown.timed_out:
            self.warnings.append(f"round {index + 1}: still {cooldown.end_c:.1f} C after "
                                 f"{cooldown.waited_s:.0f} s cool-down (threshold {self.threshold_c} C)")

    def add_to(self, fields: dict) -> dict:
        """Profile fields (from `to_profile_fields`) with the wait and the hot-round warnings added."""
        fields["noise"]["cooldown_s"] = self.waited_s
        fields["warnings"] = tuple(fields["warnings"]) + tuple(self.warnings)
        return fields


def to_profile_fields(summary: Summary, target_rel_ci: float) -> dict:
    """The `devices.base.Profile` fields a summary (in ms) fills."""
    return {"median_ms": summary.median, "mean_ms": summary.mean, "std_ms": summary.std, "p5_ms": summary.p5,
            "p95_ms": summary.p95, "runs": summary.runs, "rounds": len(summary.round_medians),
            "round_medians_ms": summary.round_medians, "bimodal": summary.bimodal,
            "noise": summary.noise(target_rel_ci), "warnings": summary.warnings}
