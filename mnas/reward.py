"""Multi-objective rewards: accuracy traded against latency on one or several devices.

    MnasNet (eq. 2-3), per device d with target T_d:  ACC * prod_d (LAT_d / T_d) ** w_d,
        w_d = alpha if LAT_d <= T_d else beta
        hard: alpha = 0, beta = -1 (no bonus under the target, steep penalty over it)
        soft: alpha = beta = -0.07 (MnasNet's choice: ~5% latency is worth ~0.35% relative accuracy)
    TuNAS absolute value ("abs"):  ACC + sum_d beta * |LAT_d / T_d - 1|, beta < 0 (default -0.10)

One latency per device, in the order of `targets_ms`. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mnas.errors import UnknownNameError, UserError

KINDS = ("soft", "hard", "abs")
PRESETS = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0), "abs": (None, -0.10)}  # (alpha, beta)


def parse_targets(text: str, count: int | None = None) -> list[float]:
    """'20,35.5,50' -> [20.0, 35.5, 50.0]: the one parser of --target-ms (search and scale); `count`: how many
    values there must be (one per device/table). One clear UserError for anything else."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--target-ms must be numbers of ms separated by commas: {part!r} is not a number "
                            "(e.g. --target-ms 20,35)") from None
        if not (np.isfinite(value) and value > 0):
            raise UserError(f"--target-ms values must be positive (> 0 ms), got {part}")
        out.append(value)
    if count is not None and len(out) != count:
        raise UserError(f"--target-ms has {len(out)} value(s) but {count} device/table(s) were given; "
                        "give one per --device/--table, comma-separated")
    return out


@dataclass(frozen=True)
class Reward:
    """`Reward('soft', [80.0])(0.75, [70.0])`; `batch(acc[n], lat[n, devices])` for many at once."""

    kind: str
    targets_ms: Sequence[float]
    alpha: float | None = None
    beta: float | None = None
    _targets: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UnknownNameError("reward", str(self.kind), list(KINDS))
        targets = np.asarray(list(self.targets_ms), dtype=float).reshape(-1)
        if targets.size == 0:
            raise UserError("a reward needs at least one latency target")
        if not np.all(np.isfinite(targets)) or np.any(targets <= 0):
            raise UserError(f"latency targets must be positive numbers of ms, got {list(self.targets_ms)}")
        alpha, beta = PRESETS[self.kind]
        object.__setattr__(self, "alpha", alpha if self.alpha is None else float(self.alpha))
        object.__setattr__(self, "beta", beta if self.beta is None else float(self.beta))
        object.__setattr__(self, "targets_ms", tuple(float(t) for t in targets))
        object.__setattr__(self, "_targets", targets)

    @property
    def num_devices(self) -> int:
        return len(self.targets_ms)

    def __call__(self, accuracy: float, latencies_ms: Sequence[float]) -> float:
        lat = np.asarray(list(latencies_ms), dtype=float).reshape(1, -1)
        return float(self.batch(np.array([float(accuracy)]), lat)[0])

    def batch(self, acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Rewards of n children: acc shape (n,), lat shape (n, devices) (or (n,) for one device)."""
        acc = np.asarray(acc, dtype=float).reshape(-1)
        lat = np.asarray(lat, dtype=float)
        if lat.ndim == 1:
            lat = lat.reshape(-1, 1) if self.num_devices == 1 else lat.reshape(1, -1)
        if lat.shape != (acc.size, self.num_devices):
            raise UserError(f"expected latencies of shape ({acc.size}, {self.num_devices}) "
                            f"(one per device), got {lat.shape}")
        if np.any(~np.isfinite(lat)) or np.any(lat <= 0):
            raise UserError("latencies must be positive numbers of ms")
        ratio = lat / self._targets
        if self.kind == "abs":
            return acc + self.beta * np.abs(ratio - 1.0).sum(axis=1)
        w = np.where(ratio <= 1.0, self.alpha, self.beta)
        return acc * np.prod(ratio ** w, axis=1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "targets_ms": list(self.targets_ms), "alpha": self.alpha, "beta": self.beta}
