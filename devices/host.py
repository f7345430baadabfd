"""The `host` device: LiteRT on this machine's CPU, through `devices.litert_runner`.

Same measurement as a phone: every round is a fresh interpreter, `warmup_runs` untimed invokes, then
`runs` timed invokes; rounds repeat until the median is stable (`devices.stats`), with a cool-down wait
before a round when a thermal zone is above `cooldown_temp_c`. Op profiling, when asked, runs once more
after the timed rounds so its overhead never enters the whole-model figures.
"""

from __future__ import annotations

import hashlib
import os
import platform
from functools import cached_property
from importlib import metadata
from pathlib import Path

from devices import stats
from devices.base import Fingerprint, Profile, ProfileOptions
from mnas.errors import UserError

CPU_ROOT = Path("/sys/devices/system/cpu")
THERMAL_ROOT = Path("/sys/class/thermal")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`model name` (x86) or `Hardware` / `Processor` (ARM) from /proc/cpuinfo."""
    text = _read_text(cpuinfo) or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_max_khz(root: Path = CPU_ROOT) -> tuple[int, ...]:
    """cpuinfo_max_freq per core (kHz), in core order; () when cpufreq is not exposed (VMs, containers)."""
    freqs = []
    for core in sorted(root.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        value = _read_text(core / "cpufreq" / "cpuinfo_max_freq")
        if value is None or not value.isdigit():
            return ()
        freqs.append(int(value))
    return tuple(freqs)


def cpu_governor(root: Path = CPU_ROOT) -> str:
    return _read_text(root / "cpu0" / "cpufreq" / "scaling_governor") or ""


def to_celsius(raw: str) -> float | None:
    """Thermal zones report millidegrees (most kernels) or degrees (some vendors)."""
    try:
        value = float(raw)
    except ValueError:
        return None
    celsius = value / 1000.0 if abs(value) >= 1000 else value
    return celsius if -40.0 < celsius < 150.0 else None  # sensors report junk (-273, 0xffff) when off


def thermal_zones(root: Path = THERMAL_ROOT) -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        raw = _read_text(zone / "temp")
        celsius = to_celsius(raw) if raw is not None else None
        if celsius is not None:
            name = _read_text(zone / "type") or zone.name
            temps[name if name not in temps else f"{name}/{zone.name}"] = celsius
    return temps


def max_temperature(root: Path = THERMAL_ROOT) -> float | None:
    temps = thermal_zones(root)
    return max(temps.values()) if temps else None


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def runtime_versions() -> dict[str, str]:
    return {"ai-edge-litert": _version("ai-edge-litert"),
            "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
            "python": platform.python_version()}


class HostDevice:
    """LiteRT on this machine's CPU. Its fingerprint kind is `host`.

    `clock="thread-cpu"` (device id `host-cpu`) times invokes by the calling thread's CPU time: on a shared
    machine wall-clock medians swung 2-4x with other jobs' load while thread CPU time stayed within 5%
    (docs/latency.md). Its fingerprint names the clock, so its tables never mix with wall-clock ones.
    """

    def __init__(self, clock: str = "wall") -> None:
        from devices.litert_runner import CLOCKS

        if clock not in CLOCKS:
            raise UserError(f"clock {clock!r} not in {tuple(CLOCKS)}")
        self.clock = clock
        self.id = "host" if clock == "wall" else "host-cpu"

    @cached_property
    def _static(self) -> dict:
        versions = runtime_versions()
        cores = os.cpu_count() or 1
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
        return {
            "model": cpu_model_name(),
            # The CPU model name alone does not tell a 2-core VM from a 64-core server.
            "soc": f"{cores}-core {platform.machine()}",
            "abi": platform.machine(),
            "cpu_max_khz": cpu_max_khz(),
            "governor": cpu_governor(),
            # The host's "benchmark binary" is the LiteRT runtime: its versions decide the kernels used.
            "binary_sha256": hashlib.sha256(
                ";".join(f"{k}=={v}" for k, v in sorted(versions.items())).encode()).hexdigest(),
            "extra": {"cores": cores, "usable_cores": usable, "versions": versions, "os": platform.platform(),
                      "runner": "devices.litert_runner"},
        }

    def fingerprint(self) -> Fingerprint:
        static = self._static
        model = static["model"] if self.clock == "wall" else f"{static['model']} (thread CPU time)"
        return Fingerprint(kind="host", model=model, soc=static["soc"], abi=static["abi"],
                           cpu_max_khz=static["cpu_max_khz"], governor=static["governor"],
                           temperatures_c=thermal_zones(), binary_sha256=static["binary_sha256"],
                           extra=dict(static["extra"]))

    def profile(self, model_path: Path, options: ProfileOptions = ProfileOptions()) -> Profile:
        from devices import litert_runner

        path = Path(model_path)
        litert_runner.read_model_bytes(path)  # missing or not a .tflite: UserError before any timing
        fingerprint = self.fingerprint()

        before_round = stats.CooldownGuard(max_temperature, options.cooldown_temp_c, options.cooldown_max_s)

        def run_round(index: int) -> stats.Round:
            timings = litert_runner.run_benchmark(path, num_threads=options.threads, clock=self.clock,
                                                  warmup_runs=options.warmup_runs, num_runs=options.runs)
            return stats.Round.from_times([t / 1000.0 for t in timings.times_us])

        rounds = stats.measure_rounds(run_round, max_rounds=options.max_rounds,
                                      target_rel_ci=options.target_rel_ci, before_round=before_round)
        summary = stats.summarize(rounds, target_rel_ci=options.target_rel_ci, max_rounds=options.max_rounds)
        ops = None
        if options.op_profile:
            timings = litert_runner.run_benchmark(path, num_threads=options.threads, warmup_runs=options.warmup_runs,
                                                  num_runs=options.runs, op_profiling=True)
            ops = tuple(timings.ops or ())
        fields = stats.to_profile_fields(summary, options.target_rel_ci)
        before_round.add_to(fields)
        return Profile(fingerprint=fingerprint, ops=ops, **fields)

    def close(self) -> None:
        pass

    def __enter__(self) -> "HostDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

