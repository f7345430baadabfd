"""REINFORCE over factorised logits (TuNAS): one independent categorical per choice.

    pi(sample) = prod_c softmax(theta_c)[sample_c]
    J(theta)   = mean_i (R_i - b) * log pi(sample_i),   b = moving average of past batch-mean rewards

ascended with Adam after every tell (TuNAS: one update per step, baseline momentum 0.95, Adam). The
baseline is updated after the gradient, so a child never serves as its own baseline across batches; the first
batch has no past, so its own mean is its baseline (REINFORCE's covariance form: the first step already learns).
"""

from __future__ import annotations

import numpy as np

from mnas.controllers.base import (Adam, Controller, MovingAverage, advantages, arrays_to_lists, categorical,
                                   first_baseline_update, lists_to_arrays, log_softmax)
from mnas.spaces import Sample, Space


class Reinforce(Controller):
    name = "reinforce"

    def __init__(self, space: Space, seed: int = 0, lr: float = 0.1, baseline_decay: float = 0.95,
                 entropy_weight: float = 0.0) -> None:
        super().__init__(space, seed)
        self.lr, self.baseline_decay, self.entropy_weight = float(lr), float(baseline_decay), float(entropy_weight)
        self.params = {f"logits{i}": np.zeros(n) for i, n in enumerate(space.num_options)}
        self.adam = Adam(self.params, self.lr)
        self.baseline = MovingAverage(self.baseline_decay)

    def config(self) -> dict:
        return {"lr": self.lr, "baseline_decay": self.baseline_decay, "entropy_weight": self.entropy_weight}

    def probabilities(self) -> list[np.ndarray]:
        return [np.exp(log_softmax(self.params[f"logits{i}"])) for i in range(len(self.space.num_options))]

    def _ask(self, n: int) -> list[Sample]:
        columns = [categorical(self.rng, np.broadcast_to(p, (n, p.size))) for p in self.probabilities()]
        return [tuple(int(c[j]) for c in columns) for j in range(n)]

    def objective_and_grad(self, samples: np.ndarray, advantages: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """J = mean_i adv_i * log pi(s_i) + entropy_weight * sum_c H(pi_c), and dJ/dtheta."""
        samples = np.asarray(samples, dtype=int)
        adv = np.asarray(advantages, dtype=float)
        total, grads = 0.0, {}
        for c in range(samples.shape[1]):
            logp = log_softmax(self.params[f"logits{c}"])
            p = np.exp(logp)
            onehot = np.eye(p.size)[samples[:, c]]
            total += float(np.mean(adv * logp[samples[:, c]]))
            grad = (adv[:, None] * (onehot - p)).mean(axis=0)
            if self.entropy_weight:
                entropy = -float(np.sum(p * logp))
                total += self.entropy_weight * entropy
                grad = grad - self.entropy_weight * p * (logp + entropy)  # dH/dtheta = -p (log p + H)
            grads[f"logits{c}"] = grad
        return total, grads

    def first_update_after(self, batch: int) -> int:
        return first_baseline_update(batch)

    def _tell(self, samples: list[Sample], rewards: list[float]) -> None:
        adv = advantages(np.asarray(rewards, dtype=float), self.baseline)
        if adv is None:
            self.baseline.update(rewards)  # one child and no baseline yet: nothing to compare it with
            return
        _, grads = self.objective_and_grad(np.asarray(samples), adv)
        self.adam.ascend(self.params, grads)
        self.baseline.update(rewards)

    def _state(self) -> dict:
        return {"params": arrays_to_lists(self.params), "adam": self.adam.state(), "baseline": self.baseline.value}

    def _load(self, state: dict) -> None:
        self.params = lists_to_arrays(state["params"])
        self.adam.load(state["adam"])
        self.baseline.value = state["baseline"]
