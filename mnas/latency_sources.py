"""LAT(m) for the search: measured on a device, or predicted from a latency table.

Both are `LatencySource`s: `name`, `measured`, `settings()` and `latency_ms(specs) -> list[float]`.
Specs arrive at the target (latency) resolution; the proxy resolution never reaches this module.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from devices.base import Device, ProfileOptions
from mnas.runstore import MemoryCache, ResultCache, spec_key
from mnas.spec import ModelSpec

# Search-time profiling: fewer, shorter rounds than a table build. A child's latency only has to rank it
# against the target; the defaults still stop early once the median is stable (devices.stats).
SEARCH_PROFILE = ProfileOptions(threads=1, warmup_runs=3, runs=15, max_rounds=3, target_rel_ci=0.03)


@runtime_checkable
class LatencySource(Protocol):
    name: str
    measured: bool

    def latency_ms(self, specs: Sequence[ModelSpec]) -> list[float]: ...

    def settings(self) -> dict: ...


def _fast_writer():
    """The timing-only TFLite writer (no TF). It is part of this repository: an import error is a bug to see,
    never a silent switch to the converter (112-1044x slower)."""
    from latency.tflite_writer import write_tflite

    return write_tflite


class DeviceLatency:
    """Median latency of each spec on a device: export (fast writer; the TF converter only when asked with
    `use_converter`), profile, cache."""

    measured = True

    def __init__(self, device: Device, options: ProfileOptions = SEARCH_PROFILE, cache: ResultCache | None = None,
                 use_converter: bool = False) -> None:
        self.device = device
        self.options = options
        self.cache = cache if cache is not None else MemoryCache()
        self._writer = None if use_converter else _fast_writer()
        self.name = device.id
        self.last_seconds: dict[str, float] = {}
        self._fingerprint_key: str | None = None

    @property
    def fingerprint_key(self) -> str:
        if self._fingerprint_key is None:
            self._fingerprint_key = self.device.fingerprint().key
        return self._fingerprint_key

    def settings(self) -> dict:
        return {"kind": "device", "device": self.device.id, "fingerprint": self.fingerprint_key,
                "exporter": "fast-writer" if self._writer else "converter", "options": asdict(self.options)}

    def latency_ms(self, specs: Sequence[ModelSpec]) -> list[float]:
        return [self._one(spec) for spec in specs]

    def remeasure_ms(self, spec: ModelSpec) -> float:
        """A fresh measurement (the cache is neither read nor written): to check drift of machine load."""
        return self._one(spec, use_cache=False)

    def _one(self, spec: ModelSpec, use_cache: bool = True) -> float:
        key = spec_key(spec, **self.settings())
        hit = self.cache.get(key) if use_cache else None
        if hit is not None:
            self.last_seconds = {"export_s": 0.0, "profile_s": 0.0}
            return float(hit["median_ms"])
        with tempfile.TemporaryDirectory(prefix="mnas-lat-") as tmp:
            path = Path(tmp) / "child.tflite"
            t0 = time.perf_counter()
            if self._writer is not None:
                self._writer(spec, path)
            else:
                from mnas.export import export_tflite

                export_tflite(spec, path)
            t1 = time.perf_counter()
            profile = self.device.profile(path, self.options)
            t2 = time.perf_counter()
        self.last_seconds = {"export_s": t1 - t0, "profile_s": t2 - t1}
        if not use_cache:
            return float(profile.median_ms)
        self.cache.put(key, {"median_ms": profile.median_ms, "p5_ms": profile.p5_ms, "p95_ms": profile.p95_ms,
                             "runs": profile.runs, "bimodal": profile.bimodal, **self.last_seconds})
        return float(profile.median_ms)


class TableLatency:
    """Predicted latency from a per-device latency table (sum of op entries, calibrated)."""

    measured = False

    def __init__(self, predictor, name: str | None = None) -> None:
        self.predictor = predictor
        self.name = name or f"table:{Path(str(predictor.source)).name}"
        self.last_seconds: dict[str, float] = {}

    def settings(self) -> dict:
        return {"kind": "table", "table": str(self.predictor.source), "fingerprint": self.predictor.fingerprint_key}

    def latency_ms(self, specs: Sequence[ModelSpec]) -> list[float]:
        t0 = time.perf_counter()
        out = [float(v) for v in self.predictor.predict_ms(list(specs))]
        self.last_seconds = {"predict_s": time.perf_counter() - t0}
        return out
