"""Controllers: API, seeding, exact resume, gradient checks (LSTM/PPO, REINFORCE), learning on a toy reward."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas import controllers, spaces
from mnas.controllers.ppo import LSTMPolicy, ppo_coefficients
from mnas.controllers.reinforce import Reinforce
from mnas.errors import UnknownNameError, UserError
from mnas.spaces.layerwise import ofa_mbv3_space

NAMES = ["ppo", "reinforce", "evolution", "random"]
SMALL = {"ppo": {"batch_size": 5}, "evolution": {"population": 8, "sample_size": 3}}


def _toy_reward(sample) -> float:
    """Rewards picking the last option of each choice: a smooth target every learner should find."""
    return float(np.mean(np.asarray(sample) == np.asarray(TOY.num_options) - 1))


TOY = ofa_mbv3_space("toy", stages=((32, 2, "relu", 0), (48, 2, "relu", 1)), depths=(2, 3, 4))


def _run(controller, rounds: int, per_round: int = 3) -> list:
    asked = []
    for _ in range(rounds):
        samples = controller.ask(per_round)
        controller.tell(samples, [_toy_reward(s) for s in samples])
        asked += samples
    return asked


def test_registry():
    assert controllers.names() == NAMES
    with pytest.raises(UnknownNameError, match="unknown controller 'bayes'"):
        controllers.create("bayes", TOY, 0)
    with pytest.raises(UserError, match="has no option 'lr'"):
        controllers.create("random", TOY, 0, lr=0.1)
    with pytest.raises(UserError, match="population"):
        controllers.create("evolution", TOY, 0, population=1)
    assert controllers.options("ppo")["clip"] == 0.2


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_valid_and_seeded(name):
    a = controllers.create(name, TOY, 7, **SMALL.get(name, {}))
    b = controllers.create(name, TOY, 7, **SMALL.get(name, {}))
    c = controllers.create(name, TOY, 8, **SMALL.get(name, {}))
    run_a, run_b, run_c = _run(a, 6), _run(b, 6), _run(c, 6)
    assert all(TOY.validate(s) == s for s in run_a)
    assert run_a == run_b
    assert run_a != run_c
    with pytest.raises(ValueError, match="finite"):
        a.tell(run_a[:1], [float("nan")])
    with pytest.raises(UserError):
        a.tell([(0,)], [1.0])


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_json_state_is_exact(name):
    options = SMALL.get(name, {})
    first = controllers.create(name, TOY, 3, **options)
    _run(first, 4)
    first.tell(first.ask(2), [0.1, 0.2])  # leave PPO's buffer part full
    state = json.loads(json.dumps(first.state_dict()))
    resumed = controllers.create(name, TOY, 3, **options)
    resumed.load_state_dict(state)
    assert _run(resumed, 5) == _run(first, 5)
    assert resumed.num_told == first.num_told
    other = controllers.create(name, spaces.get("ofa-mbv3"), 3, **options)
    with pytest.raises(UserError, match="cannot resume"):
        other.load_state_dict(state)


def test_resume_refuses_other_settings():
    state = controllers.create("ppo", TOY, 0, lr=0.01).state_dict()
    with pytest.raises(UserError, match="cannot resume: saved controller state has config"):
        controllers.create("ppo", TOY, 0, lr=0.02).load_state_dict(state)


def _numeric_grad(f, params: dict, key: str, index: tuple, h: float = 1e-6) -> float:
    old = params[key][index]
    params[key][index] = old + h
    up = f()
    params[key][index] = old - h
    down = f()
    params[key][index] = old
    return (up - down) / (2 * h)


def _check_all_entries(f, params: dict, grads: dict, rng, per_param: int = 12) -> None:
    for key, value in params.items():
        flat = [np.unravel_index(i, value.shape) for i in rng.choice(value.size, min(per_param, value.size),
                                                                      replace=False)]
        for index in flat:
            numeric = _numeric_grad(f, params, key, index)
            assert grads[key][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (key, index)


def test_lstm_log_prob_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    policy = LSTMPolicy((3, 2, 4, 1, 3), hidden=5, embed=4, rng=rng, init_scale=0.8)
    actions = policy.sample(6, rng)
    coef = rng.normal(size=6)
    logp, grads = policy.log_prob_and_grad(actions, coef)
    assert logp.shape == (6,) and np.all(logp <= 0)
    _check_all_entries(lambda: float(coef @ policy.log_prob(actions)), policy.params, grads, rng)


def test_ppo_clipped_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    policy = LSTMPolicy((3, 2, 4, 3), hidden=6, embed=3, rng=rng, init_scale=0.5)
    actions = policy.sample(12, rng)
    logp_old = policy.log_prob(actions)
    for value in policy.params.values():  # move away from the old policy so some ratios clip
        value += rng.normal(scale=0.3, size=value.shape)
    adv = rng.normal(size=12)
    ratio = np.exp(policy.log_prob(actions) - logp_old)
    assert np.any((ratio > 1.2) | (ratio < 0.8)), "the check should cover clipped samples too"
    assert np.all(np.abs(np.abs(ratio - 1) - 0.2) > 1e-3), "too close to a kink for finite differences"
    surrogate, coef = ppo_coefficients(policy.log_prob(actions), logp_old, adv, 0.2)
    _, grads = policy.log_prob_and_grad(actions, coef)

    def objective() -> float:
        return ppo_coefficients(policy.log_prob(actions), logp_old, adv, 0.2)[0]

    assert objective() == pytest.approx(surrogate)
    _check_all_entries(objective, policy.params, grads, rng)


def test_reinforce_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    controller = Reinforce(TOY, 0, entropy_weight=0.3)
    for value in controller.params.values():
        value += rng.normal(size=value.shape)
    samples = np.array(controller.ask(9))
    adv = rng.normal(size=9)
    _, grads = controller.objective_and_grad(samples, adv)
    _check_all_entries(lambda: controller.objective_and_grad(samples, adv)[0], controller.params, grads, rng)


def test_evolution_ages_out_the_oldest_and_mutates_one_choice():
    controller = controllers.create("evolution", TOY, 0, population=8, sample_size=3)
    _run(controller, 3, per_round=4)  # 12 told: 4 aged out
    assert len(controller.population) == 8
    members = [s for s, _ in controller.population]
    for child in controller.ask(20):
        assert min(sum(a != b for a, b in zip(child, m)) for m in members) == 1


@pytest.mark.parametrize("name,options", [("ppo", {"lr": 0.02, "batch_size": 10}), ("reinforce", {"lr": 0.1}),
                                          ("evolution", {"population": 20, "sample_size": 5})])
def test_learners_beat_random_on_a_toy_reward(name, options):
    def mean_late_reward(controller) -> float:
        asked = _run(controller, 60, per_round=5)
        return float(np.mean([_toy_reward(s) for s in asked[-50:]]))

    random_score = np.mean([mean_late_reward(controllers.create("random", TOY, s)) for s in range(2)])
    score = np.mean([mean_late_reward(controllers.create(name, TOY, s, **options)) for s in range(2)])
    assert score > random_score + 0.1, (score, random_score)


def test_benchmark_script_runs_end_to_end():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "controllers.py"), "--space", "mnasnet",
                          "--latency", "macs", "--children", "30", "--seeds", "0", "--json"],
                         capture_output=True, text=True, check=True, cwd=root, timeout=300)
    result = json.loads(out.stdout)
    assert [r["controller"] for r in result["rows"]] == NAMES
    assert all(0 < r["best_mean"] < 1.5 and len(r["best_per_seed"]) == 1 for r in result["rows"])


def _cli_default(flag: str) -> int:
    """What `mnas search` uses when the flag is not given (the defaults a user gets)."""
    import argparse

    from mnas.commands import search

    parser = argparse.ArgumentParser()
    search.register(parser.add_subparsers())
    return parser.parse_args(["search", "--space", "mnasnet", "--out", "x"]).__dict__[flag]


@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolution"])
def test_each_learner_changes_its_policy_after_the_first_step_with_shipped_defaults(name):
    """MnasNet's loop with the CLI's default batch and the controller's default options: after one step the
    distribution the next step samples from is no longer the initial one (random search is the exception by
    definition: it has no policy)."""
    space = spaces.get("mnasnet")
    batch = _cli_default("batch")
    controller = controllers.create(name, space, 0)
    assert controller.first_update_after(batch) == batch
    probe = np.array(controllers.create("random", space, 1).ask(16))
    before = None if name == "evolution" else _policy_probe(controller, probe)
    samples = controller.ask(batch)
    controller.tell(samples, [0.5 + 0.1 * i for i in range(batch)])
    if name == "evolution":  # its policy is the population: every next child is a one-choice mutation of it
        members = [s for s, _ in controller.population]
        assert all(min(sum(a != b for a, b in zip(c, m)) for m in members) == 1 for c in controller.ask(20))
    else:
        assert not np.allclose(_policy_probe(controller, probe), before)


def _policy_probe(controller, probe: np.ndarray) -> np.ndarray:
    if hasattr(controller, "policy"):
        return controller.policy.log_prob(probe)
    return np.concatenate(controller.probabilities())


@pytest.mark.parametrize("batch, first", [(1, 2), (2, 2), (4, 4)])
def test_first_update_is_after_the_first_step_or_the_second_child(batch, first):
    for name in ("ppo", "reinforce", "evolution"):
        assert controllers.create(name, TOY, 0).first_update_after(batch) <= first
    assert controllers.create("random", TOY, 0).first_update_after(batch) is None
    # a buffer larger than a step delays PPO's update, as asked for
    assert controllers.create("ppo", TOY, 0, batch_size=10).first_update_after(4) == 12
    assert controllers.create("evolution", TOY, 0, initial=50).first_update_after(4) == 52
