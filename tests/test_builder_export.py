"""Keras builder vs analytic costs (every zoo model), and TFLite export run in LiteRT vs Keras."""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np
import pytest

from mnas import builder, costs, export, zoo  # builder and export import TF
from mnas.errors import UserError
from mnas.spec import ModelSpec
from mnas.tfgraphs import custom_gradient_names

# What our models may convert to: TFLite builtins only (no Flex ops, no leftover variables).
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "HARD_SWISH", "LOGISTIC", "CONCATENATION",
               "SPLIT", "SPLIT_V", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "RESHAPE", "RELU", "RELU6",
               "QUANTIZE", "DEQUANTIZE", "DELEGATE"}


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_weight_counts_equal_costs(name: str) -> None:
    # Resolution changes no weight, so a 32px build checks the 1000-class default cheaply.
    spec = zoo.get(name, resolution=32)
    model = builder.build_keras(spec)
    cost = costs.model_cost(spec)
    assert builder.weight_counts(model) == (cost.params, cost.buffers)
    assert model.count_params() == cost.total_params
    keras.backend.clear_session()


@pytest.mark.slow
def test_mobilenetv2_equals_keras_applications() -> None:
    # Same weight shapes as keras.applications.MobileNetV2 (alpha 1.0, 1000 classes), not just the same total.
    spec = zoo.get("mobilenetv2-1.0")
    ours = builder.build_keras(spec)
    theirs = keras.applications.MobileNetV2(alpha=1.0, weights=None, include_top=True, classes=1000)
    assert sorted(tuple(w.shape) for w in ours.weights) == sorted(tuple(w.shape) for w in theirs.weights)
    assert builder.weight_counts(ours) == builder.weight_counts(theirs) == (3_504_872, 34_112)
    assert ours.count_params() == theirs.count_params() == costs.model_cost(spec).total_params == 3_538_984
    keras.backend.clear_session()


def test_every_block_kind_builds_and_counts() -> None:
    # ds / cn / poolskip / grouped 1x1 / mixed kernels / both SE styles in one small net.
    blocks = ["ds_r1_k3_s11_e1_i16_o16_se0.25", "cn_r1_k3_s22_e1_i16_o24_se0.5_hs",
              "r2_k3.5_a1.1_p1.1_s22_e3_i24_o32_poolskip_sw", "r1_k5_s11_e6_x200_i32_o40_se0.25_r6_poolskip"]
    for style in ("efficientnet", "mobilenetv3"):
        spec = ModelSpec.from_strings("mix", blocks, stem_filters=16, head_filters=64, final_filters=48,
                                      num_classes=7, resolution=32, se_style=style, head_activation="hswish")
        model = builder.build_keras(spec)
        cost = costs.model_cost(spec)
        assert builder.weight_counts(model) == (cost.params, cost.buffers)
        assert model.output_shape == (None, 7)
    names = {layer.name for layer in model.layers}
    assert {"stem_conv", "b2_0_expand_g0", "b2_0_dw_k5", "b2_0_skip_pool", "b2_0_skip_conv", "b2_1_add",
            "b3_0_se_gate", "final_conv", "classifier"} <= names


def test_keras_layers_are_the_recipe_ops() -> None:
    """One Keras layer per op of the recipe (`mnas.ops`), in its order and with its names, and a Keras translator
    for every primitive: what the builder builds is what the costs count and the writer writes."""
    from mnas import ops

    assert set(builder._KERAS) == set(ops.PRIMITIVES)
    spec = ModelSpec.from_strings("recipe", ["r1_k3.5_a1.1_p1.1_s22_e3_i16_o24_se0.25_poolskip_hs",
                                             "ds_r2_k3_s11_e1_i24_o24_se0.5"], stem_filters=16, head_filters=32,
                                  final_filters=24, num_classes=5, resolution=32, se_style="mobilenetv3")
    model = builder.build_keras(spec)
    recipe = [op for layer_ops in ops.model_ops(spec) for op in layer_ops]
    # Keras lists layers in graph order (a shortcut's ops may come before the block's last ones).
    assert sorted(layer.name for layer in model.layers) == sorted([ops.INPUT] + [op.name for op in recipe])
    for op in recipe:
        if op.kind in ("conv", "dwconv", "dense"):
            kernel = model.get_layer(op.name).get_weights()[0]
            shape = (op.kernel, op.kernel, op.cin, 1) if op.kind == "dwconv" else \
                (op.cin, op.cout) if op.kind == "dense" else (op.kernel, op.kernel, op.cin, op.cout)
            assert kernel.shape == shape, op


def test_same_seed_same_weights() -> None:
    spec = zoo.get("mobilenetv3-small", resolution=32, num_classes=5)
    a, b = builder.build_keras(spec, seed=3), builder.build_keras(spec, seed=3)
    c = builder.build_keras(spec, seed=4)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert not all(np.array_equal(x, y) for x, y in zip(wa, wc))


def _randomize_bn_and_scale_logits(model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics (so folding is tested) and logits of order 1 (so 1e-4 means something)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 2.0, var.shape).astype(np.float32)])
    dense = model.get_layer("classifier")
    kernel, bias = dense.get_weights()
    scale = 1.0 / max(float(np.std(model(x, training=False).numpy())), 1e-12)
    dense.set_weights([kernel * scale, bias])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv3-small", "mixnet-s"])
def test_litert_logits_equal_keras(name: str, tmp_path, mnas_cache) -> None:
    spec = zoo.get(name, resolution=64, num_classes=10)
    model = builder.build_keras(spec)
    rng = np.random.default_rng(0)
    x = rng.random((3, 64, 64, 3), dtype=np.float32)
    _randomize_bn_and_scale_logits(model, x, rng)
    expected = model(x, training=False).numpy()
    before = custom_gradient_names()
    path = export.export_tflite(spec, tmp_path / f"{name}.tflite", model=model)
    assert custom_gradient_names() == before  # mixnet's swish registers one per activation; none may outlive it
    got = export.run_tflite(path, x)
    assert got.shape == (3, 10)
    assert np.std(expected) > 0.5  # logits of order 1, not vanishing
    assert np.abs(got - expected).max() < 1e-4
    ops = Counter(op["op_name"] for op in export.load_interpreter(path)._get_ops_details())
    assert set(ops) <= ALLOWED_OPS, f"unexpected ops: {set(ops) - ALLOWED_OPS}"
    if name == "mobilenetv3-small":
        assert ops["HARD_SWISH"] > 0  # x * relu6(x + 3) / 6 fused into one op
    else:
        assert ops["SPLIT_V"] > 0 and ops["CONCATENATION"] > 0 and ops["LOGISTIC"] > 0  # MixConv, swish, SE


@pytest.mark.slow
def test_int8_export_and_cache(tmp_path, mnas_cache) -> None:
    spec = zoo.get("mobilenetv3-small", resolution=32, num_classes=10)
    rng = np.random.default_rng(1)
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    # float32 through the cache: a second export (other name: not part of the key) is a cache hit.
    cached = export.export_tflite(spec)
    assert cached.parent == mnas_cache / "exports" and cached.stat().st_size > 0
    stamp = cached.stat().st_mtime_ns
    float_path = export.export_tflite(spec.replace(name="renamed"), tmp_path / "f.tflite")
    assert cached.stat().st_mtime_ns == stamp  # not converted again
    assert float_path.read_bytes() == cached.read_bytes()
    assert export.export_key(spec) != export.export_key(spec.replace(resolution=64))
    assert export.export_key(spec) != export.export_key(spec, quantize="int8")
    # int8: int8 tensors in and out, a smaller file, outputs that follow the float model.
    int8_path = export.export_tflite(spec, tmp_path / "q.tflite", quantize="int8", representative=x)
    interpreter = export.load_interpreter(int8_path)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert int8_path.stat().st_size < 0.5 * float_path.stat().st_size
    yf, yq = export.run_tflite(float_path, x), export.run_tflite(int8_path, x)
    assert yq.shape == yf.shape == (4, 10) and np.isfinite(yq).all()
    assert np.corrcoef(yf.ravel(), yq.ravel())[0, 1] > 0.5


def test_bad_quantize_and_bad_files(tmp_path) -> None:
    spec = zoo.get("mnasnet-small", resolution=32)
    with pytest.raises(UserError, match="unknown quantization 'int4'"):
        export.export_tflite(spec, tmp_path / "x.tflite", quantize="int4")
    with pytest.raises(UserError, match="representative data must have shape"):
        export.export_tflite(spec, tmp_path / "x.tflite", quantize="int8", representative=np.zeros((2, 8, 8, 3)))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(UserError, match="corrupt or unreadable .tflite file"):
        export.run_tflite(bad, np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(UserError, match="corrupt or unreadable .tflite file"):
        export.load_interpreter(tmp_path / "missing.tflite")
