"""Search spaces: samples -> specs, exact sizes, exact distinct layers, cheapest architecture."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from latency import opkeys
from latency.public_luts import default_luts_dir
from mnas import ofa_config, spaces
from mnas.costs import count_macs
from mnas.errors import UnknownNameError, UserError
from mnas.spaces import position_free
from mnas.spaces.layerwise import mobilenetv3_space, ofa_mbv3_space
from mnas.spaces.mnasnet import mixnet_space, mnasnet_space

LUTS = default_luts_dir()  # the repository's data/public_luts (or $MNAS_PUBLIC_LUTS)


def _all_samples(space):
    return itertools.product(*(range(n) for n in space.num_options))


def _layer_tuple(spec):
    return tuple(position_free(layer) for layer in spec.layers())


# Tiny versions of each space, small enough to enumerate every sample.
TINY = {
    "mnasnet": lambda: mnasnet_space("tiny-mnasnet", skeleton=((16, 1, 1), (24, 2, 2)), ops=("dsconv", "mbconv3"),
                                     kernels=(3,), se_ratios=(0.0,)),
    "mixnet": lambda: mixnet_space("tiny-mixnet", skeleton=((16, 1, 1), (24, 2, 2)), ops=("conv", "mbconv6"),
                                   kernels=((3,), (3, 5)), se_ratios=(0.0,), skips=("none", "pool")),
    "mobilenetv3": lambda: mobilenetv3_space("tiny-mbv3", skeleton=((16, 1, 1), (24, 3, 2)),
                                             layer_options=(("kernel", (3, 5)), ("se", (0, 1)))),
    "ofa-mbv3": lambda: ofa_mbv3_space("tiny-ofa", stages=((32, 2, "relu", 0),), depths=(2, 3),
                                       layer_options=(("kernel", (3, 5)), ("expand", (3, 4)))),
}


def test_registry_names_and_unknown():
    assert set(spaces.names()) == {"mnasnet", "mixnet", "mobilenetv3", "ofa-mbv3", "fbnet"}
    assert spaces.get("MnasNet") is spaces.get("mnasnet")
    with pytest.raises(UnknownNameError, match="unknown search space .nope.; known: fbnet, mixnet, mnasnet"):
        spaces.get("nope")


@pytest.mark.parametrize("name", spaces.names())
def test_random_samples_build_valid_specs(name):
    space = spaces.get(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
        sample = space.sample_random(rng)
        assert space.validate(sample) == sample
        assert space.decode_sample(space.encode_sample(sample)) == sample
        spec = space.to_spec(sample, resolution=64, num_classes=10)
        assert spec == space.to_spec(list(sample), resolution=64, num_classes=10)  # pure
        assert spec.name == space.to_spec(sample, resolution=64, num_classes=10).name
        assert spec.extra == {"space": name, "sample": space.encode_sample(sample)}
        layers = spec.layers()
        assert layers[0].kind == "stem" and layers[-1].kind == "classifier" and layers[-1].out_channels == 10
        assert count_macs(spec) > 0
    # The same seed gives the same samples.
    assert [space.sample_random(np.random.default_rng(3)) for _ in range(2)] == \
           [space.sample_random(np.random.default_rng(3)) for _ in range(2)]


@pytest.mark.parametrize("name", spaces.names())
def test_bad_samples_raise_user_errors(name):
    space = spaces.get(name)
    good = space.sample_random(np.random.default_rng(1))
    bad_index = list(good)
    bad_index[2] = space.num_options[2]
    for bad, message in [(good[:-1], "needs"), (bad_index, "out of range"), (list(good[:-1]) + [1.5], "not an integer"),
                         ("0.1.2", "sequence"), (None, "sequence")]:
        with pytest.raises(UserError, match=message):
            space.validate(bad)
    with pytest.raises(UserError, match="malformed"):
        space.decode_sample("1.x.2")


@pytest.mark.parametrize("name", spaces.names())
def test_every_layer_of_random_specs_is_a_distinct_layer(name):
    space = spaces.get(name)
    rng = np.random.default_rng(2)
    for resolution in (224, 160):
        distinct = set(space.distinct_layers(resolution))
        assert len(distinct) == len(space.distinct_layers(resolution))  # no duplicates
        for _ in range(30):
            spec = space.to_spec(space.sample_random(rng), resolution=resolution)
            missing = [layer for layer in _layer_tuple(spec) if layer not in distinct]
            assert not missing, missing[:2]


@pytest.mark.parametrize("name", sorted(TINY))
def test_exact_size_distinct_layers_and_smallest_match_brute_force(name):
    space = TINY[name]()
    seen, layers, macs = set(), set(), {}
    for sample in _all_samples(space):
        spec = space.to_spec(sample)
        seen.add(_layer_tuple(spec))
        layers.update(_layer_tuple(spec))
        macs[sample] = count_macs(spec)
    assert space.num_architectures == len(seen)
    assert space.num_architectures <= math.prod(space.num_options)
    assert set(space.distinct_layers(224)) == layers
    assert count_macs(space.smallest_spec()) == min(macs.values())


def test_collisions_are_removed_from_the_count():
    # An identity skip on a stride-2 first layer is no skip: tiny-mnasnet's samples collide.
    space = TINY["mnasnet"]()
    assert space.num_architectures < math.prod(space.num_options)
    # Rounding 0.75 x 16 gives 16 again: the duplicate width is dropped from the options.
    assert space.choices[4].options == (16, 24)


def test_count_refuses_ambiguous_stage_boundaries():
    # Stage 1 may keep stage 0's width at stride 1: its first layer could pass for a repeat of stage 0.
    space = mixnet_space("ambiguous", skeleton=((16, 2, 1), (24, 2, 1)), ops=("mbconv6",), kernels=((3,),),
                         se_ratios=(0.0,), skips=("none",))
    with pytest.raises(ValueError, match="not be exact"):
        space.num_architectures


def test_layerwise_sizes_follow_the_closed_form():
    # OFA: per stage (3x3)^2 + (3x3)^3 + (3x3)^4 distinct stages, 5 stages (the OFA paper's count).
    assert spaces.get("ofa-mbv3").num_architectures == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5
    # MobileNetV3: 2*3*2*2 options per layer; a stage of n layers keeps 0..n-1 optional ones.
    per_layer = 24
    expected = math.prod(per_layer * sum(per_layer ** m for m in range(n)) for n in (1, 2, 3, 4, 2, 3))
    assert spaces.get("mobilenetv3").num_architectures == expected


@pytest.mark.parametrize("name", spaces.names())
def test_smallest_spec_is_no_larger_than_random_specs(name):
    space = spaces.get(name)
    smallest = count_macs(space.smallest_spec())
    rng = np.random.default_rng(4)
    assert all(smallest <= count_macs(space.to_spec(space.sample_random(rng))) for _ in range(50))


def test_mnasnet_space_choices_follow_the_paper():
    space = spaces.get("mnasnet")
    values = {c.tag: c.options for c in space.choices}
    assert len(space.choices) == 7 * 6
    assert values["b3/op"] == ("conv", "dsconv", "mbconv3", "mbconv6")
    assert values["b3/filters"] == (48, 64, 80) and values["b3/layers"] == (3, 4, 5)
    assert values["b0/layers"] == (1, 2)
    spec = space.to_spec([3, 1, 1, 2, 1, 1] * 7)
    # b0's widths are (16, 24) (0.75 x 16 rounds to 16), b1's (24, 32): index 1 is 1.25x for both.
    assert spec.block_strings()[1] == "r2_k5_s22_e6_i24_o32_se0.25_poolskip"
    assert spec.stem_filters == 32 and spec.head_channels == 1280


def test_mixnet_kernel_groups():
    space = spaces.get("mixnet")
    sample = [2, 3, 0, 1, 1, 1] * 7  # mbconv3 with kernels 3.5.7.9
    assert space.to_spec(sample).blocks[2].kernel_sizes == (3, 5, 7, 9)
    sample[:2] = [0, 2]  # a regular conv takes the group's largest kernel
    assert space.to_spec(sample).blocks[0].kernel_sizes == (7,)


def test_mobilenetv3_skipped_layers_vanish():
    space = spaces.get("mobilenetv3")
    values = space.values(tuple([0] * len(space.choices)))
    assert all(v == "keep" for tag, v in values.items() if tag.endswith("/skip"))
    skip_all = [1 if c.tag.endswith("/skip") else 0 for c in space.choices]
    assert len(space.to_spec(skip_all).blocks) == 6  # one layer per stage
    assert len(space.to_spec([0] * len(space.choices)).blocks) == 15


def _table_keys(resolution):
    path = LUTS / "ofa_note10" / f"{resolution}_lookup_table.yaml"
    assert path.is_file(), f"no OFA table at {path} (the repository ships them in data/public_luts)"
    return set(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_ofa_space_layers_are_exactly_the_note10_table(resolution):
    keys = {opkeys.op_key(layer) for layer in spaces.get("ofa-mbv3").distinct_layers(resolution)}
    assert keys == _table_keys(resolution)


def test_ofa_specialised_w12_nets_lie_in_the_space():
    space = spaces.get("ofa-mbv3")
    checked = 0
    for path in sorted((LUTS / "ofa_note10_specialized_nets").glob("*/net.config")):
        spec = ofa_config.load_ofa_net_config(path)
        if spec.stem_filters != 24:
            continue  # the w1.0 nets are outside the w1.2 space
        distinct = set(space.distinct_layers(spec.resolution))
        assert all(layer in distinct for layer in _layer_tuple(spec)), path.parent.name
        checked += 1
    assert checked >= 4


def test_spaces_controllers_and_reward_do_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, mnas.spaces, mnas.controllers, mnas.reward; "
            "print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
