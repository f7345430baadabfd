"""Repeatability on the host: CV of the median across repeated `profile` calls of mnasnet-a1, 1 thread.

    .venv/bin/python benchmarks/host_repeatability.py [--calls 5] [--model mnasnet-a1] [--json]

Each call is a full `HostDevice().profile` with the default ProfileOptions (5 warm-up + 30 runs per
round, rounds until the 95% CI of the median is within +-2%, at most 5 rounds); the figure is
std / mean of the 5 medians. The machine (2 cores) was shared with other work while measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.base import ProfileOptions  # noqa: E402
from devices.host import HostDevice  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--model", default="mnasnet-a1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mnas.archfile import resolve_arch
    from mnas.export import export_tflite

    model = export_tflite(resolve_arch(args.model))
    load_before = os.getloadavg()
    device = HostDevice()
    options = ProfileOptions(threads=args.threads)
    calls = []
    for _ in range(args.calls):
        profile = device.profile(model, options)
        calls.append({"median_ms": profile.median_ms, "p95_ms": profile.p95_ms, "rounds": profile.rounds,
                      "rel_ci95": profile.noise["rel_ci95"], "bimodal": profile.bimodal,
                      "round_medians_ms": list(profile.round_medians_ms), "warnings": list(profile.warnings)})
        if not args.json:
            c = calls[-1]
            print(f"  median {c['median_ms']:.3f} ms  p95 {c['p95_ms']:.3f}  rounds {c['rounds']}  "
                  f"CI +-{c['rel_ci95']:.2%}  bimodal {c['bimodal']}", flush=True)
    medians = [c["median_ms"] for c in calls]
    cv = statistics.stdev(medians) / statistics.mean(medians) if len(medians) > 1 else 0.0
    result = {"model": args.model, "threads": args.threads, "calls": calls, "cv_of_median": cv,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "fingerprint": device.fingerprint().to_dict()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model}, {args.threads} thread(s): CV of the median across {len(medians)} calls = {cv:.2%} "
              f"(medians {', '.join(f'{m:.3f}' for m in medians)} ms); "
              f"load average before/after {load_before[0]:.1f}/{result['loadavg_after'][0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
