"""Does the supernet rank children well? Stand-alone retraining beside the one-shot score, and Kendall tau.

- `retrain(spec, ...)`: the chosen architecture trained alone (the `standalone` evaluator: E epochs + BN
  recalibration), reported beside its one-shot accuracy.
- `rank_correlation(evaluator, samples, ...)`: one-shot accuracy of K children (scored on the trained supernet,
  no further training) against their stand-alone accuracy; Kendall tau (scipy.stats.kendalltau, tau-b) and its
  p-value. tau = 1: the supernet orders the children exactly as stand-alone training does; 0: no better than chance.
- `one_shot_check(...)`: what `mnas search --evaluator supernet` reports at the end: the chosen child retrained
  alone, and (with K > 0) the Kendall tau of the search's own reward signal over K uniformly sampled children.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from mnas.data import ProxyData
from mnas.evaluators.standalone import StandaloneEvaluator
from mnas.runstore import ResultCache
from mnas.spec import ModelSpec
from mnas.supernet.evaluator import SupernetEvaluator


@dataclass(frozen=True)
class RankedChild:
    sample: str
    one_shot: float
    standalone: float
    standalone_s: float


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(tau-b, two-sided p-value); (nan, nan) for fewer than 2 pairs or a constant side."""
    from scipy.stats import kendalltau

    if len(a) != len(b):
        raise ValueError(f"kendall_tau needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan"), float("nan")
    result = kendalltau(list(a), list(b))
    return float(result.statistic), float(result.pvalue)


def standalone_evaluator(data: ProxyData, epochs: int = 1, batch_size: int = 64, seed: int = 0,
                         learning_rate: float = 2e-3, cache: ResultCache | None = None) -> StandaloneEvaluator:
    """The stand-alone trainer of the yardstick; with a run store's `cache`, a resumed run retrains nothing."""
    return StandaloneEvaluator(data=data, epochs=epochs, batch_size=batch_size, proxy_resolution=data.resolution,
                               seed=seed, learning_rate=learning_rate, cache=cache)


def retrain(spec: ModelSpec, supernet: SupernetEvaluator, epochs: int = 1, batch_size: int = 64,
            seed: int = 0, trainer: StandaloneEvaluator | None = None) -> dict:
    """The chosen architecture: one-shot accuracy (current shared weights) and stand-alone accuracy after
    `epochs` epochs alone (or `trainer`'s setting), with the stand-alone timing breakdown."""
    from mnas.supernet.evaluator import sample_of

    one_shot = supernet.score(sample_of(supernet.space, spec))
    trainer = trainer or standalone_evaluator(supernet.data, epochs, batch_size, seed)
    result = trainer.evaluate([spec])[0]
    return {"spec": spec.name, "one_shot_accuracy": one_shot, "standalone_accuracy": result.accuracy,
            "standalone_epochs": trainer.epochs, "standalone_s": result.seconds, "cached": result.cached,
            "detail": result.detail}


def one_shot_check(supernet: SupernetEvaluator, chosen: ModelSpec, trainer: StandaloneEvaluator,
                   rank_children: int = 0, seed: int = 0, on_child=None) -> dict:
    """The end-of-search report of a one-shot search: `chosen` retrained alone beside its one-shot accuracy and,
    when `rank_children` > 0, the Kendall tau between the search's reward signal (each child's path trained the
    evaluator's K steps, then scored) and stand-alone accuracy over that many uniformly sampled children."""
    report = {"retrain": retrain(chosen, supernet, trainer=trainer)}
    if rank_children > 0:
        rng = np.random.default_rng(seed + 7)
        samples = [supernet.space.sample_random(rng) for _ in range(rank_children)]
        report["rank"] = rank_correlation(supernet, samples, on_child=on_child, trainer=trainer,
                                          finetune_steps=supernet.steps_per_child)
    return report


def rank_correlation(supernet: SupernetEvaluator, samples: Sequence[Sequence[int]], epochs: int = 1,
                     batch_size: int = 64, seed: int = 0, on_child=None, finetune_steps: int = 0,
                     standalone: Sequence[float] | None = None,
                     trainer: StandaloneEvaluator | None = None) -> dict:
    """One-shot vs stand-alone accuracy of `samples`; `on_child(RankedChild)` is called as each one finishes.

    finetune_steps = 0 scores each child on the shared weights as they are; finetune_steps = K first trains its
    path K steps, i.e. the accuracy `SupernetEvaluator.evaluate` returns as the search's reward (`one_shot`: with
    child_start="shared" this changes the shared weights, as a search would; "fixed" puts them back).
    `standalone` reuses stand-alone accuracies already measured for `samples`.
    """
    space = supernet.space
    trainer = trainer or standalone_evaluator(supernet.data, epochs, batch_size, seed)
    rows: list[RankedChild] = []
    for i, sample in enumerate(samples):
        one_shot = supernet.one_shot(sample, finetune_steps)[0] if finetune_steps else supernet.score(sample)
        spec = space.to_spec(sample)
        if standalone is not None:
            rows.append(RankedChild(space.encode_sample(sample), one_shot, float(standalone[i]), 0.0))
            if on_child is not None:
                on_child(rows[-1])
            continue
        result = trainer.evaluate([spec])[0]
        row = RankedChild(space.encode_sample(sample), one_shot, result.accuracy, result.seconds)
        rows.append(row)
        if on_child is not None:
            on_child(row)
    tau, p = kendall_tau([r.one_shot for r in rows], [r.standalone for r in rows])
    return {"space": space.name, "children": len(rows), "kendall_tau": tau, "p_value": p,
            "finetune_steps": finetune_steps, "standalone_epochs": trainer.epochs, "supernet_steps": supernet.steps,
            "rows": [asdict(r) for r in rows]}


def write_rank(report: dict, csv_path, png_path) -> None:
    """rank.csv (one row per ranked child) and rank.png (one-shot vs stand-alone scatter with the tau)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["sample", "one_shot", "standalone", "standalone_s"])
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter([r["one_shot"] for r in rows], [r["standalone"] for r in rows])
    ax.set_xlabel(f"one-shot accuracy ({report['finetune_steps']} path steps on the shared weights)")
    ax.set_ylabel(f"stand-alone accuracy ({report['standalone_epochs']} epoch(s))")
    ax.set_title(f"Kendall tau {report['kendall_tau']:.2f} over {report['children']} children")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
