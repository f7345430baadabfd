"""Spend training only where the target can be met: a latency band around each target, a cheap latency model
per source, and a sampler that draws the controller's candidates until one is inside the band.

    band = Band(0.85, 1.0)                          # [0.85 T, 1.0 T] on every device
    sampler = BandSampler(setup.sources, targets, band, store)
    samples, stats = sampler.ask(controller, setup.spec, n=4, step=0)

Per candidate, in order of cost:
1. predicted: a table source predicts exactly what the search will use as LAT; a device source gets an online
   model (relative-error non-negative least squares on six features of the spec: dense MACs, depthwise MACs,
   activation traffic, layer and SE counts, a constant) fitted to every latency measured so far in this run,
   starting from a few bootstrap networks spread over the space's cheap end. Microseconds, no TF.
2. measured (device sources only): a candidate predicted inside the band is measured (the measurement is
   cached, so the child reuses it as its LAT); outside the band it is recorded as skipped (run store table
   `skipped`), the model learns from it, and sampling goes on. Nothing measured is lost.
Only accepted candidates are trained and told to the controller. What the policy is updated with: the real
rewards of in-band children only, so REINFORCE/PPO with a mean baseline follow the gradient of the reward
expected under the policy *conditioned on the band* (rejection sampling from pi restricted to the band; the
normaliser's gradient is E_q[grad log pi], which the baseline absorbs). Rejected candidates are never told:
no invented reward enters the gradient. Evolution's rejected mutations are simply re-drawn (OFA's constrained
evolution).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from mnas.costs import count_macs, layer_cost
from mnas.errors import UserError
from mnas.spaces import Sample, Space
from mnas.spec import ModelSpec

DEFAULT_BAND = (0.85, 1.0)
CHUNK = 64  # candidates asked of the controller at a time
MAX_CANDIDATES = 20_000  # per child: past that, the candidate predicted closest to the band is taken
MAX_MEASURED_MISSES = 12  # per child: measured candidates outside the band before the closest one is taken
BOOTSTRAP = 12  # networks measured before the first step for a device's online model
MIN_FIT = 4  # observations before the online model predicts (before: every candidate is measured)


@dataclass(frozen=True)
class Band:
    """[low x T, high x T] on every device; `off` trains whatever the controller asks for."""

    low: float = DEFAULT_BAND[0]
    high: float = DEFAULT_BAND[1]
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.enabled and not 0.0 <= self.low < self.high:
            raise UserError(f"--band must be LOW,HIGH fractions of the target with 0 <= LOW < HIGH, "
                            f"got {self.low:g},{self.high:g}")

    def bounds(self, targets_ms: Sequence[float]) -> np.ndarray:
        t = np.asarray(targets_ms, dtype=float)
        return np.stack([self.low * t, self.high * t], axis=1)

    def distance(self, lat: np.ndarray, targets_ms: Sequence[float]) -> np.ndarray:
        """Relative distance of each row's latencies (n, devices) outside the band, summed; 0 inside."""
        b = self.bounds(targets_ms)
        lat = np.asarray(lat, dtype=float).reshape(-1, len(b))
        under = np.clip(b[:, 0] - lat, 0, None) / b[:, 0].clip(1e-9)
        over = np.clip(lat - b[:, 1], 0, None) / b[:, 1]
        return (under + over).sum(axis=1)

    def contains(self, lat: np.ndarray, targets_ms: Sequence[float]) -> np.ndarray:
        return self.distance(lat, targets_ms) == 0

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high} if self.enabled else {"off": True}


def parse_band(text: str | None) -> Band:
    """`LOW,HIGH` (fractions of the target, e.g. 0.85,1.0), or `off`; None: the default."""
    if text is None:
        return Band()
    if str(text).strip().lower() == "off":
        return Band(enabled=False)
    try:
        low, high = (float(v) for v in str(text).split(","))
    except ValueError:
        raise UserError(f"--band must be LOW,HIGH (fractions of the target, e.g. 0.85,1.0) or off, "
                        f"got {text!r}") from None
    return Band(low, high)


# -- latency models -----------------------------------------------------------------------------------
def spec_features(spec: ModelSpec) -> np.ndarray:
    """Dense MACs, depthwise MACs (millions), activation traffic (millions of elements), layers, SE layers, 1."""
    dense = dw = traffic = layers = se = 0.0
    for layer in spec.layers():
        macs = layer_cost(layer).macs
        out = layer.out_size
        touched = layer.in_size ** 2 * layer.in_channels + out * out * layer.out_channels
        if layer.kind in ("ir", "ds"):
            mid = layer.expanded if layer.kind == "ir" else layer.in_channels
            depthwise = mid * sum(k * k for k in layer.kernel_sizes) * out * out
            dw += depthwise
            macs -= depthwise
            touched += mid * (layer.in_size ** 2 + out * out)
        dense += macs
        traffic += touched
        layers += 1
        se += bool(layer.se_channels)
    return np.array([dense / 1e6, dw / 1e6, traffic / 1e6, layers, se, 1.0])


class OnlineModel:
    """Latency of a measured device, predicted from spec features; refitted on every observation."""

    exact = False

    def __init__(self) -> None:
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._coef: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._y)

    def observe(self, spec: ModelSpec, ms: float) -> None:
        self._x.append(spec_features(spec))
        self._y.append(float(ms))
        self._coef = None

    def predict(self, specs: Sequence[ModelSpec]) -> np.ndarray:
        """Predicted ms per spec; NaN while fewer than MIN_FIT observations (then every candidate is measured)."""
        if len(self._y) < MIN_FIT:
            return np.full(len(specs), np.nan)
        if self._coef is None:
            self._coef = _fit_relative(np.array(self._x), np.array(self._y))
        return np.array([spec_features(s) for s in specs]) @ self._coef

    def rmspe(self) -> float | None:
        """Leave-one-out relative error of the current fit (None with too few points)."""
        n = len(self._y)
        if n < MIN_FIT + 1:
            return None
        x, y = np.array(self._x), np.array(self._y)
        errors = [float(x[i] @ _fit_relative(np.delete(x, i, 0), np.delete(y, i)) / y[i] - 1) for i in range(n)]
        return float(np.sqrt(np.mean(np.square(errors))))


def _fit_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative error (rows weighted 1/y): latency adds up, nothing costs < 0."""
    from scipy.optimize import nnls

    w = 1.0 / y
    scale = np.abs(x).max(axis=0) + 1e-12  # conditioning only
    coef, _ = nnls(x * w[:, None] / scale, y * w)
    return coef / scale


class SourceModel:
    """A table source's own prediction: exactly the LAT the search will use."""

    exact = True

    def __init__(self, source) -> None:
        self.source = source

    def observe(self, spec: ModelSpec, ms: float) -> None:
        pass

    def predict(self, specs: Sequence[ModelSpec]) -> np.ndarray:
        return np.asarray(self.source.latency_ms(list(specs)), dtype=float)


def model_for(source) -> OnlineModel | SourceModel:
    return OnlineModel() if getattr(source, "measured", False) else SourceModel(source)


# -- the sampler --------------------------------------------------------------------------------------
@dataclass
class FilterStats:
    """Per step: candidates the controller proposed, rejected by prediction or by measurement, forced."""

    proposed: int = 0
    rejected_predicted: int = 0
    rejected_measured: int = 0
    measured: int = 0
    forced: int = 0
    seconds: float = 0.0
    bootstrap_measured: int = 0

    def add(self, other: "FilterStats") -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Skipped:
    sample: list
    latency_ms: dict[str, float]
    reason: str


class BandSampler:
    """Draw in-band samples from a controller; record what was measured and skipped."""

    def __init__(self, sources: Sequence, targets_ms: Sequence[float], band: Band,
                 spec_of: Callable[[Sample], ModelSpec]) -> None:
        self.sources = list(sources)
        self.targets = list(targets_ms)
        self.band = band
        self.spec_of = spec_of
        self.models = [model_for(s) for s in self.sources]
        self.skipped: list[Skipped] = []  # since the last `take_skipped`
        self.residuals: list[float] = []  # |predicted / measured - 1| of candidates measured, latest last

    @property
    def online(self) -> bool:
        return any(not m.exact for m in self.models)

    def observe(self, spec: ModelSpec, latencies_ms: Sequence[float]) -> None:
        for model, ms in zip(self.models, latencies_ms):
            model.observe(spec, ms)

    def bootstrap(self, space: Space, count: int = BOOTSTRAP) -> FilterStats:
        """Measure `count` networks spread in MACs over the cheaper half of the space, so the online model starts
        near the targets (which lie at the space's fast end). Measurements are cached by the sources."""
        stats = FilterStats()
        if not self.online or count < 1:
            return stats
        t0 = time.perf_counter()
        for sample in bootstrap_samples(space, self.spec_of, count):
            spec = self.spec_of(sample)
            self.observe(spec, [float(s.latency_ms([spec])[0]) for s in self.sources])
            stats.bootstrap_measured += 1
        stats.seconds = time.perf_counter() - t0
        return stats

    def ask(self, controller, n: int) -> tuple[list[Sample], FilterStats]:
        """`n` samples whose latency is inside the band on every source (forced ones excepted, counted)."""
        stats = FilterStats()
        if not self.band.enabled:
            return controller.ask(n), stats
        t0 = time.perf_counter()
        out = [self._one(controller, stats) for _ in range(n)]
        stats.seconds = time.perf_counter() - t0
        return out, stats

    def _predicted(self, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
        """Predicted latency per source (the target where a model cannot predict yet), and which are known."""
        predicted = np.array([m.predict([spec])[0] for m in self.models])
        known = ~np.isnan(predicted)
        return np.where(known, predicted, self.targets), known

    def _one(self, controller, stats: FilterStats) -> Sample:
        """One in-band sample: candidates predicted outside are dropped; on a device, one predicted inside is
        measured, and skipped (kept in `skipped`) when the measurement is outside."""
        pending: list[Sample] = []
        inner = self._inner()  # changes only with a measurement
        closest: tuple[float, Sample] | None = None
        misses: list[tuple[float, Sample]] = []
        tried = 0
        while True:
            if not pending:
                pending = controller.ask(CHUNK)
            sample = pending.pop(0)
            tried += 1
            stats.proposed += 1
            spec = self.spec_of(sample)
            predicted, known = self._predicted(spec)
            distance = float(inner.distance(predicted, self.targets)[0])
            if distance > 0:
                stats.rejected_predicted += 1
                if closest is None or distance < closest[0]:
                    closest = (distance, sample)
                if tried < MAX_CANDIDATES:
                    continue
                sample, spec = closest[1], self.spec_of(closest[1])  # give up: the closest prediction
                predicted, known = self._predicted(spec)
                stats.forced += 1
            if not self.online:
                return sample
            lat = [float(s.latency_ms([spec])[0]) for s in self.sources]
            stats.measured += 1
            self.residuals += [abs(p / m - 1) for p, m, k in zip(predicted, lat, known) if k]
            self.observe(spec, lat)
            inner = self._inner()
            miss = float(self.band.distance(np.array([lat]), self.targets)[0])
            if miss == 0:
                return sample
            misses.append((miss, sample))
            if len(misses) > MAX_MEASURED_MISSES:  # give up: train the closest measured candidate
                chosen = min(misses)[1]
                self.skipped = [k for k in self.skipped if k.sample != list(chosen)]  # trained, not skipped
                if chosen is not sample:  # it was counted (and listed) as skipped
                    stats.rejected_measured -= 1
                stats.forced += 1
                return chosen
            stats.rejected_measured += 1
            self.skipped.append(Skipped(list(sample), dict(zip([s.name for s in self.sources], lat)),
                                        "measured outside the band"))

    def _inner(self) -> Band:
        """The band shrunk by the model's recent error (median over the last 20 measured candidates), at most
        to 20% of its width: a prediction near the edge would be measured outside about half the time."""
        if not self.residuals:
            return self.band
        err = float(np.median(self.residuals[-20:]))
        half = 0.4 * (self.band.high - self.band.low) / (self.band.high + self.band.low)
        margin = min(err, half)
        return Band(self.band.low * (1 + margin), self.band.high * (1 - margin))

    def take_skipped(self) -> list[Skipped]:
        out, self.skipped = self.skipped, []
        return out


@lru_cache(maxsize=8)
def macs_pool(space: Space, resolution: int, num_classes: int, size: int = 2000
              ) -> tuple[tuple[int, Sample], ...]:
    """`size` random samples of the space (fixed seed) with their MACs, cheapest first: where the bootstrap and
    the reachability check look for the space's cheap and costly ends (one pool for both, built once)."""
    rng = np.random.default_rng(0)
    samples = [space.sample_random(rng) for _ in range(size)]
    macs = [count_macs(space.to_spec(s, resolution=resolution, num_classes=num_classes)) for s in samples]
    return tuple(sorted(zip(macs, samples)))


def bootstrap_samples(space: Space, spec_of: Callable[[Sample], ModelSpec], count: int) -> list[Sample]:
    """`count` samples at evenly spaced MACs quantiles from the cheapest of the pool to its median."""
    probe = spec_of(space.smallest_sample())
    pool = macs_pool(space, probe.resolution, probe.num_classes)
    return [pool[i][1] for i in np.linspace(0, len(pool) // 2, count).astype(int)]


def check_band_reachable(space: Space, sources: Sequence, targets_ms: Sequence[float], band: Band,
                         resolution: int, num_classes: int = 1000) -> dict[str, tuple[float, float]]:
    """Refuse (one line) a band no architecture of the space can reach on a source: its fastest network (the
    fewest MACs) is slower than the band's top, or its slowest (the most MACs of 2,000 random networks) faster
    than the band's bottom. Returns {source: (fastest, slowest) ms}."""
    if not band.enabled:
        return {}
    fastest = space.smallest_spec(resolution=resolution, num_classes=num_classes)
    costliest = macs_pool(space, resolution, num_classes)[-1][1]
    slowest = space.to_spec(costliest, resolution=resolution, num_classes=num_classes)
    out = {}
    for source, (low, high) in zip(sources, band.bounds(targets_ms)):
        fast, slow = (float(source.latency_ms([s])[0]) for s in (fastest, slowest))
        out[source.name] = (fast, slow)
        if fast > high or slow < low:
            raise UserError(f"the latency band {low:.3g}-{high:.3g} ms on {source.name} is out of reach of space "
                            f"{space.name!r}: its fastest network takes {fast:.3g} ms and its slowest about "
                            f"{slow:.3g} ms at {resolution}px; change --target-ms or --band")
    return out


@dataclass
class BandReport:
    """What the filter did over a run: for the summary and --json."""

    band: dict
    stats: FilterStats = field(default_factory=FilterStats)
    model_rmspe: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"band": self.band, **self.stats.to_dict(), "model_rmspe": self.model_rmspe}
