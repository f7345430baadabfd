"""Analytic params and MACs from a spec alone (no TF): microseconds per architecture.

Counting convention (stated in the README):
- params = trainable weights (conv kernels, biases, BN gamma/beta, classifier), what the papers report.
  `buffers` = BN moving mean/variance (non-trainable); params + buffers is what Keras' `count_params()`
  reports. Both are checked exactly against the built Keras model in tests.
- MACs = multiply-accumulates of convolutions (incl. depthwise, SE 1x1s, shortcut projections) and of
  the classifier. BN (folded at export), activations, pooling, residual adds and SE scaling are not
  counted, as in the papers and in the common counters.

Counts are per primitive op of the layer's recipe (`mnas.ops`), the list the Keras builder and the TFLite
writer walk too, so a layer kind is costed by the same expansion that builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mnas.ops import Op, layer_ops
from mnas.spec import Layer, ModelSpec


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


def op_cost(op: Op) -> tuple[int, int, int]:
    """(params, MACs, buffers) of one primitive op of the recipe (`mnas.ops`)."""
    kind = op.kind
    if kind == "conv":
        weights = op.kernel * op.kernel * op.cin * op.cout
        out = (op.size - 1) // op.stride + 1
        return weights + (op.cout if op.bias else 0), weights * out * out, 0
    if kind == "dwconv":
        weights = op.kernel * op.kernel * op.cin
        out = (op.size - 1) // op.stride + 1
        return weights, weights * out * out, 0
    if kind == "bn":
        return 2 * op.cout, 0, 2 * op.cout  # gamma, beta | moving mean, moving variance
    if kind == "dense":
        weights = op.cin * op.cout
        return weights + (op.cout if op.bias else 0), weights, 0
    return 0, 0, 0  # activations, pooling, split / concat, adds and multiplies: no weights, no MACs


@lru_cache(maxsize=1 << 14)  # searches cost the same layers over and over; a Layer is frozen and hashable
def layer_cost(layer: Layer) -> Cost:
    params = macs = buffers = 0
    for op in layer_ops(layer):
        p, m, b = op_cost(op)
        params, macs, buffers = params + p, macs + m, buffers + b
    return Cost(params, macs, buffers)


def model_cost(spec: ModelSpec) -> Cost:
    total = ZERO
    for layer in spec.layers():
        total += layer_cost(layer)
    return total


def count_params(spec: ModelSpec) -> int:
    return model_cost(spec).params


def count_macs(spec: ModelSpec) -> int:
    return model_cost(spec).macs
