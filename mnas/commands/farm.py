"""`mnas farm ...`: several phones (on one host or on a Ray cluster's nodes) used as one.

    mnas farm list  --device ID [--device ID ...] [--executor local|ray] [--ray-address ADDR] [--json]
    mnas farm build --device ID [--device ID ...] --space SPACE --resolution R --out FILE [--threads 1]
                    [--calibrate N] [--statistic median|p5] [--executor local|ray] [--ray-address ADDR] [--json]

`list` fingerprints every phone (each from the node it is plugged into) and groups them by fingerprint.
`build` is `mnas table build` spread over every phone of one fingerprint: same ops, same table file format,
resumable (an existing --out is completed, never re-measured); a phone that drops out mid-build is taken out
of rotation and its op re-queued. With `--executor ray` and no --ray-address a local Ray cluster is started
and the phones given are taken as attached to this machine; on a cluster, each node declares its phones
(`ray start --resources '{"device:10.0.0.7:5555": 1}'`). The work is in `mnas.executors`.
"""

from __future__ import annotations

import argparse
import os

from mnas.commands._common import print_json
from mnas.commands.table import add_build_arguments
from mnas.errors import UserError
from mnas.executors import add_executor_arguments

CALIBRATION_SEED = 12345  # the same calibration architectures as `mnas table build`


def register(subparsers: argparse._SubParsersAction) -> None:
    farm = subparsers.add_parser("farm", help="a phone farm: many phones, one queue (local or Ray)",
                                 description="Fingerprint many phones and spread table builds over them.")
    sub = farm.add_subparsers(dest="farm_command", metavar="ACTION")
    farm.set_defaults(func=lambda args: (farm.print_help(), 2)[1])

    p = sub.add_parser("list", help="fingerprint every phone of the farm, grouped by fingerprint")
    _common(p)
    p.set_defaults(func=list_farm)

    p = sub.add_parser("build", help="build a latency table on every phone of one fingerprint at once")
    _common(p)
    add_build_arguments(p)
    p.set_defaults(func=build_on_farm)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", dest="devices", action="append", required=True, metavar="ID",
                   help="a phone of the farm (HOST:PORT or USB serial, as its node sees it); repeatable")
    add_executor_arguments(p)
    p.add_argument("--json", action="store_true")


def _open_farm(args: argparse.Namespace):
    return open_farm(args.devices, args)


def open_farm(device_ids: list[str], args: argparse.Namespace):
    """(Farm, executor) for these phones on the executor the flags ask for; the caller closes both."""
    from mnas.executors import executor_from_args
    from mnas.executors.farm import Farm

    ids = [d.strip() for d in device_ids]
    executor = executor_from_args(args, device_ids=ids)
    # An explicit key (MNAS_ADB_KEY) is used everywhere; otherwise each node signs with its own default key,
    # the one its phones already trust.
    options = {"key_path": os.environ["MNAS_ADB_KEY"]} if os.environ.get("MNAS_ADB_KEY") else {}
    try:
        return Farm(ids, executor, options), executor
    except BaseException:
        executor.close()
        raise


def list_farm(args: argparse.Namespace) -> int:
    """`mnas farm list`, and `mnas devices --executor ray`."""
    farm, executor = _open_farm(args)
    try:
        rows = farm.describe()
        groups = {k: list(v) for k, v in farm.groups.items()}
    finally:
        farm.close()
        executor.close()
    if args.json:
        print_json({"executor": executor.name, "devices": rows, "groups": groups})
    else:
        for key, ids in groups.items():
            print(f"{key}: {len(ids)} device(s): {', '.join(ids)}")
    return 0


def build_on_farm(args: argparse.Namespace) -> int:
    """`mnas farm build`, and `mnas table build` with several --device or --executor ray."""
    from latency.store import TableStore
    from latency.table_builder import calibrate, ops_of_space, random_specs
    from mnas import spaces
    from mnas.executors.farm import FarmDevice
    from mnas.executors.table import build_table_on_farm

    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.resolution < 32:
        raise UserError(f"resolution must be >= 32, got {args.resolution}")
    if args.calibrate < 0:
        raise UserError(f"--calibrate must be >= 0, got {args.calibrate}")
    space = spaces.get(args.space)
    ops = ops_of_space(space, args.resolution)
    farm, executor = _open_farm(args)
    try:
        farm.fingerprint_key()  # a mixed farm is refused before the table file is touched
        with TableStore.open(args.out, create=True) as store:
            description = {"space": space.name, "resolution": args.resolution, "threads": args.threads,
                           "ops": len(ops), "farm": sorted(farm.fingerprints), "executor": executor.name}
            report = build_table_on_farm(farm, store, ops, threads=args.threads, progress=not args.no_progress,
                                         statistic=args.statistic, description=description)
            if args.calibrate:
                specs = random_specs(space, args.calibrate, args.resolution, CALIBRATION_SEED)
                report.calibration, report.calibration_points = calibrate(
                    FarmDevice(farm), store, report.fingerprint_key, specs, threads=args.threads,
                    progress=not args.no_progress)
    finally:
        farm.close()
        executor.close()
    out = report.to_dict() | {"table": str(args.out), "space": space.name, "resolution": args.resolution,
                              "statistic": args.statistic, "executor": executor.name,
                              "by_device": report.by_device, "lost": report.lost, "requeued": report.requeued}
    if args.json:
        print_json(out)
    else:
        spread = ", ".join(f"{d} {n}" for d, n in sorted(report.by_device.items()))
        print(f"{args.out}: {report.total_ops} ops of {space.name} at {args.resolution} on {report.fingerprint_key}: "
              f"{report.measured} measured now ({spread or 'none'}), {report.skipped} already stored, "
              f"{report.seconds:.0f} s")
        for device_id, why in report.lost.items():
            print(f"dropped out: {device_id} ({why}); its op was re-queued")
        if report.calibration:
            print(f"calibration {report.calibration.describe()}")
    return 0
