"""`mnas train`: a tiny network (5 layers, 32 px) trained on 712 proxy digits (a .npz). One in-process run exports the
three TFLite files, evaluates them with LiteRT, profiles them on the host and writes the model card; a CLI run
killed with SIGKILL mid-training and run again ends where the uninterrupted run ends; bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnas.errors import UserError
from mnas.training import TrainConfig, resolve_train_arch, train

REPO = Path(__file__).resolve().parents[1]
TINY = {"name": "tiny-net", "blocks": ["r1_k3_s11_e1_i8_o8", "r2_k3_s22_e3_i8_o16", "r1_k5_s22_e3_i16_o24_se0.25"],
        "stem_filters": 8, "head_filters": 64, "resolution": 32, "dropout": 0.1}
# 16 steps of 32 per epoch; drop-connect on, so its seed state must survive the resume too
SMALL = {"epochs": 3, "batch_size": 32, "lr": 2e-2, "warmup_epochs": 0.5, "drop_connect": 0.2, "flip": False,
         "bn_recal_batches": 4, "grappler": False, "progress": False}  # grappler off: half the trace time


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory) -> Path:
    """The tiny network's arch file and, beside it, 712 digits of the shipped proxy as a .npz (the killed CLI run
    reads it in a fraction of the time the proxy's CSV takes to parse)."""
    from mnas.data import load_proxy_data

    folder = tmp_path_factory.mktemp("arch")
    proxy = load_proxy_data().subset(512, 200)
    np.savez(folder / "digits.npz", x=np.concatenate([proxy.x_train, proxy.x_val])[..., 0],
             y=np.concatenate([proxy.y_train, proxy.y_val]))
    (folder / "tiny.json").write_text(json.dumps(TINY))
    SMALL["data"] = str(folder / "digits.npz")
    return folder / "tiny.json"


@pytest.fixture(scope="module")
def trained(tiny_arch, tmp_path_factory) -> tuple[dict, Path]:
    """The uninterrupted run, exported and profiled on the host."""
    out = tmp_path_factory.mktemp("trained")
    card = train(TrainConfig(arch=str(tiny_arch), out=out, devices=("host",), representative=64, **SMALL))
    return card, out


def test_training_exports_checked_files_and_writes_the_card(trained):
    from mnas.costs import count_macs, count_params
    from mnas.export import load_interpreter
    from mnas.spec import ModelSpec

    card, out = trained
    acc = card["accuracy"]
    assert acc["keras"] > 0.25, acc  # 10 classes: chance is ~0.1; augmented, 48 steps of an 8-channel net
    assert abs(acc["tflite_float32"] - acc["keras"]) <= 0.01, acc
    for key in ("tflite_int8", "tflite_int8_float_io"):
        assert abs(acc[key] - acc["tflite_float32"]) <= 0.05, acc  # a tiny 3-epoch net; the 1-point bar is benchmarked
    interpreter = load_interpreter(out / "model_int8.tflite")
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert card["files"]["int8"]["input"]["dtype"] == "int8"
    assert card["files"]["int8_float_io"]["input"]["dtype"] == "float32"
    measured = {(r["device"], r["file"]) for r in card["latency"] if r["how"] == "measured" and r["median_ms"] > 0}
    assert measured == {("host", "float32"), ("host", "int8"), ("host", "int8_float_io")}
    assert all("LiteRT" in r["runtime"] and r["threads"] == 1 for r in card["latency"])
    spec = ModelSpec.from_strings("tiny-net", TINY["blocks"], **{k: v for k, v in TINY.items()
                                                                 if k not in ("name", "blocks")}, num_classes=10)
    assert card["architecture"]["blocks"] == spec.block_strings()
    assert (card["architecture"]["params_count"], card["architecture"]["macs"]) == (count_params(spec),
                                                                                   count_macs(spec))
    assert card["data"]["train_images"] + card["data"]["val_images"] == 712
    recipe = card["recipe"]
    assert recipe["drop_connect"] == 0.2 and recipe["flip"] is False and recipe["augment_pad"] == 4
    assert card["training"]["epochs"] == 3 and card["training"]["train_images_per_s"] > 0
    assert card["training"]["pipeline_images_per_s"] > 0
    assert json.loads((out / "model_card.json").read_text())["accuracy"] == acc
    text = (out / "MODEL_CARD.md").read_text()
    assert "# Model card: tiny-net" in text and "TFLite int8" in text and "| host | int8 | 32 |" in text
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 4
    assert (out / "learning_curve.png").stat().st_size > 1000 and (out / "model.keras").exists()


def _cli(out: Path, arch: Path) -> list[str]:
    script = Path(sys.executable).parent / "mnas"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "mnas.cli"]
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if k not in ("progress", "flip", "grappler")]
    return base + ["train", str(arch), "--out", str(out), "--no-export", "--no-progress", "--no-flip", "--no-grappler",
                   *flags]


def test_kill_9_mid_training_then_rerun_ends_where_the_uninterrupted_run_ends(trained, tiny_arch, tmp_path):
    """The CLI is killed with SIGKILL once its first epoch is saved; the same training started again (here in
    this process, which saves a second TF start) continues from the checkpoint and ends at the same accuracy."""
    card, _ = trained
    out = tmp_path / "killed"
    env = {**os.environ, "MNAS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(_cli(out, tiny_arch), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150
    while not (out / "checkpoint.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # the first epoch is saved: the kill lands in the second (or its eval)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    with np.load(out / "checkpoint.npz") as ckpt:
        saved_epoch = json.loads(str(ckpt["state"]))["epoch"]
    assert 1 <= saved_epoch < SMALL["epochs"]
    resumed = train(TrainConfig(arch=str(tiny_arch), out=out, export=False, **SMALL))
    assert resumed["training"]["resumed_from_epochs"] == [saved_epoch]
    assert abs(resumed["accuracy"]["keras"] - card["accuracy"]["keras"]) <= 0.005, (resumed["accuracy"],
                                                                                     card["accuracy"])
    ours = [float(r.split(",")[2]) for r in (out / "history.csv").read_text().splitlines()[1:]]
    theirs = [float(r.split(",")[2]) for r in (trained[1] / "history.csv").read_text().splitlines()[1:]]
    assert np.allclose(ours, theirs, rtol=1e-3), (ours, theirs)  # train loss per epoch


def test_a_checkpoint_of_another_class_count_is_refused(trained, tiny_arch, tmp_path):
    _, out = trained
    rng = np.random.default_rng(0)
    data = tmp_path / "three.npz"
    np.savez(data, x=rng.random((30, 32, 32)).astype(np.float32), y=np.repeat([0, 1, 2], 10))
    with pytest.raises(UserError, match=r"was trained on 10 classes, the data has 3") as err:
        train(TrainConfig(arch=str(tiny_arch), out=out, **{**SMALL, "data": str(data)}))
    assert "\n" not in str(err.value)


def test_bad_input_is_one_line(tmp_path):
    from PIL import Image

    with pytest.raises(UserError, match="--epochs must be >= 1"):
        TrainConfig(arch="mnasnet-a1", out=tmp_path, epochs=0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.db").write_bytes(b"")
    with pytest.raises(UserError, match="holds no finished search"):
        train(TrainConfig(arch=str(tmp_path / "run"), out=tmp_path / "o", progress=False))
    folder = tmp_path / "imgs"
    for cls in ("a", "b"):
        (folder / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 40), 60 * i, np.uint8)).save(folder / "train" / cls / f"{i}.png")
    (folder / "val" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match=r"empty class folder .*val/a"):
        train(TrainConfig(arch="mnasnet-small", out=tmp_path / "o", data=str(folder), progress=False))
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "val" / "a" / "0.png")
    broken = folder / "train" / "b" / "1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(UserError, match=r"cannot read image .*train/b/1\.png") as err:
        train(TrainConfig(arch="mnasnet-small", out=tmp_path / "o", data=str(folder), resolution=32, progress=False))
    assert "\n" not in str(err.value)


def test_cli_bad_input_exits_2_with_one_line(run_cli, tmp_path):
    for args in (["train", "mnasnet-a1", "--epochs", "0", "--out", tmp_path / "o"],
                 ["search", "--table", tmp_path / "t.db", "--train-best", "0", "--out", tmp_path / "s"]):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


def test_a_search_run_directory_means_its_pick():
    spec, origin = resolve_train_arch(str(REPO / "benchmarks" / "results" / "search_wins" / "seed0"))
    assert spec.name == "mnasnet-b59222d0ad" and origin["file"] == "best.json"
    assert origin["search"]["within_target"] and origin["search"]["latency_ms"]["host"] > 0


def test_class_folders_stream_in_a_seeded_order_with_seeded_augmentation(tmp_path):
    import tensorflow as tf

    from mnas.train_data import augment_batch, iterate, open_train_data

    from PIL import Image

    rng = np.random.default_rng(1)
    for cls in ("cat", "dog", "eel"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.jpg")
    data = open_train_data(str(tmp_path), 32, val_fraction=0.34, seed=3)
    assert (data.class_names, data.train_count, data.val_count, data.kind) == (("cat", "dog", "eel"), 12, 6,
                                                                               "streamed")
    order = np.arange(12).reshape(3, 4)
    batches = [x.numpy() for x, _ in iterate(data.train_batches(order), data.files_of(order), 4)]
    assert [b.shape for b in batches] == [(4, 32, 32, 3)] * 3
    assert abs(np.concatenate(batches).mean()) < 0.2  # standardised with the training images' statistics
    seed = tf.constant([5, 1], tf.int64)
    first, second = (augment_batch(tf.constant(batches[0]), seed, 4, True).numpy() for _ in range(2))
    assert np.array_equal(first, second) and not np.array_equal(first, batches[0])


def test_a_table_predicts_at_the_trained_resolution_or_else_the_architecture_s(tmp_path):
    from latency.opkeys import op_keys
    from latency.store import TableStore
    from mnas.spec import ModelSpec
    from mnas.train_ship import _predictor

    spec = ModelSpec.from_strings("tiny-net", TINY["blocks"], stem_filters=8, head_filters=64, num_classes=10)
    with TableStore.open(tmp_path / "t.db", create=True) as store:
        for key in dict.fromkeys(op_keys(spec.replace(resolution=224))):
            store.put("host:cpu:1", key, 1, 0.5)
    predictor, predicted = _predictor(str(tmp_path / "t.db"), spec.replace(resolution=32), 224)
    assert predicted.resolution == 224 and predictor.predict(predicted) > 0
    with pytest.raises(UserError, match="covers this network neither at 32 px nor at 64 px"):
        _predictor(str(tmp_path / "t.db"), spec.replace(resolution=32), 64)
