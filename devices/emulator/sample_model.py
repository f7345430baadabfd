"""A tiny, valid `.tflite` CNN built directly with the flatbuffer object API (no TensorFlow import).

It gives the emulated phone and its tests a real LiteRT model to push and run in milliseconds:
CONV_2D 3x3/2 (ReLU6) -> DEPTHWISE_CONV_2D 3x3 (ReLU6) -> CONV_2D 1x1 -> MEAN(H,W) -> FULLY_CONNECTED -> SOFTMAX.
Weights are seeded random values: the model is for timing, not for accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_cnn_tflite(resolution: int = 32, channels: int = 8, classes: int = 10, seed: int = 0) -> bytes:
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    rng = np.random.default_rng(seed)
    buffers = [s.BufferT()]
    tensors: list = []

    def tensor(name: str, shape: list[int], data: np.ndarray | None = None, dtype=s.TensorType.FLOAT32) -> int:
        t = s.TensorT()
        t.name, t.shape, t.type = name, shape, dtype
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    codes = [s.BuiltinOperator.CONV_2D, s.BuiltinOperator.DEPTHWISE_CONV_2D, s.BuiltinOperator.MEAN,
             s.BuiltinOperator.FULLY_CONNECTED, s.BuiltinOperator.SOFTMAX]
    op_codes = []
    for code in codes:
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        op_codes.append(oc)
    opcode_index = {code: i for i, code in enumerate(codes)}
    operators = []

    def op(code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None) -> None:
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = opcode_index[code], inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        operators.append(o)

    def conv_options(stride: int, act: int, depth_multiplier: int | None = None):
        opt = s.DepthwiseConv2DOptionsT() if depth_multiplier else s.Conv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW, opt.fusedActivationFunction = s.Padding.SAME, stride, stride, act
        opt.dilationHFactor = opt.dilationWFactor = 1
        if depth_multiplier:
            opt.depthMultiplier = depth_multiplier
        return opt

    r, c, r2 = resolution, channels, (resolution + 1) // 2
    x = tensor("input", [1, r, r, 3])
    stem = tensor("stem/Relu6", [1, r2, r2, c])
    op(s.BuiltinOperator.CONV_2D, [x, tensor("stem/w", [c, 3, 3, 3], weights(c, 3, 3, 3)),
                                   tensor("stem/b", [c], np.zeros(c, np.float32))], [stem],
       s.BuiltinOptions.Conv2DOptions, conv_options(2, s.ActivationFunctionType.RELU6))
    dw = tensor("block1/dw/Relu6", [1, r2, r2, c])
    op(s.BuiltinOperator.DEPTHWISE_CONV_2D, [stem, tensor("block1/dw/w", [1, 3, 3, c], weights(1, 3, 3, c)),
                                             tensor("block1/dw/b", [c], np.zeros(c, np.float32))], [dw],
       s.BuiltinOptions.DepthwiseConv2DOptions, conv_options(1, s.ActivationFunctionType.RELU6, 1))
    pw = tensor("block1/project", [1, r2, r2, 2 * c])
    op(s.BuiltinOperator.CONV_2D, [dw, tensor("block1/pw/w", [2 * c, 1, 1, c], weights(2 * c, 1, 1, c)),
                                   tensor("block1/pw/b", [2 * c], np.zeros(2 * c, np.float32))], [pw],
       s.BuiltinOptions.Conv2DOptions, conv_options(1, s.ActivationFunctionType.NONE))
    pooled = tensor("pool/Mean", [1, 2 * c])
    reducer = s.ReducerOptionsT()
    reducer.keepDims = False
    op(s.BuiltinOperator.MEAN, [pw, tensor("pool/axes", [2], np.array([1, 2], np.int32), s.TensorType.INT32)],
       [pooled], s.BuiltinOptions.ReducerOptions, reducer)
    logits = tensor("classifier/MatMul", [1, classes])
    op(s.BuiltinOperator.FULLY_CONNECTED, [pooled, tensor("classifier/w", [classes, 2 * c], weights(classes, 2 * c)),
                                           tensor("classifier/b", [classes], np.zeros(classes, np.float32))],
       [logits], s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT())
    probs = tensor("Identity", [1, classes])
    softmax = s.SoftmaxOptionsT()
    softmax.beta = 1.0
    op(s.BuiltinOperator.SOFTMAX, [logits], [probs], s.BuiltinOptions.SoftmaxOptions, softmax)

    graph = s.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = tensors, operators, [x], [probs], "main"
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, op_codes, [graph], buffers
    model.description = "mnas tiny sample CNN"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def write_tiny_cnn(path: str | Path, **kwargs) -> Path:
    path = Path(path)
    path.write_bytes(tiny_cnn_tflite(**kwargs))
    return path
