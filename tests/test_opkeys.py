"""Op keys: OFA's grammar for OFA's layers, extra fields for ours, one key per distinct layer. No TF."""

from __future__ import annotations

import json

import pytest
import yaml

from latency.opkeys import ofa_se_channels, op_key, op_keys
from latency.public_luts import default_luts_dir
from mnas import spaces, zoo
from mnas.errors import UserError
from mnas.ofa_config import is_ofa_config, load_ofa_net_config, spec_from_ofa_config
from mnas.spec import ModelSpec, make_divisible

LUTS = default_luts_dir()  # the repository's data/public_luts (or $MNAS_PUBLIC_LUTS)


def _ofa_table(resolution: int) -> dict:
    return yaml.safe_load((LUTS / "ofa_note10" / f"{resolution}_lookup_table.yaml").read_text())


@pytest.mark.parametrize("resolution", [160, 224])
def test_ofa_space_keys_are_exactly_the_published_table_keys(resolution):
    # Every layer the ofa-mbv3 space can contain gets OFA's own key, and nothing else is in OFA's table.
    keys = {op_key(layer) for layer in spaces.get("ofa-mbv3").distinct_layers(resolution)}
    assert keys == set(_ofa_table(resolution))


@pytest.mark.parametrize("name", ["mnasnet", "mixnet", "mobilenetv3"])
def test_distinct_layers_get_distinct_keys(name):
    layers = spaces.get(name).distinct_layers(224)
    assert len({op_key(layer) for layer in layers}) == len(layers)


def test_key_fields_of_our_layer_kinds():
    mixnet = op_keys(zoo.get("mixnet-s"))
    assert mixnet[0] == "Conv-input:224x224x3-output:112x112x16-act:relu"
    assert any("-kernel:3.5.7-" in k and "-act:swish" in k for k in mixnet)
    assert any(k.endswith("-groups:2.2") for k in mixnet)
    v3 = op_keys(zoo.get("mobilenetv3-large"))
    assert v3[0] == "Conv-input:224x224x3-output:112x112x16"  # h-swish stem: OFA's default, no field
    assert v3[-4:] == ["Conv_1-input:7x7x160-output:7x7x960", "AvgPool2D-input:7x7x960-output:1x1x960",
                       "Conv_2-input:1x1x960-output:1x1x1280", "Logits-input:1x1x1280-output:1000"]
    b0 = op_keys(zoo.get("efficientnet-b0"))
    assert all("-sestyle:efficientnet" in k for k in b0 if k.startswith("expanded_conv"))


def test_conv_types_and_pool_skip():
    spec = ModelSpec.from_strings("t", ["ds_r1_k3_s11_e1_i32_o16", "cn_r1_k5_s22_e1_i16_o24_se0.25",
                                        "r2_k3_s22_e6_i24_o40_poolskip_r6"], resolution=64, num_classes=10)
    keys = op_keys(spec)
    assert keys[1] == "sep_conv-input:32x32x32-output:32x32x16-kernel:3-stride:1-idskip:0-se:0-hs:0"
    assert keys[2].startswith("conv-input:32x32x16-output:16x16x24-kernel:5-stride:2-idskip:0-se:1-hs:0")
    # poolskip on the stride-2 layer (a pooled, projected shortcut); on the repeat it is an identity skip.
    assert keys[3] == ("expanded_conv-input:16x16x24-output:8x8x40-expand:144-kernel:3-stride:2-idskip:0-se:0"
                       "-hs:0-act:relu6-poolskip:1")
    assert "-idskip:1-" in keys[4] and "poolskip" not in keys[4]
    assert keys[-1] == "Logits-input:1x1x1280-output:10"


def test_se_width_rule_matches_ofa_for_multiples_of_four():
    # OFA: make_divisible(mid // 4, 8); spec.py (mobilenetv3 style): make_divisible(mid * 0.25, 8).
    assert all(make_divisible(m * 0.25) == ofa_se_channels(m) for m in range(4, 4000, 4))


def test_ofa_net_config_becomes_a_spec_with_ofa_keys():
    folder = next((LUTS / "ofa_note10_specialized_nets").glob("note10_lat-30ms*"))
    cfg = json.loads((folder / "net.config").read_text())
    assert is_ofa_config(cfg) and not is_ofa_config({"blocks": []})
    spec = spec_from_ofa_config(cfg, resolution=224)
    assert len(spec.blocks) == len(cfg["blocks"])
    assert set(op_keys(spec)) <= set(_ofa_table(224))
    # load_ofa_net_config reads the resolution from run.config beside it
    run_config = json.loads((folder / "run.config").read_text())
    assert load_ofa_net_config(folder / "net.config").resolution == run_config["image_size"]


def test_malformed_ofa_config_is_a_user_error():
    with pytest.raises(UserError, match="not an OFA"):
        spec_from_ofa_config({"name": "x"})
    bad = {"first_conv": {"out_channels": 16}, "final_expand_layer": {"out_channels": 960},
           "classifier": {"out_features": 10}, "blocks": [{"mobile_inverted_conv": {"name": "MBInvertedConvLayer"}}]}
    with pytest.raises(UserError, match="blocks\\[0\\] lacks 'in_channels'"):
        spec_from_ofa_config(bad)
