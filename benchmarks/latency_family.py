"""Figures (b) and (c) of docs/scaling.md: a latency-aimed family on a device, and compound vs one-dimension
scaling at equal latency.

    .venv/bin/python benchmarks/latency_family.py                       # (b) on the host, targets chosen
    .venv/bin/python benchmarks/latency_family.py --targets 4,6,9       # (b) with given targets (ms)
    .venv/bin/python benchmarks/latency_family.py --compare --epochs 1  # (c) as well (trains 4 x K models)
    .venv/bin/python benchmarks/latency_family.py --build-table runs/bench/latency_family/scaled.db
        # (b) with a table built over the scaled family's ops (`mnas table build --scale-arch`) predicting
        # beside the device's measurement

On the shared 2-core development machine run it pinned to one core (`taskset -c 1 ...`): the host device
then measures on that core.

(b) runs `mnas scale --target-ms ... --device host` (through `mnas.scaling_jobs.run_family`, the function the CLI
calls) and checks each member:
its exported .tflite, re-measured with the full profile (independent of the solve's measurements), must lie
within 5% below its target and not above it by more than that measurement's 95% CI of the median.
Targets default to 1.15x, 1.5x, 2x the latency of the smallest scaled model (phi -> 0+): below that no
compound-scaled model exists, because ceil(depth * repeats) adds a layer to every scaled stage at once.
(c) runs `mnas scale compare` with the same targets and prints the accuracy table and the plot's path.
With --build-table FILE (or --table FILE) each member's table prediction is printed beside its measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mnas.reward import parse_targets
from mnas.scaling_jobs import (CompareConfig, FamilyConfig, LatencyConfig, ProxyConfig, ScalingFlags, compare,
                               run_family)
from mnas.table_jobs import TableBuildConfig, build_table as build_scaled_table

WITHIN = 0.05


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="efficientnet-lite0")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--no-lite", action="store_true", help="scale stem/head and first/last repeats too")
    p.add_argument("--device", default="host")
    p.add_argument("--table", help="also report a latency table's prediction beside the measurement")
    p.add_argument("--build-table", type=Path,
                   help="first build (or resume) a table over the scaled family's ops here, then use it as --table")
    p.add_argument("--max-phi", type=float, default=3.0,
                   help="largest phi of the solve (and of the --build-table table; default 3)")
    p.add_argument("--repeats-rounding", choices=("ceil", "nearest"), default="ceil")
    p.add_argument("--targets", help="comma-separated ms; default: chosen from the smallest scaled model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--statistic", default="p5", choices=("median", "p5"),
                   help="latency statistic (default p5: this host is shared, medians are inflated by others)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/latency_family"))
    p.add_argument("--compare", action="store_true", help="also run figure (c): compound vs one dimension")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-examples", type=int, default=2000)
    p.add_argument("--val-examples", type=int, default=500)
    return p.parse_args(argv)


def scaling_flags(bench: argparse.Namespace) -> ScalingFlags:
    """What decides the scaled networks: the same for the scale solve and the table built for it."""
    return ScalingFlags(lite=not bench.no_lite, max_phi=bench.max_phi, repeats_rounding=bench.repeats_rounding,
                        num_classes=bench.num_classes, resolution=bench.resolution)


def latency_config(bench: argparse.Namespace) -> LatencyConfig:
    return LatencyConfig(device=bench.device, table=Path(bench.table) if bench.table else None,
                         threads=bench.threads, statistic=bench.statistic)


def smallest_scaled_ms(bench: argparse.Namespace) -> tuple[float, float]:
    """(base latency at phi=0, latency at phi=0.01) on the device, full profile, the chosen statistic."""
    import tempfile

    from devices.base import ProfileOptions
    from devices.registry import open_device
    from latency.tflite_writer import write_tflite
    from mnas.archfile import resolve_arch
    from mnas.scaling import EFFICIENTNET_COEFFICIENTS, scale

    base = resolve_arch(bench.arch, resolution=bench.resolution, num_classes=bench.num_classes,
                        repeats_rounding=bench.repeats_rounding)
    step = scale(base, *EFFICIENTNET_COEFFICIENTS, 0.01, lite=not bench.no_lite)
    device = open_device(bench.device)
    out = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, spec in enumerate((base, step)):
                path = write_tflite(spec, Path(tmp) / f"m{i}.tflite")
                profile = device.profile(path, ProfileOptions(threads=bench.threads))
                out.append(getattr(profile, f"{bench.statistic}_ms"))
    finally:
        device.close()
    return out[0], out[1]


def build_table(bench: argparse.Namespace) -> None:
    """`mnas table build --scale-arch` over the family's networks (resumable), through the CLI's own function."""
    t0 = time.perf_counter()
    bench.build_table.parent.mkdir(parents=True, exist_ok=True)
    build_scaled_table(TableBuildConfig(bench.build_table, (bench.device,), scale_arch=bench.arch,
                                        flags=scaling_flags(bench), threads=bench.threads, statistic=bench.statistic))
    print(f"table build: {time.perf_counter() - t0:.0f} s")
    bench.table = str(bench.build_table)


def main(argv: list[str] | None = None) -> None:
    bench = parse(argv)
    start = time.perf_counter()
    if bench.build_table:
        build_table(bench)
    targets = bench.targets
    if not targets:
        base_ms, step_ms = smallest_scaled_ms(bench)
        print(f"{bench.arch}@{bench.resolution}: phi=0 {base_ms:.3f} ms, phi=0.01 {step_ms:.3f} ms")
        targets = ",".join(f"{step_ms * f:.3g}" for f in (1.15, 1.5, 2.0))
    print(f"targets (ms): {targets}")
    targets_ms = tuple(parse_targets(targets))
    payload, _ = run_family(FamilyConfig(bench.arch, bench.out / "family", scaling_flags(bench), targets_ms=targets_ms,
                                         latency=latency_config(bench), name="family"))
    print(f"\nlatency statistic: {bench.statistic}")
    print("\n| member | target ms | phi | rounding | res | width | depth | MMACs | solve ms | next above ms | "
          "measured ms (exported) | vs target | 95% CI | predicted ms | predicted vs measured | within 5% below | "
          "not above by > noise |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|")
    ok = True
    for m in payload["models"]:
        target, measured = m["target_ms"], m["measured_ms"]
        ci = m.get("measured_rel_ci95") or 0.0
        rel = measured / target - 1
        within = -WITHIN <= rel <= ci
        not_above = rel <= ci
        ok &= within and not_above
        pred = f"{m['predicted_ms']:.3f}" if m.get("predicted_ms") is not None else "-"
        pred_err = f"{m['predicted_ms'] / measured - 1:+.1%}" if m.get("predicted_ms") is not None else "-"
        above = f"{m['next_above_ms']:.3f}" if m.get("next_above_ms") is not None else "-"
        print(f"| {m['name']} | {target:g} | {m['phi']:.3f} | {m['rounding']} | {m['resolution']} | "
              f"{m['width']:.3f} | {m['depth']:.3f} | {m['macs'] / 1e6:.0f} | {m['solve_ms']:.3f} | {above} | "
              f"{measured:.3f} | {rel:+.1%} | "
              f"{ci:.1%} | {pred} | {pred_err} | {'yes' if within else 'NO'} | {'yes' if not_above else 'NO'} |")
    print(f"\nall members within 5% below their target (and not above by more than the noise): {ok}")
    (bench.out / "figure_b.json").write_text(json.dumps(payload, indent=2, default=str))
    if bench.compare:
        proxy = ProxyConfig(epochs=bench.epochs, train_examples=bench.train_examples, val_examples=bench.val_examples)
        result, _ = compare(CompareConfig(bench.arch, bench.out / "compare", scaling_flags(bench), targets_ms,
                                          latency_config(bench), proxy))
        print("\n" + (bench.out / "compare" / "compare.md").read_text())
        for line in result["summary"]["lines"]:
            print(line)
        print(f"plot: {result['plot']}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s (2-core machine shared with other work)")


if __name__ == "__main__":
    main()
