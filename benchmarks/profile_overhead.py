"""Profiling overhead on the emulated phone over loopback, for a MobileNetV3-Small export; push MB/s.

    .venv/bin/python benchmarks/profile_overhead.py [--repeats 3] [--model mobilenetv3-small] [--json]

overhead = wall time of a profile - the model's own run time, where the model's own time is what
`benchmark_model` reports it spent (Init + warm-up runs + timed runs, from each round's output). Measured
  * in-process: `AndroidDevice.profile` (fingerprint, push, shell round trips, parsing, cooldown checks,
    clean-up), with the default ProfileOptions;
  * CLI: `mnas profile --device 127.0.0.1:PORT --model FILE.tflite --json` in a subprocess (adds Python
    start-up and imports); its model time is approximated from the JSON as (runs + rounds * warmup) * mean_ms.
Push throughput: model bytes / push time (push + size check), and a 64 MiB random blob.
The emulated phone runs in this process (threads), on the same 2 shared cores as the client.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.adb_keys import ensure_key  # noqa: E402
from devices.android import REMOTE_DIR, AndroidDevice  # noqa: E402
from devices.base import ProfileOptions  # noqa: E402
from devices.emulator.daemon import EmulatedPhone  # noqa: E402


def model_time_ms(outputs) -> float:
    total_us = 0.0
    for out in outputs:
        total_us += out.init_us or 0.0
        if out.warmup is not None:
            total_us += out.warmup.count * out.warmup.avg_us
        total_us += out.runs.count * out.runs.avg_us
    return total_us / 1000.0


def export(name: str) -> Path:
    from mnas.archfile import resolve_arch
    from mnas.export import export_tflite

    return export_tflite(resolve_arch(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="mobilenetv3-small")
    parser.add_argument("--blob-mib", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model = export(args.model)
    work = Path(tempfile.mkdtemp(prefix="mnas-overhead-"))
    key = ensure_key(work / "adbkey")
    binary = work / "benchmark_model"
    binary.write_bytes(b"placeholder: the emulated phone runs LiteRT for any benchmark_model\n")
    options = ProfileOptions()
    result: dict = {"model": args.model, "model_bytes": model.stat().st_size, "options": options.__dict__,
                    "in_process": [], "cli": [], "push_mb_s": [], "blob_push_mb_s": None}
    with EmulatedPhone(port=0) as phone:
        device_id = f"127.0.0.1:{phone.port}"
        with AndroidDevice(device_id, key_path=key) as device:
            device.setup(binary)
        for _ in range(args.repeats):
            with AndroidDevice(device_id, key_path=key) as device:
                start = time.perf_counter()
                profile = device.profile(model, options)
                wall_ms = (time.perf_counter() - start) * 1000.0
                own_ms = model_time_ms(device.run_outputs)
                push_ms = device.push_seconds * 1000.0
                result["in_process"].append({"wall_ms": wall_ms, "model_ms": own_ms, "overhead_ms": wall_ms - own_ms,
                                             "push_ms": push_ms, "overhead_without_push_ms": wall_ms - own_ms - push_ms,
                                             "rounds": profile.rounds, "median_ms": profile.median_ms})
                result["push_mb_s"].append(device.push_bytes / 1e6 / device.push_seconds)
        env = dict(os.environ, MNAS_ADB_KEY=str(key))
        for _ in range(args.repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "mnas.cli", "profile", "--device", device_id,
                                   "--model", str(model), "--json"], env=env, capture_output=True, text=True)
            wall_ms = (time.perf_counter() - start) * 1000.0
            if proc.returncode != 0:
                raise SystemExit(f"mnas profile failed: {proc.stderr.strip()}")
            data = json.loads(proc.stdout)
            own_ms = (data["runs"] + data["rounds"] * options.warmup_runs) * data["mean_ms"]
            result["cli"].append({"wall_ms": wall_ms, "model_ms_approx": own_ms, "overhead_ms": wall_ms - own_ms,
                                  "rounds": data["rounds"]})
        with AndroidDevice(device_id, key_path=key) as device:
            blob = os.urandom(args.blob_mib << 20)
            device.push(blob, f"{REMOTE_DIR}/blob.bin")
            result["blob_push_mb_s"] = len(blob) / 1e6 / device.push_seconds
            device.shell(["rm", "-f", f"{REMOTE_DIR}/blob.bin"])

    summary = {
        "in_process_overhead_ms_median": statistics.median(r["overhead_ms"] for r in result["in_process"]),
        "in_process_overhead_without_push_ms_median": statistics.median(
            r["overhead_without_push_ms"] for r in result["in_process"]),
        "cli_overhead_ms_median": statistics.median(r["overhead_ms"] for r in result["cli"]),
        "model_push_mb_s_median": statistics.median(result["push_mb_s"]),
        "blob_push_mb_s": result["blob_push_mb_s"],
    }
    summary["loadavg_1min_after"] = os.getloadavg()[0]
    result["summary"] = summary
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {args.model}: {result['model_bytes'] / 1e6:.2f} MB, options {options}")
        for r in result["in_process"]:
            print(f"  in-process: wall {r['wall_ms']:.0f} ms, model {r['model_ms']:.0f} ms, "
                  f"overhead {r['overhead_ms']:.0f} ms of which push {r['push_ms']:.0f} ms "
                  f"({r['rounds']} rounds, median {r['median_ms']:.3f} ms)")
        for r in result["cli"]:
            print(f"  CLI:        wall {r['wall_ms']:.0f} ms, model ~{r['model_ms_approx']:.0f} ms, "
                  f"overhead {r['overhead_ms']:.0f} ms ({r['rounds']} rounds)")
        print(f"load average (1 min) at the end: {summary['loadavg_1min_after']:.1f}")
        print(f"push over loopback: model {summary['model_push_mb_s_median']:.1f} MB/s (median), "
              f"{args.blob_mib} MiB blob {summary['blob_push_mb_s']:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
