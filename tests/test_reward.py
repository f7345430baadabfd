"""Rewards: MnasNet eq. 2-3 (hard, soft) and TuNAS abs, one or several devices."""

from __future__ import annotations

import numpy as np
import pytest

from mnas.errors import UnknownNameError, UserError
from mnas.reward import Reward


def test_presets_are_the_papers():
    assert (Reward("hard", [80]).alpha, Reward("hard", [80]).beta) == (0.0, -1.0)
    assert (Reward("soft", [80]).alpha, Reward("soft", [80]).beta) == (-0.07, -0.07)
    assert Reward("abs", [80]).beta == -0.10
    assert Reward("soft", [80], alpha=-0.1, beta=-0.2).to_dict() == \
        {"kind": "soft", "targets_ms": [80.0], "alpha": -0.1, "beta": -0.2}


def test_hard_constraint_is_acc_under_target_and_acc_over_ratio_above():
    reward = Reward("hard", [80.0])
    assert reward(0.75, [40.0]) == pytest.approx(0.75)  # (LAT/T)^0 = 1
    assert reward(0.75, [80.0]) == pytest.approx(0.75)
    assert reward(0.75, [160.0]) == pytest.approx(0.75 * (160 / 80) ** -1)


def test_soft_constraint_follows_eq_2():
    reward = Reward("soft", [78.0])
    for lat in (39.0, 78.0, 100.0, 156.0):
        assert reward(0.752, [lat]) == pytest.approx(0.752 * (lat / 78.0) ** -0.07)
    # MnasNet's reading of alpha = beta = -0.07: doubling latency costs a factor 2^-0.07 (about 4.7%).
    assert reward(0.7, [156.0]) / reward(0.7, [78.0]) == pytest.approx(2 ** -0.07)


def test_abs_reward_is_tunas():
    reward = Reward("abs", [84.0])
    assert reward(0.75, [84.0]) == pytest.approx(0.75)
    assert reward(0.75, [126.0]) == pytest.approx(0.75 - 0.10 * 0.5)
    assert reward(0.75, [42.0]) == pytest.approx(0.75 - 0.10 * 0.5)  # symmetric: too fast is penalised too
    assert Reward("abs", [84.0], beta=-0.5)(0.75, [126.0]) == pytest.approx(0.75 - 0.25)


def test_several_devices_multiply_mnasnet_terms_and_sum_abs_penalties():
    lat, targets = [30.0, 120.0], [40.0, 100.0]
    soft = Reward("soft", targets)
    assert soft(0.8, lat) == pytest.approx(0.8 * (30 / 40) ** -0.07 * (120 / 100) ** -0.07)
    hard = Reward("hard", targets)
    assert hard(0.8, lat) == pytest.approx(0.8 * 1.0 * (120 / 100) ** -1)
    mixed = Reward("soft", targets, alpha=0.0, beta=-0.5)  # per-device w picks alpha or beta
    assert mixed(0.8, lat) == pytest.approx(0.8 * (120 / 100) ** -0.5)
    tunas = Reward("abs", targets)
    assert tunas(0.8, lat) == pytest.approx(0.8 - 0.10 * (0.25 + 0.2))


@pytest.mark.parametrize("kind", ["soft", "hard", "abs"])
def test_batch_matches_scalar_calls(kind):
    rng = np.random.default_rng(0)
    reward = Reward(kind, [50.0, 20.0])
    acc = rng.uniform(0.1, 0.9, 64)
    lat = rng.uniform(5.0, 100.0, (64, 2))
    expected = [reward(a, row) for a, row in zip(acc, lat)]
    np.testing.assert_allclose(reward.batch(acc, lat), expected)
    one = Reward(kind, [50.0])
    np.testing.assert_allclose(one.batch(acc, lat[:, 0]), [one(a, [t]) for a, t in zip(acc, lat[:, 0])])


def test_reward_is_monotone_in_accuracy_and_latency():
    acc = np.linspace(0.1, 0.9, 9)
    for kind in ("soft", "hard"):
        reward = Reward(kind, [60.0])
        assert np.all(np.diff(reward.batch(acc, np.full(9, 70.0))) > 0)
        lat = np.linspace(10.0, 200.0, 20)
        values = reward.batch(np.full(20, 0.7), lat)
        assert np.all(np.diff(values) <= 1e-12)  # never rewards being slower


def test_bad_input_is_a_user_error():
    with pytest.raises(UnknownNameError, match="unknown reward 'linear'"):
        Reward("linear", [80.0])
    with pytest.raises(UserError, match="at least one"):
        Reward("soft", [])
    with pytest.raises(UserError, match="positive"):
        Reward("soft", [0.0])
    with pytest.raises(UserError, match="one per device"):
        Reward("soft", [10.0, 20.0])(0.5, [10.0])
    with pytest.raises(UserError, match="positive"):
        Reward("soft", [10.0])(0.5, [-1.0])
