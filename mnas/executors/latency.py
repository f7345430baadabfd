"""LAT(m) for a search, measured on a phone farm: a batch of children timed on every phone at once.

    source = FarmLatency(Farm(ids, executor), cache=store.cache("latency"))
    source.latency_ms(batch_specs)      # all phones of the fingerprint busy; results cached per spec
    source.latency_ms([spec])           # later, per child: a cache hit

It is a `mnas.latency_sources.DeviceLatency` over `FarmDevice` (same settings, same cache entries, same
exporter), whose `latency_ms` sends the uncached specs of a batch through `Farm.profile_many` instead of
one by one. The search loop measures one child at a time; calling `latency_ms(batch)` once per step first
(`parallel = True`) fills the cache, so its per-child calls then cost nothing. A phone that drops out is
handled by the farm (out of rotation, job re-queued).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Sequence

from devices.base import ProfileOptions
from mnas.executors.farm import Farm, FarmDevice, Job
from mnas.latency_sources import SEARCH_PROFILE, DeviceLatency
from mnas.runstore import ResultCache, spec_key
from mnas.spec import ModelSpec


class FarmLatency(DeviceLatency):
    parallel = True

    def __init__(self, farm: Farm, fingerprint_key: str | None = None, options: ProfileOptions = SEARCH_PROFILE,
                 cache: ResultCache | None = None, use_converter: bool = False) -> None:
        super().__init__(FarmDevice(farm, fingerprint_key), options, cache, use_converter)
        self.farm = farm

    def latency_ms(self, specs: Sequence[ModelSpec]) -> list[float]:
        settings = self.settings()
        missing: dict[str, ModelSpec] = {}
        for spec in specs:
            key = spec_key(spec, **settings)
            if self.cache.get(key) is None:
                missing.setdefault(key, spec)  # duplicates in a batch are measured once
        if len(missing) > 1:
            self._measure_batch(missing)
        return [self._one(spec) for spec in specs]  # cache hits for the batch just measured

    def _measure_batch(self, specs: dict[str, ModelSpec]) -> None:
        with tempfile.TemporaryDirectory(prefix="mnas-farm-lat-") as tmp:
            t0 = time.perf_counter()
            jobs = [Job(key, self._export(spec, Path(tmp) / f"child{i}.tflite"))
                    for i, (key, spec) in enumerate(specs.items())]
            export_s = (time.perf_counter() - t0) / len(jobs)
            for result in self.farm.profile_many(jobs, self.device.key, self.options):
                p = result.profile
                self.cache.put(result.key, {"median_ms": p.median_ms, "p5_ms": p.p5_ms, "p95_ms": p.p95_ms,
                                            "runs": p.runs, "bimodal": p.bimodal, "export_s": export_s,
                                            "profile_s": result.seconds, "device_id": result.device_id})

    def _export(self, spec: ModelSpec, path: Path) -> Path:
        if self._writer is not None:
            self._writer(spec, path)
        else:
            from mnas.export import export_tflite

            export_tflite(spec, path)
        return path
