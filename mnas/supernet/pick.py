"""Which child does a one-shot search hand back? The final-pick rules of the weight-sharing papers.

- `best`: the child with the highest one-shot reward seen so far. Simple, but one-shot rewards drift upwards as
  the controller concentrates its samples (a path trained more scores higher), so late in a search this is the
  most-trained path rather than the best child (docs/supernet.md, "one-shot reward drift").
- `argmax` (TuNAS): the controller's most likely architecture, the argmax of its policy per choice. It needs no
  reward comparison across time at all; it may be a child the search never sampled.
- `rescore` (ENAS): the top-k distinct sampled children by one-shot reward, each re-scored from the same current
  shared weights (a few path steps, then a fresh held-out batch); the best re-scored one wins. Every candidate is
  judged by the same weights and data, so earlier children are no longer compared with later, better-trained ones.

The functions here are the pick logic only (pure, no TF); the benchmark supplies the scorer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mnas.errors import UserError

PICK_RULES = ("best", "argmax", "rescore")


def parse_pick_rules(text: str) -> list[str]:
    """'best,argmax' -> ['best', 'argmax'] (order kept, duplicates dropped); an unknown rule is a UserError."""
    rules = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in rules if r not in PICK_RULES]
    if unknown or not rules:
        raise UserError(f"unknown pick rule {', '.join(unknown) or repr(text)}: choose from {', '.join(PICK_RULES)}")
    return list(dict.fromkeys(rules))


def best_by_reward(curve: Sequence[dict], n: int) -> dict:
    """The entry of the first `n` children with the highest one-shot reward (the earliest on a tie)."""
    if n < 1 or not curve:
        raise ValueError("a pick needs at least one child")
    return max(curve[:n], key=lambda c: c["reward"])


def top_k_distinct(curve: Sequence[dict], n: int, k: int) -> list[dict]:
    """The `k` distinct children (by `sample`) of the first `n` with the highest one-shot reward, best first; a
    child sampled more than once counts with its best reward (ties: the earliest first)."""
    best: dict[str, dict] = {}
    for c in curve[:n]:
        if c["sample"] not in best or c["reward"] > best[c["sample"]]["reward"]:
            best[c["sample"]] = c
    return sorted(best.values(), key=lambda c: -c["reward"])[:max(0, k)]


def argmax_sample(probabilities: Sequence[np.ndarray]) -> tuple[int, ...]:
    """The most likely option of every choice (the first one on a tie, e.g. an untrained uniform policy)."""
    return tuple(int(np.argmax(p)) for p in probabilities)


def controller_argmax(controller) -> tuple[int, ...]:
    """`argmax_sample` of a controller's per-choice probabilities; controllers without them (ppo's LSTM policy is
    autoregressive, evolution and random have none) are refused."""
    probabilities = getattr(controller, "probabilities", None)
    if probabilities is None:
        raise UserError(f"pick rule 'argmax' needs a controller with a factorised policy "
                        f"(reinforce), not {getattr(controller, 'name', type(controller).__name__)!r}")
    return argmax_sample(probabilities())


def rescore_pick(candidates: Sequence[str], score: Callable[[str], float]) -> tuple[str, list[float]]:
    """Re-score every candidate with `score` and return the best one (the earliest on a tie) and all scores."""
    if not candidates:
        raise ValueError("rescore needs at least one candidate")
    scores = [float(score(c)) for c in candidates]
    return candidates[int(np.argmax(scores))], scores
