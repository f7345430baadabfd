"""The shipping end of `mnas train`: TFLite files, their accuracy under LiteRT, their latency, the model card.

Three files from the EMA model (BN folded by the converter):
- `model_float32.tflite`;
- `model_int8.tflite`: full-integer post-training quantization, calibrated on `representative` training images
  (unaugmented), int8 kernels and int8 input and output tensors (what a phone app feeds and reads: the input
  scale and zero point are in the card);
- `model_int8_float_io.tflite`: the same int8 kernels behind float32 input/output (QUANTIZE/DEQUANTIZE ops).
Each is run by the LiteRT interpreter over the whole validation split (`mnas.export.run_tflite`, which quantizes
inputs and dequantizes outputs with the tensors' own parameters), beside the Keras model's accuracy.

Latency: every file on every `--device` (measured, `devices`), and the float32 network predicted from every
`--table` (tables hold float32 single-op timings: no int8 prediction is made).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mnas.errors import UserError
from mnas.spec import ModelSpec

VARIANTS = {"float32": ("model_float32.tflite", None, False), "int8": ("model_int8.tflite", "int8", False),
            "int8_float_io": ("model_int8_float_io.tflite", "int8", True)}
EVAL_BATCH = 256


# -- latency sources -------------------------------------------------------------------------------
def check_latency_sources(cfg, spec: ModelSpec, arch_resolution: int) -> None:
    """Open every device (fingerprint: it answers) and table (covers the network) before any training."""
    from devices.registry import open_device

    for device_id in cfg.devices:
        device = open_device(device_id)
        try:
            device.fingerprint()
        finally:
            device.close()
    for table in cfg.tables:
        _predictor(table, spec, arch_resolution)


def _predictor(table: str, spec: ModelSpec, arch_resolution: int):
    """(predictor, spec to predict): the trained network at its resolution when the table covers it, else at the
    architecture's own resolution (a table built for a search at 224 px does not cover a 32 px proxy network)."""
    from latency.predictor import Predictor

    if not Path(table).exists():
        raise UserError(f"latency table {table!r} does not exist")
    missing: list[str] = []
    for resolution in dict.fromkeys((spec.resolution, arch_resolution)):
        candidate = spec.replace(resolution=resolution)
        try:
            predictor = Predictor.load(table, resolution=resolution)
        except UserError:
            continue
        missing = predictor.missing_keys(candidate)
        if not missing:
            return predictor, candidate
    first = f", first missing op {missing[0]}" if missing else ""
    raise UserError(f"latency table {table} covers this network neither at {spec.resolution} px nor at "
                    f"{arch_resolution} px{first}; build one with `mnas table build --resolution R`")


def measure_latency(files: dict[str, Path], spec: ModelSpec, cfg, arch_resolution: int) -> list[dict]:
    from devices.base import ProfileOptions
    from devices.registry import open_device

    rows = []
    for device_id in cfg.devices:
        device = open_device(device_id)
        try:
            for variant, path in files.items():
                profile = device.profile(path, ProfileOptions(threads=cfg.threads))
                fp = profile.fingerprint
                rows.append({"device": device_id, "file": variant, "how": "measured", "resolution": spec.resolution,
                             "median_ms": profile.median_ms,
                             "p5_ms": profile.p5_ms, "p95_ms": profile.p95_ms, "runs": profile.runs,
                             "threads": cfg.threads, "runtime": _runtime(fp), "fingerprint": fp.key,
                             "bimodal": profile.bimodal, "warnings": list(profile.warnings)})
        finally:
            device.close()
    for table in cfg.tables:
        predictor, predicted = _predictor(table, spec, arch_resolution)
        rows.append({"device": predictor.fingerprint_key, "file": "float32", "how": "predicted",
                     "resolution": predicted.resolution, "median_ms": float(predictor.predict(predicted)),
                     "statistic": predictor.statistic,
                     "threads": predictor.info.get("threads"), "runtime": f"latency table {table} (float32 ops)",
                     "fingerprint": predictor.fingerprint_key})
    return rows


def _runtime(fp) -> str:
    if fp.kind == "host":
        versions = fp.extra.get("versions", {})
        return f"LiteRT {versions.get('ai-edge-litert', '?')} interpreter on the host CPU ({fp.model}, {fp.soc})"
    return f"benchmark_model (sha256 {fp.binary_sha256[:12]}) on {fp.model} {fp.soc}, Android {fp.android_version}"


# -- files -----------------------------------------------------------------------------------------
def save_model(model, spec: ModelSpec, out: Path) -> dict[str, str]:
    from mnas.archfile import save_arch_file

    keras_path = out / "model.keras"
    model.save(keras_path)
    return {"keras": str(keras_path), "arch": str(save_arch_file(spec, out / "arch.json"))}


def export_variants(model, representative: np.ndarray, out: Path) -> dict[str, Path]:
    from mnas.export import convert_keras

    files = {}
    for variant, (name, quantize, float_io) in VARIANTS.items():
        content = convert_keras(model, quantize=quantize, representative=representative if quantize else None,
                                float_io=float_io)
        tmp = out / (name + ".part")
        tmp.write_bytes(content)
        os.replace(tmp, out / name)
        files[variant] = out / name
    return files


def tflite_accuracy(path: Path, data) -> float:
    from mnas.export import run_tflite
    from mnas.train_data import iterate

    correct = 0
    for x, y in iterate(data.val_batches(EVAL_BATCH), data.files_of(None), EVAL_BATCH):
        correct += int(np.sum(np.argmax(run_tflite(path, x.numpy()), -1) == y.numpy()))
    return correct / max(data.val_count, 1)


def io_details(path: Path) -> dict:
    from mnas.export import load_interpreter

    interpreter = load_interpreter(path)

    def describe(detail: dict) -> dict:
        scale, zero = detail["quantization"]
        return {"dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape"]],
                "scale": float(scale), "zero_point": int(zero)}

    return {"input": describe(interpreter.get_input_details()[0]),
            "output": describe(interpreter.get_output_details()[0])}


def ship(loop, spec: ModelSpec, cfg, out: Path, arch_resolution: int) -> dict:
    """Export the three files, evaluate each under LiteRT, profile them; a dict for the model card."""
    import time

    t0 = time.perf_counter()
    files = export_variants(loop.eval_model, loop.representative(cfg.representative), out)
    t1 = time.perf_counter()
    accuracy = {variant: tflite_accuracy(path, loop.data) for variant, path in files.items()}
    t2 = time.perf_counter()
    return {"files": {v: _file_entry(p) | io_details(p) for v, p in files.items()}, "accuracy": accuracy,
            "latency": measure_latency(files, spec, cfg, arch_resolution),
            "representative_images": min(cfg.representative, loop.data.train_count),
            "seconds": {"export_s": t1 - t0, "tflite_eval_s": t2 - t1, "latency_s": time.perf_counter() - t2}}


def _file_entry(path: Path) -> dict:
    content = path.read_bytes()
    return {"path": str(path), "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}


# -- model card ------------------------------------------------------------------------------------
def model_card(spec: ModelSpec, data, cfg, recipe, trained, pipeline_rate: float, origin: dict | None,
               files: dict, shipped: dict) -> dict:
    from dataclasses import asdict

    from mnas.costs import count_macs, count_params
    from mnas.training import config_dict

    steady = [h["images_per_s"] for h in trained.history if h["images_per_s"] > 0]
    return {
        "name": spec.name,
        "architecture": {"blocks": spec.block_strings(), "params": spec.global_params(),
                         "params_count": count_params(spec), "macs": count_macs(spec)},
        "search": origin,
        "data": {"source": data.source, "kind": data.kind, "classes": list(data.class_names),
                 "train_images": data.train_count, "val_images": data.val_count, "resolution": data.resolution,
                 "fingerprint": data.fingerprint(), **data.describe()},
        "recipe": asdict(recipe),
        "config": config_dict(cfg),
        "training": {"epochs": len(trained.history), "seconds": trained.seconds,
                     "resumed_from_epochs": trained.resumed_from,
                     "train_images_per_s": float(np.median(steady)) if steady else None,
                     "pipeline_images_per_s": pipeline_rate,
                     "final_train_accuracy": trained.history[-1]["train_accuracy"],
                     "final_train_loss": trained.history[-1]["train_loss"]},
        "accuracy": {"keras": trained.accuracy, **{f"tflite_{k}": v for k, v in shipped.get("accuracy", {}).items()}},
        "latency": shipped.get("latency", []),
        "files": {**{k: {"path": v} for k, v in files.items()}, **shipped.get("files", {})},
        "export": {k: shipped[k] for k in ("representative_images", "seconds") if k in shipped},
    }


def write_card(card: dict, out: Path) -> None:
    # numpy scalars (int64 counts) are not JSON: their Python value is
    text = json.dumps(card, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    (out / "model_card.json").write_text(text + "\n")
    (out / "MODEL_CARD.md").write_text(card_markdown(card))


def card_markdown(card: dict) -> str:
    arch, data, rec, tr = card["architecture"], card["data"], card["recipe"], card["training"]
    acc = card["accuracy"]
    lines = [f"# Model card: {card['name']}", "",
             f"{arch['params_count'] / 1e6:.3f} M params, {arch['macs'] / 1e6:.1f} M MACs at {data['resolution']} px, "
             f"{len(data['classes'])} classes. Trained {tr['epochs']} epoch(s) by `mnas train`.", "",
             "## Accuracy (top-1, validation split)", "", "| model | accuracy |", "|---|---|",
             f"| Keras (EMA weights) | {acc['keras']:.4f} |"]
    for key in ("tflite_float32", "tflite_int8", "tflite_int8_float_io"):
        if key in acc:
            lines.append(f"| {key.replace('tflite_', 'TFLite ').replace('_float_io', ' (float IO)')} (LiteRT) "
                         f"| {acc[key]:.4f} |")
    lines += ["", "## Latency", ""]
    if card["latency"]:
        lines += ["| device | file | px | ms | how | threads | runtime |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['device']} | {r['file']} | {r['resolution']} | {r['median_ms']:.3f} | {r['how']} "
                  f"({'median' if r['how'] == 'measured' else r.get('statistic', '')}) | {r.get('threads')} "
                  f"| {r['runtime']} |" for r in card["latency"]]
    else:
        lines.append("Not measured: pass `--device ID` (repeatable) or `--table FILE`.")
    lines += ["", "## Architecture", "", "```", *arch["blocks"], "```", "",
              "Global params: `" + json.dumps(arch["params"]) + "`", ""]
    if card["search"]:
        lines += ["## Search", "", "```json", json.dumps(card["search"], indent=2)[:4000], "```", ""]
    lines += ["## Data", "", f"- source: `{data['source']}` ({data['kind']}), {data['train_images']} training / "
              f"{data['val_images']} validation images, {data['resolution']} px",
              f"- classes: {', '.join(data['classes'])}", f"- input: {data['standardisation']}", "",
              "## Recipe", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rec.items()]
    lines += ["", "## Training", "", f"- {tr['seconds']:.1f} s of training and evaluation; steady training "
              f"throughput {_num(tr['train_images_per_s'])} images/s, input pipeline alone "
              f"{_num(tr['pipeline_images_per_s'])} images/s",
              f"- resumed at epoch(s): {tr['resumed_from_epochs'] or 'none'}",
              "- history: `history.csv`, curve: `learning_curve.png`", "", "## Files", ""]
    for name, entry in card["files"].items():
        extra = ""
        if "input" in entry:
            i = entry["input"]
            extra = f" ({entry['bytes']} bytes; input {i['dtype']} scale {i['scale']:.6g} zero point {i['zero_point']})"
        lines.append(f"- {name}: `{entry['path']}`{extra}")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"
