"""The one device interface: profile a `.tflite` file, describe the device (fingerprint).

`devices/` knows nothing of specs, spaces or search: it profiles any `.tflite` and can be used alone.
Every device (host LiteRT, Android over ADB, the emulated phone reached over ADB) returns a `Profile`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ProfileOptions:
    threads: int = 1
    warmup_runs: int = 5
    runs: int = 30  # runs per round
    op_profile: bool = False
    max_rounds: int = 5  # repeated rounds until the median is stable
    target_rel_ci: float = 0.02  # stop when the 95% CI of the median is within +-2%
    cooldown_temp_c: float = 45.0  # wait before a round when a thermal zone is above this
    cooldown_max_s: float = 60.0


@dataclass(frozen=True)
class OpTiming:
    """One row of an op-profiling table."""

    node_type: str
    name: str
    avg_ms: float
    first_ms: float = 0.0
    percent: float = 0.0
    times_called: int = 1


@dataclass(frozen=True)
class Fingerprint:
    """What the numbers were measured on. Profiles and tables are keyed by `key`."""

    kind: str  # host | android | emulated
    model: str
    soc: str = ""
    abi: str = ""
    android_version: str = ""
    cpu_max_khz: tuple[int, ...] = ()
    governor: str = ""
    temperatures_c: dict = field(default_factory=dict, compare=False, hash=False)
    battery: dict = field(default_factory=dict, compare=False, hash=False)
    binary_sha256: str = ""  # benchmark_model build (or LiteRT version on the host)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Stable identity: what changes latency (hardware, OS, binary), not what drifts (temperature)."""
        ident = [self.kind, self.model, self.soc, self.abi, self.android_version, list(self.cpu_max_khz),
                 self.governor, self.binary_sha256]
        digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
        return f"{self.kind}:{self.model}:{digest}".replace(" ", "_")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cpu_max_khz"] = list(self.cpu_max_khz)
        out["key"] = self.key
        return out


@dataclass(frozen=True)
class Profile:
    """Whole-model latency statistics (ms) over all kept runs, plus op table when asked."""

    median_ms: float
    mean_ms: float
    std_ms: float
    p5_ms: float
    p95_ms: float
    runs: int
    fingerprint: Fingerprint
    rounds: int = 1
    round_medians_ms: tuple[float, ...] = ()
    bimodal: bool = False  # rounds fell into two clusters: reported, never averaged away silently
    noise: dict = field(default_factory=dict)  # cv, rel_ci95 of the median, ...
    ops: tuple[OpTiming, ...] | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {
            "median_ms": self.median_ms, "mean_ms": self.mean_ms, "std_ms": self.std_ms,
            "p5_ms": self.p5_ms, "p95_ms": self.p95_ms, "runs": self.runs, "rounds": self.rounds,
            "round_medians_ms": list(self.round_medians_ms), "bimodal": self.bimodal, "noise": self.noise,
            "device": self.fingerprint.to_dict(), "warnings": list(self.warnings),
        }
        if self.ops is not None:
            out["ops"] = [asdict(op) for op in self.ops]
        return out


@runtime_checkable
class Device(Protocol):
    """Anything that can time a `.tflite` file."""

    id: str

    def fingerprint(self) -> Fingerprint: ...

    def profile(self, model_path: Path, options: ProfileOptions = ProfileOptions()) -> Profile: ...

    def close(self) -> None: ...
