"""`mnas models`, `mnas arch`, `mnas export`: the model zoo, architecture files and TFLite export.

`models` and `arch` are analytic (no TF import: all 22 zoo models in well under a second);
`export` imports TF inside its handler.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnas.commands._common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the model zoo with analytic params / MACs")
    p.add_argument("--json", action="store_true", help="machine-readable list of {name, params, macs, resolution}")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("arch", help="print an architecture's block strings and global params")
    p.add_argument("ref", metavar="NAME|ARCH_FILE", help="a zoo model name or a .json/.yaml architecture file")
    _add_overrides(p)
    p.add_argument("--json", action="store_true", help="print the architecture file document (JSON)")
    p.set_defaults(func=cmd_arch)

    p = subparsers.add_parser("export", help="export an architecture to .tflite (float32 or int8)")
    p.add_argument("ref", metavar="NAME|ARCH_FILE", help="a zoo model name or a .json/.yaml architecture file")
    p.add_argument("--out", required=True, metavar="FILE.tflite", help="where to write the .tflite file")
    _add_overrides(p)
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8 post-training quantization (random calibration images); default float32")
    p.add_argument("--no-cache", action="store_true", help="convert again even if a cached export exists")
    p.set_defaults(func=cmd_export)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolution", type=int, default=None, metavar="R", help="input resolution (>= 32)")
    p.add_argument("--num-classes", type=int, default=None, metavar="N", help="classifier width")


def _spec(args: argparse.Namespace):
    from mnas.archfile import resolve_arch

    return resolve_arch(args.ref, resolution=args.resolution, num_classes=args.num_classes)


def cmd_models(args: argparse.Namespace) -> int:
    from mnas import costs, zoo

    rows = []
    for name in zoo.names():
        spec = zoo.get(name)  # default resolution, 1000 classes
        cost = costs.model_cost(spec)
        rows.append({"name": name, "params": cost.params, "macs": cost.macs, "resolution": spec.resolution})
    if args.json:
        print_json(rows)
        return 0
    header = f"{'model':<20} {'res':>4} {'params (M)':>10} {'published':>9} {'MACs (M)':>9} {'published':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        pub_params, pub_macs = zoo.PUBLISHED.get(row["name"], (float("nan"), float("nan")))
        print(f"{row['name']:<20} {row['resolution']:>4} {row['params'] / 1e6:>10.2f} {pub_params:>9g} "
              f"{row['macs'] / 1e6:>9.1f} {pub_macs:>9g}")
    print("params: trainable weights (BN moving statistics excluded); MACs: convs + classifier "
          "(see docs/foundation.md)")
    return 0


def cmd_arch(args: argparse.Namespace) -> int:
    from mnas import costs
    from mnas.archfile import spec_to_dict

    spec = _spec(args)
    cost = costs.model_cost(spec)
    if args.json:
        print_json(spec_to_dict(spec))
        return 0
    print(f"# {spec.name}: {cost.params / 1e6:.3f}M params, {cost.macs / 1e6:.1f}M MACs at {spec.resolution}px")
    print("blocks:")
    for block in spec.block_strings():
        print(f"  {block}")
    print("params:")
    for key, value in spec.global_params().items():
        print(f"  {key}: {value}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from mnas.export import export_tflite

    spec = _spec(args)  # bad names / files / resolutions fail here, before TF is imported
    start = time.perf_counter()
    out = export_tflite(spec, Path(args.out), quantize=args.quantize, use_cache=not args.no_cache)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({spec.name}, {spec.resolution}px, {spec.num_classes} classes, "
          f"{args.quantize or 'float32'}, {size_mb:.2f} MiB, {time.perf_counter() - start:.1f} s)")
    return 0
