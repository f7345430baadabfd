"""Latency-table jobs (`mnas table`, `mnas predict`, `mnas farm`): build (one device, a phone farm, or over a
compound-scaled family), import, show, validate, export, predict; and the phone farm opened on an executor.

Each job takes a frozen config (or plain values) and returns (payload, text lines); the commands print them.
The measuring is in `latency.*` and `mnas.executors`; this module puts devices, stores and reports together.
A table measured on another device (fingerprint) than the one given is refused unless `force`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mnas.errors import UserError
from mnas.executors import ExecutorChoice
from mnas.scaling_jobs import Output, ScalingFlags

CALIBRATION_SEED = 12345  # calibration models and validation models come from different seeds
VALIDATION_SEED = 2024


def _positive(value: int | None, flag: str) -> int:
    if value is None or value < 1:
        raise UserError(f"{flag} must be >= 1, got {value}")
    return value


# -- the phone farm ---------------------------------------------------------------------------------
def open_farm(device_ids: list[str] | tuple[str, ...], executor: ExecutorChoice):
    """(Farm, executor) for these phones on the chosen executor; the caller closes both."""
    from mnas.executors.farm import Farm

    ids = [d.strip() for d in device_ids]
    opened = executor.open(ids)
    # An explicit key (MNAS_ADB_KEY) is used everywhere; otherwise each node signs with its own default key,
    # the one its phones already trust.
    options = {"key_path": os.environ["MNAS_ADB_KEY"]} if os.environ.get("MNAS_ADB_KEY") else {}
    try:
        return Farm(ids, opened, options), opened
    except BaseException:
        opened.close()
        raise


def list_farm(device_ids: list[str] | tuple[str, ...], executor: ExecutorChoice) -> Output:
    """Every phone fingerprinted (on the node it is plugged into), grouped by fingerprint."""
    farm, opened = open_farm(device_ids, executor)
    try:
        rows = farm.describe()
        groups = {k: list(v) for k, v in farm.groups.items()}
    finally:
        farm.close()
        opened.close()
    lines = [f"{key}: {len(ids)} device(s): {', '.join(ids)}" for key, ids in groups.items()]
    return {"executor": opened.name, "devices": rows, "groups": groups}, lines


def _open_device(device_id: str):
    from devices.registry import open_device

    return open_device(device_id)


def _open_validation_device(device_id: str, executor: ExecutorChoice) -> tuple[object, tuple]:
    """(device, what else to close). On Ray the device is a one-phone farm, profiled on the node where the
    phone is plugged in."""
    if executor.name == "local":
        return _open_device(device_id), ()
    from mnas.executors.farm import FarmDevice

    farm, opened = open_farm([device_id], executor)
    return FarmDevice(farm), (farm, opened)


# -- build ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableBuildConfig:
    """A table of every distinct op of a search space (`space`), or of every network a scale solve with
    `flags` can visit from `scale_arch`; on one device, or spread over a farm (several devices, or Ray)."""

    out: Path  # table file (SQLite); an existing one is resumed
    devices: tuple[str, ...]
    space: str | None = None
    resolution: int | None = None  # a space's input resolution (None: 224); a family takes flags.resolution
    scale_arch: str | None = None
    flags: ScalingFlags | None = None
    threads: int = 1
    calibrate: int = 60  # whole models measured to fit the calibration (0 = none)
    statistic: str = "median"  # what the table sums: median, or p5 on a shared host
    progress: bool = True
    executor: ExecutorChoice = ExecutorChoice()
    farm: bool = False  # the farm path even for one local phone (`mnas farm build`)

    @property
    def space_resolution(self) -> int:
        return 224 if self.resolution is None else self.resolution

    @property
    def on_farm(self) -> bool:
        return self.farm or self.executor.name == "ray" or len(self.devices) > 1

    def check_source(self) -> None:
        if (self.space is None) == (self.scale_arch is None):
            raise UserError("give one of --space SPACE or --scale-arch NAME|ARCH_FILE")

    def check(self) -> None:
        self.check_source()
        if self.scale_arch is None:
            return
        if self.on_farm:
            raise UserError("--scale-arch builds on one device with --executor local")
        if self.flags is None or self.flags.max_phi is None:
            raise UserError("--scale-arch needs --max-phi K (the largest phi the scale solve may use)")

    def check_numbers(self) -> None:
        _positive(self.threads, "--threads")
        if self.space is not None and self.space_resolution < 32:
            raise UserError(f"resolution must be >= 32, got {self.space_resolution}")
        if self.calibrate < 0:
            raise UserError(f"--calibrate must be >= 0, got {self.calibrate}")


def build_table(cfg: TableBuildConfig) -> Output:
    """Resumable: the ops an existing table holds for the device are never measured again."""
    cfg.check()
    if cfg.on_farm:
        return _build_on_farm(cfg)
    cfg.check_numbers()
    if cfg.scale_arch is not None:
        return _build_scaled(cfg)
    from latency.table_builder import ops_of_space, random_specs
    from mnas import spaces

    space = spaces.get(cfg.space)
    resolution = cfg.space_resolution
    ops = ops_of_space(space, resolution)
    specs = random_specs(space, cfg.calibrate, resolution, CALIBRATION_SEED) if cfg.calibrate else []
    description = {"space": space.name, "resolution": resolution, "threads": cfg.threads, "ops": len(ops)}
    device = _open_device(cfg.devices[0])
    try:
        report = _measure(cfg, device, ops, specs, description)
    finally:
        device.close()
    payload = report.to_dict() | {"table": str(cfg.out), "space": space.name, "resolution": resolution,
                                  "statistic": cfg.statistic}
    lines = [f"{cfg.out}: {report.total_ops} ops of {space.name} at {resolution} on {report.fingerprint_key}: "
             f"{report.measured} measured now, {report.skipped} already stored, {report.seconds:.0f} s"]
    if report.overhead_ms is not None:
        lines.append(f"invoke overhead: {report.overhead_ms * 1000:.1f} us")
    return payload, lines + _calibration_lines(report)


def _measure(cfg: TableBuildConfig, device, ops: dict, specs: list, description: dict,
             build: Callable | None = None):
    """Time `ops` into the table (with `build`: on a farm), then fit the calibration on `specs` end to end."""
    from latency.store import TableStore
    from latency.table_builder import build_table as build_on_device, calibrate

    with TableStore.open(cfg.out, create=True) as store:
        report = (build or build_on_device)(device, store, ops, threads=cfg.threads, progress=cfg.progress,
                                            statistic=cfg.statistic, description=description)
        if specs:
            report.calibration, report.calibration_points = calibrate(
                device, store, report.fingerprint_key, specs, threads=cfg.threads, progress=cfg.progress)
    return report


def _calibration_lines(report) -> list[str]:
    return [f"calibration {report.calibration.describe()}"] if report.calibration else []


def _spread(items: list, n: int) -> list:
    """n items evenly spaced over `items` (first and last included): calibration models over the family."""
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _build_scaled(cfg: TableBuildConfig) -> Output:
    """Time the ops of every network the scale solve can visit; calibrate on networks spread over the family."""
    from latency.table_builder import ops_of_specs
    from mnas.scaling_jobs import reachable_networks

    flags = cfg.flags
    assert flags is not None and cfg.scale_arch is not None  # check()
    base, reachable = reachable_networks(flags, cfg.scale_arch)
    specs = [spec for _, _, spec in reachable]
    ops = ops_of_specs(specs)
    description = {"scale_arch": base.name, "resolution": base.resolution, "num_classes": base.num_classes,
                   "coefficients": list(flags.coefficients.as_tuple()), "lite": flags.lite,
                   "min_phi": reachable[0][0], "max_phi": flags.max_phi, "repeats_rounding": base.repeats_rounding,
                   "resolution_multiple": flags.resolution_multiple, "threads": cfg.threads,
                   "networks": len(specs), "ops": len(ops)}
    device = _open_device(cfg.devices[0])
    try:
        report = _measure(cfg, device, ops, _spread(specs, cfg.calibrate) if cfg.calibrate else [], description)
    finally:
        device.close()
    payload = report.to_dict() | {"table": str(cfg.out), "scale_arch": base.name, "networks": len(specs),
                                  "resolution": base.resolution, "max_phi": flags.max_phi,
                                  "statistic": cfg.statistic}
    lines = [f"{cfg.out}: {report.total_ops} ops of {len(specs)} scaled {base.name} networks (phi <= "
             f"{flags.max_phi:g}) on {report.fingerprint_key}: {report.measured} measured now, {report.skipped} "
             f"already stored, {report.seconds:.0f} s"]
    if report.calibration:
        lines.append(f"calibration fitted on {len(report.calibration_points)} of them, measured end to end")
    return payload, lines


def _build_on_farm(cfg: TableBuildConfig) -> Output:
    """The space's ops spread over every phone of one fingerprint; a phone that drops out is taken out of
    rotation and its op re-queued."""
    from latency.table_builder import ops_of_space, random_specs
    from mnas import spaces
    from mnas.executors.farm import FarmDevice
    from mnas.executors.table import build_table_on_farm

    cfg.check_numbers()
    space = spaces.get(cfg.space)
    resolution = cfg.space_resolution
    ops = ops_of_space(space, resolution)
    specs = random_specs(space, cfg.calibrate, resolution, CALIBRATION_SEED) if cfg.calibrate else []
    farm, executor = open_farm(cfg.devices, cfg.executor)
    try:
        device = FarmDevice(farm)  # a mixed farm is refused here, before the table file is touched
        description = {"space": space.name, "resolution": resolution, "threads": cfg.threads,
                       "ops": len(ops), "farm": sorted(farm.fingerprints), "executor": executor.name}
        # the farm times the ops (every phone at once); `device`, one free phone at a time, the calibration
        report = _measure(cfg, device, ops, specs, description,
                          build=lambda _device, *a, **kw: build_table_on_farm(farm, *a, **kw))
    finally:
        farm.close()
        executor.close()
    payload = report.to_dict() | {"table": str(cfg.out), "space": space.name, "resolution": resolution,
                                  "statistic": cfg.statistic, "executor": executor.name,
                                  "by_device": report.by_device, "lost": report.lost, "requeued": report.requeued}
    by_device = ", ".join(f"{d} {n}" for d, n in sorted(report.by_device.items()))
    lines = [f"{cfg.out}: {report.total_ops} ops of {space.name} at {resolution} on {report.fingerprint_key}: "
             f"{report.measured} measured now ({by_device or 'none'}), {report.skipped} already stored, "
             f"{report.seconds:.0f} s"]
    lines += [f"dropped out: {device_id} ({why}); its op was re-queued" for device_id, why in report.lost.items()]
    return payload, lines + _calibration_lines(report)


# -- import, show, export ------------------------------------------------------------------------------
def import_tables(yaml_files: list[Path], out: Path) -> Output:
    """Published phone tables (OFA Note10, ProxylessNAS mobile) into a table file (created or extended)."""
    from latency.public_luts import import_yaml
    from latency.store import TableStore

    results = []
    with TableStore.open(out, create=True) as store:
        for path in yaml_files:
            key, n = import_yaml(path, store)
            results.append({"file": str(path), "fingerprint_key": key, "entries": n})
    lines = [f"{r['file']}: {r['entries']} entries -> {out} ({r['fingerprint_key']})" for r in results]
    return {"table": str(out), "imported": results}, lines


def show_table(table: Path) -> Output:
    from latency.opkeys import overhead_key
    from latency.store import TableStore

    with TableStore.open(table) as store:
        meta, counts, fingerprints = store.meta(), store.counts(), store.fingerprints()
        measured = store.measurement_counts()
        devices = []
        for key in sorted(set(counts) | set(measured)):
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
                            "threads": info.get("threads"), "entries": counts.get(key, 0), "by_type": kinds,
                            "measurements": measured.get(key, 0),
                            "overhead_ms": overhead.value(info.get("statistic") or "median") if overhead else None,
                            "calibration": _calibration_summary(store.calibration(key)),
                            "builds": info.get("builds", []),
                            "resolution": info.get("resolution"), "file": info.get("file")})
    payload = {"table": str(table), "format": meta.get("format"), "version": meta.get("version"),
               "created": meta.get("created"), "devices": devices}
    return payload, _show_lines(payload)


def _show_lines(payload: dict) -> list[str]:
    lines = [f"{payload['table']}: {payload['format']} v{payload['version']}, created {payload['created']}"]
    for d in payload["devices"]:
        lines.append(f"  {d['fingerprint_key']}  ({d['kind']}, {d['model']}): {d['entries']} entries, sums the "
                     f"{d['statistic']}")
        if d["by_type"]:
            lines.append("    " + ", ".join(f"{k} {v}" for k, v in sorted(d["by_type"].items())))
        if d["overhead_ms"] is not None:
            lines.append(f"    invoke overhead {d['overhead_ms'] * 1000:.1f} us")
        if d["measurements"]:
            lines.append(f"    {d['measurements']} whole networks measured (kept to adapt from and to check against)")
        if d["calibration"]:
            from latency.predictor import Calibration

            lines.append(f"    calibration {Calibration.from_dict(d['calibration']).describe()}")
        for b in d["builds"]:
            what = (f"space {b.get('space')}" if b.get("space") or not b.get("scale_arch") else
                    f"{b.get('networks')} scaled {b.get('scale_arch')} networks (phi <= {b.get('max_phi')}), base")
            lines.append(f"    built for {what} at {b.get('resolution')} ({b.get('ops')} ops)")
    return lines


def _calibration_summary(calibration: dict | None) -> dict | None:
    """The fitted terms; the stored calibration models only as a count (they are whole architectures)."""
    if not calibration:
        return calibration
    points = calibration.get("points")
    return {k: v for k, v in calibration.items() if k != "points"} | {"models_kept": len(points or [])}


def export_table(table: Path, out: Path) -> str:
    """Every entry to CSV or Parquet (by `out`'s suffix); the line to print."""
    from latency.store import TableStore

    with TableStore.open(table) as store:
        written = store.export(out)
        n = sum(store.counts().values())
    return f"{n} entries -> {written}"


# -- validate, predict ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidateConfig:
    """Random architectures measured end to end against the table's prediction."""

    device: str
    table: Path
    samples: int
    space: str | None = None  # None: the one the table was built for
    resolution: int | None = None  # None: the one the table was built for, else 224
    threads: int = 1
    seed: int = VALIDATION_SEED
    passes: int = 2  # interleaved passes over the models, median per model
    drift_models: int = 10  # calibration models re-measured to report the device's drift (0 = off)
    plot: Path | None = None  # predicted-vs-measured scatter PNG
    force: bool = False  # use a table measured on another device
    progress: bool = True
    executor: ExecutorChoice = ExecutorChoice()


def validate_table(cfg: ValidateConfig) -> Output:
    from latency.predictor import Predictor
    from latency.store import TableStore
    from latency.table_builder import random_specs, table_fingerprint_key
    from latency.validate import stored_calibration_models, validate, write_scatter
    from mnas import spaces

    _positive(cfg.samples, "--samples")
    _positive(cfg.threads, "--threads")
    _positive(cfg.passes, "--passes")
    device, owners = _open_validation_device(cfg.device, cfg.executor)
    try:
        device_key = table_fingerprint_key(device, cfg.threads)
        predictor = Predictor.load(cfg.table, device_key=device_key, force=cfg.force)
        with TableStore.open(cfg.table) as store:
            builds = store.fingerprints().get(predictor.fingerprint_key, {}).get("builds", [])
            build = builds[-1] if builds else {}
            drift_models = stored_calibration_models(store.calibration(predictor.fingerprint_key),
                                                     max(0, cfg.drift_models))
        space_name = cfg.space or build.get("space")
        if not space_name:
            raise UserError(f"{cfg.table} records no search space; pass --space")
        space = spaces.get(space_name)
        resolution = cfg.resolution or build.get("resolution") or 224
        specs = random_specs(space, cfg.samples, resolution, cfg.seed)
        result = validate(device, predictor, specs, threads=cfg.threads, progress=cfg.progress,
                          passes=cfg.passes, drift_models=drift_models)
    finally:
        device.close()
        for owner in owners:
            owner.close()
    payload = result.to_dict() | {"table": str(cfg.table), "space": space.name, "resolution": resolution,
                                  "fingerprint_key": predictor.fingerprint_key}
    if cfg.plot:
        write_scatter(result, cfg.plot)
        payload["plot"] = str(cfg.plot)
    lines = [f"{result.n} random {space.name} architectures at {resolution} ({result.statistic} of the runs): "
             f"{payload['within_5pct']:.0%} within +-5%, {payload['within_10pct']:.0%} within +-10%, "
             f"RMSPE {payload['rmspe']:.1%} (noise floor +-{payload['noise_floor_rel_ci95'] or 0:.1%})"]
    if result.drift is not None:
        lines.append(f"device speed since the calibration: {result.drift:+.1%} ({len(drift_models)} calibration "
                     "models re-measured; a drift of several % shows up as prediction error)")
    return payload, lines


@dataclass(frozen=True)
class PredictConfig:
    table: Path
    arch: str  # zoo name, arch file, or OFA net.config
    resolution: int | None = None  # override the architecture's resolution
    fingerprint: str | None = None  # which device of a multi-device table
    device: str | None = None  # the device the prediction is for: a table measured on another is refused
    threads: int = 1  # with `device`: the thread count of the table
    force: bool = False
    breakdown: bool = False  # also list every op key and its table value


def predict(cfg: PredictConfig) -> Output:
    from latency.predictor import Predictor
    from mnas.archfile import resolve_arch

    spec = resolve_arch(cfg.arch, resolution=cfg.resolution)
    device_key = None
    if cfg.device:
        from latency.table_builder import table_fingerprint_key

        device = _open_device(cfg.device)
        try:
            device_key = table_fingerprint_key(device, _positive(cfg.threads, "--threads"))
        finally:
            device.close()
    predictor = Predictor.load(cfg.table, fingerprint_key=cfg.fingerprint, device_key=device_key, force=cfg.force,
                               resolution=spec.resolution)
    latency = predictor.predict(spec)
    payload = {"arch": spec.name, "resolution": spec.resolution, "latency_ms": latency,
               "raw_sum_ms": predictor.raw_ms(spec), "calibration": predictor.calibration.to_dict(),
               "fingerprint_key": predictor.fingerprint_key, "table": str(cfg.table)}
    lines = [f"{spec.name} at {spec.resolution}: {latency:.2f} ms predicted on {predictor.fingerprint_key}"]
    if cfg.breakdown:
        payload["ops"] = [{"op_key": k, "ms": v} for k, v in predictor.breakdown(spec)]
        lines += [f"  {row['ms']:9.4f}  {row['op_key']}" for row in payload["ops"]]
    return payload, lines
