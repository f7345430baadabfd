"""Read a .tflite flatbuffer's op sequence: what the converter (or the fast writer) actually emitted.

Used to check that `latency.tflite_writer` writes the converter's ops, and handy to see which ops a
runtime will time. Pure flatbuffers (the schema module of `ai_edge_litert`), no TF, no interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ai_edge_litert import schema_py_generated as tfl

_OP_NAMES = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATIONS = {v: k for k, v in vars(tfl.ActivationFunctionType).items() if not k.startswith("_")}
_PADDINGS = {v: k for k, v in vars(tfl.Padding).items() if not k.startswith("_")}


@dataclass(frozen=True)
class OpRecord:
    """One operator: builtin name, its options (fused activation, padding, strides...), tensor shapes.

    `inputs` holds None for an omitted optional input (e.g. a FULLY_CONNECTED without bias).
    """

    name: str
    options: tuple[tuple[str, object], ...]
    inputs: tuple[tuple[int, ...] | None, ...]
    outputs: tuple[tuple[int, ...], ...]

    def __str__(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options)
        ins = ",".join("-" if s is None else "x".join(map(str, s)) or "()" for s in self.inputs)
        outs = ",".join("x".join(map(str, s)) or "()" for s in self.outputs)
        return f"{self.name}[{opts}] {ins} -> {outs}"


def op_sequence(model: bytes | str | Path) -> list[OpRecord]:
    """The first subgraph's operators, in execution order."""
    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    parsed = tfl.ModelT.InitFromPackedBuf(bytearray(content), 0)
    graph = parsed.subgraphs[0]
    records = []
    for op in graph.operators:
        code = parsed.operatorCodes[op.opcodeIndex]
        name = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        records.append(OpRecord(
            name=name,
            options=_options(op.builtinOptions),
            inputs=tuple(None if i < 0 else _shape(graph.tensors[i]) for i in op.inputs),
            outputs=tuple(_shape(graph.tensors[i]) for i in op.outputs),
        ))
    return records


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))


def _options(options) -> tuple[tuple[str, object], ...]:
    if options is None:
        return ()
    out = []
    for key, value in sorted(vars(options).items()):
        if key == "fusedActivationFunction":
            value = _ACTIVATIONS.get(value, value)
        elif key == "padding":
            value = _PADDINGS.get(value, value)
        elif not isinstance(value, (int, float, bool, str, type(None))):
            value = repr(value)
        out.append((key, value))
    return tuple(out)
