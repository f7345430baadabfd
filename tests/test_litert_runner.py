"""devices.litert_runner: real LiteRT runs of a tiny real `.tflite` (built with the flatbuffer API)."""

from __future__ import annotations

import numpy as np
import pytest

from devices.emulator.sample_model import tiny_cnn_tflite, write_tiny_cnn
from devices.litert_runner import RunTimings, run_benchmark, single_op_models
from mnas.errors import UserError

TINY_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_cnn(tmp_path_factory.mktemp("model") / "tiny.tflite")


def test_counts_follow_arguments(tiny):
    timings = run_benchmark(tiny, num_runs=7, warmup_runs=2)
    assert isinstance(timings, RunTimings)
    assert len(timings.times_us) == 7 and len(timings.warmup_us) == 2
    assert timings.init_us > 0 and timings.first_us > 0
    assert all(t > 0 for t in timings.times_us + timings.warmup_us)
    assert timings.ops is None and timings.op_run_totals_us is None


@pytest.mark.parametrize("use_xnnpack", [True, False])
def test_threads_and_resolvers_run(tiny, use_xnnpack):
    timings = run_benchmark(tiny, num_threads=2, num_runs=3, use_xnnpack=use_xnnpack)
    assert len(timings.times_us) == 3


def test_min_secs_extends_the_run(tiny):
    timings = run_benchmark(tiny, num_runs=1, warmup_runs=0, min_secs=0.05)
    assert len(timings.times_us) > 1  # a ~10 us model needs many runs to fill 50 ms
    assert sum(timings.times_us) / 1e6 < 0.05 + 0.5  # and it stopped soon after


def test_op_profiling_has_one_row_per_op(tiny):
    timings = run_benchmark(tiny, num_runs=5, op_profiling=True, use_xnnpack=False)
    assert [op.node_type for op in timings.ops] == TINY_OPS
    assert timings.ops[0].name == "stem/Relu6"
    assert sum(op.percent for op in timings.ops) == pytest.approx(100.0)
    assert all(op.avg_ms > 0 and op.first_ms > 0 for op in timings.ops)
    assert len(timings.op_run_totals_us) == 5
    # The per-run totals are the per-run sums of the op times, so their mean is the sum of the op means.
    assert np.mean(timings.op_run_totals_us) / 1e3 == pytest.approx(sum(op.avg_ms for op in timings.ops))


def test_single_op_cut_computes_the_same_as_the_full_graph():
    """The first single-op model (the stem conv) gives the same tensor as the full model's stem."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    content = tiny_cnn_tflite()
    _, _, stem_only = single_op_models(content)[0]
    x = np.random.default_rng(1).standard_normal((1, 32, 32, 3)).astype(np.float32)
    full = Interpreter(model_content=content, experimental_preserve_all_tensors=True,
                       experimental_op_resolver_type=plain)
    full.allocate_tensors()
    full.set_tensor(full.get_input_details()[0]["index"], x)
    full.invoke()
    stem_index = next(d["index"] for d in full.get_tensor_details() if d["name"] == "stem/Relu6")
    alone = Interpreter(model_content=stem_only, experimental_op_resolver_type=plain)
    alone.allocate_tensors()
    alone.set_tensor(alone.get_input_details()[0]["index"], x)
    alone.invoke()
    np.testing.assert_allclose(alone.get_tensor(alone.get_output_details()[0]["index"]),
                               full.get_tensor(stem_index), rtol=1e-5, atol=1e-5)


def test_bad_model_files_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        run_benchmark(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(UserError, match="not a TFLite model"):
        run_benchmark(junk)
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(tiny_cnn_tflite()[:200])  # right identifier, truncated flatbuffer
    with pytest.raises(UserError) as info:
        run_benchmark(corrupt)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError):
        run_benchmark(tmp_path / "x.tflite", num_runs=0)


@pytest.mark.slow
def test_tf_converted_model_with_op_profiling(tmp_path):
    """A model made by the real TF converter (Keras conv net) runs and is cut into per-op models."""
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((24, 24, 3)),
        tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6"),
        tf.keras.layers.DepthwiseConv2D(3, padding="same"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(5),
    ])
    path = tmp_path / "keras.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    timings = run_benchmark(path, num_runs=3, op_profiling=True)
    types = [op.node_type for op in timings.ops]
    assert "CONV_2D" in types and "DEPTHWISE_CONV_2D" in types and "FULLY_CONNECTED" in types
