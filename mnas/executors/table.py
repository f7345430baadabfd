"""A latency-table build spread over a phone farm: the same ops and the same rows as `latency.table_builder`.

    with Farm(ids, executor) as farm, TableStore.open(path, create=True) as store:
        report = build_table_on_farm(farm, store, ops_of_space(space, 224), threads=1)

It enumerates what `build_table` enumerates (every distinct op, plus the `overhead` model), skips what the
store already holds for this fingerprint (resumable: a killed build re-runs only the missing ops), writes
every single-op model on the driver, and lets the farm time them on every phone of the fingerprint at once.
Each result is committed as it arrives, by the driver alone (phones and actors never touch SQLite).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from devices.base import Profile, ProfileOptions
from latency.opkeys import overhead_key
from latency.store import TableStore
from latency.table_builder import OP_OPTIONS, BuildReport, entry_extra, plan_build, write_op_model
from mnas.executors.farm import Farm, Job
from mnas.progress import progress_bar
from mnas.spec import Layer


def build_table_on_farm(farm: Farm, store: TableStore, ops: dict[str, Layer], *, threads: int = 1,
                        op_options: ProfileOptions | None = None, progress: bool = True, statistic: str = "median",
                        description: dict | None = None,
                        on_op: Callable[[str, str, Profile], None] | None = None) -> BuildReport:
    """Measure every op of `ops` the table lacks for the farm's (single) fingerprint; store each as it comes.

    `on_op(op_key, device_id, profile)` is called after each row is committed."""
    start = time.perf_counter()
    fingerprint = farm.fingerprint(farm.fingerprint_key())  # mixed farms are refused here
    options = ProfileOptions(**{**(op_options or OP_OPTIONS).__dict__, "threads": threads})
    # The same record as latency.table_builder.build_table, so either builder can resume the other.
    fp_key, todo = plan_build(store, fingerprint, ops, threads, statistic, description)
    measured = 0
    by_device: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="mnas-farm-ops-") as tmp, progress_bar(progress, eta=True) as bar:
        jobs = [Job(key, write_op_model([layer], Path(tmp) / f"op{i}.tflite")) for i, (key, layer) in
                enumerate(todo.items())]
        task = bar.add_task(f"ops on {len(farm.groups[fingerprint.key])} x {fingerprint.model}", total=len(jobs))
        for result in farm.profile_many(jobs, fingerprint.key, options):
            layer = todo[result.key]
            profile = result.profile
            extra = {**entry_extra(profile, None if result.key == overhead_key() else layer),
                     "device_id": result.device_id}
            store.put(fp_key, result.key, profile.runs, profile.mean_ms, profile.median_ms, profile.std_ms, extra)
            measured += 1
            by_device[result.device_id] = by_device.get(result.device_id, 0) + 1
            if on_op is not None:
                on_op(result.key, result.device_id, profile)
            bar.advance(task)
    overhead = store.entries(fp_key).get(overhead_key())
    report = BuildReport(fp_key, len(ops), measured, sum(1 for k in ops if k not in todo), time.perf_counter() - start,
                         overhead.value(statistic) if overhead else None)
    report.by_device = by_device  # type: ignore[attr-defined]  # ops measured per phone, for the CLI/benchmark
    report.lost = dict(farm.lost)  # type: ignore[attr-defined]
    report.requeued = farm.requeued  # type: ignore[attr-defined]
    return report
