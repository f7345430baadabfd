"""ModelSpec -> `.tflite` (float32, or int8 post-training quantization), cached by content hash; and
running a `.tflite` file in the LiteRT interpreter.

Conversion path (measured in docs/foundation.md): the Keras 3 model is traced once in a `tf.function`
with a fixed batch of 1, its variables are frozen into constants, and the frozen concrete function goes
to `TFLiteConverter.from_concrete_functions`. Of the paths that work with Keras 3 in TF 2.21 it is the
fastest (`model.export` + `from_saved_model` writes and re-reads a SavedModel; `from_keras_model` does
the same internally), and a fixed batch keeps `Flatten` a single RESHAPE. Passing the unfrozen function
with the model as `trackable_obj` is *wrong* here: the file keeps VAR_HANDLE / READ_VARIABLE ops.

The converter prints pages of MLIR diagnostics on the OS-level stdout/stderr (C++ and absl logging that
Python cannot redirect); `quiet_fds` points fds 1 and 2 at a temporary file during conversion and
shows its tail only if conversion fails.

int8 is full-integer quantization (int8 kernels, int8 input and output tensors: what a phone deployment
runs); `run_tflite` quantizes inputs and dequantizes outputs with the tensors' scale and zero point.

Cache: `$MNAS_CACHE/exports/<sha256>.tflite` (default `~/.cache/mnas`), keyed by the block strings, the
global params (resolution, classes, width, ...), the quantization mode, a digest of the representative
data, the weight seed and the TF version, so a changed architecture or toolchain never reuses a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from mnas.errors import UserError
from mnas.spec import ModelSpec
from mnas.tfgraphs import forget_custom_gradients

QUANTIZE_MODES = (None, "int8")
# Bump when the builder or the converter settings change what a cached file contains.
EXPORT_FORMAT = 1
REPRESENTATIVE_SAMPLES = 8


def cache_dir() -> Path:
    return Path(os.environ.get("MNAS_CACHE") or Path.home() / ".cache" / "mnas") / "exports"


def _check_quantize(quantize: str | None) -> str | None:
    if quantize in ("", "none", "float32", "fp32"):
        return None
    if quantize not in QUANTIZE_MODES:
        raise UserError(f"unknown quantization {quantize!r}; known: float32 (default), int8")
    return quantize


def export_key(spec: ModelSpec, quantize: str | None = None, representative: np.ndarray | None = None,
               seed: int = 0) -> str:
    """sha256 of everything that decides the bytes of the exported file."""
    payload = {
        "format": EXPORT_FORMAT,
        "blocks": spec.block_strings(),
        "params": spec.global_params(),
        "quantize": _check_quantize(quantize),
        "representative": _digest(representative),
        "seed": seed,
        "tf": tensorflow_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def tensorflow_version() -> str:
    """The installed TF version, from package metadata: a cache hit must not pay for importing TF."""
    from importlib import metadata

    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tf-nightly-cpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    with quiet_fds(replay=None):
        import tensorflow as tf
    return tf.__version__


def _digest(array: np.ndarray | None) -> str | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


def export_tflite(spec: ModelSpec, out_path: str | Path | None = None, *, quantize: str | None = None,
                  representative: np.ndarray | None = None, model=None, seed: int = 0,
                  use_cache: bool = True) -> Path:
    """Export `spec` to `.tflite`; return the written path (`out_path`, or the cache file).

    `model`: an already built Keras model of `spec` to export as is (its weights are not part of the
    cache key, so the cache is bypassed). `representative`: float32 images (N, R, R, C) for int8
    calibration; by default `REPRESENTATIVE_SAMPLES` seeded uniform [0, 1) images.
    """
    quantize = _check_quantize(quantize)
    if representative is not None:
        representative = np.asarray(representative, dtype=np.float32)
        expected = (spec.resolution, spec.resolution, spec.in_channels)
        if representative.ndim != 4 or representative.shape[1:] != expected:
            raise UserError(f"representative data must have shape (N, {', '.join(map(str, expected))}), "
                            f"got {representative.shape}")
    cached = None
    if use_cache and model is None:
        cached = cache_dir() / f"{export_key(spec, quantize, representative, seed)}.tflite"
    if cached is None or not cached.exists():
        if model is None:
            # Importing TF prints oneDNN / absl banners on the OS-level stderr.
            with quiet_fds("TF import / model build output"):
                from mnas.builder import build_keras

                model = build_keras(spec, seed=seed)
        content = convert_keras(model, quantize=quantize, representative=representative)
        if cached is not None:
            _atomic_write(cached, content)
        else:
            if out_path is None:
                raise UserError("an out_path is needed when the export is not cached (model given or cache off)")
            return _atomic_write(Path(out_path), content)
    if out_path is None:
        return cached
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out)
    return out


def _atomic_write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(tmp, path)
    return path


def convert_keras(model, *, quantize: str | None = None, representative: np.ndarray | None = None,
                  float_io: bool = False) -> bytes:
    """Keras model (fixed spatial input) -> `.tflite` bytes, batch 1, converter output silenced.

    `float_io` (int8 only): int8 kernels behind float32 input and output tensors (the converter adds a
    QUANTIZE and a DEQUANTIZE op), for apps that feed float images."""
    quantize = _check_quantize(quantize)
    with quiet_fds(), forget_custom_gradients():  # a swish model's forward trace registers one per activation
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        input_shape = (1,) + tuple(int(d) for d in model.input.shape[1:])
        signature = [tf.TensorSpec(input_shape, tf.float32, name="image")]
        forward = tf.function(lambda x: model(x, training=False), input_signature=signature)
        frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)
        if quantize == "int8":
            data = representative
            if data is None:
                data = np.random.default_rng(0).random((REPRESENTATIVE_SAMPLES,) + input_shape[1:],
                                                       dtype=np.float32)

            def samples() -> Iterator[list[np.ndarray]]:
                for image in data:
                    yield [image[None].astype(np.float32)]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if not float_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        return converter.convert()


@contextlib.contextmanager
def quiet_fds(replay: str | None = "converter output") -> Iterator[None]:
    """Send OS-level stdout/stderr to a temp file; if the body raises, replay the file's tail on
    stderr under the heading `replay` (None: drop it, when the exception already says it all).
    `mnas --verbose` (MNAS_VERBOSE=1) leaves the output where it is."""
    if os.environ.get("MNAS_VERBOSE") == "1":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            log.seek(0)
            tail = log.read().decode(errors="replace")[-4000:]
            if replay and tail.strip():
                sys.stderr.write(f"--- {replay} (tail) ---\n{tail}\n")
            raise
        else:
            _restore(saved)


def _restore(saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in zip((1, 2), saved):
        os.dup2(copy, fd)
    for copy in saved:
        os.close(copy)


# -- running a .tflite file ------------------------------------------------------------------------
def load_interpreter(path: str | Path, num_threads: int = 1):
    """A LiteRT interpreter with tensors allocated; UserError if the file is missing or corrupt."""
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as err:
        raise UserError(f"corrupt or unreadable .tflite file: {path} ({err.strerror or err})") from None
    try:
        with quiet_fds(replay=None):  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            interpreter = Interpreter(model_content=content, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"corrupt or unreadable .tflite file: {path} ({reason})") from None
    return interpreter


def run_tflite(path: str | Path, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run a batch `x` (N, H, W, C float) through the model one sample at a time; float outputs.

    Quantized (int8/uint8) input and output tensors are converted with their scale and zero point.
    """
    interpreter = load_interpreter(path, num_threads)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(inp["shape"][1:]):
        raise UserError(f"input shape {tuple(x.shape[1:])} does not match the model's {tuple(inp['shape'][1:])}")
    results = []
    for sample in x:
        interpreter.set_tensor(inp["index"], _to_tensor(sample[None], inp))
        interpreter.invoke()
        results.append(_from_tensor(interpreter.get_tensor(out["index"]), out))
    return np.concatenate(results, axis=0)


def _to_tensor(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _from_tensor(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)
