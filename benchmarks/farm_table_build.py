"""Latency-table build over a phone farm: ops per minute with 1, 2 and 4 emulated phones (Ray executor).

Run: .venv/bin/python benchmarks/farm_table_build.py [--space mobilenetv3] [--resolution 64] [--ops 48]
                                                     [--phones 1,2,4] [--json]

Each emulated phone is `mnas emulator --port 0` in its own process; one local Ray cluster (started once, its
node declaring each phone's `device:<id>` resource) holds one actor per phone. For each phone count, the
first --ops distinct ops of the space, plus the `overhead` model, are built into a fresh table with
`build_table_on_farm` and the table builder's own op options (latency.table_builder.OP_OPTIONS), after a
4-op warm-up build into a throwaway table (first connections and first interpreters are not counted).
The figure is stored rows / wall minutes of the build (rows committed to SQLite by the driver as they come).
Baseline: `latency.table_builder.build_table` on one phone in this process, no farm, no Ray.

Honest caveat: the emulated phones run LiteRT on this host's CPU. On a 2-core machine, 4 phones share
2 cores with the Ray workers, the driver and whatever else runs, so more phones cannot mean 4x: the figure
shows the farm's overhead and how far the host lets it scale, not what 4 real phones would give.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.emulator.process import EmulatorProcess  # noqa: E402

from devices.adb_keys import ensure_key  # noqa: E402
from devices.android import AndroidDevice  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobilenetv3")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--ops", type=int, default=60, help="first N distinct ops of the space")
    parser.add_argument("--phones", default="1,2,4")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.phones.split(",")]

    from latency.store import TableStore
    from latency.table_builder import build_table, ops_of_space
    from mnas import spaces
    from mnas.executors import get_executor
    from mnas.executors.farm import Farm
    from mnas.executors.table import build_table_on_farm

    ops = dict(list(ops_of_space(spaces.get(args.space), args.resolution).items())[:args.ops])
    warm_ops = dict(list(ops.items())[:4])  # first connections and first interpreters, kept out of the figures
    work = Path(tempfile.mkdtemp(prefix="mnas-farm-bench-"))
    key = ensure_key(work / "adbkey")
    binary = work / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in\n" * 4)
    phones = [EmulatorProcess(work / f"phone{i}") for i in range(max(counts))]
    rows: list[dict] = []
    try:
        for phone in phones:
            with AndroidDevice(phone.serial, key_path=key) as device:
                device.setup(binary)
        if not args.no_baseline:
            with AndroidDevice(phones[0].serial, key_path=key) as device, \
                    TableStore.open(work / "baseline.db", create=True) as store:
                with TableStore.open(work / "baseline-warm.db", create=True) as warm:
                    build_table(device, warm, warm_ops, progress=False)
                report = build_table(device, store, ops, progress=False)
                rows.append({"mode": "build_table (no farm)", "phones": 1, "ops": report.measured,
                             "seconds": report.seconds, "ops_per_min": report.measured / report.seconds * 60})
        t0 = time.perf_counter()
        executor = get_executor("ray", device_ids=[p.serial for p in phones])
        ray_start_s = time.perf_counter() - t0
        for count in counts:
            with Farm([p.serial for p in phones[:count]], executor, {"key_path": str(key)}) as farm, \
                    TableStore.open(work / f"farm{count}.db", create=True) as store:
                with TableStore.open(work / f"farm{count}-warm.db", create=True) as warm:
                    build_table_on_farm(farm, warm, warm_ops, progress=False)
                report = build_table_on_farm(farm, store, ops, progress=False)
                stored = sum(store.counts().values())
            rows.append({"mode": "ray farm", "phones": count, "ops": report.measured, "stored": stored,
                         "seconds": report.seconds, "ops_per_min": report.measured / report.seconds * 60,
                         "by_device": report.by_device})
        executor.close()
    finally:
        for phone in phones:
            phone.close()
    out = {"space": args.space, "resolution": args.resolution, "ops": len(ops) + 1, "ray_start_s": ray_start_s,
           "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.space} @ {args.resolution}px: {len(ops)} ops + overhead; Ray start-up {ray_start_s:.1f} s")
        for r in rows:
            spread = f"  per phone {sorted(r['by_device'].values())}" if "by_device" in r else ""
            print(f"{r['mode']:>22} x{r['phones']}: {r['ops']} ops in {r['seconds']:.1f} s = "
                  f"{r['ops_per_min']:.0f} ops/min{spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
