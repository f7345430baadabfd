"""The fast TFLite writer against the real TF converter (`mnas.export`) and the real LiteRT runtime.

(a) op sequence (builtin names in order, options incl. fused activations / padding / strides, tensor
shapes) equals the converter's for six specs; (b) written models run in LiteRT with finite outputs of
the right shape, whole and layer by layer; (c) latency of written vs converted model agrees within
noise (interleaved rounds, 1 thread, thread CPU time). The converter runs once per spec per session
(module fixture); TF is imported only by `mnas.export`, in this one process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latency.tflite_ops import op_sequence
from latency.tflite_writer import write_layers, write_tflite
from mnas import zoo
from mnas.errors import UserError
from mnas.spec import Layer, ModelSpec

# MnasNet's search-space ops the zoo lacks: ds, cn with SE, pooling skips (with and without projection),
# relu6 / h-swish / swish, grouped 1x1 and mixed kernels with an 11x11 (name order puts it first).
CUSTOM_BLOCKS = ["ds_r1_k3_s11_e1_i32_o16", "cn_r1_k3_s22_e1_i16_o24_se0.25_poolskip_r6",
                 "r2_k3.5_a1.1_s22_e3_i24_o40_poolskip_hs", "r1_k3.5_a1.1_p1.1_s22_e6_i40_o48_se0.25_sw",
                 "r1_k3.5.7.9.11_a1_p1.1_s11_e3_i48_o48_poolskip_r6"]
# Down to a 1x1 map, where the converter drops the SE's MEAN and adds shortcuts as [C] vectors.
ONE_BY_ONE_BLOCKS = ["ds_r1_k3_s22_e1_i32_o16", "r1_k3_s22_e3_i16_o24", "r1_k3_s22_e3_i24_o32",
                     "r1_k3_s22_e3_i32_o40_se0.25_poolskip", "r2_k3_s11_e3_i40_o40_se0.25", "ds_r2_k3_s11_e1_i40_o40",
                     "cn_r2_k3_s11_e1_i40_o40", "r1_k3_s11_e3_i40_o48_poolskip", "r2_k3.5_a1.1_p1.1_s11_e3_i48_o48_hs"]
SPECS = {
    "mnasnet-a1": lambda: zoo.get("mnasnet-a1", resolution=96, num_classes=10),
    "mobilenetv2-1.0": lambda: zoo.get("mobilenetv2-1.0", resolution=64, num_classes=10),
    "mobilenetv3-small": lambda: zoo.get("mobilenetv3-small", resolution=64, num_classes=10),
    "mixnet-s": lambda: zoo.get("mixnet-s", resolution=64, num_classes=10),
    "search-ops": lambda: ModelSpec.from_strings("search-ops", CUSTOM_BLOCKS, resolution=64, num_classes=10,
                                                 head_filters=320),
    "one-by-one": lambda: ModelSpec.from_strings("one-by-one", ONE_BY_ONE_BLOCKS, resolution=32, num_classes=10),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """name -> (converter .tflite path, seconds the build + conversion took), converted on first use."""
    out_dir = tmp_path_factory.mktemp("converted")
    cache: dict[str, tuple[Path, float]] = {}

    def get(name: str) -> tuple[Path, float]:
        if name not in cache:
            from mnas.export import export_tflite

            start = time.perf_counter()
            path = export_tflite(SPECS[name](), out_dir / f"{name}.tflite", use_cache=False)
            cache[name] = (path, time.perf_counter() - start)
        return cache[name]

    return get


def _interpreter(content: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _run(content: bytes) -> np.ndarray:
    interpreter = _interpreter(content)
    detail = interpreter.get_input_details()[0]
    image = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_op_sequence_equals_converter(name: str, converted) -> None:
    reference_path, convert_seconds = converted(name)
    start = time.perf_counter()
    content = write_tflite(SPECS[name]())
    write_seconds = time.perf_counter() - start
    reference, written = op_sequence(reference_path), op_sequence(content)
    for index, (want, got) in enumerate(zip(reference, written)):
        assert got == want, f"op {index} differs:\n converter {want}\n writer    {got}"
    assert len(written) == len(reference)
    # The real speed figure is in benchmarks/fast_export.py; this only guards against a regression
    # that would make the writer pointless, with a wide margin for a loaded machine.
    assert write_seconds * 10 < convert_seconds


@pytest.mark.parametrize("name", list(SPECS))
def test_written_model_runs_with_finite_output(name: str) -> None:
    spec = SPECS[name]()
    logits = _run(write_tflite(spec))
    assert logits.shape == (1, spec.num_classes)
    assert np.isfinite(logits).all()


def test_every_layer_alone_runs_and_concatenates_to_the_model() -> None:
    """Single-layer timing models (what the latency table measures) are exactly the model's pieces."""
    spec = SPECS["mobilenetv3-small"]()
    layers = spec.layers()
    tail = next(i for i, layer in enumerate(layers) if layer.kind == "pool")  # pool+final+FC: one piece
    pieces = [[layer] for layer in layers[:tail]] + [layers[tail:]]
    joined = []
    for piece in pieces:
        content = write_layers(piece)
        joined += op_sequence(content)
        out = _run(content)
        last = piece[-1]
        expected = (1, last.out_channels) if last.kind in ("pool", "classifier") else \
            (1, last.out_size, last.out_size, last.out_channels)
        assert out.shape == expected and np.isfinite(out).all(), f"layer {last.kind} {last.block_index}"
    assert joined == op_sequence(write_tflite(spec))


def test_written_ops_follow_the_recipe() -> None:
    """Each conv / depthwise conv / dense of the recipe (`mnas.ops`) is exactly one TFLite op of its output width
    (its BN folds into it, activations fuse or follow): no conv is lost or written twice."""
    from mnas.ops import model_ops

    for name in ("mixnet-s", "search-ops", "one-by-one"):
        spec = SPECS[name]()
        recipe = [op for layer_ops in model_ops(spec) for op in layer_ops]
        want = {"conv": "CONV_2D", "dwconv": "DEPTHWISE_CONV_2D", "dense": "FULLY_CONNECTED"}
        expected = sorted((want[op.kind], op.cout) for op in recipe if op.kind in want)
        written = sorted((r.name, r.outputs[0][-1]) for r in op_sequence(write_tflite(spec)) if r.name in want.values())
        assert written == expected, name


def test_single_op_input_is_the_first_layers_input() -> None:
    pool = Layer("pool", 40, 40, 7)
    classifier = Layer("classifier", 40, 10, 1)
    assert _run(write_layers([pool])).shape == (1, 40)
    assert _run(write_layers([classifier])).shape == (1, 10)
    assert _run(write_layers([pool, classifier])).shape == (1, 10)


@pytest.mark.slow
def test_latency_agrees_with_converter(converted) -> None:
    """Medians within 10% over interleaved rounds (1 thread, XNNPACK, as the host device runs).

    Each invoke is timed in thread CPU time: with one interpreter thread that is its compute time,
    and unlike wall time it does not count the time other work on the shared cores takes the CPU.
    The order of the two models alternates round by round.
    """
    reference_path, _ = converted("mnasnet-a1")
    models = {"converter": _interpreter(reference_path.read_bytes()),
              "writer": _interpreter(write_tflite(SPECS["mnasnet-a1"]()))}
    for interpreter in models.values():
        for _ in range(5):
            interpreter.invoke()
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(15):
        order = list(models) if round_index % 2 == 0 else list(reversed(models))
        for name in order:
            for _ in range(15):
                start = time.thread_time()
                models[name].invoke()
                times[name].append(time.thread_time() - start)
    converter, writer = (float(np.median(times[n])) for n in ("converter", "writer"))
    assert abs(writer - converter) / converter < 0.10, f"writer {writer * 1e3:.3f} ms vs converter " \
                                                      f"{converter * 1e3:.3f} ms"


def test_bytes_path_and_seed() -> None:
    spec = SPECS["search-ops"]()
    content = write_tflite(spec, seed=1)
    assert content[4:8] == b"TFL3"
    assert write_tflite(spec, seed=1) == content
    other = write_tflite(spec, seed=2)
    assert other != content and op_sequence(other) == op_sequence(content)


def test_signature_matches_export_names() -> None:
    interpreter = _interpreter(write_tflite(SPECS["search-ops"]()))
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["output_0"]}}
    outputs = interpreter.get_signature_runner("serving_default")(image=np.zeros((1, 64, 64, 3), np.float32))
    assert outputs["output_0"].shape == (1, 10)


def test_writes_to_path(tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    spec = SPECS["search-ops"]()
    assert write_tflite(spec, target) == target
    assert target.read_bytes() == write_tflite(spec)


def test_bad_input_raises_user_error() -> None:
    with pytest.raises(UserError, match="at least one layer"):
        write_layers([])
    with pytest.raises(UserError, match="layer kind 'lstm'"):
        write_layers([Layer("lstm", 8, 8, 8)])


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, latency.tflite_writer, latency.tflite_ops; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
