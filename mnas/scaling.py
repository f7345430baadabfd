"""Compound scaling (EfficientNet) and its latency-aware extension: pure functions, no TF, no I/O.

EfficientNet scales a base network by one knob phi:

    depth  d = alpha ** phi,   width  w = beta ** phi,   resolution  r = gamma ** phi,
    with alpha * beta**2 * gamma**2 ~ 2, so MACs grow by about (alpha * beta**2 * gamma**2) ** phi ~ 2 ** phi.

Depth and width go through `ModelSpec.depth` / `ModelSpec.width`, so the authors' `round_repeats`
(ceil) and `round_filters` (multiple of 8, never more than 10% down) apply in one place: `spec.layers()`.
`repeats_rounding="nearest"` (a `ModelSpec` field) rounds depth * repeats to nearest instead of up: with
ceil, B0 at phi = 1..4 has 16-27% more MACs than the cost law, with nearest every phi = 1..7 is within 8%
(benchmarks/scaling_macs.py); ceil stays the default because it is what EfficientNet B1..B7 use.
Multipliers compose: scaling a spec that already has width 1.1 by beta**phi gives width 1.1 * beta**phi,
applied to the *base* filter counts (rounding once, not twice).

Resolution rule (our choice, documented in docs/scaling.md): base resolution * gamma**phi rounded to the
nearest multiple of `resolution_multiple` (default 8), never below `MIN_RESOLUTION`. 'same' padding takes
ceil(size / 2) at each stride 2, so an odd size inflates every later map (258 px gives 129-65-33-17-9 where
256 gives 128-64-32-16-8: +16% MACs for B0 at phi=1, benchmarks/scaling_macs.py). A multiple of 8 keeps the
stride-2/4/8 maps exact while its step (8/224 = 3.6% at B0 size) stays well below one phi step (gamma = 1.15
is 15%); a multiple of 32 would keep all five exact but its 14% step is nearly a whole phi step. The published B1..B7
resolutions (240, 260, 300, 380, 456, 528, 600) are hand-picked, not gamma**phi: see docs/scaling.md.

The latency-aware part solves, for a latency target, the phi whose *rounded* model is the slowest one that
still meets the target: bisection over continuous phi against any monotone-ish `latency(specs) -> ms` (a
device measurement or a table prediction), then a check of neighbouring discrete roundings (the resolution
rounded down / up instead of to nearest, each re-solved), and the closest one from below wins.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from mnas.costs import model_cost
from mnas.errors import UserError
from mnas.spec import MIN_RESOLUTION, ModelSpec

# The paper's grid-search result on ImageNet (EfficientNet, section 3.3).
EFFICIENTNET_COEFFICIENTS = (1.2, 1.1, 1.15)
DEFAULT_RESOLUTION_MULTIPLE = 8
DOWNSCALE_FLOOR = -4.0  # lowest phi accepted with down-scaling: 2**-4 of the MACs is far below any useful model
ROUNDING_MODES = ("nearest", "floor", "ceil")

# Single-dimension baselines with the same cost law as the compound rule (MACs x2 per unit of phi), so a
# given phi costs about the same whichever dimension grows: depth x2, width x sqrt2, or resolution x sqrt2.
SINGLE_DIMENSION: dict[str, tuple[float, float, float]] = {
    "depth": (2.0, 1.0, 1.0),
    "width": (1.0, math.sqrt(2.0), 1.0),
    "resolution": (1.0, 1.0, math.sqrt(2.0)),
}

LatencyFn = Callable[[Sequence[ModelSpec]], list[float]]


# -- coefficients ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Coefficients:
    """(alpha, beta, gamma): per-unit-phi growth of depth, width and resolution. Each must be >= 1."""

    alpha: float
    beta: float
    gamma: float

    def __post_init__(self) -> None:
        for name, value in (("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)):
            if not (isinstance(value, (int, float)) and math.isfinite(value)) or value < 1.0:
                raise UserError(f"scaling coefficient {name} must be a number >= 1, got {value}")

    @property
    def cost_ratio(self) -> float:
        """MACs growth per unit of phi: alpha * beta^2 * gamma^2 (the paper's constraint targets 2)."""
        return self.alpha * self.beta ** 2 * self.gamma ** 2

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.alpha, self.beta, self.gamma)


def coefficient_grid(step: float = 0.05, target: float = 2.0, tolerance: float = 0.1,
                     max_alpha: float | None = None) -> list[Coefficients]:
    """Step 1 of the paper: every (alpha, beta, gamma) >= 1 on a `step` grid with |a*b^2*g^2 - target| <= tol.

    Sorted most balanced first (smallest largest share of the cost growth, see `cost_shares`), then by distance
    to the target ratio: a budget-capped search (`--max-candidates`) then tries the candidates that grow all
    three dimensions before the one-dimension corners such as (2, 1, 1). Each coefficient is bounded by the
    constraint itself (alpha <= target + tol, beta and gamma <= sqrt(target + tol)).
    """
    if step <= 0:
        raise UserError(f"grid step must be > 0, got {step}")
    if tolerance < 0:
        raise UserError(f"tolerance must be >= 0, got {tolerance}")
    if target < 1:
        raise UserError(f"target cost ratio must be >= 1, got {target}")
    top = target + tolerance
    a_max = min(top, max_alpha) if max_alpha else top

    def axis(limit: float) -> list[float]:
        n = int(math.floor((limit - 1.0) / step + 1e-9))
        return [round(1.0 + i * step, 10) for i in range(n + 1)]

    out = []
    for a, b, g in itertools.product(axis(a_max), axis(math.sqrt(top)), axis(math.sqrt(top))):
        if abs(a * b * b * g * g - target) <= tolerance + 1e-12:
            out.append(Coefficients(a, b, g))
    out.sort(key=lambda c: (round(max(cost_shares(c)), 9), abs(c.cost_ratio - target), c.as_tuple()))
    return out


# -- the scaling rule ------------------------------------------------------------------------------
def round_resolution(value: float, multiple: int = DEFAULT_RESOLUTION_MULTIPLE, mode: str = "nearest") -> int:
    """Round a resolution to a multiple (nearest, floor or ceil), never below MIN_RESOLUTION."""
    if multiple < 1:
        raise UserError(f"resolution multiple must be >= 1, got {multiple}")
    q = value / multiple
    if mode == "nearest":
        n = math.floor(q + 0.5)
    elif mode == "floor":
        n = math.floor(q + 1e-9)
    elif mode == "ceil":
        n = math.ceil(q - 1e-9)
    else:
        raise UserError(f"resolution rounding {mode!r} not in {ROUNDING_MODES}")
    lowest = math.ceil(MIN_RESOLUTION / multiple) * multiple
    return max(lowest, int(n * multiple))


def check_phi(phi: float, allow_downscale: bool = False, floor: float = DOWNSCALE_FLOOR) -> float:
    if not math.isfinite(phi):
        raise UserError(f"phi must be a finite number, got {phi}")
    if phi < 0 and not allow_downscale:
        raise UserError(f"phi must be >= 0 (got {phi}); pass --allow-downscale to scale below the base")
    if phi < floor:
        raise UserError(f"phi {phi} is below the down-scaling floor {floor}")
    return float(phi)


def scale_factors(spec: ModelSpec, depth: float = 1.0, width: float = 1.0, resolution: float = 1.0, *,
                  lite: bool = False, resolution_multiple: int = DEFAULT_RESOLUTION_MULTIPLE,
                  rounding: str = "nearest", repeats_rounding: str | None = None,
                  name: str | None = None) -> ModelSpec:
    """Multiply depth, width and resolution of `spec` (composing with its multipliers): the one primitive.

    `rounding` is the resolution's; `repeats_rounding` (None = the spec's own) is how depth * repeats rounds.
    """
    for label, f in (("depth", depth), ("width", width), ("resolution", resolution)):
        if not (math.isfinite(f) and f > 0):
            raise UserError(f"{label} factor must be > 0, got {f}")
    changes: dict = dict(depth=spec.depth * depth, width=spec.width * width,
                         resolution=round_resolution(spec.resolution * resolution, resolution_multiple, rounding))
    if lite:  # EfficientNet-Lite: stem, head and the first/last stage's repeats stay as in the base
        changes.update(scale_stem=False, scale_head=False, fix_first_last_repeats=True)
    if repeats_rounding is not None:
        changes["repeats_rounding"] = repeats_rounding
    if name is not None:
        changes["name"] = name
    return spec.replace(**changes)


def scale(spec: ModelSpec, alpha: float, beta: float, gamma: float, phi: float, *, lite: bool = False,
          allow_downscale: bool = False, resolution_multiple: int = DEFAULT_RESOLUTION_MULTIPLE,
          rounding: str = "nearest", repeats_rounding: str | None = None, name: str | None = None) -> ModelSpec:
    """Compound-scale `spec` by phi: depth x alpha^phi, width x beta^phi, resolution x gamma^phi (rounded).

    `repeats_rounding` ("ceil" | "nearest"; None = the spec's own, ceil for every zoo model) is stored in the
    scaled spec, so its arch file rebuilds the same layer counts.
    """
    c = Coefficients(alpha, beta, gamma)
    phi = check_phi(phi, allow_downscale)
    scaled = scale_factors(spec, c.alpha ** phi, c.beta ** phi, c.gamma ** phi, lite=lite,
                           resolution_multiple=resolution_multiple, rounding=rounding,
                           repeats_rounding=repeats_rounding,
                           name=name if name is not None else f"{spec.name}-phi{phi:g}")
    # Where it came from, for arch files and reports (extra is excluded from spec equality).
    extra = dict(spec.extra)
    extra["scaling"] = {"base": spec.name, "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "phi": phi,
                        "lite": lite, "rounding": rounding, "resolution_multiple": resolution_multiple,
                        "repeats_rounding": scaled.repeats_rounding}
    return scaled.replace(extra=extra)


# -- describing a scaled model ---------------------------------------------------------------------
def describe(spec: ModelSpec) -> dict:
    """The per-model fields of the JSON output that do not need a device."""
    cost = model_cost(spec)
    info = spec.extra.get("scaling", {})
    return {"name": spec.name, "phi": info.get("phi"), "depth": spec.depth, "width": spec.width,
            "resolution": spec.resolution, "repeats_rounding": spec.repeats_rounding, "params": cost.params,
            "macs": cost.macs}


def expected_macs(base_macs: float, coefficients: Coefficients, phi: float) -> float:
    """The cost law the constraint encodes: MACs(base) * (alpha * beta^2 * gamma^2) ** phi."""
    return base_macs * coefficients.cost_ratio ** phi


# -- latency-aware phi solving ---------------------------------------------------------------------
def network_key(spec: ModelSpec) -> tuple:
    """What decides a network's latency: its concrete layers. Two phis whose depth and width multipliers differ
    but round to the same layer counts, channels and resolution give the same network (and the same key)."""
    return tuple(spec.layers())


class CachedLatency:
    """Wraps a latency function so each distinct network is timed once (many phis round to the same one)."""

    def __init__(self, latency: LatencyFn) -> None:
        self._latency = latency
        self._cache: dict[tuple, float] = {}
        self.calls = 0  # distinct networks actually timed

    def __call__(self, specs: Sequence[ModelSpec]) -> list[float]:
        keys = [network_key(s) for s in specs]
        todo, seen = [], set()
        for s, k in zip(specs, keys):
            if k not in self._cache and k not in seen:
                todo.append((s, k))
                seen.add(k)
        if todo:
            values = self._latency([s for s, _ in todo])
            if len(values) != len(todo):
                raise ValueError(f"latency function returned {len(values)} values for {len(todo)} models")
            for (_, k), v in zip(todo, values):
                self._cache[k] = float(v)
            self.calls += len(todo)
        return [self._cache[k] for k in keys]

    def one(self, spec: ModelSpec) -> float:
        return self([spec])[0]


@dataclass(frozen=True)
class Solution:
    """The model chosen for one latency target."""

    target_ms: float
    phi: float
    rounding: str
    spec: ModelSpec
    latency_ms: float
    evaluated: int = 0  # distinct networks timed while solving this target (cumulative cache size)
    tried: tuple[tuple[float, str, float], ...] = field(default=(), compare=False)  # (phi, rounding, ms)

    @property
    def next_above_ms(self) -> float | None:
        """The fastest model seen above the target: with a large gap, no scaled model lies in between
        (e.g. ceil(depth * repeats) adds a layer to every stage as soon as phi > 0)."""
        above = [ms for _, _, ms in self.tried if ms > self.target_ms]
        return min(above) if above else None

    @property
    def gap(self) -> float:
        """Relative shortfall below the target (0 = exactly on it; negative = above it)."""
        return (self.target_ms - self.latency_ms) / self.target_ms


Scaler = Callable[[float, str], ModelSpec]  # (phi, rounding mode) -> scaled spec


def compound_scaler(spec: ModelSpec, coefficients: Coefficients, *, lite: bool = False,
                    allow_downscale: bool = False, resolution_multiple: int = DEFAULT_RESOLUTION_MULTIPLE,
                    repeats_rounding: str | None = None) -> Scaler:
    def make(phi: float, rounding: str = "nearest") -> ModelSpec:
        return scale(spec, *coefficients.as_tuple(), phi, lite=lite, allow_downscale=allow_downscale,
                     resolution_multiple=resolution_multiple, rounding=rounding,
                     repeats_rounding=repeats_rounding)
    return make


def _bisect(make: Scaler, latency: CachedLatency, target: float, lo: float, hi: float, rounding: str,
            tol: float, close_enough: float, tried: list) -> float:
    """Largest phi in [lo, hi) found with latency(make(phi)) <= target, given latency(lo) <= target < (hi).

    Stops when the bracket is narrower than `tol` or lo's model is within `close_enough` (relative) below the
    target: a device's noise is ~1%, so timing more networks to get closer than that buys nothing.
    """
    lo_ms = latency.one(make(lo, rounding))
    while hi - lo > tol and lo_ms < target * (1.0 - close_enough):
        mid = 0.5 * (lo + hi)
        ms = latency.one(make(mid, rounding))
        tried.append((mid, rounding, ms))
        if ms <= target:
            lo, lo_ms = mid, ms
        else:
            hi = mid
    return lo


def _bracket(make: Scaler, lat: CachedLatency, target: float, hint: float, rounding: str, min_phi: float,
             max_phi: float, tried: list) -> tuple[float, float] | None:
    """(lo, hi) with latency(lo) <= target < latency(hi), searched outward from `hint` in doubling steps.

    (max_phi, max_phi) when even max_phi's model meets the target; None when min_phi's model misses it.
    """
    def ms(phi: float) -> float:
        value = lat.one(make(phi, rounding))
        tried.append((phi, rounding, value))
        return value

    step = 0.25
    x = min(max(hint, min_phi), max_phi)
    if ms(x) <= target:
        lo = x
        while True:
            x = min(lo + step, max_phi)
            if ms(x) > target:
                return lo, x
            if x >= max_phi:
                return max_phi, max_phi
            lo, step = x, step * 2
    hi = x
    while True:
        x = max(hi - step, min_phi)
        if ms(x) <= target:
            return x, hi
        if x <= min_phi:
            return None
        hi, step = x, step * 2


def solve_phi(make: Scaler, latency: LatencyFn | CachedLatency, target_ms: float, *, min_phi: float = 0.0,
              max_phi: float = 12.0, hint: float | None = None, tol: float = 1e-3, close_enough: float = 0.0,
              roundings: Iterable[str] = ROUNDING_MODES) -> Solution:
    """The scaled model that meets `target_ms` most closely from below.

    1. The smallest allowed model (phi = min_phi) must meet the target, else UserError (with phi >= 0 this is
       the "target below the base model" error).
    2. Bracket the crossing outward from `hint` (default min_phi; a family passes the previous member's phi),
       then bisect continuous phi to `tol`, with the resolution rounded to nearest. Past max_phi the largest
       model is the answer.
    3. Neighbouring roundings: re-solve with the resolution rounded down and up, starting at the nearest
       solution (the resolution plateaus of the nearest-rounding curve hide models closer to the target:
       rounded down, width and depth can grow further); the slowest model <= target wins.
    `close_enough` (relative gap; ~the device's noise) ends the search as soon as a model that close below the
    target is found: on a device every distinct network costs an export and a measurement. Timings are cached
    by network, so phis that round to an already-timed network cost nothing.
    With noisy latency the bisection finds one crossing; the chosen model's own measurement is what is reported.
    """
    if not (math.isfinite(target_ms) and target_ms > 0):
        raise UserError(f"latency target must be a positive number of ms, got {target_ms}")
    if not min_phi <= max_phi:
        raise UserError(f"min phi {min_phi} is above max phi {max_phi}")
    lat = latency if isinstance(latency, CachedLatency) else CachedLatency(latency)
    roundings = tuple(roundings)
    tried: list[tuple[float, str, float]] = []
    smallest_ms = lat.one(make(min_phi, roundings[0]))
    if smallest_ms > target_ms:
        where = "the base model's" if min_phi == 0 else f"the smallest allowed model's (phi={min_phi:g})"
        hint_flag = "; pass --allow-downscale to scale below it" if min_phi == 0 else ""
        raise UserError(f"latency target {target_ms:g} ms is below {where} latency {smallest_ms:.4g} ms{hint_flag}")
    best: tuple[float, str, ModelSpec, float] | None = None
    start = min_phi if hint is None else hint
    for rounding in roundings:
        bracket = _bracket(make, lat, target_ms, start, rounding, min_phi, max_phi, tried)
        if bracket is None:
            continue  # this rounding's smallest model is already too slow
        lo, hi = bracket
        phi = lo if hi == lo else _bisect(make, lat, target_ms, lo, hi, rounding, tol, close_enough, tried)
        spec = make(phi, rounding)
        ms = lat.one(spec)
        if best is None or ms > best[3]:
            best = (phi, rounding, spec, ms)
        if best[3] >= target_ms * (1.0 - close_enough):
            break
        start = best[0]
    assert best is not None  # the first rounding's smallest model meets the target (checked above)
    phi, rounding, spec, ms = best
    return Solution(target_ms, phi, rounding, spec, ms, evaluated=lat.calls, tried=tuple(tried))


def solve_family(make: Scaler, latency: LatencyFn | CachedLatency, targets_ms: Sequence[float], *, name: str,
                 min_phi: float = 0.0, max_phi: float = 12.0, tol: float = 1e-3, close_enough: float = 0.0,
                 roundings: Iterable[str] = ROUNDING_MODES) -> list[Solution]:
    """One solution per target (ascending), named NAME-d0 .. dK; timings are shared across targets."""
    if not targets_ms:
        raise UserError("give at least one latency target")
    lat = latency if isinstance(latency, CachedLatency) else CachedLatency(latency)
    out: list[Solution] = []
    for k, target in enumerate(sorted(targets_ms)):
        hint = out[-1].phi if out else None
        sol = solve_phi(make, lat, target, min_phi=min_phi, max_phi=max_phi, hint=hint, tol=tol,
                        close_enough=close_enough, roundings=roundings)
        member = sol.spec.replace(name=f"{name}-d{k}")
        out.append(Solution(sol.target_ms, sol.phi, sol.rounding, member, sol.latency_ms, sol.evaluated, sol.tried))
    return out


def reachable_specs(make: Scaler, min_phi: float, max_phi: float, *, roundings: Iterable[str] = ROUNDING_MODES,
                    tol: float = 1e-6) -> list[tuple[float, str, ModelSpec]]:
    """Every distinct network `make(phi, rounding)` gives for phi in [min_phi, max_phi]: all a solve can visit.

    (phi, rounding, spec) per network, at the smallest phi found for it, sorted by phi. Every discrete part of a
    scaled network (repeats, rounded filters, rounded resolution) is monotone in phi, so two phis that give the
    same network give it on the whole interval between them; intervals whose ends differ are halved until they
    are narrower than `tol`. A latency table built over these networks' ops predicts any model the solve picks.
    """
    if not min_phi <= max_phi:
        raise UserError(f"min phi {min_phi} is above max phi {max_phi}")
    found: dict[tuple, tuple[float, str, ModelSpec]] = {}

    def visit(phi: float, rounding: str) -> tuple:
        spec = make(phi, rounding)
        key = network_key(spec)
        if key not in found or phi < found[key][0]:
            found[key] = (phi, rounding, spec)
        return key

    for rounding in roundings:
        stack = [(min_phi, visit(min_phi, rounding), max_phi, visit(max_phi, rounding))]
        while stack:
            lo, lo_key, hi, hi_key = stack.pop()
            if lo_key == hi_key or hi - lo <= tol:
                continue
            mid = 0.5 * (lo + hi)
            mid_key = visit(mid, rounding)
            stack += [(lo, lo_key, mid, mid_key), (mid, mid_key, hi, hi_key)]
    return sorted(found.values(), key=lambda t: t[0])


def proxy_resolution(spec: ModelSpec, base: ModelSpec, proxy: int) -> int:
    """The proxy-task resolution of a scaled model: the proxy's base resolution times the factor the target
    resolution grew by (nearest integer, >= MIN_RESOLUTION), so resolution scaling shows in proxy accuracy."""
    return max(MIN_RESOLUTION, int(math.floor(proxy * spec.resolution / base.resolution + 0.5)))


def cost_shares(coefficients: Coefficients) -> tuple[float, float, float]:
    """How a candidate splits its MACs growth: log-shares of depth, width^2, resolution^2 (they sum to 1)."""
    total = math.log(coefficients.cost_ratio)
    if total == 0:
        return (0.0, 0.0, 0.0)
    return (math.log(coefficients.alpha) / total, 2 * math.log(coefficients.beta) / total,
            2 * math.log(coefficients.gamma) / total)
