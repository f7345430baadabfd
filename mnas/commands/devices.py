"""`mnas devices` (list, `setup`) and `mnas profile`: time a model on a device.

    mnas devices [--json] [--connect HOST:PORT ...] [--executor ray [--ray-address ADDR]]
    mnas devices setup --device ID [--benchmark-binary PATH]
    mnas profile --device ID --model NAME|ARCH_FILE|FILE.tflite [--runs N] [--threads T] [--warmup N]
                 [--rounds N] [--op-profile] [--json]

ID is `host`, `HOST:PORT` (ADB over TCP) or a USB serial. Heavy imports (TF, LiteRT, adb-shell) happen in
the handlers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mnas.commands._common import emit, print_json
from mnas.executors import add_executor_arguments, executor_choice
from mnas.errors import UserError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> None:
    from devices.base import ProfileOptions

    defaults = ProfileOptions()
    listing = subparsers.add_parser("devices", help="list devices (host, adb server, --connect), or set one up",
                                    description="List the devices profiles can run on.")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                         help="also connect to this ADB-over-TCP device (repeatable)")
    add_executor_arguments(listing)
    listing.set_defaults(func=_list_devices)
    sub = listing.add_subparsers(dest="devices_command", metavar="SUBCOMMAND")
    setup = sub.add_parser("setup", help="push benchmark_model to a phone and check that it runs")
    setup.add_argument("--device", required=True, metavar="ID", help="HOST:PORT or USB serial")
    setup.add_argument("--benchmark-binary", type=Path, metavar="PATH",
                       help="TFLite benchmark_model built for the phone (default: TensorFlow's prebuilt one for the "
                            "phone's ABI, cached under $MNAS_CACHE/benchmark_model/ABI, fetched when missing)")
    setup.add_argument("--json", action="store_true")
    setup.set_defaults(func=_setup)

    profile = subparsers.add_parser("profile", help="time a model on a device (median, p5/p95, noise)",
                                    description="Profile a model on a device: repeated rounds until the median "
                                                "is stable; bimodal rounds are reported, not averaged away.")
    profile.add_argument("--device", required=True, metavar="ID", help="host, HOST:PORT or a USB serial")
    profile.add_argument("--model", required=True, metavar="NAME|ARCH_FILE|FILE.tflite")
    profile.add_argument("--runs", type=_positive, default=defaults.runs, help=f"runs per round ({defaults.runs})")
    profile.add_argument("--threads", type=_positive, default=defaults.threads, help=f"({defaults.threads})")
    profile.add_argument("--warmup", type=_non_negative, default=defaults.warmup_runs,
                         help=f"warm-up runs per round ({defaults.warmup_runs})")
    profile.add_argument("--rounds", type=_positive, default=defaults.max_rounds,
                         help=f"at most this many rounds ({defaults.max_rounds}); fewer once the median is stable")
    profile.add_argument("--target-ci", type=float, default=defaults.target_rel_ci, metavar="FRACTION",
                         help=f"stop when the 95%% CI of the median is within +-this ({defaults.target_rel_ci})")
    profile.add_argument("--op-profile", action="store_true", help="also time each op")
    profile.add_argument("--json", action="store_true")
    profile.set_defaults(func=_profile)


def _list_devices(args) -> int:
    from devices.registry import list_devices

    if args.executor == "ray":  # the phone farm: each --connect'ed phone fingerprinted where it is plugged in
        if not args.connect:
            raise UserError("--executor ray lists a phone farm: name its phones with --connect ID (repeatable)")
        from mnas.table_jobs import list_farm

        return emit(*list_farm(args.connect, executor_choice(args)), args.json)
    found = list_devices(args.connect)
    if args.json:
        print_json(found)
        return 0
    for entry in found:
        what = entry.get("model") or entry.get("error", "")
        kind = entry.get("kind", entry.get("transport", ""))
        mark = "  (EMULATED: host-CPU numbers, not a phone)" if entry.get("kind") == "emulated" else ""
        print(f"{entry['id']:<24} {entry.get('state', ''):<13} {kind:<9} {what}{mark}")
    return 0


def _setup(args) -> int:
    from mnas.device_jobs import setup_device

    result = setup_device(args.device, args.benchmark_binary)
    if args.json:
        print_json(result)
    else:
        how = f" ({result['source']} for {result['abi']}: {result['local']})" if "abi" in result else ""
        print(f"{args.device}: benchmark_model ready at {result['binary']} (sha256 {result['sha256'][:16]}…){how}")
    return 0


def _profile(args) -> int:
    from devices.base import ProfileOptions
    from mnas.device_jobs import profile_model

    options = ProfileOptions(threads=args.threads, warmup_runs=args.warmup, runs=args.runs, op_profile=args.op_profile,
                             max_rounds=args.rounds, target_rel_ci=args.target_ci)
    data = profile_model(args.device, args.model, options)
    if args.json:
        print_json(data)
        return 0
    _print_profile(data, args.device)
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _print_profile(data: dict, device_id: str) -> None:
    fp = data["device"]
    note = "  (EMULATED: host-CPU numbers, not a phone)" if fp["kind"] == "emulated" else ""
    noise = data["noise"]
    print(f"device   {device_id}  {fp['key']}{note}")
    print(f"model    {data['model']}")
    print(f"median   {_fmt(data['median_ms'])} ms   p5 {_fmt(data['p5_ms'])}  p95 {_fmt(data['p95_ms'])}  "
          f"mean {_fmt(data['mean_ms'])}  std {_fmt(data['std_ms'])}")
    print(f"runs     {data['runs']} in {data['rounds']} round(s); 95% CI of the median +-{noise['rel_ci95']:.2%}; "
          f"CV {noise['cv']:.1%}; round medians {', '.join(_fmt(m) for m in data['round_medians_ms'])} ms")
    if data["bimodal"]:
        print("BIMODAL  latencies fell into two clusters (see the warning): the median mixes two machine states")
    for warning in data["warnings"]:
        print(f"warning: {warning}")
    if data.get("ops"):
        print(f"{'op':<34} {'avg ms':>9} {'%':>7}  name")
        for op in sorted(data["ops"], key=lambda o: -o["avg_ms"])[:25]:
            print(f"{op['node_type'][:34]:<34} {op['avg_ms']:>9.4f} {op['percent']:>6.2f}%  {op['name'][:60]}")
