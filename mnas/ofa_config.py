"""OFA's MobileNetV3 `net.config` (JSON) -> ModelSpec, so OFA's published specialised nets and tables apply.

OFA describes a network layer by layer: `first_conv`, `blocks` (MobileInvertedResidualBlock with a
`mobile_inverted_conv` and an optional identity `shortcut`), `final_expand_layer` (1x1 conv + BN + h-swish
before pooling), `feature_mix_layer` (1x1 conv after pooling, no BN) and `classifier`. Each maps one to one
onto a `Layer` of our spec: stem, ir, head, pool, final, classifier. Block strings carry the explicit middle
width (`x<mid>`), so the spec's op keys equal the keys OFA's latency-table code builds for the same net.
The SE squeeze width agrees with OFA's: for integer widths make_divisible(mid * 0.25) == make_divisible(mid // 4).
Pure Python: no TF.
"""

from __future__ import annotations

import json
from pathlib import Path

from mnas.errors import UserError
from mnas.spec import ModelSpec

_ACT = {"relu": "re", "h_swish": "hs", "relu6": "r6"}
_SPEC_ACT = {"relu": "relu", "h_swish": "hswish", "relu6": "relu6"}


def is_ofa_config(cfg: object) -> bool:
    """True for an OFA MobileNetV3 net.config (what `spec_from_ofa_config` accepts)."""
    return (isinstance(cfg, dict) and isinstance(cfg.get("blocks"), list) and "first_conv" in cfg
            and "final_expand_layer" in cfg and "classifier" in cfg)


def _need(cfg: dict, key: str, where: str) -> object:
    if not isinstance(cfg, dict) or key not in cfg:
        raise UserError(f"OFA net.config: {where} lacks {key!r}")
    return cfg[key]


def _act(name: object, where: str) -> str:
    if name not in _ACT:
        raise UserError(f"OFA net.config: {where} has activation {name!r}; supported: {sorted(_ACT)}")
    return str(name)


def _block_string(block: dict, index: int) -> str:
    where = f"blocks[{index}]"
    conv = _need(block, "mobile_inverted_conv", where)
    if conv is None:
        raise UserError(f"OFA net.config: {where} is an empty (zero) layer; not supported")
    if conv.get("name") != "MBInvertedConvLayer":
        raise UserError(f"OFA net.config: {where} is a {conv.get('name')!r}, expected MBInvertedConvLayer")
    cin, cout = int(_need(conv, "in_channels", where)), int(_need(conv, "out_channels", where))
    k, s = int(_need(conv, "kernel_size", where)), int(_need(conv, "stride", where))
    ratio = float(_need(conv, "expand_ratio", where))
    mid = conv.get("mid_channels")
    mid = int(mid) if mid is not None else int(round(cin * ratio))  # OFA: round(in * e) when not given
    act = _ACT[_act(conv.get("act_func", "relu"), where)]
    e_tok = f"e{int(ratio)}" if float(ratio).is_integer() else f"e{ratio}"
    parts = [f"r1_k{k}_s{s}{s}_{e_tok}"]
    if mid != cin:
        parts.append(f"x{mid}")
    parts.append(f"i{cin}_o{cout}")
    if conv.get("use_se"):
        parts.append("se0.25")
    has_shortcut = block.get("shortcut") is not None
    if has_shortcut and not (s == 1 and cin == cout):
        raise UserError(f"OFA net.config: {where} has an identity shortcut but stride {s}, {cin} -> {cout}")
    if not has_shortcut and s == 1 and cin == cout:
        parts.append("noskip")
    parts.append(act)
    return "_".join(parts)


def spec_from_ofa_config(cfg: dict, resolution: int = 224, name: str | None = None) -> ModelSpec:
    """An OFA MobileNetV3 net.config as a ModelSpec at `resolution` (OFA keeps it in run.config)."""
    if not is_ofa_config(cfg):
        raise UserError("not an OFA MobileNetV3 net.config (needs first_conv, blocks, final_expand_layer, "
                        "classifier)")
    first = cfg["first_conv"]
    if int(first.get("kernel_size", 3)) != 3 or int(first.get("stride", 2)) != 2:
        raise UserError("OFA net.config: first_conv must be 3x3 stride 2")
    blocks = [_block_string(b, i) for i, b in enumerate(cfg["blocks"])]
    final_expand = cfg["final_expand_layer"]
    mix = cfg.get("feature_mix_layer")
    classifier = cfg["classifier"]
    head_act = _act(final_expand.get("act_func", "h_swish"), "final_expand_layer")
    if mix is not None and _act(mix.get("act_func", "h_swish"), "feature_mix_layer") != head_act:
        raise UserError("OFA net.config: final_expand_layer and feature_mix_layer activations differ")
    return ModelSpec.from_strings(
        name or str(cfg.get("name", "ofa")),
        blocks,
        stem_filters=int(_need(first, "out_channels", "first_conv")),
        stem_activation=_SPEC_ACT[_act(first.get("act_func", "h_swish"), "first_conv")],
        head_filters=int(_need(final_expand, "out_channels", "final_expand_layer")),
        head_activation=_SPEC_ACT[head_act],
        final_filters=int(mix["out_channels"]) if mix is not None else 0,
        num_classes=int(_need(classifier, "out_features", "classifier")),
        dropout=float(classifier.get("dropout_rate", 0.0) or 0.0),
        activation="relu",
        se_style="mobilenetv3",
        resolution=resolution,
    )


def load_ofa_net_config(path: str | Path, resolution: int | None = None) -> ModelSpec:
    """Read a net.config file; the resolution defaults to `image_size` of a run.config beside it, else 224."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read OFA net.config {path}: {err}") from None
    if resolution is None:
        resolution = 224
        run_config = path.with_name("run.config")
        if run_config.is_file():
            try:
                size = json.loads(run_config.read_text()).get("image_size", 224)
                resolution = int(size[0] if isinstance(size, list) else size)
            except (OSError, ValueError, TypeError):
                pass
    return spec_from_ofa_config(cfg, resolution=resolution, name=path.parent.name or None)
