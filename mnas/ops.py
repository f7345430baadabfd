"""The op recipe: what each `Layer` computes, as a list of primitive ops (pure data, no TF).

    ModelSpec.layers() ──► Layer ──layer_ops()──► [Op, Op, ...]
                                                    ├─► mnas.builder           one Keras layer per op
                                                    ├─► mnas.costs             params / MACs per op
                                                    └─► latency.tflite_writer  the converter's TFLite ops per op

Each consumer is one small translator per primitive (PRIMITIVES), so what a layer kind computes is written
once, here (`_KINDS`). An op's `name` is the Keras layer name the builder gives it (unique in a model) and
names the op's output tensor; `inputs` name the tensors it reads: earlier ops' names, `SPLIT:i` for the i-th
output of a split, or the layer's input. The order is the builder's (it seeds the initializers in that order);
the writer reorders only where the TF converter does (parallel branches: see latency.tflite_writer).

Conventions: convs and depthwise convs use SAME padding and have no bias unless `bias`; a `bn` right after a
conv is that conv's BatchNorm (the converter folds it); `size` is an op's input height = width.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from mnas.errors import UserError
from mnas.spec import Layer, ModelSpec, conv_out_size, split_channels

PRIMITIVES = ("conv", "dwconv", "bn", "act", "split", "concat", "gap", "mul", "add", "avgpool", "flatten",
              "dropout", "dense", "shuffle")
# The block activations (mnas.blocks.ACTIVATIONS) and the two SE gates.
ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "sigmoid", "hsigmoid")
INPUT = "image"  # the model's input tensor


class Op(NamedTuple):
    """One primitive op. A NamedTuple: immutable and cheap to make (costs make thousands per search step)."""

    kind: str  # one of PRIMITIVES
    name: str
    inputs: tuple[str, ...]
    cin: int = 0
    cout: int = 0
    size: int = 0  # input height = width (1 on a pooled map, 0 for dense)
    kernel: int = 1  # conv / dwconv kernel; avgpool window (= its stride)
    stride: int = 1
    bias: bool = False  # conv / dense
    act: str = ""  # act: one of ACTIVATIONS
    sizes: tuple[int, ...] = ()  # split: channels of each output; shuffle: channels of each group
    keepdims: bool = False  # gap
    rate: float = 0.0  # dropout

    @property
    def out_size(self) -> int:
        return conv_out_size(self.size, self.stride)


class _Recipe:
    """Appends ops; each reads the previous op's output (`x`) unless given `inputs`."""

    def __init__(self, x: str) -> None:
        self.ops: list[Op] = []
        self.x = x

    def add(self, kind: str, name: str, inputs: tuple[str, ...] | None = None, **fields) -> str:
        return self.put(Op(kind, name, inputs or (self.x,), **fields))

    def put(self, op: Op) -> str:
        self.ops.append(op)
        self.x = op.name
        return op.name

    # The frequent ops are made with positional fields: a NamedTuple is several times faster to make so.
    def conv(self, name: str, cin: int, cout: int, size: int, kernel: int = 1, stride: int = 1,
             bias: bool = False, inputs: tuple[str, ...] | None = None) -> str:
        return self.put(Op("conv", name, inputs or (self.x,), cin, cout, size, kernel, stride, bias))

    def dwconv(self, name: str, channels: int, size: int, kernel: int, stride: int,
               inputs: tuple[str, ...] | None = None) -> str:
        return self.put(Op("dwconv", name, inputs or (self.x,), channels, channels, size, kernel, stride))

    def bn(self, prefix: str, channels: int, size: int) -> str:
        return self.put(Op("bn", f"{prefix}_bn", (self.x,), channels, channels, size))

    def act(self, name: str, act: str, channels: int, size: int) -> str:
        return self.put(Op("act", name, (self.x,), channels, channels, size, 1, 1, False, act))

    def conv_bn_act(self, conv: str, prefix: str, cin: int, cout: int, size: int, kernel: int, stride: int,
                    act: str) -> str:
        """kxk conv + BN + activation; the BN and activation are `{prefix}_bn` / `{prefix}_act`."""
        self.conv(conv, cin, cout, size, kernel, stride)
        out = conv_out_size(size, stride)
        self.bn(prefix, cout, out)
        return self.act(f"{prefix}_act", act, cout, out)

    def split(self, prefix: str, widths: list[int], size: int) -> list[str]:
        """Channel split (MixNet's `split_channels`); returns the names of its outputs."""
        total = sum(widths)
        split = self.add("split", f"{prefix}_split", cin=total, cout=total, size=size, sizes=tuple(widths))
        return [f"{split}:{i}" for i in range(len(widths))]

    def grouped_1x1(self, prefix: str, cin: int, cout: int, groups: int, size: int) -> str:
        """1x1 conv + BN; MixNet's `a1.1` / `p1.1`: split, one conv per group, concat, one BN."""
        if groups == 1:
            self.conv(prefix, cin, cout, size)
        else:
            parts = self.split(prefix, split_channels(cin, groups), size)
            widths = zip(split_channels(cin, groups), split_channels(cout, groups))
            names = [self.conv(f"{prefix}_g{i}", gi, go, size, inputs=(parts[i],)) for i, (gi, go) in
                     enumerate(widths)]
            self.add("concat", f"{prefix}_concat", tuple(names), cin=cout, cout=cout, size=size)
        return self.bn(prefix, cout, size)

    def shuffle(self, name: str, channels: int, groups: int, size: int) -> str:
        """ShuffleNet's channel shuffle: channel j of group i moves to position j * groups + i."""
        if channels % groups:
            raise UserError(f"a channel shuffle needs channels divisible by its {groups} groups, got {channels}")
        return self.add("shuffle", name, cin=channels, cout=channels, size=size, sizes=(channels // groups,) * groups)

    def depthwise(self, prefix: str, channels: int, kernels: tuple[int, ...], stride: int, size: int) -> str:
        """Depthwise kxk + BN; MixConv `k3.5.7`: split, one depthwise conv per kernel, concat, one BN."""
        out = conv_out_size(size, stride)
        if len(kernels) == 1:
            self.dwconv(prefix, channels, size, kernels[0], stride)
        else:
            widths = split_channels(channels, len(kernels))
            parts = self.split(prefix, widths, size)
            names = [self.dwconv(f"{prefix}_k{k}", c, size, k, stride, inputs=(parts[i],))
                     for i, (k, c) in enumerate(zip(kernels, widths))]
            self.add("concat", f"{prefix}_concat", tuple(names), cin=channels, cout=channels, size=out)
        return self.bn(prefix, channels, out)

    def squeeze_excite(self, prefix: str, layer: Layer, channels: int, size: int) -> str:
        """GAP -> 1x1 conv (bias) -> act -> 1x1 conv (bias) -> gate -> multiply the input by the gate.

        efficientnet style: the block activation and a sigmoid gate; mobilenetv3: ReLU and a hard sigmoid."""
        x = self.x
        mbv3 = layer.se_style == "mobilenetv3"
        self.add("gap", f"{prefix}_pool", cin=channels, cout=channels, size=size, keepdims=True)
        self.conv(f"{prefix}_reduce", channels, layer.se_channels, 1, bias=True)
        self.act(f"{prefix}_reduce_act", "relu" if mbv3 else layer.activation, layer.se_channels, 1)
        self.conv(f"{prefix}_expand", layer.se_channels, channels, 1, bias=True)
        gate = self.act(f"{prefix}_gate", "hsigmoid" if mbv3 else "sigmoid", channels, 1)
        return self.add("mul", f"{prefix}_scale", (x, gate), cin=channels, cout=channels, size=size)


# -- what each layer kind computes ------------------------------------------------------------------
def _stem(r: _Recipe, layer: Layer) -> None:
    r.conv_bn_act("stem_conv", "stem", layer.in_channels, layer.out_channels, layer.in_size, layer.kernel_size,
                  layer.stride, layer.activation)


def _block(r: _Recipe, layer: Layer) -> None:
    """MBConv (ir), depthwise-separable (ds) or regular conv (cn), then its shortcut."""
    p, inputs = f"b{layer.block_index}_{layer.repeat_index}", r.x
    size, out = layer.in_size, layer.out_size
    if layer.kind == "cn":
        r.conv_bn_act(f"{p}_conv", f"{p}_conv", layer.in_channels, layer.out_channels, size, layer.kernel_size,
                      layer.stride, layer.activation)
        if layer.se_channels:
            r.squeeze_excite(f"{p}_se", layer, layer.out_channels, out)
    else:
        mid = layer.expanded if layer.kind == "ir" else layer.in_channels
        if layer.has_expand:
            r.grouped_1x1(f"{p}_expand", layer.in_channels, mid, layer.expand_groups, size)
            r.act(f"{p}_expand_act", layer.activation, mid, size)
            if layer.shuffle:
                r.shuffle(f"{p}_shuffle", mid, layer.expand_groups, size)
        r.depthwise(f"{p}_dw", mid, layer.kernel_sizes, layer.stride, size)
        r.act(f"{p}_dw_act", layer.activation, mid, out)
        if layer.se_channels:
            r.squeeze_excite(f"{p}_se", layer, mid, out)
        r.grouped_1x1(f"{p}_project", mid, layer.out_channels, layer.project_groups, out)
    main, shortcut = r.x, inputs
    if layer.skip == "pool":
        # MnasNet's pooling skip: average-pool the shortcut to the output size, project if widths differ.
        if layer.stride > 1:
            shortcut = r.add("avgpool", f"{p}_skip_pool", (shortcut,), cin=layer.in_channels,
                             cout=layer.in_channels, size=size, kernel=layer.stride, stride=layer.stride)
        if layer.in_channels != layer.out_channels:
            r.conv(f"{p}_skip_conv", layer.in_channels, layer.out_channels, out, inputs=(shortcut,))
            shortcut = r.bn(f"{p}_skip", layer.out_channels, out)
    if layer.skip in ("id", "pool"):
        r.add("add", f"{p}_add", (main, shortcut), cin=layer.out_channels, cout=layer.out_channels, size=out)


def _head(r: _Recipe, layer: Layer) -> None:
    r.conv_bn_act("head_conv", "head", layer.in_channels, layer.out_channels, layer.in_size, 1, 1,
                  layer.activation)


def _final(r: _Recipe, layer: Layer) -> None:
    """MobileNetV3's 1x1 conv with bias (no BN) on the pooled 1x1 map, then flatten for the classifier."""
    r.conv("final_conv", layer.in_channels, layer.out_channels, 1, bias=True)
    r.act("final_act", layer.activation, layer.out_channels, 1)
    r.add("flatten", "final_flatten", cin=layer.out_channels, cout=layer.out_channels, size=1)


_KINDS = {"stem": _stem, "ir": _block, "ds": _block, "cn": _block, "head": _head, "final": _final}


def layer_ops(layer: Layer, x: str = INPUT, *, keepdims: bool = False, dropout: float = 0.0) -> list[Op]:
    """The ops of one layer reading tensor `x`; the last op's name is the layer's output.

    `keepdims`: a `pool` keeps its 1x1 map (when MobileNetV3's `final` conv follows); `dropout`: the rate of
    the Dropout before the classifier (training only: no cost, and the converter drops it)."""
    r = _Recipe(x)
    kind = layer.kind
    if kind == "pool":
        r.add("gap", "pool", cin=layer.in_channels, cout=layer.in_channels, size=layer.in_size, keepdims=keepdims)
    elif kind == "classifier":
        if dropout > 0:
            r.add("dropout", "dropout", cin=layer.in_channels, cout=layer.in_channels, rate=dropout)
        r.add("dense", "classifier", cin=layer.in_channels, cout=layer.out_channels, bias=True)
    elif kind in _KINDS:
        _KINDS[kind](r, layer)
    else:  # a new layer kind needs its recipe here, and only here
        raise UserError(f"no op recipe for layer kind {kind!r}")
    return r.ops


def recipe(layers: Sequence[Layer], *, dropout: float = 0.0) -> list[list[Op]]:
    """The ops of consecutive layers, one list per layer, wired from the input tensor `INPUT`.

    A `pool` keeps dims only when a `final` conv follows it, as in a whole MobileNetV3."""
    out, x = [], INPUT
    for i, layer in enumerate(layers):
        keepdims = i + 1 < len(layers) and layers[i + 1].kind == "final"
        ops = layer_ops(layer, x, keepdims=keepdims, dropout=dropout)
        out.append(ops)
        x = ops[-1].name
    return out


def model_ops(spec: ModelSpec) -> list[list[Op]]:
    """The recipe of a whole spec, per layer of `spec.layers()` (with the spec's dropout)."""
    return recipe(spec.layers(), dropout=spec.dropout)
