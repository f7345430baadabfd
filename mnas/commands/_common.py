"""Helpers shared by the command modules (the one module a command may import from another): JSON output,
the flag groups several commands take, and the typed configs made from them."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from mnas.errors import UserError
from mnas.executors import executor_choice
from mnas.scaling import DEFAULT_RESOLUTION_MULTIPLE, DOWNSCALE_FLOOR, EFFICIENTNET_COEFFICIENTS, Coefficients
from mnas.scaling_jobs import ScalingFlags
from mnas.spec import REPEATS_ROUNDINGS
from mnas.table_jobs import TableBuildConfig


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; numpy scalars are not JSON-serialisable.
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(payload: Any) -> None:
    json.dump(_clean(payload), sys.stdout, indent=2)
    sys.stdout.write("\n")


def emit(payload: Any, lines: Iterable[str], as_json: bool) -> int:
    """A job's result: its payload as JSON (`--json`), else its lines for a person."""
    if as_json:
        print_json(payload)
    else:
        for line in lines:
            print(line)
    return 0


def add_scaling_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, max_phi: float | None) -> None:
    """The flags that decide which scaled networks exist (`mnas scale` and `mnas table build --scale-arch`)."""
    p.add_argument("--num-classes", type=int, help="override the base model's class count before scaling")
    a, b, g = EFFICIENTNET_COEFFICIENTS
    p.add_argument("--alpha", type=float, default=a, help=f"depth coefficient (default {a})")
    p.add_argument("--beta", type=float, default=b, help=f"width coefficient (default {b})")
    p.add_argument("--gamma", type=float, default=g, help=f"resolution coefficient (default {g})")
    p.add_argument("--lite", action="store_true", help="keep stem/head and first/last stage repeats fixed")
    p.add_argument("--allow-downscale", action="store_true",
                   help=f"allow phi < 0 (down to {DOWNSCALE_FLOOR:g}) for targets below the base model")
    p.add_argument("--max-phi", type=float, default=max_phi,
                   help="largest phi tried when solving" + (f" (default {max_phi:g})" if max_phi else ""))
    p.add_argument("--resolution-multiple", type=int, default=DEFAULT_RESOLUTION_MULTIPLE,
                   help="scaled resolutions are rounded to a multiple of this (default 8)")
    p.add_argument("--repeats-rounding", choices=REPEATS_ROUNDINGS,
                   help="how depth x repeats rounds to a layer count: ceil (the authors' rule; the default, and "
                        "what an arch file that names none gets) or nearest (follows the MACs cost law more "
                        "closely at small phi; see docs/scaling.md)")


def scaling_flags(args: argparse.Namespace) -> ScalingFlags:
    """`add_scaling_arguments`' flags (and --resolution) as a config; bad coefficients are refused here."""
    return ScalingFlags(Coefficients(args.alpha, args.beta, args.gamma), lite=args.lite,
                        allow_downscale=args.allow_downscale, max_phi=args.max_phi,
                        resolution_multiple=args.resolution_multiple, repeats_rounding=args.repeats_rounding,
                        num_classes=args.num_classes, resolution=args.resolution)


def add_build_arguments(p: argparse.ArgumentParser, space_required: bool = True) -> None:
    """What a table build needs besides its devices (`table build` and `farm build` share them)."""
    p.add_argument("--space", required=space_required, help="search space name (see `mnas search --help`)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution (default 224)")
    p.add_argument("--out", required=True, type=Path, help="table file (SQLite); an existing one is resumed")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--calibrate", type=int, default=60, metavar="N",
                   help="whole models of the space measured (twice, interleaved) to fit the calibration (default "
                        "60; below ~40 the fit is a plain line; 0 = none)")
    p.add_argument("--statistic", choices=("median", "p5"), default="median",
                   help="what the table sums: median of the runs (default; a dedicated device) or p5, the 5th "
                        "percentile (a shared host, where other work inflates medians)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


_SCALING_FLAGS = ("num_classes", "max_phi", "repeats_rounding")


def build_config(args: argparse.Namespace, farm: bool = False) -> TableBuildConfig:
    """`table build` and `farm build` (`farm`: always on the farm): one of --space / --scale-arch, and the
    scaling flags only with --scale-arch."""
    scale_arch = getattr(args, "scale_arch", None)
    cfg = TableBuildConfig(args.out, tuple(args.devices), args.space, args.resolution, scale_arch, None,
                           args.threads, args.calibrate, args.statistic, not args.no_progress, executor_choice(args),
                           farm)
    cfg.check_source()
    if scale_arch is None:
        stray = [f for f in _SCALING_FLAGS if getattr(args, f, None) is not None] + \
            [f for f in ("lite", "allow_downscale") if getattr(args, f, False)]
        if stray:
            raise UserError(f"--{stray[0].replace('_', '-')} applies only with --scale-arch")
        return cfg
    return replace(cfg, flags=scaling_flags(args))
