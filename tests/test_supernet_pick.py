"""Final-pick rules of a one-shot search (mnas/supernet/pick.py) and the evaluator's snapshot / rollback that
lets the benchmark re-score candidates without changing the search."""

from __future__ import annotations

import numpy as np
import pytest

from mnas import controllers
from mnas.errors import UserError
from mnas.spaces.mnasnet import mnasnet_space
from mnas.supernet.pick import (argmax_sample, best_by_reward, controller_argmax, parse_pick_rules, rescore_pick,
                                top_k_distinct)

CURVE = [{"sample": "a", "reward": 0.30}, {"sample": "b", "reward": 0.50}, {"sample": "a", "reward": 0.55},
         {"sample": "c", "reward": 0.50}, {"sample": "d", "reward": 0.20}, {"sample": "e", "reward": 0.90}]


def test_parse_pick_rules_keeps_order_and_refuses_unknown():
    assert parse_pick_rules("rescore, best,rescore") == ["rescore", "best"]
    with pytest.raises(UserError, match="unknown pick rule top: choose from best, argmax, rescore"):
        parse_pick_rules("best,top")
    with pytest.raises(UserError):
        parse_pick_rules(" , ")


def test_best_by_reward_only_sees_the_first_n_children():
    assert best_by_reward(CURVE, 2)["sample"] == "b"
    assert best_by_reward(CURVE, 5) is CURVE[2]  # a re-sampled child counts with that sample's reward
    assert best_by_reward(CURVE, 6)["sample"] == "e"
    with pytest.raises(ValueError):
        best_by_reward(CURVE, 0)


def test_top_k_distinct_dedups_by_best_reward_and_breaks_ties_by_time():
    assert [c["sample"] for c in top_k_distinct(CURVE, 5, 3)] == ["a", "b", "c"]  # b and c tie: b came first
    assert [c["reward"] for c in top_k_distinct(CURVE, 5, 5)] == [0.55, 0.50, 0.50, 0.20]
    assert [c["sample"] for c in top_k_distinct(CURVE, 6, 1)] == ["e"]
    assert top_k_distinct(CURVE, 6, 0) == []


def test_argmax_sample_per_choice():
    probs = [np.array([0.2, 0.8]), np.array([0.5, 0.1, 0.4]), np.array([1 / 3] * 3)]
    assert argmax_sample(probs) == (1, 0, 0)  # a uniform choice falls back to its first option


def test_controller_argmax_follows_the_policy_and_refuses_policy_free_controllers():
    space = mnasnet_space("pick-mnasnet", skeleton=((16, 1, 1), (24, 2, 2)))
    ctrl = controllers.create("reinforce", space, 0)
    assert controller_argmax(ctrl) == (0,) * len(space.choices)  # untrained: uniform
    favourite = tuple(n - 1 for n in space.num_options)
    for _ in range(30):  # reward the last option of every choice, punish the rest
        batch = ctrl.ask(4)
        ctrl.tell(batch, [float(sum(s == f for s, f in zip(x, favourite))) for x in batch])
    assert controller_argmax(ctrl) == favourite
    with pytest.raises(UserError, match="argmax.*'evolution'"):
        controller_argmax(controllers.create("evolution", space, 0))


def test_rescore_pick_takes_the_best_rescored_not_the_best_one_shot():
    candidates = [c["sample"] for c in top_k_distinct(CURVE, 6, 3)]  # e, a, b by one-shot reward
    fresh = {"e": 0.40, "a": 0.70, "b": 0.70}
    best, scores = rescore_pick(candidates, fresh.__getitem__)
    assert best == "a" and scores == [0.40, 0.70, 0.70]  # the tie goes to the higher one-shot candidate
    with pytest.raises(ValueError):
        rescore_pick([], fresh.__getitem__)


@pytest.mark.slow
def test_rollback_undoes_path_training_and_score_takes_another_batch():
    from mnas.data import load_proxy_data
    from mnas.supernet.evaluator import SupernetEvaluator

    space = mnasnet_space("small-mnasnet", skeleton=((16, 1, 2), (24, 1, 2)))
    full = load_proxy_data()
    data = full.subset(train=300, val=100)
    ev = SupernetEvaluator(data, space=space, warmup_steps=0, steps_per_child=1, batch_size=16, val_batch=100,
                           learning_rate=3e-3, seed=0)
    rng = np.random.default_rng(3)
    a, b = space.sample_random(rng), space.sample_random(rng)
    ev.train_path(a, 3)
    snap = ev.snapshot()
    before = (ev.score(b), ev.steps)
    ev.train_path(b, 4)
    assert ev.steps == before[1] + 4
    ev.rollback(snap)
    assert (ev.score(b), ev.steps) == before
    loss_1 = ev.train_path(b, 1)
    ev.rollback(snap)
    assert ev.train_path(b, 1) == pytest.approx(loss_1, rel=1e-6)  # same weights, slots and batch (rng) again
    x, y = full.x_val[100:160], full.y_val[100:160]
    assert 0.0 <= ev.score(b, x, y) <= 1.0
    with pytest.raises(ValueError):
        ev.score(b, x)
