"""ModelSpec -> Keras 3 model (TF backend): one Keras layer per op of the spec's recipe (`mnas.ops`).

The recipe is what each `Layer` of `spec.layers()` computes, written once for the builder, the analytic costs
(`mnas.costs`) and the fast TFLite writer, so they cannot disagree about channels, strides, sizes or which
ops a block has; `tests/test_builder_export.py` checks that the trainable / non-trainable weight counts equal
`costs` params / buffers for every zoo model, and that the Keras layers are the recipe's ops.

Conventions (the recipe's; see mnas.ops for the expansion of each layer kind):
- every conv has no bias and is followed by BatchNormalization (momentum 0.99, eps 1e-3) and, where the
  layer has one, its activation; BN folds into the conv at TFLite export;
- mixed depthwise kernels (MixNet `k3.5.7`): channels split with `split_channels`, one DepthwiseConv2D
  per kernel, concatenated; grouped 1x1 (`a1.1`, `p1.1`): split, one Conv2D per group, concat, one BN;
- SE, efficientnet style: GAP (keepdims) -> 1x1 conv (bias) -> block activation -> 1x1 conv (bias)
  -> sigmoid -> multiply; mobilenetv3 style: inner ReLU and a hard-sigmoid gate relu6(x + 3) / 6;
- `final` (MobileNetV3): 1x1 conv with bias and no BN on the pooled 1x1 map; the classifier is a Dense
  with bias that outputs logits (no softmax).

Layer names are the recipe's op names (`stem_conv`, `b{block}_{repeat}_expand`, `b3_0_dw_k5`, `head_bn`, ...),
so TFLite ops (whose names carry the Keras layer names) can be mapped back to spec layers.
Weights are random but reproducible: every initializer is seeded from (`seed`, layer position).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the C++ banner is noise for a CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from keras import layers as kl  # noqa: E402

from mnas.ops import INPUT, Op, model_ops  # noqa: E402
from mnas.spec import ModelSpec  # noqa: E402

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


def _activation(op: Op, seeds: _Seeds):
    if op.act == "hswish":
        return HardSwish(name=op.name)
    if op.act == "hsigmoid":
        return HardSigmoid(name=op.name)
    return kl.Activation(op.act, name=op.name)  # relu, relu6, swish, sigmoid: Keras' own names


@keras.saving.register_keras_serializable(package="mnas")
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet's channel shuffle over `groups` (RESHAPE, TRANSPOSE, RESHAPE in TFLite)."""

    def __init__(self, groups: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, x):
        _, h, w, c = x.shape
        x = keras.ops.reshape(x, (-1, h, w, self.groups, c // self.groups))
        x = keras.ops.transpose(x, (0, 1, 2, 4, 3))
        return keras.ops.reshape(x, (-1, h, w, c))

    def get_config(self) -> dict:
        return {**super().get_config(), "groups": self.groups}


# One Keras layer per primitive of the recipe (mnas.ops.PRIMITIVES); initializers are drawn in recipe order.
_KERAS = {
    "conv": lambda op, seeds: kl.Conv2D(op.cout, op.kernel, strides=op.stride, padding="same", use_bias=op.bias,
                                        kernel_initializer=seeds.conv(), name=op.name),
    "dwconv": lambda op, seeds: kl.DepthwiseConv2D(op.kernel, strides=op.stride, padding="same", use_bias=False,
                                                   depthwise_initializer=seeds.conv(), name=op.name),
    "bn": lambda op, seeds: kl.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=op.name),
    "act": _activation,
    "split": lambda op, seeds: SplitChannels(list(op.sizes), name=op.name),
    "concat": lambda op, seeds: kl.Concatenate(axis=-1, name=op.name),
    "gap": lambda op, seeds: kl.GlobalAveragePooling2D(keepdims=op.keepdims, name=op.name),
    "mul": lambda op, seeds: kl.Multiply(name=op.name),
    "add": lambda op, seeds: kl.Add(name=op.name),
    "avgpool": lambda op, seeds: kl.AveragePooling2D(op.kernel, op.stride, padding="same", name=op.name),
    "flatten": lambda op, seeds: kl.Flatten(name=op.name),
    "dropout": lambda op, seeds: kl.Dropout(op.rate, name=op.name),
    "dense": lambda op, seeds: kl.Dense(op.cout, kernel_initializer=seeds.dense(), name=op.name),
    "shuffle": lambda op, seeds: ChannelShuffle(len(op.sizes), name=op.name),
}


def build_keras(spec: ModelSpec, *, seed: int = 0) -> keras.Model:
    """The Keras model of `spec` (NHWC float input of `spec.resolution`, logits out).

    Options (classes, resolution, dropout, width, depth) are `spec.replace(...)` fields, so the model
    always is exactly what `spec.layers()` and `mnas.costs` describe.
    """
    seeds = _Seeds(seed)
    inputs = keras.Input((spec.resolution, spec.resolution, spec.in_channels), name=INPUT)
    tensors = {INPUT: inputs}
    ops = [op for layer_ops in model_ops(spec) for op in layer_ops]
    for op in ops:
        args = [tensors[name] for name in op.inputs]
        out = _KERAS[op.kind](op, seeds)(args if len(args) > 1 else args[0])
        if op.kind == "split":
            tensors.update((f"{op.name}:{i}", part) for i, part in enumerate(out))
        else:
            tensors[op.name] = out
    return keras.Model(inputs, tensors[ops[-1].name], name=spec.name.replace("/", "_"))


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
