"""`mnas table ...` (build, import, show, validate, export) and `mnas predict`: per-device latency tables.

    mnas table build    --device ID --space SPACE --resolution R --out FILE [--threads 1] [--calibrate 60]
    mnas table build    --device ID --scale-arch NAME|ARCH_FILE --max-phi K [--lite] [--alpha A --beta B --gamma G]
                        [--repeats-rounding ceil|nearest] [--resolution R] [--num-classes N] --out FILE
    mnas table import   FILE.yaml [FILE.yaml ...] --out FILE
    mnas table show     FILE [--json]
    mnas table validate --device ID --table FILE --samples N [--space SPACE] [--resolution R] [--passes 2] [--json]
                        [--plot FILE.png] [--force]
    mnas table export   FILE (--csv OUT | --parquet OUT)
    mnas predict        --table FILE --arch NAME|ARCH_FILE|net.config [--resolution R] [--json]

A table measured on another device (fingerprint) than the one given is refused unless --force.
The work is in `latency.*`; this module parses flags and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnas.commands._common import print_json
from mnas.executors import add_executor_arguments
from mnas.errors import UserError

CALIBRATION_SEED = 12345  # calibration models and validation models come from different seeds
VALIDATION_SEED = 2024


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


def register(subparsers: argparse._SubParsersAction) -> None:
    table = subparsers.add_parser("table", help="per-device latency lookup tables",
                                  description="Build, import, inspect, validate and export latency tables.")
    sub = table.add_subparsers(dest="table_command", metavar="ACTION")
    table.set_defaults(func=lambda args: (table.print_help(), 2)[1])

    p = sub.add_parser("build", help="time every distinct op of a search space (or a compound-scaled family) "
                                     "on a device")
    p.add_argument("--device", dest="devices", action="append", required=True, metavar="ID",
                   help="device id (`host`, HOST:PORT, USB serial); repeat it to spread the ops over a farm of "
                        "phones of one fingerprint")
    add_build_arguments(p, space_required=False)
    _add_scaled_family_arguments(p)
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    add_executor_arguments(p)
    p.set_defaults(func=_build)

    p = sub.add_parser("import", help="import a published phone table (OFA Note10, ProxylessNAS mobile)")
    p.add_argument("yaml", nargs="+", type=Path, help="lookup-table YAML file(s)")
    p.add_argument("--out", required=True, type=Path, help="table file (created or extended)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_import)

    p = sub.add_parser("show", help="summarise a table file")
    p.add_argument("table", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)

    p = sub.add_parser("validate", help="measure random architectures end to end and compare with the table")
    p.add_argument("--device", required=True)
    p.add_argument("--table", required=True, type=Path)
    p.add_argument("--samples", type=int, required=True, help="number of random architectures")
    p.add_argument("--space", help="search space (default: the one the table was built for)")
    p.add_argument("--resolution", type=int, help="default: the one the table was built for, else 224")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=VALIDATION_SEED)
    p.add_argument("--passes", type=int, default=2,
                   help="interleaved passes over the models, median per model (default 2, as the calibration)")
    p.add_argument("--drift-models", type=int, default=10, metavar="N",
                   help="re-measure N of the table's calibration models in the same passes and report how much "
                        "the device's speed changed since the calibration (default 10; 0 = off)")
    p.add_argument("--plot", type=Path, help="write a predicted-vs-measured scatter PNG here")
    p.add_argument("--force", action="store_true", help="use a table measured on another device")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    add_executor_arguments(p)
    p.set_defaults(func=_validate)

    p = sub.add_parser("export", help="export every entry to CSV or Parquet")
    p.add_argument("table", type=Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--csv", type=Path)
    group.add_argument("--parquet", type=Path)
    p.set_defaults(func=_export)

    p = subparsers.add_parser("predict", help="predict an architecture's latency from a table")
    p.add_argument("--table", required=True, type=Path)
    p.add_argument("--arch", required=True, help="zoo name, arch file, or OFA net.config")
    p.add_argument("--resolution", type=int, help="override the architecture's resolution")
    p.add_argument("--fingerprint", help="which device of a multi-device table")
    p.add_argument("--device", help="the device the prediction is for: refuse a table measured on another")
    p.add_argument("--threads", type=int, default=1, help="with --device: the thread count of the table")
    p.add_argument("--force", action="store_true")
    p.add_argument("--breakdown", action="store_true", help="also list every op key and its table value")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_predict)


def _add_scaled_family_arguments(p: argparse.ArgumentParser) -> None:
    """`table build --scale-arch`: a table over every network `mnas scale --target-ms` can visit."""
    from mnas.commands.scale import add_scaling_arguments

    g = p.add_argument_group(
        "a compound-scaled family instead of --space (the ops of every distinct network `mnas scale --target-ms "
        "--table` can visit with the same flags; --resolution then overrides the base's, default its own)")
    g.add_argument("--scale-arch", metavar="NAME|ARCH_FILE", help="base architecture of the family")
    add_scaling_arguments(g, max_phi=None)
    p.set_defaults(resolution=None)  # --space: 224; --scale-arch: the base's own


_SCALING_FLAGS = ("num_classes", "max_phi", "repeats_rounding")


def _check_source(args: argparse.Namespace) -> None:
    """Exactly one of --space / --scale-arch, and the scaling flags only with --scale-arch."""
    if (args.space is None) == (args.scale_arch is None):
        raise UserError("give one of --space SPACE or --scale-arch NAME|ARCH_FILE")
    if args.space is not None:
        stray = [f for f in _SCALING_FLAGS if getattr(args, f) is not None] + \
            [f for f in ("lite", "allow_downscale") if getattr(args, f)]
        if stray:
            raise UserError(f"--{stray[0].replace('_', '-')} applies only with --scale-arch")
        args.resolution = 224 if args.resolution is None else args.resolution
        return
    if args.executor == "ray" or len(args.devices) > 1:
        raise UserError("--scale-arch builds on one device with --executor local")
    if args.max_phi is None:
        raise UserError("--scale-arch needs --max-phi K (the largest phi the scale solve may use)")


def _spread(items: list, n: int) -> list:
    """n items evenly spaced over `items` (first and last included): calibration models over the family."""
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


# -- helpers ----------------------------------------------------------------------------------------
def _positive(value: int, flag: str) -> int:
    if value is None or value < 1:
        raise UserError(f"{flag} must be >= 1, got {value}")
    return value


def _space(name: str):
    from mnas import spaces

    return spaces.get(name)


def _device(device_id: str):
    from devices.registry import open_device

    return open_device(device_id)


def _open_validation_device(args: argparse.Namespace) -> tuple[object, tuple]:
    """(device, what else to close). With --executor ray the device is a one-phone farm, profiled on the node
    where the phone is plugged in."""
    if args.executor == "local":
        return _device(args.device), ()
    from mnas.commands.farm import open_farm
    from mnas.executors.farm import FarmDevice

    farm, executor = open_farm([args.device], args)
    return FarmDevice(farm), (farm, executor)


def _last_build(store, fingerprint_key: str) -> dict:
    builds = store.fingerprints().get(fingerprint_key, {}).get("builds", [])
    return builds[-1] if builds else {}


# -- handlers ---------------------------------------------------------------------------------------
def _build(args: argparse.Namespace) -> int:
    from latency.store import TableStore
    from latency.table_builder import build_table, calibrate, ops_of_space, random_specs

    _check_source(args)
    if args.executor == "ray" or len(args.devices) > 1:
        from mnas.commands.farm import build_on_farm  # several phones (or Ray): one queue over the farm

        return build_on_farm(args)
    args.device = args.devices[0]
    _positive(args.threads, "--threads")
    if args.scale_arch:
        return _build_scaled(args)
    if args.resolution < 32:
        raise UserError(f"resolution must be >= 32, got {args.resolution}")
    if args.calibrate < 0:
        raise UserError(f"--calibrate must be >= 0, got {args.calibrate}")
    space = _space(args.space)
    ops = ops_of_space(space, args.resolution)
    device = _device(args.device)
    try:
        with TableStore.open(args.out, create=True) as store:
            description = {"space": space.name, "resolution": args.resolution, "threads": args.threads,
                           "ops": len(ops)}
            report = build_table(device, store, ops, threads=args.threads, progress=not args.no_progress,
                                 statistic=args.statistic, description=description)
            if args.calibrate:
                specs = random_specs(space, args.calibrate, args.resolution, CALIBRATION_SEED)
                report.calibration, report.calibration_points = calibrate(
                    device, store, report.fingerprint_key, specs, threads=args.threads,
                    progress=not args.no_progress)
    finally:
        device.close()
    out = report.to_dict() | {"table": str(args.out), "space": space.name, "resolution": args.resolution,
                              "statistic": args.statistic}
    if args.json:
        print_json(out)
    else:
        print(f"{args.out}: {report.total_ops} ops of {space.name} at {args.resolution} on {report.fingerprint_key}: "
              f"{report.measured} measured now, {report.skipped} already stored, {report.seconds:.0f} s")
        if report.overhead_ms is not None:
            print(f"invoke overhead: {report.overhead_ms * 1000:.1f} us")
        if report.calibration:
            print(f"calibration {report.calibration.describe()}")
    return 0


def _build_scaled(args: argparse.Namespace) -> int:
    """Time the ops of every network the scale solve can visit; calibrate on networks spread over the family."""
    from latency.store import TableStore
    from latency.table_builder import build_table, calibrate, ops_of_specs
    from mnas.commands.scale import reachable_from_args

    if args.calibrate < 0:
        raise UserError(f"--calibrate must be >= 0, got {args.calibrate}")
    base, reachable = reachable_from_args(args, args.scale_arch)
    specs = [spec for _, _, spec in reachable]
    ops = ops_of_specs(specs)
    description = {"scale_arch": base.name, "resolution": base.resolution, "num_classes": base.num_classes,
                   "coefficients": [args.alpha, args.beta, args.gamma], "lite": args.lite,
                   "min_phi": reachable[0][0], "max_phi": args.max_phi, "repeats_rounding": base.repeats_rounding,
                   "resolution_multiple": args.resolution_multiple, "threads": args.threads,
                   "networks": len(specs), "ops": len(ops)}
    device = _device(args.device)
    try:
        with TableStore.open(args.out, create=True) as store:
            report = build_table(device, store, ops, threads=args.threads, progress=not args.no_progress,
                                 statistic=args.statistic, description=description)
            if args.calibrate:
                report.calibration, report.calibration_points = calibrate(
                    device, store, report.fingerprint_key, _spread(specs, args.calibrate), threads=args.threads,
                    progress=not args.no_progress)
    finally:
        device.close()
    out = report.to_dict() | {"table": str(args.out), "scale_arch": base.name, "networks": len(specs),
                              "resolution": base.resolution, "max_phi": args.max_phi, "statistic": args.statistic}
    if args.json:
        print_json(out)
    else:
        print(f"{args.out}: {report.total_ops} ops of {len(specs)} scaled {base.name} networks (phi <= "
              f"{args.max_phi:g}) on {report.fingerprint_key}: {report.measured} measured now, {report.skipped} "
              f"already stored, {report.seconds:.0f} s")
        if report.calibration:
            print(f"calibration fitted on {len(report.calibration_points)} of them, measured end to end")
    return 0


def _import(args: argparse.Namespace) -> int:
    from latency.public_luts import import_yaml
    from latency.store import TableStore

    results = []
    with TableStore.open(args.out, create=True) as store:
        for path in args.yaml:
            key, n = import_yaml(path, store)
            results.append({"file": str(path), "fingerprint_key": key, "entries": n})
    if args.json:
        print_json({"table": str(args.out), "imported": results})
    else:
        for r in results:
            print(f"{r['file']}: {r['entries']} entries -> {args.out} ({r['fingerprint_key']})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from latency.opkeys import overhead_key
    from latency.store import TableStore

    with TableStore.open(args.table) as store:
        meta, counts, fingerprints = store.meta(), store.counts(), store.fingerprints()
        devices = []
        for key in sorted(counts):
            entries = store.entries(key)
            info = fingerprints.get(key, {})
            kinds: dict[str, int] = {}
            for op in entries:
                head = op.split("-", 1)[0]
                kinds[head] = kinds.get(head, 0) + 1
            overhead = entries.get(overhead_key())
            devices.append({"fingerprint_key": key, "kind": info.get("kind"), "model": info.get("model"),
                            "statistic": info.get("statistic") or ("mean" if info.get("kind") == "published"
                                                                   else "median"),
                            "threads": info.get("threads"), "entries": counts[key], "by_type": kinds,
                            "overhead_ms": overhead.value(info.get("statistic") or "median") if overhead else None,
                            "calibration": _calibration_summary(store.calibration(key)),
                            "builds": info.get("builds", []),
                            "resolution": info.get("resolution"), "file": info.get("file")})
    payload = {"table": str(args.table), "format": meta.get("format"), "version": meta.get("version"),
               "created": meta.get("created"), "devices": devices}
    if args.json:
        print_json(payload)
        return 0
    print(f"{args.table}: {meta.get('format')} v{meta.get('version')}, created {meta.get('created')}")
    for d in devices:
        print(f"  {d['fingerprint_key']}  ({d['kind']}, {d['model']}): {d['entries']} entries, sums the "
              f"{d['statistic']}")
        print("    " + ", ".join(f"{k} {v}" for k, v in sorted(d["by_type"].items())))
        if d["overhead_ms"] is not None:
            print(f"    invoke overhead {d['overhead_ms'] * 1000:.1f} us")
        if d["calibration"]:
            from latency.predictor import Calibration

            print(f"    calibration {Calibration.from_dict(d['calibration']).describe()}")
        for b in d["builds"]:
            what = (f"space {b.get('space')}" if b.get("space") or not b.get("scale_arch") else
                    f"{b.get('networks')} scaled {b.get('scale_arch')} networks (phi <= {b.get('max_phi')}), base")
            print(f"    built for {what} at {b.get('resolution')} ({b.get('ops')} ops)")
    return 0


def _calibration_summary(calibration: dict | None) -> dict | None:
    """The fitted terms; the stored calibration models only as a count (they are whole architectures)."""
    if not calibration:
        return calibration
    points = calibration.get("points")
    return {k: v for k, v in calibration.items() if k != "points"} | {"models_kept": len(points or [])}


def _validate(args: argparse.Namespace) -> int:
    from latency.predictor import Predictor
    from latency.store import TableStore
    from latency.table_builder import random_specs, table_fingerprint_key
    from latency.validate import stored_calibration_models, validate, write_scatter

    _positive(args.samples, "--samples")
    _positive(args.threads, "--threads")
    _positive(args.passes, "--passes")
    device, owners = _open_validation_device(args)
    try:
        device_key = table_fingerprint_key(device, args.threads)
        predictor = Predictor.load(args.table, device_key=device_key, force=args.force)
        with TableStore.open(args.table) as store:
            build = _last_build(store, predictor.fingerprint_key)
            drift_models = stored_calibration_models(store.calibration(predictor.fingerprint_key),
                                                     max(0, args.drift_models))
        space_name = args.space or build.get("space")
        if not space_name:
            raise UserError(f"{args.table} records no search space; pass --space")
        space = _space(space_name)
        resolution = args.resolution or build.get("resolution") or 224
        specs = random_specs(space, args.samples, resolution, args.seed)
        result = validate(device, predictor, specs, threads=args.threads, progress=not args.no_progress,
                          passes=args.passes, drift_models=drift_models)
    finally:
        device.close()
        for owner in owners:
            owner.close()
    payload = result.to_dict() | {"table": str(args.table), "space": space.name, "resolution": resolution,
                                  "fingerprint_key": predictor.fingerprint_key}
    if args.plot:
        write_scatter(result, args.plot)
        payload["plot"] = str(args.plot)
    if args.json:
        print_json(payload)
    else:
        print(f"{result.n} random {space.name} architectures at {resolution} ({result.statistic} of the runs): "
              f"{payload['within_5pct']:.0%} within +-5%, {payload['within_10pct']:.0%} within +-10%, "
              f"RMSPE {payload['rmspe']:.1%} (noise floor +-{payload['noise_floor_rel_ci95'] or 0:.1%})")
        if result.drift is not None:
            print(f"device speed since the calibration: {result.drift:+.1%} ({len(drift_models)} calibration models "
                  "re-measured; a drift of several % shows up as prediction error)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from latency.store import TableStore

    with TableStore.open(args.table) as store:
        out = store.export(args.csv or args.parquet)
        n = sum(store.counts().values())
    print(f"{n} entries -> {out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from latency.predictor import Predictor
    from mnas.archfile import resolve_arch

    spec = resolve_arch(args.arch, resolution=args.resolution)
    device_key = None
    if args.device:
        from latency.table_builder import table_fingerprint_key

        device = _device(args.device)
        try:
            device_key = table_fingerprint_key(device, _positive(args.threads, "--threads"))
        finally:
            device.close()
    predictor = Predictor.load(args.table, fingerprint_key=args.fingerprint, device_key=device_key, force=args.force,
                               resolution=spec.resolution)
    latency = predictor.predict(spec)
    payload = {"arch": spec.name, "resolution": spec.resolution, "latency_ms": latency,
               "raw_sum_ms": predictor.raw_ms(spec), "calibration": predictor.calibration.to_dict(),
               "fingerprint_key": predictor.fingerprint_key, "table": str(args.table)}
    if args.breakdown:
        payload["ops"] = [{"op_key": k, "ms": v} for k, v in predictor.breakdown(spec)]
    if args.json:
        print_json(payload)
        return 0
    print(f"{spec.name} at {spec.resolution}: {latency:.2f} ms predicted on {predictor.fingerprint_key}")
    if args.breakdown:
        for row in payload["ops"]:
            print(f"  {row['ms']:9.4f}  {row['op_key']}")
    return 0

