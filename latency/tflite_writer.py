"""ModelSpec (or a run of its Layers) -> TFLite flatbuffer, written directly: no TF, no converter.

Latency does not depend on trained weights, so a timing model needs only the right ops with the right
shapes and options. This module writes exactly the op sequence that `mnas.export.export_tflite` (the TF
converter on `mnas.builder.build_keras(spec)`, batch fixed to 1) emits, with random weights, in tens of
milliseconds instead of the converter's seconds: `tests/test_tflite_writer.py` checks the ops one by one
against the converter, `benchmarks/fast_export.py` measures speed and latency (docs/fast_export.md).

It walks the same op recipe (`mnas.ops`) as the builder and lowers each primitive as the converter does, so a
new layer kind needs no change here unless it brings a new primitive or a new fusion.
What the converter does to the builder's Keras graph, and so what is written here:
- conv (no bias) + BN folds into one CONV_2D / DEPTHWISE_CONV_2D with a bias; ReLU / ReLU6 fuse into it,
  h-swish becomes a HARD_SWISH op, swish becomes LOGISTIC + MUL;
- a BN after a concat (MixNet's grouped 1x1 and mixed depthwise convs) cannot fold: it stays a
  per-channel MUL, with ReLU / ReLU6 fused (its shift is zero in a fresh model, so no ADD is left);
  `tf.split` is always SPLIT_V; parallel branches run in the order of their layer names (`k11` first);
- SE: MEAN (keepdims) -> CONV_2D -> act -> CONV_2D -> LOGISTIC, or MobileNetV3's hard-sigmoid gate
  (the +3 folds into the conv bias, ReLU6 fuses, then MUL by the scalar 1/6) -> MUL;
- the classifier is a FULLY_CONNECTED without bias (the converter drops a bias that is all zeros, as in
  a fresh model); after MobileNetV3's final conv it reads the [1, 1, 1, C] map directly (Flatten folds).
All convs use SAME padding (the builder's `padding="same"`, 1x1 included). Tensors are named after the
builder's layer names (`b3_0_dw`, `b3_0_se_reduce`, ...), so per-op profiles map back to spec layers.

Pure numpy + flatbuffers: the schema's object API comes from `ai_edge_litert.schema_py_generated`
(no TF import); weights are drawn straight into the flatbuffer's 16-byte-aligned buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from mnas.errors import UserError
from mnas.ops import INPUT, Op, recipe
from mnas.spec import Layer, ModelSpec

BN_EPSILON = 1e-3  # the builder's; a fresh BN scales by 1 / sqrt(1 + eps)
FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
_FUSABLE = {"relu": tfl.ActivationFunctionType.RELU, "relu6": tfl.ActivationFunctionType.RELU6}
_NONE = tfl.ActivationFunctionType.NONE
_OP = tfl.BuiltinOperator
_OPT = tfl.BuiltinOptions


@dataclass(frozen=True)
class _RandomWeights:
    """A weight buffer to fill with uniform(-bound, bound) float32 values at serialization."""

    count: int
    bound: float

    @property
    def nbytes(self) -> int:
        return 4 * self.count


@dataclass
class _Graph:
    """One subgraph under construction: tensors, constant buffers, operators and their codes."""

    rng: np.random.Generator
    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=lambda: [None])  # buffer 0: the empty sentinel
    operators: list = field(default_factory=list)
    opcodes: dict = field(default_factory=dict)  # builtin code -> index into the operator codes

    # -- tensors ---------------------------------------------------------------------------------
    def activation(self, shape: tuple[int, ...], name: str) -> int:
        """A float32 tensor computed at run time (no buffer); batch 1, static, as `mnas.export` converts."""
        return self._add(_tensor(shape, tfl.TensorType.FLOAT32, name))

    def const(self, array: np.ndarray, name: str) -> int:
        array = np.asarray(array)  # not ascontiguousarray: that turns a scalar into shape (1,)
        kind = tfl.TensorType.INT32 if array.dtype == np.int32 else tfl.TensorType.FLOAT32
        tensor = _tensor(array.shape, kind, name)
        tensor.buffer = len(self.buffers)
        self.buffers.append(array.reshape(-1).view(np.uint8))
        return self._add(tensor)

    def weights(self, shape: tuple[int, ...], fan_in: int, name: str) -> int:
        """Random float32 weights, drawn later straight into the flatbuffer (no temporary arrays)."""
        tensor = _tensor(shape, tfl.TensorType.FLOAT32, name)
        tensor.buffer = len(self.buffers)
        # He-uniform scale keeps activations finite through deep random nets; values never affect latency.
        self.buffers.append(_RandomWeights(int(np.prod(shape)), float(np.sqrt(6.0 / max(1, fan_in)))))
        return self._add(tensor)

    def shape_of(self, tensor: int) -> tuple[int, ...]:
        return tuple(self.tensors[tensor].shape)

    def _add(self, tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    # -- operators -------------------------------------------------------------------------------
    def op(self, code: int, inputs: list[int], out_shapes: list[tuple[int, ...]], name: str,
           options_type: int = _OPT.NONE, options=None) -> list[int]:
        """Append one operator; returns its new float32 output tensors (`name`, `name:1`, ...)."""
        if code not in self.opcodes:
            self.opcodes[code] = len(self.opcodes)
        outputs = [self.activation(shape, name if i == 0 else f"{name}:{i}") for i, shape in enumerate(out_shapes)]
        operator = tfl.OperatorT()
        operator.opcodeIndex = self.opcodes[code]
        operator.inputs = list(inputs)
        operator.outputs = outputs
        operator.builtinOptionsType = options_type
        operator.builtinOptions = options
        self.operators.append(operator)
        return outputs


def _tensor(shape, kind: int, name: str):
    tensor = tfl.TensorT()
    tensor.shape = [int(d) for d in shape]
    tensor.type = kind
    tensor.buffer = 0
    tensor.name = name
    return tensor


# -- single ops, as the converter writes them ------------------------------------------------------
def _conv(g: _Graph, x: int, cout: int, k: int, stride: int, act: str | None, name: str,
          bias_value: float = 0.0) -> int:
    n, h, w, cin = g.shape_of(x)
    weights = g.weights((cout, k, k, cin), k * k * cin, f"{name}/kernel")
    bias = g.const(np.full(cout, bias_value, np.float32), f"{name}/bias")
    options = tfl.Conv2DOptionsT()
    options.padding = tfl.Padding.SAME
    options.strideH = options.strideW = stride
    options.fusedActivationFunction = _FUSABLE.get(act, _NONE)
    out_hw = ((h - 1) // stride + 1, (w - 1) // stride + 1)
    (y,) = g.op(_OP.CONV_2D, [x, weights, bias], [(n, *out_hw, cout)], name, _OPT.Conv2DOptions, options)
    return _unfused_activation(g, y, act, name)


def _depthwise(g: _Graph, x: int, k: int, stride: int, act: str | None, name: str) -> int:
    n, h, w, c = g.shape_of(x)
    weights = g.weights((1, k, k, c), k * k, f"{name}/depthwise_kernel")
    bias = g.const(np.zeros(c, np.float32), f"{name}/bias")
    options = tfl.DepthwiseConv2DOptionsT()
    options.padding = tfl.Padding.SAME
    options.strideH = options.strideW = stride
    options.depthMultiplier = 1
    options.fusedActivationFunction = _FUSABLE.get(act, _NONE)
    out_hw = ((h - 1) // stride + 1, (w - 1) // stride + 1)
    (y,) = g.op(_OP.DEPTHWISE_CONV_2D, [x, weights, bias], [(n, *out_hw, c)], name,
                _OPT.DepthwiseConv2DOptions, options)
    return _unfused_activation(g, y, act, name)


def _unfused_activation(g: _Graph, x: int, act: str | None, name: str) -> int:
    """The part of an activation that no conv / MUL can fuse: h-swish and swish."""
    shape = g.shape_of(x)
    if act == "hswish":
        return g.op(_OP.HARD_SWISH, [x], [shape], f"{name}/hard_swish")[0]
    if act == "swish":
        (gate,) = g.op(_OP.LOGISTIC, [x], [shape], f"{name}/sigmoid")
        return _mul(g, x, gate, None, f"{name}/swish")
    return x


def _mul(g: _Graph, a: int, b: int, act: str | None, name: str) -> int:
    options = tfl.MulOptionsT()
    options.fusedActivationFunction = _FUSABLE.get(act, _NONE)
    return g.op(_OP.MUL, [a, b], [g.shape_of(a)], name, _OPT.MulOptions, options)[0]


def _add(g: _Graph, a: int, b: int, name: str) -> int:
    """a + b, b of a's shape or a trailing [C] vector that broadcasts."""
    options = tfl.AddOptionsT()
    return g.op(_OP.ADD, [a, b], [g.shape_of(a)], name, _OPT.AddOptions, options)[0]


def _batchnorm_mul(g: _Graph, x: int, act: str | None, name: str) -> int:
    """A BN the converter cannot fold (after a concat): MUL by gamma / sqrt(var + eps), act fused."""
    channels = g.shape_of(x)[-1]
    scale = g.const(np.full(channels, 1.0 / np.sqrt(1.0 + BN_EPSILON), np.float32), f"{name}/bn_scale")
    y = _mul(g, x, scale, act, f"{name}/bn")
    return _unfused_activation(g, y, act, name)


def _split(g: _Graph, x: int, sizes: list[int], name: str) -> list[int]:
    """tf.split with a size list: always SPLIT_V (also for equal sizes), along the last axis."""
    n, h, w, _ = g.shape_of(x)
    size_splits = g.const(np.asarray(sizes, np.int32), f"{name}/sizes")
    axis = g.const(np.asarray(-1, np.int32), f"{name}/axis")
    options = tfl.SplitVOptionsT()
    options.numSplits = len(sizes)
    return g.op(_OP.SPLIT_V, [x, size_splits, axis], [(n, h, w, s) for s in sizes], name,
                _OPT.SplitVOptions, options)


def _reshape(g: _Graph, x: int, shape: tuple[int, ...], name: str) -> int:
    new_shape = g.const(np.asarray(shape, np.int32), f"{name}/shape")
    return g.op(_OP.RESHAPE, [x, new_shape], [shape], name)[0]


def _channel_shuffle(g: _Graph, x: int, groups: int, name: str) -> int:
    """[1, H, W, g * c] -> [1, H, W, g, c] -> transpose the last two -> [1, H, W, c * g]."""
    n, h, w, c = g.shape_of(x)
    y = _reshape(g, x, (n, h, w, groups, c // groups), f"{name}/groups")
    perm = g.const(np.asarray([0, 1, 2, 4, 3], np.int32), f"{name}/perm")
    y = g.op(_OP.TRANSPOSE, [y, perm], [(n, h, w, c // groups, groups)], f"{name}/transpose")[0]
    return _reshape(g, y, (n, h, w, c), name)


def _concat(g: _Graph, parts: list[int], name: str) -> int:
    n, h, w, _ = g.shape_of(parts[0])
    options = tfl.ConcatenationOptionsT()
    options.axis = -1
    total = sum(g.shape_of(p)[-1] for p in parts)
    return g.op(_OP.CONCATENATION, parts, [(n, h, w, total)], name, _OPT.ConcatenationOptions, options)[0]


def _mean(g: _Graph, x: int, keepdims: bool, name: str) -> int:
    n, h, w, c = g.shape_of(x)
    if h == w == 1 and keepdims:
        return x  # the mean of a 1x1 map is the map: the converter drops the op
    axes = g.const(np.asarray([1, 2], np.int32), f"{name}/axes")
    options = tfl.ReducerOptionsT()
    options.keepDims = keepdims
    shape = (n, 1, 1, c) if keepdims else (n, c)
    return g.op(_OP.MEAN, [x, axes], [shape], name, _OPT.ReducerOptions, options)[0]


def _avg_pool(g: _Graph, x: int, stride: int, name: str) -> int:
    n, h, w, c = g.shape_of(x)
    options = tfl.Pool2DOptionsT()
    options.padding = tfl.Padding.SAME
    options.strideH = options.strideW = options.filterHeight = options.filterWidth = stride
    out = (n, (h - 1) // stride + 1, (w - 1) // stride + 1, c)
    return g.op(_OP.AVERAGE_POOL_2D, [x], [out], name, _OPT.Pool2DOptions, options)[0]


def _fully_connected(g: _Graph, x: int, units: int, name: str) -> int:
    """Dense on [1, C] or, after MobileNetV3's final conv, straight on [1, 1, 1, C]: with a fixed
    batch the converter folds Keras' Flatten into the FULLY_CONNECTED (keepNumDims=False)."""
    shape = g.shape_of(x)
    features = int(np.prod(shape[1:]))
    weights = g.weights((units, features), features, f"{name}/kernel")
    options = tfl.FullyConnectedOptionsT()
    # -1: no bias; the converter drops the all-zero bias of a freshly built Dense.
    return g.op(_OP.FULLY_CONNECTED, [x, weights, -1], [(shape[0], units)], name,
                _OPT.FullyConnectedOptions, options)[0]


# -- the op recipe (mnas.ops), as the converter lowers it ------------------------------------------
_GATES = ("sigmoid", "hsigmoid")  # SE gates: ops of their own after a conv, never fused into it


def _emit_layer(g: _Graph, env: dict[str, int], ops: list[Op]) -> None:
    """Emit one layer's recipe; `env` maps recipe tensor names to graph tensors."""
    layer_input = ops[0].inputs[0]
    for op in ops:
        if op.kind == "add" and op.size == 1 and op.inputs[1] == layer_input:
            # On a 1x1 map the converter adds the shortcut as a [C] vector; for an identity shortcut the
            # RESHAPE runs before the block (it carries the `add` name, which sorts before the block's ops).
            env[f"{op.name}/shortcut"] = _reshape(g, env[layer_input], (op.cout,), f"{op.name}/shortcut")
    i = 0
    while i < len(ops):
        i = _emit(g, env, ops, i)


def _emit(g: _Graph, env: dict[str, int], ops: list[Op], i: int) -> int:
    """Emit the op at `i` (with the BN and activation the converter fuses into it); returns the next index."""
    op = ops[i]
    kind = op.kind
    x = env[op.inputs[0]]
    if kind in ("conv", "dwconv", "bn"):
        end, act = _fused_tail(ops, i)
        env[ops[end - 1].name] = _conv_or_bn(g, x, op, act)
        return end
    if kind == "split":
        parts = _split(g, x, list(op.sizes), op.name)
        env.update((f"{op.name}:{n}", part) for n, part in enumerate(parts))
        end = next(j for j in range(i + 1, len(ops)) if ops[j].kind == "concat")
        # Parallel branches (one op each) run in the converter's order: by layer name, so `k11` before `k3`
        # (TF's graph import sorts independent nodes by name); the concat keeps the channel order.
        for branch in sorted(ops[i + 1:end], key=lambda b: b.name):
            env[branch.name] = _conv_or_bn(g, env[branch.inputs[0]], branch, None)
        return end
    if kind == "concat":
        y = _concat(g, [env[name] for name in op.inputs], op.name)
    elif kind == "gap":
        y = _mean(g, x, op.keepdims, op.name)
    elif kind == "mul":
        y = _mul(g, x, env[op.inputs[1]], None, op.name)
    elif kind == "add":
        shortcut = env.get(f"{op.name}/shortcut")
        if shortcut is None:
            shortcut = env[op.inputs[1]]
            if op.size == 1:
                shortcut = _reshape(g, shortcut, (op.cout,), f"{op.name}/shortcut")
        y = _add(g, x, shortcut, op.name)
    elif kind == "avgpool":
        y = _avg_pool(g, x, op.stride, op.name)
    elif kind in ("flatten", "dropout"):
        y = x  # the converter folds Flatten into the FULLY_CONNECTED (fixed batch) and drops Dropout
    elif kind == "dense":
        y = _fully_connected(g, x, op.cout, op.name)
    elif kind == "shuffle":
        y = _channel_shuffle(g, x, len(op.sizes), op.name)
    else:  # an activation the converter could not fuse into a conv or BN, or a new primitive
        raise UserError(f"the TFLite writer cannot lower op {op.name!r} ({kind})")
    env[op.name] = y
    return i + 1


def _fused_tail(ops: list[Op], i: int) -> tuple[int, Op | None]:
    """(index after the fused group, its activation op): a conv's own BN folds into it, and an activation
    right after (conv or BN) fuses or follows it."""
    end = i + 1
    if ops[i].kind != "bn" and end < len(ops) and ops[end].kind == "bn" and ops[end].inputs == (ops[i].name,):
        end += 1
    if end < len(ops) and ops[end].kind == "act" and ops[end].inputs == (ops[end - 1].name,):
        return end + 1, ops[end]
    return end, None


def _conv_or_bn(g: _Graph, x: int, op: Op, act_op: Op | None) -> int:
    """CONV_2D / DEPTHWISE_CONV_2D with its BN folded, or a BN after a concat; activation fused or after it."""
    act = act_op.act if act_op is not None else None
    # A hard-sigmoid gate relu6(x + 3) / 6: the +3 folds into the conv bias and ReLU6 fuses; see _gate.
    inner = "relu6" if act == "hsigmoid" else None if act == "sigmoid" else act
    if op.kind == "conv":
        y = _conv(g, x, op.cout, op.kernel, op.stride, inner, op.name, 3.0 if act == "hsigmoid" else 0.0)
    elif op.kind == "dwconv":
        y = _depthwise(g, x, op.kernel, op.stride, inner, op.name)
    else:  # a BN the converter cannot fold (after a concat), named after its group (`b2_0_dw`)
        y = _batchnorm_mul(g, x, inner, op.name.removesuffix("_bn"))
    if act in _GATES:
        return _gate(g, y, act_op)
    return y


def _gate(g: _Graph, x: int, act_op: Op) -> int:
    """The SE gate after its conv: LOGISTIC, or the hard sigmoid's remaining MUL by 1/6."""
    if act_op.act == "sigmoid":
        return g.op(_OP.LOGISTIC, [x], [g.shape_of(x)], act_op.name)[0]
    sixth = g.const(np.asarray(1.0 / 6.0, np.float32), f"{act_op.name}/sixth")
    return _mul(g, x, sixth, None, act_op.name)


def _input_shape(op: Op) -> tuple[int, ...]:
    """The first op's input: [1, C] for the classifier, else NHWC (the pooled [1, 1, 1, C] for `final`)."""
    if op.kind in ("dense", "dropout"):
        return (1, op.cin)
    return (1, op.size, op.size, op.cin)


# -- public API -----------------------------------------------------------------------------------
def write_layers(layers: list[Layer], path: str | Path | None = None, *, seed: int = 0,
                 name: str = "layers") -> bytes | Path:
    """A timing model of consecutive layers (one op, one block, or a whole net).

    Its input is the first layer's input ([1, H, W, C], or [1, 1, 1, C] / [1, C] for `final` /
    `classifier`). A `pool` keeps dims only when a `final` conv follows it, as in the builder.
    Returns the flatbuffer bytes, or `path` after writing them there.
    """
    if not layers:
        raise UserError("write_layers needs at least one layer")
    ops = recipe(layers)
    g = _Graph(np.random.default_rng(seed))
    env = {INPUT: g.activation(_input_shape(ops[0][0]), INPUT)}
    for layer_ops in ops:
        _emit_layer(g, env, layer_ops)
    content = _serialize(g, env[INPUT], env[ops[-1][-1].name], name)
    if path is None:
        return bytes(content)
    path = Path(path)
    path.write_bytes(content)  # straight from the builder's memory: no copy of the weights
    return path


def write_tflite(spec: ModelSpec, path: str | Path | None = None, *, seed: int = 0) -> bytes | Path:
    """The timing model of a whole spec: the converter's op sequence for `build_keras(spec)`."""
    return write_layers(spec.layers(), path, seed=seed, name=spec.name)


# -- serialization --------------------------------------------------------------------------------
def _serialize(g: _Graph, input_tensor: int, output_tensor: int, name: str) -> memoryview:
    subgraph = tfl.SubGraphT()
    subgraph.tensors = g.tensors
    subgraph.inputs = [input_tensor]
    subgraph.outputs = [output_tensor]
    subgraph.operators = g.operators
    subgraph.name = "main"
    model = tfl.ModelT()
    model.version = SCHEMA_VERSION
    model.description = f"mnas fast writer: {name}"
    model.subgraphs = [subgraph]
    model.operatorCodes = [_opcode(code) for code in g.opcodes]  # dicts keep insertion order
    model.signatureDefs = [_signature(input_tensor, output_tensor)]
    payload = sum(0 if b is None else b.nbytes for b in g.buffers)
    # Big enough never to grow (growing copies everything); a multiple of 16 keeps offsets aligned.
    size = (payload + 64 * len(g.buffers) + 512 * len(g.tensors) + 512 * len(g.operators) + 4096) // 16 * 16
    builder = flatbuffers.Builder(size)
    # Buffers first (a flatbuffer is built back to front): the bulk of the bytes, written in place.
    buffer_offsets = [_pack_buffer(builder, data, g.rng) for data in g.buffers]
    root = _pack_model(builder, model, buffer_offsets)
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return memoryview(builder.Bytes)[builder.Head():]


def _signature(input_tensor: int, output_tensor: int):
    """`serving_default` with the names `mnas.export` gives (image -> output_0), for signature runners."""
    signature = tfl.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.inputs, signature.outputs = [tfl.TensorMapT()], [tfl.TensorMapT()]
    signature.inputs[0].name, signature.inputs[0].tensorIndex = "image", input_tensor
    signature.outputs[0].name, signature.outputs[0].tensorIndex = "output_0", output_tensor
    return signature


def _opcode(code: int):
    opcode = tfl.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, _OP.PLACEHOLDER_FOR_GREATER_OP_CODES)
    opcode.version = 1  # float ops of these kinds are all version 1 in the converter's output
    return opcode


def _pack_buffer(builder: flatbuffers.Builder, data: np.ndarray | _RandomWeights | None,
                 rng: np.random.Generator) -> int:
    if data is None:
        tfl.BufferStart(builder)
        return tfl.BufferEnd(builder)
    builder.StartVector(1, data.nbytes, 16)  # the schema's force_align: 16 for buffer data
    builder.head -= data.nbytes
    if isinstance(data, _RandomWeights):
        values = np.frombuffer(builder.Bytes, np.float32, data.count, builder.head)
        rng.random(out=values, dtype=np.float32)
        values *= np.float32(2.0 * data.bound)
        values -= np.float32(data.bound)
        del values  # release the view of the builder's bytearray
    else:
        np.frombuffer(builder.Bytes, np.uint8, data.nbytes, builder.head)[:] = data
    vector = builder.EndVector()
    tfl.BufferStart(builder)
    tfl.BufferAddData(builder, vector)
    return tfl.BufferEnd(builder)


def _pack_model(builder: flatbuffers.Builder, model, buffer_offsets: list[int]) -> int:
    """ModelT.Pack, but with buffers already packed (the generated Pack copies them element-wise)."""
    opcodes = [c.Pack(builder) for c in model.operatorCodes]
    tfl.ModelStartOperatorCodesVector(builder, len(opcodes))
    for offset in reversed(opcodes):
        builder.PrependUOffsetTRelative(offset)
    opcodes_vector = builder.EndVector()
    subgraphs = [s.Pack(builder) for s in model.subgraphs]
    tfl.ModelStartSubgraphsVector(builder, len(subgraphs))
    for offset in reversed(subgraphs):
        builder.PrependUOffsetTRelative(offset)
    subgraphs_vector = builder.EndVector()
    signatures = [sd.Pack(builder) for sd in model.signatureDefs]
    tfl.ModelStartSignatureDefsVector(builder, len(signatures))
    for offset in reversed(signatures):
        builder.PrependUOffsetTRelative(offset)
    signatures_vector = builder.EndVector()
    description = builder.CreateString(model.description)
    tfl.ModelStartBuffersVector(builder, len(buffer_offsets))
    for offset in reversed(buffer_offsets):
        builder.PrependUOffsetTRelative(offset)
    buffers_vector = builder.EndVector()
    tfl.ModelStart(builder)
    tfl.ModelAddVersion(builder, model.version)
    tfl.ModelAddOperatorCodes(builder, opcodes_vector)
    tfl.ModelAddSubgraphs(builder, subgraphs_vector)
    tfl.ModelAddDescription(builder, description)
    tfl.ModelAddBuffers(builder, buffers_vector)
    tfl.ModelAddSignatureDefs(builder, signatures_vector)
    return tfl.ModelEnd(builder)
