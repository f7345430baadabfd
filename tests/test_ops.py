"""The op recipe (`mnas.ops`): a well-formed graph for every zoo model and search-space layer, whose op costs
equal the closed-form per-layer formulas the cost counter used before it walked the recipe."""

from __future__ import annotations

import pytest

from mnas import costs, ops, spaces, zoo
from mnas.errors import UserError
from mnas.spec import Layer, ModelSpec, split_channels

# Every block feature outside the zoo: ds / cn with SE, pooling skips with and without projection or pooling,
# grouped 1x1s, mixed kernels (also on cn: the largest is used), explicit expansion widths, every activation.
MIX = ["ds_r1_k3_s11_e1_i16_o16_se0.25", "cn_r1_k3_s22_e1_i16_o24_se0.5_hs",
       "r2_k3.5_a1.1_p1.1_s22_e3_i24_o32_poolskip_sw", "r1_k5_s11_e6_x200_i32_o40_se0.25_r6_poolskip",
       "cn_r1_k3.5_s11_e1_i40_o40_se0.25_poolskip", "ds_r1_k3.5.7_s22_e1_i40_o56_se0.25_poolskip_hs",
       "r1_k3_a1.1.1_p1.1.1_s11_e4_i56_o56_se0.5", "ds_r2_k3_a1.1_p1.1_s11_e1_i56_o56_noskip",
       "r1_k3_a1.1_p1.1_s11_e1_i56_o56_keepexpand_shuffle"]  # FBNet's k3_e1_g2: expand kept at E = 1, shuffle


def _specs() -> dict[str, ModelSpec]:
    out = {name: zoo.get(name) for name in zoo.names()}
    for style in ("efficientnet", "mobilenetv3"):
        out[f"mix-{style}"] = ModelSpec.from_strings("mix", MIX, stem_filters=16, head_filters=64, final_filters=48,
                                                     num_classes=7, resolution=32, se_style=style, dropout=0.3,
                                                     head_activation="hswish", activation="swish")
    return out


SPECS = _specs()


def _closed_form(layer: Layer) -> tuple[int, int, int]:
    """(params, MACs, buffers) of a layer by the formulas mnas.costs used before the recipe (an independent oracle)."""
    def conv(cin, cout, k, hw, bias=False, bn=True):
        w = k * k * cin * cout
        return (w + (cout if bias else 0) + (2 * cout if bn else 0), w * hw * hw, 2 * cout if bn else 0)

    def total(*parts):
        return tuple(sum(p[i] for p in parts) for i in range(3))

    def grouped(cin, cout, groups, hw):
        return total(*(conv(a, b, 1, hw, bn=False) for a, b in zip(split_channels(cin, groups),
                                                                    split_channels(cout, groups))),
                     (2 * cout, 0, 2 * cout))

    def se(c, s):
        return (c * s + s + s * c + c, 2 * c * s, 0)

    out, kind = layer.out_size, layer.kind
    if kind in ("stem", "head"):
        return conv(layer.in_channels, layer.out_channels, layer.kernel_size, out)
    if kind == "final":
        return conv(layer.in_channels, layer.out_channels, 1, 1, bias=True, bn=False)
    if kind == "classifier":
        return (layer.in_channels * layer.out_channels + layer.out_channels, layer.in_channels * layer.out_channels, 0)
    if kind == "pool":
        return (0, 0, 0)
    parts = []
    if kind == "cn":
        mid = layer.out_channels
        parts.append(conv(layer.in_channels, mid, layer.kernel_size, out))
    else:
        mid = layer.expanded if kind == "ir" else layer.in_channels
        if layer.has_expand:
            parts.append(grouped(layer.in_channels, mid, layer.expand_groups, layer.in_size))
        parts += [(k * k * c, k * k * c * out * out, 0) for c, k in zip(split_channels(mid, len(layer.kernel_sizes)),
                                                                         layer.kernel_sizes)]
        parts.append((2 * mid, 0, 2 * mid))
        parts.append(grouped(mid, layer.out_channels, layer.project_groups, out))
    if layer.se_channels:
        parts.append(se(mid, layer.se_channels))
    if layer.skip == "pool" and layer.in_channels != layer.out_channels:
        parts.append(conv(layer.in_channels, layer.out_channels, 1, out))
    return total(*parts)


def _op_costs(layer: Layer) -> tuple[int, int, int]:
    per_op = [costs.op_cost(op) for op in ops.layer_ops(layer)]
    return tuple(sum(c[i] for c in per_op) for i in range(3))


@pytest.mark.parametrize("name", list(SPECS))
def test_op_costs_equal_the_closed_form_per_layer(name: str) -> None:
    for layer in SPECS[name].layers():
        assert _op_costs(layer) == _closed_form(layer), f"{name}: {layer}"
        cost = costs.layer_cost(layer)
        assert (cost.params, cost.macs, cost.buffers) == _closed_form(layer)


@pytest.mark.parametrize("space", spaces.names())
def test_every_distinct_space_layer_costs_as_the_closed_form(space: str) -> None:
    layers = spaces.get(space).distinct_layers(224)
    assert len(layers) > 20
    bad = [layer for layer in layers if _op_costs(layer) != _closed_form(layer)]
    assert not bad, bad[:3]


def _shapes(op: ops.Op) -> dict[str, tuple[int, int]]:
    """(size, channels) of each tensor `op` produces; size 0 = flat features."""
    if op.kind == "split":
        return {f"{op.name}:{i}": (op.size, c) for i, c in enumerate(op.sizes)}
    size = {"conv": op.out_size, "dwconv": op.out_size, "avgpool": op.out_size, "gap": 1 if op.keepdims else 0,
            "flatten": 0, "dropout": 0, "dense": 0}.get(op.kind, op.size)
    return {op.name: (size, op.cout)}


def _layer_end(spec: ModelSpec, layer: Layer) -> tuple[int, int]:
    """A layer's output: its map, the flat features for final (flattened) and classifier, the pooled map."""
    if layer.kind in ("final", "classifier"):
        return (0, layer.out_channels)
    if layer.kind == "pool":  # kept 1x1 only for MobileNetV3's final conv
        return (1 if spec.final_filters else 0, layer.out_channels)
    return (layer.out_size, layer.out_channels)


@pytest.mark.parametrize("name", list(SPECS))
def test_recipe_is_a_well_formed_graph(name: str) -> None:
    """Unique names; every input produced earlier with the size and width the op expects; each layer ends at its
    Layer's output; primitives and activations from the declared sets."""
    spec = SPECS[name]
    tensors = {ops.INPUT: (spec.resolution, spec.in_channels)}
    per_layer = ops.model_ops(spec)
    assert len(per_layer) == len(spec.layers())
    for layer, layer_ops in zip(spec.layers(), per_layer):
        for op in layer_ops:
            assert op.kind in ops.PRIMITIVES and op.name not in tensors
            assert op.kind != "act" or op.act in ops.ACTIVATIONS
            shapes = [tensors[i] for i in op.inputs]
            if op.kind == "concat":
                assert {s for s, _ in shapes} == {op.size} and sum(c for _, c in shapes) == op.cout
            elif op.kind == "mul":  # the SE gate broadcasts a 1x1 map
                assert shapes == [(op.size, op.cin), (1, op.cin)]
            else:
                assert set(shapes) == {(op.size, op.cin)}, f"{name}: {op} reads {shapes}"
            tensors.update(_shapes(op))
        end = tensors[layer_ops[-1].name]
        assert end == _layer_end(spec, layer), f"{name}: {layer.kind} ends at {end}"
    kinds = {op.kind for layer_ops in ops.model_ops(SPECS["mix-mobilenetv3"]) for op in layer_ops}
    assert kinds == set(ops.PRIMITIVES)  # the mix specs exercise every primitive


def test_names_follow_the_builder_convention() -> None:
    names = [op.name for layer_ops in ops.model_ops(SPECS["mix-efficientnet"]) for op in layer_ops]
    assert names[:3] == ["stem_conv", "stem_bn", "stem_act"] and names[-1] == "classifier"
    assert {"b2_0_expand_split", "b2_0_expand_g1", "b2_0_dw_k5", "b2_0_skip_pool", "b2_0_skip_conv", "b2_0_skip_bn",
            "b3_0_se_gate", "b3_0_se_scale", "b5_0_dw_k7", "final_conv", "final_flatten", "dropout"} <= set(names)


def test_unknown_layer_kind_is_one_user_error() -> None:
    with pytest.raises(UserError, match="no op recipe for layer kind 'lstm'"):
        ops.layer_ops(Layer("lstm", 8, 8, 8))
    with pytest.raises(UserError, match="layer kind 'lstm'"):
        costs.layer_cost(Layer("lstm", 8, 8, 8))
