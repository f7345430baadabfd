"""Block-string grammar: encode(decode(s)) == s over generated canonical strings; malformed strings fail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnas import zoo
from mnas.blocks import BlockArgs, BlockStringError, decode, encode
from mnas.errors import UserError

_RATIOS = ["1", "3", "6", "0.5", "2.5", "4.25"]
_SE = ["0.25", "0.5", "0.125", "1"]


@st.composite
def canonical_block_strings(draw) -> str:
    """Block strings written the way `encode` writes them (token order of the grammar)."""
    parts = []
    block_type = draw(st.sampled_from(["", "ds", "cn"]))
    if block_type:
        parts.append(block_type)
    parts.append(f"r{draw(st.integers(1, 9))}")
    kernels = draw(st.lists(st.sampled_from([1, 3, 5, 7, 9, 11]), min_size=1, max_size=5))
    parts.append("k" + ".".join(map(str, kernels)))
    for letter in "ap":
        groups = draw(st.integers(0, 4))  # 0: token absent
        if groups:
            parts.append(letter + ".".join(["1"] * groups))
    stride = draw(st.sampled_from([1, 2]))
    parts.append(f"s{stride}{stride}")
    parts.append("e" + draw(st.sampled_from(_RATIOS)))
    if draw(st.booleans()):
        parts.append(f"x{draw(st.integers(1, 2048))}")
    parts.append(f"i{draw(st.integers(1, 1024))}")
    parts.append(f"o{draw(st.integers(1, 1024))}")
    if draw(st.booleans()):
        parts.append("se" + draw(st.sampled_from(_SE)))
    skip = draw(st.sampled_from(["", "noskip", "poolskip"]))
    if skip:
        parts.append(skip)
    act = draw(st.sampled_from(["", "re", "r6", "sw", "hs"]))
    if act:
        parts.append(act)
    return "_".join(parts)


@settings(max_examples=300, deadline=None)
@given(canonical_block_strings())
def test_round_trip_generated(block_string: str) -> None:
    args = decode(block_string)
    assert encode(args) == block_string
    assert decode(encode(args)) == args


def test_round_trip_decodes_the_tokens() -> None:
    args = decode("ds_r2_k3.5.7_a1.1_p1.1.1_s22_e6_x184_i40_o80_se0.25_poolskip_hs")
    assert args == BlockArgs(repeats=2, kernel_sizes=(3, 5, 7), stride=2, expand_ratio=6.0, in_filters=40,
                             out_filters=80, block_type="ds", expand_groups=2, project_groups=3,
                             expand_size=184, se_ratio=0.25, skip="pool", activation="hswish")
    assert args.kernel_size == 7


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_block_strings_round_trip(name: str) -> None:
    for block_string in zoo.get(name).block_strings():
        assert encode(decode(block_string)) == block_string


@pytest.mark.parametrize("bad", [
    "",
    "r1_k3_s11_e1_i32",  # no output width
    "k3_s11_e1_i32_o16",  # no repeats
    "r1_k3_s11_e1_i32_o16_zz",  # unknown token
    "r1_k3_k5_s11_e1_i32_o16",  # repeated token
    "r1_k4_s11_e1_i32_o16",  # even kernel
    "r1_k3_s12_e1_i32_o16",  # mixed stride pair
    "r1_k3_s33_e1_i32_o16",  # stride 3
    "r0_k3_s11_e1_i32_o16",  # no repeats
    "r1_k3_s11_e0_i32_o16",  # zero expansion
    "r1_k3_s11_e1_i32_o16_se1.5",  # SE ratio > 1
    "r1_k3_s11_e1_i32_o16_noskip_poolskip",  # conflicting skips
    "r1_k3_s11_e1_i32_o16_re_sw",  # two activations
    "r1_kx_s11_e1_i32_o16",  # not a number
    "r1_k3._s11_e1_i32_o16",  # dangling dot
    "r1.5_k3_s11_e1_i32_o16",  # fractional repeats
    "xx_r1_k3_s11_e1_i32_o16",  # unknown block type
])
def test_malformed_strings_raise(bad: str) -> None:
    with pytest.raises(BlockStringError) as info:
        decode(bad)
    assert isinstance(info.value, UserError)  # the CLI turns it into one line, exit 2
    assert "\n" not in str(info.value)
