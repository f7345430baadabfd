"""Analytic params and MACs from a spec alone (no TF): microseconds per architecture.

Counting convention (stated in the README):
- params = trainable weights (conv kernels, biases, BN gamma/beta, classifier), what the papers report.
  `buffers` = BN moving mean/variance (non-trainable); params + buffers is what Keras' `count_params()`
  reports. Both are checked exactly against the built Keras model in tests.
- MACs = multiply-accumulates of convolutions (incl. depthwise, SE 1x1s, shortcut projections) and of
  the classifier. BN (folded at export), activations, pooling, residual adds and SE scaling are not
  counted, as in the papers and in the common counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnas.spec import Layer, ModelSpec, split_channels

@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    buffers: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs, self.buffers + other.buffers)

    @property
    def total_params(self) -> int:
        """Trainable + BN statistics: Keras' `count_params()`."""
        return self.params + self.buffers


ZERO = Cost(0, 0)


def _bn(channels: int) -> Cost:
    return Cost(2 * channels, 0, 2 * channels)  # gamma, beta | moving mean, moving variance


def _conv(cin: int, cout: int, k: int, out_hw: int, groups: int = 1, bias: bool = False, bn: bool = True) -> Cost:
    weights = k * k * (cin // groups) * cout
    conv = Cost(weights + (cout if bias else 0), weights * out_hw * out_hw)
    return conv + _bn(cout) if bn else conv


def _grouped_1x1(cin: int, cout: int, groups: int, out_hw: int) -> Cost:
    # MixNet splits both sides with the same rule; each group is its own 1x1 conv, one BN after concat.
    total = ZERO
    for gi, go in zip(split_channels(cin, groups), split_channels(cout, groups)):
        total += _conv(gi, go, 1, out_hw, bn=False)
    return total + _bn(cout)


def _depthwise(channels: int, kernels: tuple[int, ...], out_hw: int) -> Cost:
    total = ZERO
    for ch, k in zip(split_channels(channels, len(kernels)), kernels):
        total += Cost(k * k * ch, k * k * ch * out_hw * out_hw)
    return total + _bn(channels)


def _se(channels: int, squeeze: int) -> Cost:
    # Two 1x1 convs with bias on a 1x1 map.
    return Cost(channels * squeeze + squeeze + squeeze * channels + channels, 2 * channels * squeeze)


def layer_cost(layer: Layer) -> Cost:
    out_hw = layer.out_size
    kind = layer.kind
    if kind == "stem":
        return _conv(layer.in_channels, layer.out_channels, layer.kernel_size, out_hw)
    if kind == "head":
        return _conv(layer.in_channels, layer.out_channels, 1, out_hw)
    if kind == "final":
        return _conv(layer.in_channels, layer.out_channels, 1, 1, bias=True, bn=False)
    if kind == "classifier":
        return Cost(layer.in_channels * layer.out_channels + layer.out_channels, layer.in_channels * layer.out_channels)
    if kind == "pool":
        return ZERO
    total = ZERO
    if kind == "cn":
        total += _conv(layer.in_channels, layer.out_channels, layer.kernel_size, out_hw)
        mid = layer.out_channels
    else:
        mid = layer.expanded if kind == "ir" else layer.in_channels
        if layer.has_expand:
            total += _grouped_1x1(layer.in_channels, mid, layer.expand_groups, layer.in_size)
        total += _depthwise(mid, layer.kernel_sizes, out_hw)
        if layer.se_channels:
            total += _se(mid, layer.se_channels)
        total += _grouped_1x1(mid, layer.out_channels, layer.project_groups, out_hw)
    if kind == "cn" and layer.se_channels:
        total += _se(mid, layer.se_channels)
    if layer.skip == "pool" and layer.in_channels != layer.out_channels:
        total += _conv(layer.in_channels, layer.out_channels, 1, out_hw)
    return total


def model_cost(spec: ModelSpec) -> Cost:
    total = ZERO
    for layer in spec.layers():
        total += layer_cost(layer)
    return total


def count_params(spec: ModelSpec) -> int:
    return model_cost(spec).params


def count_macs(spec: ModelSpec) -> int:
    return model_cost(spec).macs
