"""Analytic params / MACs of the zoo against the published figures (`mnas.zoo.PUBLISHED`, from the papers).

Params: within 1% of the published figure, or inside the rounding interval of the figure as printed
("2.0" covers [1.95, 2.05)). MACs: within 3% (EfficientNet-B3..B7 within 8%: the paper rounds them).
Exceptions are explicit and asserted, so a change that moves them fails here and the docs get updated
(docs/foundation.md explains each one).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from mnas import costs, zoo
from mnas.spec import ModelSpec

# Printed figures as strings, so their rounding interval is known (zoo.PUBLISHED holds floats).
PUBLISHED_PARAMS_TEXT = {
    "mnasnet-a1": "3.9", "mnasnet-b1": "4.4", "mnasnet-small": "2.0", "mobilenetv2-1.0": "3.4",
    "mobilenetv3-large": "5.4", "mobilenetv3-small": "2.5", "mixnet-s": "4.1", "mixnet-m": "5.0", "mixnet-l": "7.3",
    "efficientnet-b0": "5.3", "efficientnet-b1": "7.8", "efficientnet-b2": "9.2", "efficientnet-b3": "12",
    "efficientnet-b4": "19", "efficientnet-b5": "30", "efficientnet-b6": "43", "efficientnet-b7": "66",
    "efficientnet-lite0": "4.7", "efficientnet-lite1": "5.4", "efficientnet-lite2": "6.1",
    "efficientnet-lite3": "8.2", "efficientnet-lite4": "13.0",
}

# Exact counts of independent implementations (Keras applications; models.md), 1000-class head:
# trainable + BN moving statistics. Keras' EfficientNet also has a 7-scalar input Normalization layer
# (mean 3, variance 3, count 1) that our spec has no counterpart for.
INDEPENDENT_TOTAL = {
    "efficientnet-b0": 5_330_571, "efficientnet-b1": 7_856_239, "efficientnet-b2": 9_177_569,
    "efficientnet-b3": 12_320_535, "efficientnet-b4": 19_466_823, "efficientnet-b5": 30_562_527,
    "efficientnet-b6": 43_265_143, "efficientnet-b7": 66_658_687,
    "mobilenetv2-1.0": 3_538_984, "mobilenetv3-large": 5_507_432, "mobilenetv3-small": 2_554_968,
}
KERAS_NORMALIZATION_SCALARS = 7

# Params outside both the 1% band and the rounding interval, with the largest deviation allowed. Both
# equal the Keras count exactly (see INDEPENDENT_TOTAL); the papers truncate instead of rounding.
# MobileNetV3-Large: 5.483M trainable, printed 5.4M. MobileNetV2: 3.505M trainable; without BN gamma/beta
# 3.471M (TF-slim's "3.47M"), printed 3.4M.
PARAMS_EXCEPTIONS = {"mobilenetv3-large": 0.02, "mobilenetv2-1.0": 0.035}

# MACs below the published figure by 3-8% under our convention (convs + classifier), with the same
# structure as the authors' code and timm's definitions; see docs/foundation.md.
MACS_SHORTFALL = {"mixnet-s", "mixnet-m", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                  "efficientnet-lite3", "efficientnet-lite4"}
LOOSE_MACS = {f"efficientnet-b{i}" for i in range(3, 8)}


def _rounding_interval(text: str) -> tuple[float, float]:
    exponent = Decimal(text).as_tuple().exponent
    half = float(Decimal(5) * Decimal(10) ** (exponent - 1))
    return (float(text) - half) * 1e6, (float(text) + half) * 1e6


def _rel(ours: float, published: float) -> float:
    return ours / published - 1.0


def test_published_tables_agree() -> None:
    assert set(PUBLISHED_PARAMS_TEXT) == set(zoo.PUBLISHED) == set(zoo.names())
    for name, text in PUBLISHED_PARAMS_TEXT.items():
        assert float(text) == zoo.PUBLISHED[name][0]


@pytest.mark.parametrize("name", zoo.names())
def test_params_match_published(name: str) -> None:
    params = costs.count_params(zoo.get(name))
    published = zoo.PUBLISHED[name][0] * 1e6
    low, high = _rounding_interval(PUBLISHED_PARAMS_TEXT[name])
    close = abs(_rel(params, published)) <= 0.01 or low <= params < high
    if name in PARAMS_EXCEPTIONS:
        assert not close, f"{name} now matches its published params: drop the exception and update the docs"
        assert abs(_rel(params, published)) < PARAMS_EXCEPTIONS[name]
    else:
        assert close, f"{name}: {params:,} params vs published {PUBLISHED_PARAMS_TEXT[name]}M"


@pytest.mark.parametrize("name", zoo.names())
def test_macs_match_published(name: str) -> None:
    macs = costs.count_macs(zoo.get(name))
    rel = _rel(macs, zoo.PUBLISHED[name][1] * 1e6)
    if name in MACS_SHORTFALL:
        assert -0.08 < rel < -0.03, f"{name}: MACs {rel:+.1%} vs published; expected a documented 3-8% shortfall"
    else:
        assert abs(rel) <= (0.08 if name in LOOSE_MACS else 0.03), f"{name}: MACs {rel:+.1%} vs published"


@pytest.mark.parametrize("name", sorted(INDEPENDENT_TOTAL))
def test_totals_match_independent_implementations(name: str) -> None:
    cost = costs.model_cost(zoo.get(name))
    missing = KERAS_NORMALIZATION_SCALARS if name.startswith("efficientnet") else 0
    assert cost.total_params == INDEPENDENT_TOTAL[name] - missing


def test_mobilenetv2_paper_params_are_truncated_bn_free_weights() -> None:
    # The paper's 3.4M is 3.47M (conv + classifier weights, no BN gamma/beta) cut to one decimal.
    cost = costs.model_cost(zoo.get("mobilenetv2-1.0"))
    assert (cost.params, cost.buffers) == (3_504_872, 34_112)  # Keras: trainable, non-trainable
    bn_free = cost.params - cost.buffers  # gamma/beta count equals moving mean/variance count
    assert bn_free == 3_470_760 and int(bn_free / 1e5) / 10 == zoo.PUBLISHED["mobilenetv2-1.0"][0]


def test_costs_scale_with_resolution_and_classes() -> None:
    spec = zoo.get("mnasnet-a1")
    base = costs.model_cost(spec)
    half = costs.model_cost(spec.replace(resolution=112))
    assert half.params == base.params  # resolution changes compute, never weights
    assert 0.2 < half.macs / base.macs < 0.3  # ~quadratic
    fewer = costs.model_cost(spec.replace(num_classes=10))
    assert base.params - fewer.params == 1280 * 990 + 990


def test_counting_conventions_on_a_tiny_spec() -> None:
    # One e6 MBConv with SE and a pooling skip, counted by hand.
    spec = ModelSpec.from_strings("tiny", ["r1_k3_s22_e6_i8_o16_se0.25_poolskip"], stem_filters=8,
                                  head_filters=32, num_classes=10, resolution=32)
    layers = {layer.kind: layer for layer in spec.layers()}
    block = costs.layer_cost(layers["ir"])
    mid, se, hw = 48, 2, 8  # expand 8*6; se = int(8 * 0.25); 32 -> stem 16 -> block 8
    expected_params = (8 * mid + 2 * mid) + (9 * mid + 2 * mid) + (mid * se + se + se * mid + mid) \
        + (mid * 16 + 2 * 16) + (8 * 16 + 2 * 16)
    expected_macs = 8 * mid * 16 * 16 + 9 * mid * hw * hw + 2 * mid * se + mid * 16 * hw * hw + 8 * 16 * hw * hw
    assert block.params == expected_params
    assert block.macs == expected_macs


def test_costs_are_fast() -> None:
    specs = [zoo.get(name) for name in zoo.names()]
    start = time.perf_counter()
    for spec in specs:
        costs.model_cost(spec)
    assert time.perf_counter() - start < 1.0  # analytic: no TF, well under a second for the whole zoo
