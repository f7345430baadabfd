"""Bring-your-own-device jobs (`mnas table import FILE.csv`, `table adapt`, `table suggest`, `predict --samples`):
per-network latency data and few-shot predictors. The fitting is in `latency.fewshot`; this module puts spaces,
tables, CSVs and devices together. Each job takes a frozen config and returns (payload, text lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnas.errors import UserError
from mnas.scaling_jobs import Output

DEFAULT_CANDIDATES = 2000  # random networks the K to measure are chosen from
SUGGEST_SEED = 0


def _space(name: str):
    from mnas import spaces

    return spaces.get(name)


def _resolution(space, resolution: int | None) -> int:
    return int(resolution or getattr(space, "default_resolution", 224))


def table_space(info: dict) -> tuple[str | None, int | None]:
    """(space, resolution) a table's device entry was built, imported or adapted for."""
    builds = info.get("builds") or []
    build = builds[-1] if builds else {}
    return build.get("space") or info.get("space"), build.get("resolution") or info.get("resolution")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


# -- import ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportMeasuredConfig:
    csv: Path  # sample, latency_ms
    out: Path
    space: str
    resolution: int | None = None  # None: the space's default (fbnet: 32)
    name: str | None = None  # device name in the table (default: the file name)


def import_measured(cfg: ImportMeasuredConfig) -> Output:
    """Per-network latencies -> a per-op table when they are a per-op sum (exact), else kept as measurements."""
    from latency.fewshot import key_counts, read_measurements, solve_additive
    from latency.store import Entry, TableStore

    space = _space(cfg.space)
    resolution = _resolution(space, cfg.resolution)
    data = read_measurements(cfg.csv, space)
    counts = key_counts(space, data.samples, resolution)
    solution = solve_additive(counts, data.latency_ms)
    name = cfg.name or _stem(cfg.csv)
    key = f"imported:{name}:{space.name}@{resolution}"
    info = {"kind": "imported", "model": name, "key": key, "file": cfg.csv.name, "statistic": "mean",
            "resolution": resolution, "space": space.name, "networks": len(data),
            "additive": solution.additive, "residual_rel_rms": solution.residual_rel_rms,
            "fit_spearman": solution.spearman,
            "builds": [{"space": space.name, "resolution": resolution, "ops": len(counts.keys),
                        "imported": cfg.csv.name}]}
    with TableStore.open(cfg.out, create=True) as store:
        store.add_fingerprint(key, info)
        store.put_measurements(key, list(zip(data.encoded(), data.latency_ms.tolist())))
        if solution.additive:
            present = (counts.counts > 0).sum(axis=0)
            store.put_many(key, [Entry(k, int(n), v, None, None, {"solved_from": cfg.csv.name})
                                 for (k, v), n in zip(solution.values.items(), present)])
    payload = {"table": str(cfg.out), "fingerprint_key": key, "space": space.name, "resolution": resolution,
               "networks": len(data), "additive": solution.additive, "entries": len(counts.keys) * solution.additive,
               "residual_rel_rms": solution.residual_rel_rms, "fit_spearman": solution.spearman,
               "undetermined": solution.unknowns - solution.rank}
    return payload, _import_lines(cfg, payload)


def _import_lines(cfg: ImportMeasuredConfig, p: dict) -> list[str]:
    head = f"{cfg.csv}: {p['networks']} {p['space']} networks at {p['resolution']}"
    if p["additive"]:
        return [f"{head} are a per-op sum (relative RMS residual {p['residual_rel_rms']:.1e}): {p['entries']} op "
                f"entries -> {cfg.out} ({p['fingerprint_key']}); every network's sum is exact",
                f"note: {p['undetermined']} combinations of entries (ops in every network, first layers of stages) "
                "trade against each other in whole-network sums; they are split closest to the ms per MAC of the "
                "entries the data fixes, none negative"]
    return [f"{head} are not a per-op sum: the best per-op fit leaves {p['residual_rel_rms']:.1%} relative RMS "
            f"error (Spearman {p['fit_spearman']:.3f}); kept as {p['networks']} measurements in {cfg.out} "
            f"({p['fingerprint_key']}), no op entries",
            f"adapt a table to this device with: mnas table adapt --from TABLE --measured {cfg.csv} --out NEW"]


# -- adapt -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdaptConfig:
    """A predictor for a device from K measured networks (`measured` CSV, or measured now on `device`) and a
    prior table of another device (or of the same device, earlier: re-anchoring)."""

    prior: Path
    out: Path
    measured: Path | None = None
    device: str | None = None
    samples: int | None = None  # K; with `measured`: chosen from its rows (default all)
    space: str | None = None  # default: the prior's
    fingerprint: str | None = None  # which device of a multi-device prior
    name: str | None = None  # the new device's name (with `measured`; default the CSV's name)
    threads: int = 1
    candidates: int = DEFAULT_CANDIDATES
    seed: int = SUGGEST_SEED
    progress: bool = True

    def check(self) -> None:
        if (self.measured is None) == (self.device is None):
            raise UserError("give one of --measured FILE.csv or --device ID")
        if self.device is not None and self.samples is None:
            raise UserError("--device needs --samples K (how many networks to measure)")
        if self.samples is not None and self.samples < 1:
            raise UserError(f"--samples must be >= 1, got {self.samples}")
        if self.threads < 1 or self.candidates < 1:
            raise UserError("--threads and --candidates must be >= 1")


@dataclass
class _Prior:
    predictor: object
    info: dict
    space: object
    resolution: int


def _load_prior(cfg: AdaptConfig) -> _Prior:
    from latency.predictor import Predictor
    from latency.store import TableStore

    predictor = Predictor.load(cfg.prior, fingerprint_key=cfg.fingerprint)
    with TableStore.open(cfg.prior) as store:
        info = store.fingerprints().get(predictor.fingerprint_key, {})
    space_name, resolution = table_space(info)
    if space_name is None and cfg.space is None:
        raise UserError(f"{cfg.prior} records no search space for {predictor.fingerprint_key}; pass --space")
    if cfg.space is not None and space_name is not None and _space(cfg.space).name != space_name:
        raise UserError(f"prior table {cfg.prior} was made for space {space_name}, not {cfg.space}")
    space = _space(cfg.space or space_name)
    return _Prior(predictor, info, space, _resolution(space, resolution))


def adapt(cfg: AdaptConfig) -> Output:
    """Fit, store (the prior's entries + the fit, under the new device), and report the fit's CV error and, when
    the CSV has networks the fit did not use, its accuracy on them."""
    from latency.fewshot import AdaptedFit, accuracy, fit_adapted, predict_features

    cfg.check()
    prior = _load_prior(cfg)
    if cfg.measured is not None:
        data, chosen, features = _choose_measured(cfg, prior)
        fingerprint, device_info = None, {"kind": "adapted", "model": cfg.name or _stem(cfg.measured),
                                          "file": cfg.measured.name}
    else:
        data, chosen, features, fingerprint, device_info = _measure_on_device(cfg, prior)
    fit: AdaptedFit = fit_adapted(features.subset(chosen), data.latency_ms[chosen])
    raw = features.raw[chosen]
    rest = np.setdiff1d(np.arange(len(data)), chosen)
    held_out = accuracy(predict_features(fit.calibration, features.subset(rest)), data.latency_ms[rest]) \
        if rest.size >= 3 else None
    key = fingerprint or f"adapted:{device_info['model']}:{prior.space.name}@{prior.resolution}".replace(" ", "_")
    _write_adapted(cfg, prior, key, device_info, fit, data.subset(chosen), raw)
    payload = {"table": str(cfg.out), "fingerprint_key": key, "prior": str(cfg.prior),
               "prior_fingerprint": prior.predictor.fingerprint_key, "space": prior.space.name,
               "resolution": prior.resolution, "k": len(chosen), "model": fit.model, "ridge": fit.ridge,
               "cv_rmspe": fit.cv_rmspe, "calibration": fit.calibration.to_dict(),
               "measured": data.subset(chosen).encoded(), "held_out": held_out}
    lines = [f"{cfg.out}: {key} adapted from {cfg.prior} ({prior.predictor.fingerprint_key}) with {fit.describe()}",
             f"calibration {fit.calibration.describe()}"]
    if held_out:
        lines.append(f"on the other {held_out['n']} networks of {cfg.measured}: Spearman {held_out['spearman']:.3f}, "
                     f"Kendall {held_out['kendall']:.3f}, {held_out['within_10pct']:.0%} within +-10%, "
                     f"RMSPE {held_out['rmspe']:.1%}")
    return payload, lines


def _choose_measured(cfg: AdaptConfig, prior: _Prior):
    """(measurements, rows to fit on, prior features of every row): K rows chosen to cover the op types."""
    from latency.fewshot import choose_covering, key_counts, prior_features, read_measurements

    data = read_measurements(cfg.measured, prior.space)
    k = len(data) if cfg.samples is None else cfg.samples
    if k > len(data):
        raise UserError(f"--samples {k} is more than the {len(data)} networks in {cfg.measured}")
    features = prior_features(prior.predictor, key_counts(prior.space, data.samples, prior.resolution))
    chosen = np.arange(len(data)) if k == len(data) else np.array(choose_covering(features.matrix(), k))
    return data, chosen, features


def _measure_on_device(cfg: AdaptConfig, prior: _Prior):
    """Choose K networks of the space by coverage among random candidates, measure them end to end on the device."""
    from latency.fewshot import Measurements, choose_covering, key_counts, prior_features
    from latency.predictor import profile_value
    from devices.registry import open_device
    from latency.table_builder import measure_specs, table_fingerprint_key

    assert cfg.samples is not None  # check()
    rng = np.random.default_rng(cfg.seed)
    pool = np.array(sorted({prior.space.sample_random(rng) for _ in range(max(cfg.candidates, cfg.samples))}))
    features = prior_features(prior.predictor, key_counts(prior.space, pool, prior.resolution))
    chosen = np.array(choose_covering(features.matrix(), min(cfg.samples, len(pool))))
    specs = [prior.space.to_spec([int(i) for i in pool[j]], resolution=prior.resolution) for j in chosen]
    device = open_device(cfg.device)
    try:
        key = table_fingerprint_key(device, cfg.threads)
        info = device.fingerprint().to_dict()
        profiles = measure_specs(device, specs, threads=cfg.threads, progress=cfg.progress,
                                 label="networks to adapt on", passes=2, seed=cfg.seed)
    finally:
        device.close()
    latency = np.array([profile_value(p, prior.predictor.statistic) for p in profiles])
    data = Measurements(pool[chosen], latency, f"device {cfg.device}")
    return data, np.arange(len(chosen)), features.subset(chosen), key, info | {"threads": cfg.threads}


def _write_adapted(cfg: AdaptConfig, prior: _Prior, key: str, device_info: dict, fit, measured,
                   raw: np.ndarray) -> None:
    """The new device's table: the prior's entries (its op times) under the new key, and the fit with the
    networks it was fitted on (as a table build keeps its calibration models: `table validate` re-measures
    some of them to tell the device's drift apart from prediction error)."""
    from latency.store import TableStore
    from mnas.archfile import spec_to_dict

    predictor = prior.predictor
    with TableStore.open(cfg.prior) as source:
        entries = list(source.entries(predictor.fingerprint_key).values())
    build = {"space": prior.space.name, "resolution": prior.resolution, "ops": len(entries),
             "adapted_from": str(cfg.prior), "prior_fingerprint": predictor.fingerprint_key, "k": len(measured)}
    info = device_info | {"key": key, "statistic": predictor.statistic, "space": prior.space.name,
                          "resolution": prior.resolution, "builds": [build]}
    calibration = fit.calibration.to_dict() | {
        "model": fit.model, "ridge": fit.ridge, "cv_rmspe": fit.cv_rmspe,
        "prior": {"table": str(cfg.prior), "fingerprint_key": predictor.fingerprint_key},
        "points": [{"sample": s, "raw_ms": float(r), "measured_ms": float(ms),
                    "arch": spec_to_dict(prior.space.to_spec([int(i) for i in row], resolution=prior.resolution))}
                   for s, row, r, ms in zip(measured.encoded(), measured.samples, raw, measured.latency_ms)]}
    with TableStore.open(cfg.out, create=True) as store:
        store.add_fingerprint(key, info)
        store.put_many(key, entries)
        store.set_calibration(key, calibration)
        store.put_measurements(key, list(zip(measured.encoded(), measured.latency_ms.tolist())))


# -- suggest -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuggestConfig:
    space: str
    samples: int  # K
    resolution: int | None = None
    table: Path | None = None  # a prior table: cover its op times instead of MACs
    fingerprint: str | None = None
    candidates: int = DEFAULT_CANDIDATES
    seed: int = SUGGEST_SEED


def suggest(cfg: SuggestConfig) -> Output:
    """K networks worth measuring: a greedy I-optimal design over per-op-factor and per-input-size MACs (or the
    prior table's op times) among random candidates of the space (`latency.fewshot.choose_covering`)."""
    from latency.fewshot import choose_covering, key_counts, mac_features, prior_features

    if cfg.samples < 1 or cfg.candidates < cfg.samples:
        raise UserError(f"--samples must be >= 1 and <= --candidates ({cfg.candidates}), got {cfg.samples}")
    space = _space(cfg.space)
    resolution = _resolution(space, cfg.resolution)
    rng = np.random.default_rng(cfg.seed)
    pool = np.array(sorted({space.sample_random(rng) for _ in range(cfg.candidates)}))
    counts = key_counts(space, pool, resolution)
    if cfg.table is not None:
        from latency.predictor import Predictor

        features = prior_features(Predictor.load(cfg.table, fingerprint_key=cfg.fingerprint), counts).matrix()
        basis = f"op times of {cfg.table}"
    else:
        features, basis = mac_features(counts), "MACs"
    chosen = choose_covering(features, min(cfg.samples, len(pool)))
    samples = [".".join(str(int(i)) for i in pool[j]) for j in chosen]
    payload = {"space": space.name, "resolution": resolution, "k": len(samples), "candidates": len(pool),
               "seed": cfg.seed, "method": f"greedy I-optimal design over per-op-factor and per-input-size {basis}",
               "samples": samples}
    return payload, ["sample"] + samples


# -- batch prediction --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchPredictConfig:
    table: Path
    space: str
    samples: Path  # CSV with a `sample` column
    resolution: int | None = None  # default: the table's
    fingerprint: str | None = None


def predict_samples(cfg: BatchPredictConfig) -> Output:
    """One predicted latency per row of the CSV ([{sample, latency_ms}, ...])."""
    from latency.fewshot import read_samples
    from latency.predictor import Predictor
    from latency.store import TableStore

    space = _space(cfg.space)
    samples = read_samples(cfg.samples, space)
    with TableStore.open(cfg.table) as store:
        infos = store.fingerprints()
    predictor = Predictor.load(cfg.table, fingerprint_key=cfg.fingerprint, resolution=cfg.resolution)
    built_for, built_at = table_space(infos.get(predictor.fingerprint_key, {}))
    if built_for is not None and built_for != space.name:
        raise UserError(f"latency table {cfg.table} was made for space {built_for}, not {space.name}")
    resolution = _resolution(space, cfg.resolution or built_at)
    latency = predictor.predict_samples(space, samples, resolution=resolution)
    encoded = [".".join(map(str, row)) for row in samples.tolist()]
    payload = [{"sample": s, "latency_ms": float(ms)} for s, ms in zip(encoded, latency)]
    return payload, [f"{s}  {ms:.4f} ms" for s, ms in zip(encoded, latency)]
