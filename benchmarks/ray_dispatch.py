"""Dispatch overhead of the phone farm: Ray vs local, per profile (ms), on an emulated phone.

Run: .venv/bin/python benchmarks/ray_dispatch.py [--profiles 200] [--repeats 2] [--json]

One emulated phone runs as `mnas emulator --port 0` in its own process (as a user runs it). The same tiny
model (16 px, 4 channels) is profiled --profiles times, each a 1-round, 5-run profile, three ways:
  direct  device.profile() in a plain loop (no executor): the work itself
  local   Farm([phone], LocalExecutor).profile_many(jobs): the farm's queue, the worker a thread
  ray     Farm([phone], RayExecutor).profile_many(jobs): the worker a Ray actor in its own process,
          each job's model bytes and its Profile crossing Ray's object store
Per-profile wall time = total / profiles; the overhead of a mode = its per-profile time - direct's. The modes
are interleaved within each repeat. The bare dispatch cost is also timed: --profiles no-op calls
(`DeviceWorker.where`) to the worker and back, no phone involved.
The local Ray cluster's start-up (ray.init) and the farm's start (actor + fingerprint) are reported apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.emulator.process import EmulatorProcess  # noqa: E402

from devices.adb_keys import ensure_key  # noqa: E402
from devices.android import AndroidDevice  # noqa: E402
from devices.base import ProfileOptions  # noqa: E402
from devices.emulator.sample_model import tiny_cnn_tflite  # noqa: E402

OPTIONS = ProfileOptions(threads=1, warmup_runs=1, runs=5, max_rounds=1, target_rel_ci=0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="each mode this many times (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mnas.executors import get_executor
    from mnas.executors.farm import Farm, Job

    work = Path(tempfile.mkdtemp(prefix="mnas-ray-dispatch-"))
    key = ensure_key(work / "adbkey")
    binary = work / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in\n" * 4)
    model = work / "tiny.tflite"
    model.write_bytes(tiny_cnn_tflite(resolution=16, channels=4, classes=4))
    phone = EmulatorProcess(work / "phone")
    options = {"key_path": str(key)}
    per_profile: dict[str, list[float]] = {"direct": [], "local": [], "ray": []}
    round_trip_ms: dict[str, float] = {}
    startup: dict[str, float] = {}
    jobs = [Job(f"p{i}", model.read_bytes()) for i in range(args.profiles)]
    farms, executors = {}, {}
    try:
        device = AndroidDevice(phone.serial, key_path=key)
        device.setup(binary)
        device.profile(model, OPTIONS)  # connection and first-run warm-up, not timed
        for name in ("local", "ray"):
            t0 = time.perf_counter()
            executors[name] = get_executor(name, device_ids=[phone.serial]) if name == "ray" else get_executor("local")
            t1 = time.perf_counter()
            farms[name] = Farm([phone.serial], executors[name], options)
            list(farms[name].profile_many(jobs[:1], options=OPTIONS))  # the worker's first connection, not timed
            startup[f"{name}_executor_s"] = t1 - t0
            startup[f"{name}_farm_start_s"] = time.perf_counter() - t1
            # The bare dispatch: a no-op call on the device worker and back, no phone involved.
            worker, executor = farms[name].workers[phone.serial], executors[name]
            start = time.perf_counter()
            for _ in range(args.profiles):
                executor.result(executor.call(worker, "where"))
            round_trip_ms[name] = (time.perf_counter() - start) * 1000 / args.profiles
        for _ in range(args.repeats):  # modes interleaved, so drifting load from other work hits each alike
            start = time.perf_counter()
            for _ in range(args.profiles):
                device.profile(model, OPTIONS)
            per_profile["direct"].append((time.perf_counter() - start) * 1000 / args.profiles)
            for name, farm in farms.items():
                start = time.perf_counter()
                results = list(farm.profile_many(jobs, options=OPTIONS))
                assert len({r.key for r in results}) == args.profiles
                per_profile[name].append((time.perf_counter() - start) * 1000 / args.profiles)
        device.close()
    finally:
        for name, farm in farms.items():
            farm.close()
            executors[name].close()
        phone.close()
    medians = {k: statistics.median(v) for k, v in per_profile.items()}
    out = {"profiles": args.profiles, "repeats": args.repeats, "options": OPTIONS.__dict__,
           "per_profile_ms": per_profile, "median_per_profile_ms": medians,
           "overhead_vs_direct_ms": {k: medians[k] - medians["direct"] for k in ("local", "ray")},
           "ray_minus_local_ms": medians["ray"] - medians["local"], "noop_round_trip_ms": round_trip_ms,
           "startup_s": startup}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k in ("direct", "local", "ray"):
            runs = ", ".join(f"{v:.2f}" for v in per_profile[k])
            print(f"{k:>6}: {medians[k]:.2f} ms per profile (runs: {runs})")
        print(f"overhead per profile: local {out['overhead_vs_direct_ms']['local']:+.2f} ms, "
              f"ray {out['overhead_vs_direct_ms']['ray']:+.2f} ms (ray - local {out['ray_minus_local_ms']:+.2f} ms)")
        print("no-op call round trip: " + ", ".join(f"{k} {v:.3f} ms" for k, v in round_trip_ms.items()))
        print("start-up: " + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
