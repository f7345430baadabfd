"""Did the search pay off? Hand-designed models at the same latency, trained alike with several seeds.

    plan = match_baselines(["mnasnet-a1", "mobilenetv3-large", "mobilenetv2-1.0"], sources, targets, 224)
    result = compare(best_spec, plan, trainer_for_seed, seeds=(100, 101, 102))

1. Width-match: each zoo model is width-scaled (the one multiplier MobileNets are designed to be scaled by) so
   that its latency on every latency source is at most the target and as close to it as the width rounding
   allows: bisection on the multiplier, each probe measured or predicted by the search's own sources (cached,
   so a resumed run measures nothing again). A model that is still too slow at the smallest multiplier is
   reported as not scalable and left out.
2. Reference training: the best child and every matched baseline are trained the same way, longer than the
   search's proxy, with several seeds: mean and std each. The proxy trains children for a few dozen steps,
   which favours networks that merely train fast; the comparison must not.
3. Verdict: best child's mean minus the best baseline's mean, against twice the pooled seed std.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from mnas import zoo
from mnas.errors import UserError
from mnas.scaling import scale_factors
from mnas.spec import ModelSpec

DEFAULT_BASELINES = ("mnasnet-a1", "mobilenetv3-large", "mobilenetv2-1.0")
MIN_WIDTH = 0.2
MAX_WIDTH = 2.0
BISECTIONS = 8


@dataclass
class Matched:
    """A zoo model width-scaled to the targets (spec None: it could not be scaled down to them)."""

    name: str
    width: float | None
    spec: ModelSpec | None
    latency_ms: dict[str, float]
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "latency_ms": self.latency_ms, "note": self.note}


def _ratio(spec: ModelSpec, sources: Sequence, targets_ms: Sequence[float]) -> tuple[float, dict[str, float]]:
    """max over sources of latency / target (<= 1: meets every target), and the latencies."""
    lat = {s.name: float(s.latency_ms([spec])[0]) for s in sources}
    return max(v / t for v, t in zip(lat.values(), targets_ms)), lat


def match_width(name: str, sources: Sequence, targets_ms: Sequence[float], resolution: int,
                num_classes: int = 1000, bisections: int = BISECTIONS) -> Matched:
    """The widest multiplier of zoo model `name` in [MIN_WIDTH, MAX_WIDTH] whose latency meets every target."""
    base = zoo.get(name, resolution=resolution, num_classes=num_classes)

    def at(width: float) -> tuple[ModelSpec, float, dict[str, float]]:
        spec = scale_factors(base, width=width, name=f"{name}-w{width:.3f}")
        return (spec, *_ratio(spec, sources, targets_ms))

    try:
        lo_spec, lo_ratio, lo_lat = at(MIN_WIDTH)
    except UserError as err:  # e.g. a latency table of another space does not cover the model's ops
        return Matched(name, None, None, {}, f"no latency for it: {err}")
    if lo_ratio > 1.0:
        return Matched(name, None, None, lo_lat, f"slower than the target even at width {MIN_WIDTH:g} "
                                                 f"({', '.join(f'{k} {v:.3g} ms' for k, v in lo_lat.items())})")
    lo, hi = MIN_WIDTH, MAX_WIDTH
    best = (lo, lo_spec, lo_lat)
    for _ in range(bisections):
        mid = math.sqrt(lo * hi)  # latency grows ~ width^2: bisect on the log scale
        spec, ratio, lat = at(mid)
        if ratio <= 1.0:
            lo, best = mid, (mid, spec, lat)
        else:
            hi = mid
    width, spec, lat = best
    note = ""
    if hi == MAX_WIDTH and max(v / t for v, t in zip(lat.values(), targets_ms)) < 0.9:
        note = f"below the target even at the widest multiplier tried ({width:.2f}): not at equal latency"
    return Matched(name, round(width, 4), spec, lat, note)


def match_baselines(names: Sequence[str], sources: Sequence, targets_ms: Sequence[float], resolution: int,
                    num_classes: int = 1000, cache=None) -> list[Matched]:
    """Width-match every baseline; with `cache` (a run store cache) a match is made once per run and reused,
    so a resumed or re-summarised run compares with the very baselines it trained, whatever the load now."""
    _check_names(names)
    out = []
    for name in names:
        key = json.dumps([name, list(targets_ms), resolution, num_classes])
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            out.append(_from_cached(name, hit, resolution, num_classes))
            continue
        matched = match_width(name, sources, targets_ms, resolution, num_classes)
        if cache is not None:
            cache.put(key, matched.to_dict())
        out.append(matched)
    return out


def _from_cached(name: str, hit: dict, resolution: int, num_classes: int) -> Matched:
    width = hit["width"]
    spec = None
    if width is not None:
        base = zoo.get(name, resolution=resolution, num_classes=num_classes)
        spec = scale_factors(base, width=width, name=f"{name}-w{width:.3f}")
    return Matched(name, width, spec, hit["latency_ms"], hit.get("note", ""))


def parse_baselines(text: str | None) -> list[str]:
    """Comma-separated zoo names, `none`, or None for the default three."""
    if text is None:
        return list(DEFAULT_BASELINES)
    if text.strip().lower() == "none":
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    _check_names(names)
    return names


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if name.lower() not in zoo.names():
            raise UserError(f"unknown baseline model {name!r}; zoo models: {', '.join(zoo.names())}")


# -- reference training -------------------------------------------------------------------------------
@dataclass
class Trained:
    """Reference-training accuracies of one network over seeds."""

    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "accuracies": self.accuracies, "seconds": self.seconds}


Trainer = Callable[[ModelSpec, int], tuple[float, float]]  # (spec, seed) -> (accuracy, seconds)


def train_seeds(spec: ModelSpec, trainer: Trainer, seeds: Sequence[int],
                on_done: Callable[[str, int, float], None] | None = None) -> Trained:
    out = Trained()
    for seed in seeds:
        accuracy, seconds = trainer(spec, seed)
        out.accuracies.append(float(accuracy))
        out.seconds += float(seconds)
        if on_done is not None:
            on_done(spec.name, seed, accuracy)
    return out


def verdict(best: Trained, baselines: dict[str, Trained]) -> dict:
    """Best child vs the best baseline (highest mean): margin, pooled seed std, and whether margin > 2 x it."""
    if not baselines:
        return {"compared": False, "line": "no baseline could be scaled to the target: nothing to compare with"}
    name, base = max(baselines.items(), key=lambda item: item[1].mean)
    margin = best.mean - base.mean
    pooled = math.sqrt((best.std ** 2 + base.std ** 2) / 2)
    significant = margin > 2 * pooled
    if margin > 0:
        how = "beat" if significant else "was ahead of, within seed noise,"
    else:
        how = "did not beat"
    line = (f"search {how} the best baseline at equal latency, {name}: {best.mean:.4f} vs {base.mean:.4f} "
            f"({margin:+.4f}; pooled seed std {pooled:.4f}, {len(best.accuracies)} seeds each)")
    return {"compared": True, "baseline": name, "margin": margin, "pooled_std": pooled,
            "beat": bool(margin > 0 and significant), "line": line}


@dataclass
class Comparison:
    """The best child and the width-matched baselines after the reference training."""

    epochs: int
    seeds: list[int]
    best_name: str
    best: Trained
    matched: list[Matched]
    trained: dict[str, Trained]

    def verdict(self) -> dict:
        return verdict(self.best, self.trained)

    def references(self, source_names: Sequence[str], best_latency_ms: dict[str, float]) -> dict:
        """name -> (mean reference accuracy, latency per source, std over seeds): markers for pareto.png."""
        out = {f"best child ({self.epochs} ep)": (self.best.mean, [best_latency_ms[n] for n in source_names],
                                                  self.best.std)}
        for m in self.matched:
            if m.name in self.trained:
                t = self.trained[m.name]
                out[f"{m.name} x{m.width:.2f} ({self.epochs} ep)"] = (t.mean, [m.latency_ms[n] for n in source_names],
                                                                       t.std)
        return out

    def to_dict(self) -> dict:
        return {"reference_training": {"epochs": self.epochs, "seeds": self.seeds},
                "best": {"name": self.best_name, **self.best.to_dict()},
                "baselines": [{**m.to_dict(), **({"reference": self.trained[m.name].to_dict()}
                                                 if m.name in self.trained else {})} for m in self.matched],
                "verdict": self.verdict()}


def compare(best: ModelSpec, matched: Sequence[Matched], trainer: Trainer, epochs: int, seeds: Sequence[int],
            on_done: Callable[[str, int, float], None] | None = None) -> Comparison:
    """Train the best child and every scalable baseline with each seed (the reference training)."""
    trained = {m.name: train_seeds(m.spec, trainer, seeds, on_done) for m in matched if m.spec is not None}
    return Comparison(epochs, list(seeds), best.name, train_seeds(best, trainer, seeds, on_done), list(matched),
                      trained)
