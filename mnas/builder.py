"""ModelSpec -> Keras 3 model (TF backend), one layer group per `Layer` of `spec.layers()`.

The builder reads the concrete layer list and nothing else, so it cannot disagree with the analytic
costs (`mnas.costs`) about channels, strides or sizes; `tests/test_builder_export.py` checks that the
trainable / non-trainable weight counts equal `costs` params / buffers for every zoo model.

Conventions (the same as `mnas.costs`):
- every conv has no bias and is followed by BatchNormalization (momentum 0.99, eps 1e-3) and, where the
  layer has one, its activation; BN folds into the conv at TFLite export;
- mixed depthwise kernels (MixNet `k3.5.7`): channels split with `split_channels`, one DepthwiseConv2D
  per kernel, concatenated; grouped 1x1 (`a1.1`, `p1.1`): split, one Conv2D per group, concat, one BN;
- SE, efficientnet style: GAP (keepdims) -> 1x1 conv (bias) -> block activation -> 1x1 conv (bias)
  -> sigmoid -> multiply; mobilenetv3 style: inner ReLU and a hard-sigmoid gate relu6(x + 3) / 6;
- `final` (MobileNetV3): 1x1 conv with bias and no BN on the pooled 1x1 map; the classifier is a Dense
  with bias that outputs logits (no softmax).

Layer names are deterministic (`stem_conv`, `b{block}_{repeat}_expand`, `b3_0_dw_k5`, `head_bn`, ...),
so TFLite ops (whose names carry the Keras layer names) can be mapped back to spec layers.
Weights are random but reproducible: every initializer is seeded from (`seed`, layer position).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the C++ banner is noise for a CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from keras import layers as kl  # noqa: E402

from mnas.spec import Layer, ModelSpec, split_channels  # noqa: E402

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="mnas")
class HardSwish(keras.layers.Layer):
    """x * relu6(x + 3) / 6: the pattern the TFLite converter fuses into one HARD_SWISH op."""

    def call(self, x):
        return x * keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


@keras.saving.register_keras_serializable(package="mnas")
class HardSigmoid(keras.layers.Layer):
    """relu6(x + 3) / 6: MobileNetV3's SE gate (ADD, RELU6, MUL in TFLite)."""

    def call(self, x):
        return keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


@keras.saving.register_keras_serializable(package="mnas")
class SplitChannels(keras.layers.Layer):
    """Split the channel axis into `sizes` (SPLIT / SPLIT_V in TFLite)."""

    def __init__(self, sizes: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]

    def call(self, x):
        import tensorflow as tf

        return tf.split(x, self.sizes, axis=-1)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[:-1]) + (s,) for s in self.sizes]

    def get_config(self) -> dict:
        return {**super().get_config(), "sizes": self.sizes}


class _Seeds:
    """Reproducible initializers: each layer gets its own seed from a counter."""

    def __init__(self, seed: int) -> None:
        self.base = int(seed) * 1_000_003
        self.count = 0

    def _next(self) -> int:
        self.count += 1
        return self.base + self.count

    def conv(self) -> keras.initializers.Initializer:
        # The authors' conv init: normal with stddev sqrt(2 / fan_out).
        return keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal", seed=self._next())

    def dense(self) -> keras.initializers.Initializer:
        return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_out", "uniform", seed=self._next())


def _activation(x, name: str, prefix: str):
    if name == "hswish":
        return HardSwish(name=f"{prefix}_act")(x)
    keras_name = {"relu": "relu", "relu6": "relu6", "swish": "swish"}[name]
    return kl.Activation(keras_name, name=f"{prefix}_act")(x)


def _bn(x, prefix: str):
    return kl.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)


def _conv(x, filters: int, kernel: int, stride: int, name: str, seeds: _Seeds, bias: bool = False):
    return kl.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=bias,
                     kernel_initializer=seeds.conv(), name=name)(x)


def _grouped_1x1(x, cin: int, cout: int, groups: int, prefix: str, seeds: _Seeds):
    """1x1 conv (split into `groups` separate convs, MixNet's `a1.1` / `p1.1`) + BN, no activation."""
    if groups == 1:
        x = _conv(x, cout, 1, 1, prefix, seeds)
    else:
        parts = SplitChannels(split_channels(cin, groups), name=f"{prefix}_split")(x)
        outs = [_conv(p, co, 1, 1, f"{prefix}_g{gi}", seeds)
                for gi, (p, co) in enumerate(zip(parts, split_channels(cout, groups)))]
        x = kl.Concatenate(axis=-1, name=f"{prefix}_concat")(outs)
    return _bn(x, prefix)


def _depthwise(x, channels: int, kernels: tuple[int, ...], stride: int, prefix: str, seeds: _Seeds):
    """Depthwise kxk (or MixConv: one depthwise conv per kernel over a channel split) + BN."""
    if len(kernels) == 1:
        x = kl.DepthwiseConv2D(kernels[0], strides=stride, padding="same", use_bias=False,
                               depthwise_initializer=seeds.conv(), name=prefix)(x)
    else:
        parts = SplitChannels(split_channels(channels, len(kernels)), name=f"{prefix}_split")(x)
        outs = [kl.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False,
                                   depthwise_initializer=seeds.conv(), name=f"{prefix}_k{k}")(p)
                for p, k in zip(parts, kernels)]
        x = kl.Concatenate(axis=-1, name=f"{prefix}_concat")(outs)
    return _bn(x, prefix)


def _squeeze_excite(x, layer: Layer, channels: int, prefix: str, seeds: _Seeds):
    s = kl.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_pool")(x)
    s = _conv(s, layer.se_channels, 1, 1, f"{prefix}_reduce", seeds, bias=True)
    if layer.se_style == "mobilenetv3":
        s = kl.Activation("relu", name=f"{prefix}_reduce_act")(s)
        s = _conv(s, channels, 1, 1, f"{prefix}_expand", seeds, bias=True)
        s = HardSigmoid(name=f"{prefix}_gate")(s)
    else:
        s = _activation(s, layer.activation, f"{prefix}_reduce")
        s = _conv(s, channels, 1, 1, f"{prefix}_expand", seeds, bias=True)
        s = kl.Activation("sigmoid", name=f"{prefix}_gate")(s)
    return kl.Multiply(name=f"{prefix}_scale")([x, s])


def _block(x, layer: Layer, seeds: _Seeds):
    """One MBConv (ir), depthwise-separable (ds) or regular conv (cn) layer, with its shortcut."""
    p = f"b{layer.block_index}_{layer.repeat_index}"
    inputs = x
    if layer.kind == "cn":
        x = _conv(x, layer.out_channels, layer.kernel_size, layer.stride, f"{p}_conv", seeds)
        x = _activation(_bn(x, f"{p}_conv"), layer.activation, f"{p}_conv")
        if layer.se_channels:
            x = _squeeze_excite(x, layer, layer.out_channels, f"{p}_se", seeds)
    else:
        mid = layer.expanded if layer.kind == "ir" else layer.in_channels
        if layer.has_expand:
            x = _grouped_1x1(x, layer.in_channels, mid, layer.expand_groups, f"{p}_expand", seeds)
            x = _activation(x, layer.activation, f"{p}_expand")
        x = _depthwise(x, mid, layer.kernel_sizes, layer.stride, f"{p}_dw", seeds)
        x = _activation(x, layer.activation, f"{p}_dw")
        if layer.se_channels:
            x = _squeeze_excite(x, layer, mid, f"{p}_se", seeds)
        x = _grouped_1x1(x, mid, layer.out_channels, layer.project_groups, f"{p}_project", seeds)
    if layer.skip == "id":
        x = kl.Add(name=f"{p}_add")([x, inputs])
    elif layer.skip == "pool":
        # MnasNet's pooling skip: average-pool the shortcut to the output size, project if widths differ.
        shortcut = inputs
        if layer.stride > 1:
            shortcut = kl.AveragePooling2D(layer.stride, layer.stride, padding="same",
                                           name=f"{p}_skip_pool")(shortcut)
        if layer.in_channels != layer.out_channels:
            shortcut = _bn(_conv(shortcut, layer.out_channels, 1, 1, f"{p}_skip_conv", seeds), f"{p}_skip")
        x = kl.Add(name=f"{p}_add")([x, shortcut])
    return x


def build_keras(spec: ModelSpec, *, seed: int = 0) -> keras.Model:
    """The Keras model of `spec` (NHWC float input of `spec.resolution`, logits out).

    Options (classes, resolution, dropout, width, depth) are `spec.replace(...)` fields, so the model
    always is exactly what `spec.layers()` and `mnas.costs` describe.
    """
    seeds = _Seeds(seed)
    plan = spec.layers()
    inputs = keras.Input((spec.resolution, spec.resolution, spec.in_channels), name="image")
    x = inputs
    has_final = any(layer.kind == "final" for layer in plan)
    for layer in plan:
        if layer.kind == "stem":
            x = _conv(x, layer.out_channels, layer.kernel_size, layer.stride, "stem_conv", seeds)
            x = _activation(_bn(x, "stem"), layer.activation, "stem")
        elif layer.kind in ("ir", "ds", "cn"):
            x = _block(x, layer, seeds)
        elif layer.kind == "head":
            x = _activation(_bn(_conv(x, layer.out_channels, 1, 1, "head_conv", seeds), "head"),
                            layer.activation, "head")
        elif layer.kind == "pool":
            x = kl.GlobalAveragePooling2D(keepdims=has_final, name="pool")(x)
        elif layer.kind == "final":
            x = _conv(x, layer.out_channels, 1, 1, "final_conv", seeds, bias=True)
            x = _activation(x, layer.activation, "final")
            x = kl.Flatten(name="final_flatten")(x)
        elif layer.kind == "classifier":
            if spec.dropout > 0:
                x = kl.Dropout(spec.dropout, name="dropout")(x)
            x = kl.Dense(layer.out_channels, kernel_initializer=seeds.dense(), name="classifier")(x)
        else:  # a new Layer kind must be taught to the builder and to costs together
            raise ValueError(f"builder does not know layer kind {layer.kind!r}")
    return keras.Model(inputs, x, name=spec.name.replace("/", "_"))


def weight_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, non-trainable) scalar counts: compare with `mnas.costs` params / buffers."""
    def total(weights) -> int:
        return sum(_size(w.shape) for w in weights)

    return total(model.trainable_weights), total(model.non_trainable_weights)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
