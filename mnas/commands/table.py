"""`mnas table ...` (build, import, show, validate, export) and `mnas predict`: per-device latency tables.

    mnas table build    --device ID --space SPACE --resolution R --out FILE [--threads 1] [--calibrate 60]
    mnas table build    --device ID --scale-arch NAME|ARCH_FILE --max-phi K [--lite] [--alpha A --beta B --gamma G]
                        [--repeats-rounding ceil|nearest] [--resolution R] [--num-classes N] --out FILE
    mnas table import   FILE.yaml [FILE.yaml ...] --out FILE
    mnas table import   FILE.csv --space SPACE --out FILE [--resolution R] [--name NAME]   (sample, latency_ms)
    mnas table adapt    --from TABLE (--measured FILE.csv [--samples K] | --device ID --samples K) --out NEW
    mnas table suggest  --space SPACE --samples K [--table TABLE] [--resolution R] [--json]
    mnas table show     FILE [--json]
    mnas table validate --device ID --table FILE --samples N [--space SPACE] [--resolution R] [--passes 2] [--json]
                        [--plot FILE.png] [--force]
    mnas table export   FILE (--csv OUT | --parquet OUT)
    mnas predict        --table FILE --arch NAME|ARCH_FILE|net.config [--resolution R] [--json]
    mnas predict        --table FILE --space SPACE --samples FILE.csv [--json]      (one latency per row)

A table measured on another device (fingerprint) than the one given is refused unless --force.
The work is in `mnas.table_jobs` (and `latency.*`); this module turns the flags into its configs and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnas.commands._common import add_build_arguments, add_scaling_arguments, build_config, emit
from mnas.errors import UserError
from mnas.executors import add_executor_arguments, executor_choice
from mnas.fewshot_jobs import (AdaptConfig, BatchPredictConfig, ImportMeasuredConfig, SuggestConfig, adapt,
                               import_measured, predict_samples, suggest)
from mnas.table_jobs import (VALIDATION_SEED, PredictConfig, ValidateConfig, build_table, export_table,
                             import_tables, predict, show_table, validate_table)


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

    p = sub.add_parser("import", help="import a published phone table (OFA Note10, ProxylessNAS mobile), or "
                                      "per-network latencies of a device (CSV: sample, latency_ms)")
    p.add_argument("yaml", nargs="+", type=Path, metavar="FILE",
                   help="lookup-table YAML file(s), or one CSV (.csv/.csv.gz) of sample, latency_ms with --space")
    p.add_argument("--out", required=True, type=Path, help="table file (created or extended)")
    p.add_argument("--space", help="CSV: the search space of its samples")
    p.add_argument("--resolution", type=int, help="CSV: input resolution (default: the space's, fbnet 32)")
    p.add_argument("--name", help="CSV: the device's name in the table (default: the file name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_import)

    _add_fewshot_parsers(sub)

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
    p.add_argument("--arch", help="zoo name, arch file, or OFA net.config")
    p.add_argument("--space", help="with --samples: the search space of the samples")
    p.add_argument("--samples", type=Path, metavar="FILE.csv",
                   help="predict every row of a CSV with a `sample` column (with --space)")
    p.add_argument("--resolution", type=int, help="override the architecture's resolution")
    p.add_argument("--fingerprint", help="which device of a multi-device table")
    p.add_argument("--device", help="the device the prediction is for: refuse a table measured on another")
    p.add_argument("--threads", type=int, default=1, help="with --device: the thread count of the table")
    p.add_argument("--force", action="store_true")
    p.add_argument("--breakdown", action="store_true", help="also list every op key and its table value")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_predict)


def _add_fewshot_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="fit a predictor for a new device from K measured networks and another "
                                     "device's table")
    p.add_argument("--from", dest="prior", required=True, type=Path, metavar="TABLE",
                   help="prior table (the host's, an imported phone's, or this device's own, earlier)")
    p.add_argument("--measured", type=Path, metavar="FILE.csv", help="networks measured on the device: "
                                                                     "sample, latency_ms (.csv or .csv.gz)")
    p.add_argument("--device", metavar="ID", help="measure the networks now on this device (host, HOST:PORT, serial)")
    p.add_argument("--samples", type=int, metavar="K", help="networks to fit on: chosen to cover the op types "
                                                           "(with --measured: among its rows; default all)")
    p.add_argument("--out", required=True, type=Path, help="the new table file (created or extended)")
    p.add_argument("--space", help="default: the prior table's")
    p.add_argument("--fingerprint", help="which device of a multi-device prior table")
    p.add_argument("--name", help="with --measured: the new device's name (default: the CSV's name)")
    p.add_argument("--threads", type=int, default=1, help="with --device: interpreter threads (default 1)")
    p.add_argument("--candidates", type=int, default=2000, help="random networks the K are chosen from (--device)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_adapt)

    p = sub.add_parser("suggest", help="print the K networks worth measuring on a new device")
    p.add_argument("--space", required=True)
    p.add_argument("--samples", type=int, required=True, metavar="K")
    p.add_argument("--resolution", type=int, help="default: the space's (fbnet 32, others 224)")
    p.add_argument("--table", type=Path, help="cover this table's op times instead of MACs")
    p.add_argument("--fingerprint", help="which device of a multi-device --table")
    p.add_argument("--candidates", type=int, default=2000, help="random networks to choose from (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_suggest)


def _add_scaled_family_arguments(p: argparse.ArgumentParser) -> None:
    """`table build --scale-arch`: a table over every network `mnas scale --target-ms` can visit."""
    g = p.add_argument_group(
        "a compound-scaled family instead of --space (the ops of every distinct network `mnas scale --target-ms "
        "--table` can visit with the same flags; --resolution then overrides the base's, default its own)")
    g.add_argument("--scale-arch", metavar="NAME|ARCH_FILE", help="base architecture of the family")
    add_scaling_arguments(g, max_phi=None)
    p.set_defaults(resolution=None)  # --space: 224; --scale-arch: the base's own


def _build(args: argparse.Namespace) -> int:
    return emit(*build_table(build_config(args)), args.json)


def _import(args: argparse.Namespace) -> int:
    csvs = [f for f in args.yaml if f.name.endswith((".csv", ".csv.gz"))]
    if not csvs:
        if args.space or args.resolution or args.name:
            raise UserError("--space, --resolution and --name apply to a CSV import")
        return emit(*import_tables(args.yaml, args.out), args.json)
    if len(args.yaml) > 1 or not args.space:
        raise UserError("a CSV import takes one FILE.csv and --space SPACE")
    cfg = ImportMeasuredConfig(csvs[0], args.out, args.space, args.resolution, args.name)
    return emit(*import_measured(cfg), args.json)


def _adapt(args: argparse.Namespace) -> int:
    cfg = AdaptConfig(args.prior, args.out, args.measured, args.device, args.samples, args.space, args.fingerprint,
                      args.name, args.threads, args.candidates, args.seed, not args.no_progress)
    return emit(*adapt(cfg), args.json)


def _suggest(args: argparse.Namespace) -> int:
    payload, lines = suggest(SuggestConfig(args.space, args.samples, args.resolution, args.table, args.fingerprint,
                                           args.candidates, args.seed))
    if not args.json:
        print(f"# {payload['k']} of {payload['candidates']} random {payload['space']} networks "
              f"(seed {payload['seed']}), chosen by {payload['method']}", file=sys.stderr)
    return emit(payload, lines, args.json)


def _show(args: argparse.Namespace) -> int:
    return emit(*show_table(args.table), args.json)


def _validate(args: argparse.Namespace) -> int:
    cfg = ValidateConfig(args.device, args.table, args.samples, args.space, args.resolution, args.threads, args.seed,
                         args.passes, args.drift_models, args.plot, args.force, not args.no_progress,
                         executor_choice(args))
    return emit(*validate_table(cfg), args.json)


def _export(args: argparse.Namespace) -> int:
    print(export_table(args.table, args.csv or args.parquet))
    return 0


def _predict(args: argparse.Namespace) -> int:
    if (args.arch is None) == (args.samples is None):
        raise UserError("give one of --arch NAME|FILE or --space SPACE --samples FILE.csv")
    if args.samples is not None:
        if not args.space:
            raise UserError("--samples needs --space SPACE")
        cfg = BatchPredictConfig(args.table, args.space, args.samples, args.resolution, args.fingerprint)
        return emit(*predict_samples(cfg), args.json)
    cfg = PredictConfig(args.table, args.arch, args.resolution, args.fingerprint, args.device, args.threads,
                        args.force, args.breakdown)
    return emit(*predict(cfg), args.json)
