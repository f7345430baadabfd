"""The controller interface (ask / tell / state_dict) and what every controller shares: seeded RNG, Adam.

    samples = controller.ask(n)          # n tuples of option indices of `space`
    controller.tell(samples, rewards)    # one reward per sample (any order of asks and tells)
    state = controller.state_dict()      # JSON-able: resume exactly with load_state_dict(state)

A controller draws every random number from its own `numpy.random.Generator` seeded by `seed`, and its
state holds that generator's state, so a killed search that reloads the last state continues with exactly
the samples an uninterrupted one would have drawn. Pure numpy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mnas.errors import UserError
from mnas.spaces import Sample, Space


class Controller:
    """Base class: subclasses implement `_ask`, `_tell`, `_state` and `_load`."""

    name = "controller"

    def __init__(self, space: Space, seed: int = 0) -> None:
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.num_told = 0

    # -- public API -----------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Sample]:
        if int(n) < 1:
            raise ValueError(f"ask needs n >= 1, got {n}")
        return [tuple(int(i) for i in s) for s in self._ask(int(n))]

    def tell(self, samples: Sequence[Sequence[int]], rewards: Sequence[float]) -> None:
        samples = [self.space.validate(s) for s in samples]
        rewards = [float(r) for r in rewards]
        if len(samples) != len(rewards):
            raise ValueError(f"tell got {len(samples)} samples but {len(rewards)} rewards")
        if not all(math.isfinite(r) for r in rewards):
            raise ValueError(f"rewards must be finite, got {rewards}")
        if samples:
            self._tell(samples, rewards)
            self.num_told += len(samples)

    def first_update_after(self, batch: int) -> int | None:
        """How many told children (told `batch` at a time) it takes before the controller's sampling changes;
        None: never (random search). The search loop warns when a budget ends before that."""
        return None

    def config(self) -> dict:
        """The hyper-parameters (what create() was given), for the run store and resume checks."""
        return {}

    def state_dict(self) -> dict:
        return {"controller": self.name, "space": self.space.name, "seed": self.seed, "config": self.config(),
                "num_told": self.num_told, "rng": self.rng.bit_generator.state, **self._state()}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("controller", self.name), ("space", self.space.name), ("config", self.config())):
            if _jsonable(state.get(key)) != _jsonable(mine):
                raise UserError(f"cannot resume: saved controller state has {key} {state.get(key)!r}, "
                                f"this run has {mine!r}")
        self.seed = int(state["seed"])
        self.num_told = int(state["num_told"])
        self.rng.bit_generator.state = state["rng"]
        self._load(state)

    # -- subclass hooks -------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Sample]:
        raise NotImplementedError

    def _tell(self, samples: list[Sample], rewards: list[float]) -> None:
        raise NotImplementedError

    def _state(self) -> dict:
        return {}

    def _load(self, state: dict) -> None:
        pass


def _jsonable(value: object) -> object:
    """Tuples -> lists, recursively: how a state reads back from JSON."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of `probs` (rows sum to 1), from one uniform per row."""
    u = rng.random(probs.shape[0])
    cdf = np.cumsum(probs, axis=1)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Adam:
    """Adam (Kingma & Ba) ascending an objective over a dict of named float64 arrays."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = float(lr), betas, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def ascend(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            params[k] += self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state(self) -> dict:
        return {"t": self.t, "m": arrays_to_lists(self.m), "v": arrays_to_lists(self.v)}

    def load(self, state: dict) -> None:
        self.t = int(state["t"])
        self.m = lists_to_arrays(state["m"])
        self.v = lists_to_arrays(state["v"])


def arrays_to_lists(arrays: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: v.tolist() for k, v in arrays.items()}


def lists_to_arrays(lists: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in lists.items()}


def advantages(rewards: np.ndarray, baseline: "MovingAverage") -> np.ndarray | None:
    """R - b with b the moving average of past batch means; with no past yet, b is this batch's mean (so the
    first batch already updates), and None when that batch has a single child (nothing to compare it with)."""
    rewards = np.asarray(rewards, dtype=float)
    if baseline.value is not None:
        return rewards - baseline.value
    if rewards.size < 2:
        return None
    return rewards - rewards.mean()


def first_baseline_update(batch: int) -> int:
    """Children told before the first update of a baseline-using controller told `batch` at a time."""
    return batch if batch >= 2 else 2


class MovingAverage:
    """Exponential moving average of batch-mean rewards; starts at the first batch's mean."""

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.value: float | None = None

    def update(self, rewards: Sequence[float]) -> None:
        mean = float(np.mean(rewards))
        self.value = mean if self.value is None else self.decay * self.value + (1 - self.decay) * mean
