"""The figures of `mnas train` (issue 19): throughput against a plain `model.fit`, int8 vs float accuracy and host
latency for mnasnet-a1, mobilenetv3-large and the `make search` pick, resume after kill -9, the streamed folder
pipeline, and mnasnet-a1 trained 10 epochs on the shipped proxy.

Sections (each result is written to OUT/results.json as it comes; a rerun skips the finished ones):
- fit: the same Keras model (mnasnet-a1, 32 px) on the same data (the shipped proxy, 4,000 training images,
  batch 64), `model.fit` (Keras' default compile, AdamW, no augmentation, no EMA) against `mnas train` with its full
  recipe (augmentation, EMA, drop-connect where the spec has it), both for `--fit-epochs`; steady-state images/s
  (after each one's first epoch / first step: both trace their step once) and wall time with the trace.
- models: `mnas train` of mnasnet-a1 (`--a1-epochs`, 10), mobilenetv3-large and the searched pick
  (benchmarks/results/search_wins/seed0/best.json) (`--epochs`), each exported and profiled on the host:
  Keras / float32 / int8 / int8-float-IO accuracy on the validation split and host latency of each file.
- host224: float32 vs int8 host latency of the same three networks at 224 px (weights do not change latency;
  random calibration), the resolution a phone would run.
- stream: the proxy written as PNG class folders (train/, val/), streamed with tf.data: pipeline alone and
  training images/s, one epoch of mnasnet-a1.
- resume: mnasnet-small, `--resume-epochs` epochs by the CLI, killed with SIGKILL in the middle of epoch 2 and run
  again, against the uninterrupted run of the same command.

    .venv/bin/python benchmarks/train_ship.py [--out benchmarks/results/train_ship] [--work /tmp/mnas-train-ship]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PICK = REPO / "benchmarks" / "results" / "search_wins" / "seed0" / "best.json"


def _save(path: Path, results: dict) -> None:
    path.write_text(json.dumps(results, indent=2, default=float) + "\n")


def fit_vs_train(out: Path, epochs: int) -> dict:
    import keras

    from mnas.builder import build_keras
    from mnas.data import load_proxy_data
    from mnas.training import TrainConfig, train
    from mnas.zoo import get

    data = load_proxy_data()
    spec = get("mnasnet-a1", resolution=32, num_classes=10)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_keras(spec, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    marks = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append(time.perf_counter())

    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=epochs, verbose=0, callbacks=[Clock()])
    fit_s = time.perf_counter() - t0
    marks.append(time.perf_counter())
    steps = len(data.y_train) // 64 + (len(data.y_train) % 64 > 0)
    fit_steady = len(data.y_train) / np.median(np.diff(marks[1:])) if epochs > 1 else None
    t0 = time.perf_counter()
    card = train(TrainConfig(arch="mnasnet-a1", out=out / "fit_compare", epochs=epochs, export=False))
    train_s = time.perf_counter() - t0
    ours = card["training"]["train_images_per_s"]
    return {"model": "mnasnet-a1 @ 32 px", "epochs": epochs, "fit_images_per_s": fit_steady, "fit_wall_s": fit_s,
            "fit_steps_per_epoch": steps, "train_images_per_s": ours, "train_wall_s": train_s,
            "pipeline_images_per_s": card["training"]["pipeline_images_per_s"],
            "ratio": ours / fit_steady if fit_steady else None}


def train_model(arch: str, out: Path, epochs: int) -> dict:
    from mnas.training import TrainConfig, train

    t0 = time.perf_counter()
    card = train(TrainConfig(arch=arch, out=out, epochs=epochs, devices=("host",)))
    lat = {r["file"]: r["median_ms"] for r in card["latency"]}
    return {"arch": arch, "name": card["name"], "epochs": epochs, "wall_s": time.perf_counter() - t0,
            "train_s": card["training"]["seconds"], "accuracy": card["accuracy"], "host_ms_32px": lat,
            "train_images_per_s": card["training"]["train_images_per_s"], "recipe": card["recipe"]}


def host_224(arch: str) -> dict:
    from devices.base import ProfileOptions
    from devices.host import HostDevice
    from mnas.archfile import resolve_arch
    from mnas.export import export_tflite

    spec = resolve_arch(arch).replace(resolution=224, num_classes=1000)
    out = {}
    for quantize in (None, "int8"):
        path = export_tflite(spec, quantize=quantize)
        profile = HostDevice().profile(path, ProfileOptions(threads=1))
        out[quantize or "float32"] = {"median_ms": profile.median_ms, "p5_ms": profile.p5_ms}
    return out


def stream(out: Path) -> dict:
    from PIL import Image

    from mnas.data import load_proxy_data
    from mnas.training import TrainConfig, train

    data = load_proxy_data()
    root = out / "proxy_png"
    if not (root / "done").exists():
        for split, x, y in (("train", data.x_train, data.y_train), ("val", data.x_val, data.y_val)):
            lo, hi = float(data.x_train.min()), float(data.x_train.max())
            pixels = np.clip((x[..., 0] - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
            for i, (img, label) in enumerate(zip(pixels, y)):
                folder = root / split / str(label)
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(folder / f"{i}.png")
        (root / "done").write_text("")
    t0 = time.perf_counter()
    card = train(TrainConfig(arch="mnasnet-a1", out=out / "stream_run", epochs=1, data=str(root), resolution=32,
                             export=False))
    return {"images": card["data"]["train_images"], "wall_s": time.perf_counter() - t0,
            "pipeline_images_per_s": card["training"]["pipeline_images_per_s"],
            "train_images_per_s": card["training"]["train_images_per_s"], "accuracy": card["accuracy"]["keras"]}


def resume(out: Path, epochs: int) -> dict:
    mnas = str(Path(sys.executable).parent / "mnas")
    command = [mnas, "train", "mnasnet-small", "--epochs", str(epochs), "--no-export", "--no-progress", "--json"]
    plain = json.loads(subprocess.run(command + ["--out", str(out / "plain")], check=True, capture_output=True,
                                      text=True).stdout)
    killed_dir = out / "killed"
    rows = (out / "plain" / "history.csv").read_text().splitlines()[1:]
    second_epoch_s = float(rows[1].split(",")[5])  # its training loop alone, without the eval after it
    proc = subprocess.Popen(command + ["--out", str(killed_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while not (killed_dir / "checkpoint.npz").exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(second_epoch_s / 2)  # into the middle of epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with np.load(killed_dir / "checkpoint.npz") as ckpt:
        saved = json.loads(str(ckpt["state"]))["epoch"]
    resumed = json.loads(subprocess.run(command + ["--out", str(killed_dir)], check=True, capture_output=True,
                                        text=True).stdout)
    return {"model": "mnasnet-small @ 32 px", "epochs": epochs, "killed_after_epoch": saved,
            "uninterrupted": plain["accuracy"]["keras"], "resumed": resumed["accuracy"]["keras"],
            "resumed_from": resumed["training"]["resumed_from_epochs"],
            "difference_points": 100 * abs(plain["accuracy"]["keras"] - resumed["accuracy"]["keras"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_ship",
                        help="where results.json goes")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mnas-train-ship",
                        help="training runs (checkpoints, .tflite files, model cards): large, kept out of the repo")
    parser.add_argument("--sections", default="fit,models,host224,stream,resume")
    parser.add_argument("--fit-epochs", type=int, default=2)
    parser.add_argument("--a1-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of mobilenetv3-large and the pick")
    parser.add_argument("--resume-epochs", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    archs = {"mnasnet-a1": args.a1_epochs, "mobilenetv3-large": args.epochs, str(PICK): args.epochs}
    jobs = {"fit": lambda: fit_vs_train(args.work, args.fit_epochs), "stream": lambda: stream(args.work),
            "resume": lambda: resume(args.work, args.resume_epochs)}
    for section in args.sections.split(","):
        if section == "models":
            for arch, epochs in archs.items():
                key = f"model:{Path(arch).parent.parent.name + '-pick' if arch == str(PICK) else arch}"
                if key not in results:
                    results[key] = train_model(arch, args.work / key.split(":")[1], epochs)
                    _save(path, results)
                print(key, json.dumps(results[key]["accuracy"]), flush=True)
        elif section == "host224":
            for arch in archs:
                key = f"host224:{Path(arch).parent.parent.name + '-pick' if arch == str(PICK) else arch}"
                if key not in results:
                    results[key] = host_224(arch)
                    _save(path, results)
                print(key, json.dumps(results[key]), flush=True)
        elif section not in results:
            results[section] = jobs[section]()
            _save(path, results)
            print(section, json.dumps(results[section], default=float), flush=True)


if __name__ == "__main__":
    main()
