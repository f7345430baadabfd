"""`mnas scale`: compound scaling of an architecture, aimed at latency targets on a device.

    mnas scale [family] --arch NAME|ARCH_FILE (--phi K | --target-ms T[,T...] (--device ID | --table FILE))
               [--alpha A --beta B --gamma G] [--lite] [--allow-downscale] --out DIR [--json]
    mnas scale search   --arch ... [--data DIR] [--epochs E] [--step S] [--tolerance T] --out DIR [--json]
    mnas scale compare  --arch ... --target-ms T[,T...] (--device ID | --table FILE) [--data DIR] --out DIR

The action is an optional first positional word (default `family`), so plain `mnas scale --arch ... --phi 1`
and `mnas scale search ...` share one parser and one set of flag checks. The work (and what each action
writes) is in `mnas.scaling_jobs`; this module turns the flags into its configs and prints the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnas.commands._common import add_scaling_arguments, emit, scaling_flags
from mnas.errors import UserError
from mnas.executors import add_executor_arguments, executor_choice
from mnas.reward import parse_targets
from mnas.scaling_jobs import (DEVICE_STATISTICS, CoefficientSearchConfig, CompareConfig, FamilyConfig,
                               LatencyConfig, ProxyConfig, at_least_one, coefficient_search, compare, run_family)

ACTIONS = ("family", "search", "compare")
JOBS = {"family": run_family, "search": coefficient_search, "compare": compare}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scale", help="compound-scale an architecture (to latency targets on a device)",
        description="Compound scaling (EfficientNet) aimed at latency targets. ACTION: family (default): one "
                    "model at --phi or a family for --target-ms; search: grid-search alpha/beta/gamma on the "
                    "proxy at phi=1; compare: compound vs single-dimension scaling at equal latency.")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="family", metavar="ACTION",
                   help="family (default) | search | compare")
    p.add_argument("--arch", required=True, help="zoo model name or arch file to scale")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--resolution", type=int, help="override the base model's resolution before scaling")
    p.add_argument("--phi", type=float, help="compound coefficient (family action)")
    p.add_argument("--target-ms", help="comma-separated latency targets in ms (family, compare)")
    p.add_argument("--device", help="device id: latency is measured on it")
    p.add_argument("--table", type=Path,
                   help="latency table file: latency is predicted from it (it must hold the scaled models' ops: "
                        "build it with `mnas table build --scale-arch`)")
    add_scaling_arguments(p, max_phi=12.0)
    p.add_argument("--name", help="family name (default: the arch's name)")
    p.add_argument("--no-export", action="store_true", help="write arch files only, no TFLite exports")
    p.add_argument("--threads", type=int, default=1, help="device threads for latency measurement")
    p.add_argument("--runs", type=int, default=30, help="timed runs per round on the device")
    p.add_argument("--statistic", choices=DEVICE_STATISTICS, default="median",
                   help="which statistic of the timed runs is the latency: median (a quiet device) or p5 "
                        "(a shared host, where other processes inflate the median)")
    # proxy training (search, compare)
    p.add_argument("--data", help="proxy data: folder of class folders or .npz (default: bundled MNIST subset)")
    p.add_argument("--epochs", type=int, default=1, help="proxy training epochs per candidate (default 1)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--proxy-resolution", type=int, default=32,
                   help="proxy resolution of the base model; scaled models get it times their resolution factor")
    p.add_argument("--train-examples", type=int, help="use only the first N training examples")
    p.add_argument("--val-examples", type=int, help="use only the first N validation examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=float, default=0.1, help="coefficient grid step (search; default 0.1)")
    p.add_argument("--tolerance", type=float, default=0.1,
                   help="accepted |alpha*beta^2*gamma^2 - 2| (search; default 0.1)")
    p.add_argument("--max-candidates", type=int,
                   help="train only the N candidates closest to the constraint (search)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    add_executor_arguments(p)
    p.set_defaults(func=run)


def config(args: argparse.Namespace) -> FamilyConfig | CoefficientSearchConfig | CompareConfig:
    """The action's config, every flag checked (one UserError line) before anything is written."""
    flags = scaling_flags(args)
    flags.check()
    targets = tuple(parse_targets(args.target_ms)) if args.target_ms is not None else ()
    if args.action != "family" and args.phi is not None:
        raise UserError(f"--phi does not apply to 'scale {args.action}'")
    if args.action == "search" and (targets or args.device or args.table):
        raise UserError("'scale search' trains at phi=1 on the proxy: --target-ms/--device/--table do not apply")
    latency = LatencyConfig(args.device, args.table, args.threads, args.runs, args.statistic)
    proxy = ProxyConfig(args.data, args.epochs, args.batch_size, args.proxy_resolution, args.train_examples,
                        args.val_examples, args.seed)
    cfg: FamilyConfig | CoefficientSearchConfig | CompareConfig
    if args.action == "search":
        cfg = CoefficientSearchConfig(args.arch, args.out, flags, proxy, args.step, args.tolerance,
                                      args.max_candidates, executor_choice(args))
    elif args.action == "compare":
        cfg = CompareConfig(args.arch, args.out, flags, targets, latency, proxy)
    else:
        cfg = FamilyConfig(args.arch, args.out, flags, args.phi, targets, latency, args.name, not args.no_export)
    cfg.check()
    latency.check(targets)  # flags the action does not use are still refused out of range, on every action
    proxy.check()
    at_least_one("max_candidates", args.max_candidates)
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    payload, lines = JOBS[args.action](cfg)  # type: ignore[operator]
    return emit(payload, lines, args.json)
