"""How good is a table? Measure architectures end to end on the device and compare with the prediction.

Figures: n, share of models whose prediction is within +-5% / +-10% of the measured latency (the table's
statistic of the runs: median, or p5 on a shared host), RMSPE
(root mean square of (predicted - measured) / measured), the mean signed error, and the measurement noise
floor beside them (median over the models of the 95% CI half-width of the measured median, relative).
The scatter plot shows predicted vs measured with y = x and +-10% bands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from devices.base import Device, Profile
from latency.predictor import Predictor, profile_value
from latency.table_builder import MODEL_PASSES, measure_specs
from mnas.spec import ModelSpec


@dataclass
class ValidationResult:
    names: list[str]
    predicted_ms: np.ndarray
    measured_ms: np.ndarray
    noise_rel_ci: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bimodal: list[bool] = field(default_factory=list)
    statistic: str = "median"
    drift: float | None = None  # device speed now vs at calibration time (re-measured calibration models)

    @property
    def n(self) -> int:
        return int(self.measured_ms.size)

    @property
    def rel_errors(self) -> np.ndarray:
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    def within(self, tolerance: float) -> float:
        return float(np.mean(np.abs(self.rel_errors) <= tolerance)) if self.n else float("nan")

    @property
    def rmspe(self) -> float:
        return float(np.sqrt(np.mean(self.rel_errors ** 2))) if self.n else float("nan")

    def to_dict(self) -> dict:
        return {
            "n": self.n, "within_5pct": self.within(0.05), "within_10pct": self.within(0.10), "rmspe": self.rmspe,
            "mean_error": float(np.mean(self.rel_errors)) if self.n else None,
            "max_abs_error": float(np.max(np.abs(self.rel_errors))) if self.n else None,
            "noise_floor_rel_ci95": float(np.median(self.noise_rel_ci)) if self.noise_rel_ci.size else None,
            "bimodal_models": int(sum(self.bimodal)), "statistic": self.statistic, "device_drift": self.drift,
            "models": [{"name": n, "predicted_ms": float(p), "measured_ms": float(m)}
                       for n, p, m in zip(self.names, self.predicted_ms, self.measured_ms)],
        }


def compare(predictor: Predictor, specs: Sequence[ModelSpec], profiles: Sequence[Profile]) -> ValidationResult:
    predicted = predictor.predict_ms(specs)
    measured = np.array([profile_value(p, predictor.statistic) for p in profiles])
    noise = np.array([float(p.noise.get("rel_ci95", np.nan)) for p in profiles])
    return ValidationResult([s.name for s in specs], predicted, measured, noise, [p.bimodal for p in profiles],
                            predictor.statistic)


def validate(device: Device, predictor: Predictor, specs: Sequence[ModelSpec], *, threads: int = 1,
             progress: bool = True, passes: int = MODEL_PASSES,
             drift_models: Sequence[tuple[ModelSpec, float]] = ()) -> ValidationResult:
    """Predict first (refuses uncovered ops before any measuring), then measure each model end to end, in
    `passes` interleaved passes (as the calibration models were).

    `drift_models`: (spec, latency measured at calibration time) pairs, re-measured in the same passes; the
    median ratio new / old is the device's change of speed since the calibration (`ValidationResult.drift`).
    """
    predictor.predict_ms(specs)
    again = [spec for spec, _ in drift_models]
    profiles = measure_specs(device, list(specs) + again, threads=threads, progress=progress,
                             label="validation models", passes=passes, seed=2)
    result = compare(predictor, specs, profiles[:len(specs)])
    if drift_models:
        now = np.array([profile_value(p, predictor.statistic) for p in profiles[len(specs):]])
        then = np.array([measured for _, measured in drift_models])
        result.drift = float(np.median(now / then) - 1.0)
    return result


def stored_calibration_models(calibration: dict | None, count: int) -> list[tuple[ModelSpec, float]]:
    """The first `count` (spec, measured ms) calibration points kept in a table (none in older tables)."""
    from mnas.archfile import spec_from_dict

    points = (calibration or {}).get("points") or []
    return [(spec_from_dict(p["arch"], "calibration point"), float(p["measured_ms"])) for p in points[:count]]


def write_scatter(result: ValidationResult, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo = float(min(result.measured_ms.min(), result.predicted_ms.min())) * 0.9
    hi = float(max(result.measured_ms.max(), result.predicted_ms.max())) * 1.1
    line = np.array([lo, hi])
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.12, label="+-10%")
    ax.plot(line, line, color="black", lw=1, label="y = x")
    ax.plot(line, line * 1.1, color="tab:green", lw=0.8, ls="--")
    ax.plot(line, line * 0.9, color="tab:green", lw=0.8, ls="--")
    ax.scatter(result.measured_ms, result.predicted_ms, s=18, color="tab:blue", zorder=3)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured latency (ms, {result.statistic})")
    ax.set_ylabel("predicted latency (ms)")
    stats = result.to_dict()
    ax.set_title(title or f"n={stats['n']}  within 10%: {stats['within_10pct']:.0%}  RMSPE {stats['rmspe']:.1%}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
