"""MnasNet's controller: an LSTM that emits one choice per step, trained with PPO (clipped objective).

Policy (as in MnasNet / ENAS): step t feeds the embedding of the option chosen at step t-1 (a learned
start vector at t=0) into one LSTM cell; a per-step linear head turns the hidden state into logits over
choice t's options. Forward and backward (BPTT) are written out in numpy, batched over samples.

Training: every `tell` is one update batch by default (`batch_size=None`: the search loop tells once per step,
so the policy learns after every `--batch` children); an int `batch_size` buffers told children into batches of
that size instead. Advantages A = R - b (b: moving average of batch-mean rewards, MnasNet's baseline; for the
first batch, that batch's own mean, so the first batch already updates), old log-probs are taken from the
current policy, and `epochs` full-batch Adam steps ascend PPO's clipped surrogate

    L = mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i),   r_i = pi(s_i) / pi_old(s_i).

The samples in a full buffer were all drawn from the policy that computes pi_old when asks and tells
alternate batch by batch (the search loop's use); otherwise pi_old is that policy's approximation.
"""

from __future__ import annotations

import math

import numpy as np

from mnas.controllers.base import (Adam, Controller, MovingAverage, advantages, arrays_to_lists, categorical,
                                   first_baseline_update, lists_to_arrays, log_softmax)
from mnas.spaces import Sample, Space


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


class LSTMPolicy:
    """An autoregressive policy over a sequence of categorical choices with `num_options[t]` options."""

    def __init__(self, num_options: tuple[int, ...], hidden: int, embed: int, rng: np.random.Generator,
                 init_scale: float = 0.1) -> None:
        self.num_options = tuple(int(n) for n in num_options)
        self.hidden, self.embed = int(hidden), int(embed)
        self.offsets = np.concatenate([[0], np.cumsum(self.num_options)]).astype(int)
        total, H, E = int(self.offsets[-1]), self.hidden, self.embed

        def uniform(*shape: int) -> np.ndarray:
            return rng.uniform(-init_scale, init_scale, shape)

        lstm_bias = np.zeros(4 * H)
        lstm_bias[H:2 * H] = 1.0  # forget-gate bias 1: remember by default
        self.params: dict[str, np.ndarray] = {
            "start": uniform(E), "embedding": uniform(total, E),  # row offsets[t] + a: embedding of option a of t
            "lstm_w": uniform(E + H, 4 * H), "lstm_b": lstm_bias,  # gates i | f | g | o
            "head_w": uniform(H, total), "head_b": np.zeros(total),  # columns offsets[t]..: logits of step t
        }

    def _inputs(self, prev: np.ndarray | None, batch: int, t: int) -> np.ndarray:
        if t == 0:
            return np.broadcast_to(self.params["start"], (batch, self.embed))
        return self.params["embedding"][self.offsets[t - 1] + prev]

    def _cell(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple:
        H = self.hidden
        xh = np.concatenate([x, h], axis=1)
        z = xh @ self.params["lstm_w"] + self.params["lstm_b"]
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
        g = np.tanh(z[:, 2 * H:3 * H])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        return xh, i, f, g, o, c_new, tanh_c, o * tanh_c

    def _logits(self, h: np.ndarray, t: int) -> np.ndarray:
        lo, hi = self.offsets[t], self.offsets[t + 1]
        return h @ self.params["head_w"][:, lo:hi] + self.params["head_b"][lo:hi]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n sequences of option indices, shape (n, steps)."""
        h = np.zeros((n, self.hidden))
        c = np.zeros((n, self.hidden))
        out = np.zeros((n, len(self.num_options)), dtype=int)
        prev = None
        for t in range(len(self.num_options)):
            *_, c, h = self._cell(self._inputs(prev, n, t), h, c)
            probs = np.exp(log_softmax(self._logits(h, t)))
            prev = out[:, t] = categorical(rng, probs)
        return out

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        return self.log_prob_and_grad(actions, None)[0]

    def log_prob_and_grad(self, actions: np.ndarray, coef: np.ndarray | None) -> tuple[np.ndarray, dict]:
        """log pi(actions) per sample, and d(sum_i coef_i * log pi(actions_i)) / d params (if coef given)."""
        actions = np.asarray(actions, dtype=int)
        n, steps = actions.shape
        H, E = self.hidden, self.embed
        h, c = np.zeros((n, H)), np.zeros((n, H))
        logp = np.zeros(n)
        cache = []
        for t in range(steps):
            x = self._inputs(actions[:, t - 1] if t else None, n, t)
            c_prev = c
            xh, i, f, g, o, c, tanh_c, h = self._cell(x, h, c)
            step_logp = log_softmax(self._logits(h, t))
            logp += step_logp[np.arange(n), actions[:, t]]
            cache.append((xh, i, f, g, o, c_prev, tanh_c, h, np.exp(step_logp)))
        if coef is None:
            return logp, {}
        coef = np.asarray(coef, dtype=float).reshape(n, 1)
        grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        dh_next, dc_next = np.zeros((n, H)), np.zeros((n, H))
        for t in reversed(range(steps)):
            xh, i, f, g, o, c_prev, tanh_c, h, probs = cache[t]
            lo, hi = self.offsets[t], self.offsets[t + 1]
            dlogits = -probs * coef
            dlogits[np.arange(n), actions[:, t]] += coef[:, 0]
            grads["head_w"][:, lo:hi] += h.T @ dlogits
            grads["head_b"][lo:hi] += dlogits.sum(axis=0)
            dh = dlogits @ self.params["head_w"][:, lo:hi].T + dh_next
            dc = dh * o * (1.0 - tanh_c ** 2) + dc_next
            dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                                 dh * tanh_c * o * (1 - o)], axis=1)
            grads["lstm_w"] += xh.T @ dz
            grads["lstm_b"] += dz.sum(axis=0)
            dxh = dz @ self.params["lstm_w"].T
            dx, dh_next = dxh[:, :E], dxh[:, E:]
            dc_next = dc * f
            if t == 0:
                grads["start"] += dx.sum(axis=0)
            else:
                np.add.at(grads["embedding"], self.offsets[t - 1] + actions[:, t - 1], dx)
        return logp, grads


def ppo_coefficients(logp: np.ndarray, logp_old: np.ndarray, advantages: np.ndarray, clip: float
                     ) -> tuple[float, np.ndarray]:
    """PPO's clipped surrogate L and dL/dlogp per sample (zero where the clipped branch is the min)."""
    ratio = np.exp(logp - logp_old)
    unclipped = ratio * advantages
    clipped = np.clip(ratio, 1 - clip, 1 + clip) * advantages
    surrogate = float(np.mean(np.minimum(unclipped, clipped)))
    active = unclipped <= clipped  # the min picks the unclipped term: gradient flows
    return surrogate, np.where(active, unclipped, 0.0) / logp.size


class PPO(Controller):
    name = "ppo"

    def __init__(self, space: Space, seed: int = 0, hidden: int = 32, embed: int = 32, lr: float = 0.002,
                 batch_size: int | None = None, epochs: int = 4, clip: float = 0.2,
                 baseline_decay: float = 0.95) -> None:
        super().__init__(space, seed)
        self.hidden, self.embed, self.lr = int(hidden), int(embed), float(lr)
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 (or None: one update per tell), got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.epochs, self.clip = int(epochs), float(clip)
        self.baseline_decay = float(baseline_decay)
        # Parameters are initialised from a generator of their own, so asks do not depend on the init draws.
        self.policy = LSTMPolicy(space.num_options, self.hidden, self.embed, np.random.default_rng([self.seed, 1]))
        self.adam = Adam(self.policy.params, self.lr)
        self.baseline = MovingAverage(self.baseline_decay)
        self.buffer: list[tuple[Sample, float]] = []

    def config(self) -> dict:
        return {"hidden": self.hidden, "embed": self.embed, "lr": self.lr, "batch_size": self.batch_size,
                "epochs": self.epochs, "clip": self.clip, "baseline_decay": self.baseline_decay}

    def _ask(self, n: int) -> list[Sample]:
        return [tuple(row) for row in self.policy.sample(n, self.rng).tolist()]

    def first_update_after(self, batch: int) -> int:
        if self.batch_size is None:
            return first_baseline_update(batch)
        return math.ceil(first_baseline_update(self.batch_size) / batch) * batch  # tells come `batch` at a time

    def _tell(self, samples: list[Sample], rewards: list[float]) -> None:
        self.buffer += list(zip(samples, rewards))
        size = len(self.buffer) if self.batch_size is None else self.batch_size
        while self.buffer and len(self.buffer) >= size:
            batch, self.buffer = self.buffer[:size], self.buffer[size:]
            self._update(np.array([s for s, _ in batch]), np.array([r for _, r in batch]))

    def _update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        adv = advantages(rewards, self.baseline)
        if adv is None:
            self.baseline.update(rewards)  # one child and no baseline yet: nothing to compare it with
            return
        logp_old = self.policy.log_prob(actions)
        for _ in range(self.epochs):
            logp = self.policy.log_prob(actions)
            _, coef = ppo_coefficients(logp, logp_old, adv, self.clip)
            _, grads = self.policy.log_prob_and_grad(actions, coef)
            self.adam.ascend(self.policy.params, grads)
        self.baseline.update(rewards)

    def _state(self) -> dict:
        return {"params": arrays_to_lists(self.policy.params), "adam": self.adam.state(),
                "baseline": self.baseline.value, "buffer": [[list(s), r] for s, r in self.buffer]}

    def _load(self, state: dict) -> None:
        self.policy.params = lists_to_arrays(state["params"])
        self.adam.load(state["adam"])
        self.baseline.value = state["baseline"]
        self.buffer = [(tuple(int(i) for i in s), float(r)) for s, r in state["buffer"]]
