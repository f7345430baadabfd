"""Canonical latency-table keys: one string per concrete `Layer` of a spec.

The grammar is the one of the OFA / ProxylessNAS lookup tables wherever our layer kinds coincide with
theirs, so their published phone tables can be read without translation:

    TYPE-input:HxWxC-output:HxWxC[-FIELD:VALUE...]

    layer kind   TYPE           fields (always written, in this order)
    stem         Conv           -
    ir           expanded_conv  expand:<expanded (middle) channels>-kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1
    ds           sep_conv       kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1
    cn           conv           kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1
    head         Conv_1         -          (the 1x1 expand before pooling)
    pool         AvgPool2D      -          (output 1x1xC)
    final        Conv_2         -          (MobileNetV3's 1x1 feature-mix conv after pooling)
    classifier   Logits         -          (output is the class count: `output:1000`)

Fields that OFA's keys do not have are appended only when a layer departs from OFA's MobileNetV3 layer,
so an OFA layer gets exactly OFA's key:

    kernel:3.5.7       MixNet mixed depthwise kernels (channel groups), in place of a single K
    act:relu6|swish    a block activation other than ReLU (hs:0) or h-swish (hs:1)
    act:relu|relu6|swish   on Conv / Conv_1 / Conv_2, whose OFA default is h-swish
    kernel:K, stride:S on Conv when not OFA's 3x3 stride 2 stem
    poolskip:1         MnasNet's pooling skip (avg-pool + 1x1 projection shortcut); idskip is then 0
    sech:N             SE squeeze width when it is not OFA's make_divisible(expanded // 4, 8)
    sestyle:efficientnet   EfficientNet's SE (swish, sigmoid gate) instead of MobileNetV3's (ReLU, hard sigmoid)
    groups:A.P         MixNet grouped expand (A) / project (P) 1x1 convs, when either is > 1
    shuffle:1          a channel shuffle after the grouped expand conv (FBNet's `_g2` ops)
    expandconv:1       an expand 1x1 conv kept at expansion 1 (FBNet's `e1` ops; `expand` then equals the input)

Spatial sizes use OFA's rule out = (in - 1) // stride + 1 (`Layer.out_size`). Pure Python, no TF.
"""

from __future__ import annotations

from mnas.spec import Layer, ModelSpec, make_divisible

TYPE_OF_KIND = {"stem": "Conv", "ir": "expanded_conv", "ds": "sep_conv", "cn": "conv", "head": "Conv_1",
                "pool": "AvgPool2D", "final": "Conv_2", "classifier": "Logits"}
BLOCK_KINDS = ("ir", "ds", "cn")
# OFA's 1x1 convs and stem are h-swish; a key names the activation only when it differs.
_DEFAULT_CONV_ACT = "hswish"


def _shape(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


def ofa_se_channels(expanded: int) -> int:
    """OFA's SE squeeze width (SEModule: make_divisible(channel // 4, 8))."""
    return make_divisible(expanded // 4, 8)


def op_key(layer: Layer) -> str:
    """The table key of one layer (see the module docstring for the grammar)."""
    kind = layer.kind
    if kind not in TYPE_OF_KIND:
        raise ValueError(f"no op key for layer kind {kind!r}")
    head = TYPE_OF_KIND[kind]
    if kind == "classifier":
        return f"{head}-input:1x1x{layer.in_channels}-output:{layer.out_channels}"
    if kind == "pool":
        return f"{head}-input:{_shape(layer.in_size, layer.in_channels)}-output:1x1x{layer.out_channels}"
    parts = [head, f"input:{_shape(layer.in_size, layer.in_channels)}",
             f"output:{_shape(layer.out_size, layer.out_channels)}"]
    if kind in BLOCK_KINDS:
        parts += _block_fields(layer)
    else:
        if kind == "stem" and (layer.kernel_size != 3 or layer.stride != 2):
            parts += [f"kernel:{layer.kernel_size}", f"stride:{layer.stride}"]
        if layer.activation != _DEFAULT_CONV_ACT:
            parts.append(f"act:{layer.activation}")
    return "-".join(parts)


def _block_fields(layer: Layer) -> list[str]:
    fields = []
    if layer.kind == "ir":
        fields.append(f"expand:{layer.expanded}")
    kernel = ".".join(str(k) for k in layer.kernel_sizes)
    fields += [f"kernel:{kernel}", f"stride:{layer.stride}", f"idskip:{int(layer.skip == 'id')}",
               f"se:{int(layer.se_channels > 0)}", f"hs:{int(layer.activation == 'hswish')}"]
    if layer.activation not in ("relu", "hswish"):
        fields.append(f"act:{layer.activation}")
    if layer.skip == "pool":
        fields.append("poolskip:1")
    if layer.se_channels:
        # The SE acts on the depthwise output: the expanded width for ir, the input width for ds,
        # the output width for cn (see mnas.costs).
        base = {"ir": layer.expanded, "ds": layer.in_channels, "cn": layer.out_channels}[layer.kind]
        if layer.se_channels != ofa_se_channels(base):
            fields.append(f"sech:{layer.se_channels}")
        if layer.se_style != "mobilenetv3":
            fields.append(f"sestyle:{layer.se_style}")
    if layer.expand_groups > 1 or layer.project_groups > 1:
        fields.append(f"groups:{layer.expand_groups}.{layer.project_groups}")
    if layer.shuffle:
        fields.append("shuffle:1")
    if layer.kind == "ir" and layer.keep_expand and layer.expanded == layer.in_channels:
        fields.append("expandconv:1")
    return fields


def op_type(layer: Layer) -> str:
    """The op's type without its sizes (`expanded_conv-kernel:3-ratio:6-se:0-hs:0`, `Conv_1`): what the layers a
    few-shot fit scales together share (`latency.fewshot`). Widths, stride and the residual are left out; the
    expansion is kept as a ratio of the input width."""
    head = TYPE_OF_KIND[layer.kind]
    if layer.kind not in BLOCK_KINDS:
        return head
    sized = ("expand:", "stride:", "idskip:", "sech:")
    fields = [f for f in _block_fields(layer) if not f.startswith(sized)]
    if layer.kind == "ir":
        fields.insert(1, f"ratio:{round(layer.expanded / layer.in_channels, 2):g}")
    return "-".join([head] + fields)


def op_factors(layer: Layer) -> tuple[str, ...]:
    """The op type's parts, each a factor a few-shot fit can scale on its own (`expanded_conv`,
    `expanded_conv/kernel:5`, `expanded_conv/ratio:6`, ...): a few shared factors generalise from a handful of
    measured networks where one scale per whole op type would not."""
    head, *fields = op_type(layer).split("-")
    return (head,) + tuple(f"{head}/{f}" for f in fields)


def op_keys(spec: ModelSpec) -> list[str]:
    """One key per layer of `spec.layers()`, in network order (at the spec's resolution)."""
    return [op_key(layer) for layer in spec.layers()]


def overhead_key() -> str:
    """The key under which a table stores the cost of invoking an (almost) empty model: see predictor."""
    return "overhead"
