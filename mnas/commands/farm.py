"""`mnas farm ...`: several phones (on one host or on a Ray cluster's nodes) used as one.

    mnas farm list  --device ID [--device ID ...] [--executor local|ray] [--ray-address ADDR] [--json]
    mnas farm build --device ID [--device ID ...] --space SPACE --resolution R --out FILE [--threads 1]
                    [--calibrate N] [--statistic median|p5] [--executor local|ray] [--ray-address ADDR] [--json]

`list` fingerprints every phone (each from the node it is plugged into) and groups them by fingerprint.
`build` is `mnas table build` spread over every phone of one fingerprint: same ops, same table file format,
resumable (an existing --out is completed, never re-measured); a phone that drops out mid-build is taken out
of rotation and its op re-queued. With `--executor ray` and no --ray-address a local Ray cluster is started
and the phones given are taken as attached to this machine; on a cluster, each node declares its phones
(`ray start --resources '{"device:10.0.0.7:5555": 1}'`). The work is in `mnas.table_jobs`
and `mnas.executors`.
"""

from __future__ import annotations

import argparse

from mnas.commands._common import add_build_arguments, build_config, emit
from mnas.executors import add_executor_arguments, executor_choice
from mnas.table_jobs import build_table, list_farm


def register(subparsers: argparse._SubParsersAction) -> None:
    farm = subparsers.add_parser("farm", help="a phone farm: many phones, one queue (local or Ray)",
                                 description="Fingerprint many phones and spread table builds over them.")
    sub = farm.add_subparsers(dest="farm_command", metavar="ACTION")
    farm.set_defaults(func=lambda args: (farm.print_help(), 2)[1])

    p = sub.add_parser("list", help="fingerprint every phone of the farm, grouped by fingerprint")
    _common(p)
    p.set_defaults(func=_list)

    p = sub.add_parser("build", help="build a latency table on every phone of one fingerprint at once")
    _common(p)
    add_build_arguments(p)
    p.set_defaults(func=_build)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", dest="devices", action="append", required=True, metavar="ID",
                   help="a phone of the farm (HOST:PORT or USB serial, as its node sees it); repeatable")
    add_executor_arguments(p)
    p.add_argument("--json", action="store_true")


def _list(args: argparse.Namespace) -> int:
    return emit(*list_farm(args.devices, executor_choice(args)), args.json)


def _build(args: argparse.Namespace) -> int:
    return emit(*build_table(build_config(args, farm=True)), args.json)
