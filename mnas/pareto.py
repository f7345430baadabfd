"""Pareto front of accuracy (higher is better) against latency (lower is better), and the plot. Pure numpy;
matplotlib (Agg) only inside `plot_front`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pareto_front(accuracy: Sequence[float], latency_ms: Sequence[Sequence[float]] | Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, sorted by the first latency.

    `latency_ms` is (n,) or (n, devices): a point is dominated when another is no worse on accuracy and on every
    latency and strictly better on one. Duplicates (the same child sampled twice) keep their first index.
    """
    acc = np.asarray(accuracy, dtype=float).reshape(-1)
    lat = np.asarray(latency_ms, dtype=float).reshape(len(acc), -1)
    front = []
    for i in range(len(acc)):
        no_worse = (acc >= acc[i]) & np.all(lat <= lat[i], axis=1)
        better = (acc > acc[i]) | np.any(lat < lat[i], axis=1)
        dominated = np.any(no_worse & better)
        duplicate = np.any(no_worse[:i] & ~better[:i])
        if not dominated and not duplicate:
            front.append(i)
    return sorted(front, key=lambda i: (lat[i, 0], -acc[i]))


def best_within(accuracy: Sequence[float], latency_ms: Sequence[Sequence[float]], targets_ms: Sequence[float],
                rewards: Sequence[float]) -> tuple[int, bool]:
    """(index, within_target): the most accurate child under every target (ties: higher reward); when no child
    meets the targets, the highest-reward child and False."""
    acc = np.asarray(accuracy, dtype=float).reshape(-1)
    if acc.size == 0:
        raise ValueError("no children")
    lat = np.asarray(latency_ms, dtype=float).reshape(len(acc), -1)
    rew = np.asarray(rewards, dtype=float).reshape(-1)
    ok = np.all(lat <= np.asarray(targets_ms, dtype=float), axis=1)
    if ok.any():
        idx = np.flatnonzero(ok)
        best = idx[np.lexsort((-rew[idx], -acc[idx]))[0]]
        return int(best), True
    return int(np.argmax(rew)), False


def plot_front(path: str | Path, accuracy: Sequence[float], latency_ms: Sequence[Sequence[float]],
               device_names: Sequence[str], targets_ms: Sequence[float], measured: Sequence[bool],
               references: dict[str, tuple[float, Sequence[float]]] | None = None, best: int | None = None,
               title: str = "", band: np.ndarray | None = None) -> Path:
    """One panel per device: every child (grey), the Pareto front (line), the target (dashed), the latency band
    (shaded), the best (star), reference models (labelled squares: their own accuracy scale, e.g. a longer
    reference training, named in their label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = np.asarray(accuracy, dtype=float)
    lat = np.asarray(latency_ms, dtype=float).reshape(len(acc), -1)
    n_dev = lat.shape[1]
    fig, axes = plt.subplots(1, n_dev, figsize=(5.5 * n_dev, 4.2), squeeze=False)
    for d, ax in enumerate(axes[0]):
        front = pareto_front(acc, lat[:, d])
        ax.scatter(lat[:, d], acc, s=14, c="0.6", label=f"children ({len(acc)})")
        ax.plot(lat[front, d], acc[front], "-o", c="tab:blue", ms=4, label="Pareto front")
        ax.axvline(targets_ms[d], ls="--", c="tab:red", label=f"target {targets_ms[d]:.2f} ms")
        if band is not None:
            ax.axvspan(band[d][0], band[d][1], color="tab:green", alpha=0.12, label="latency band")
        if best is not None:
            ax.scatter([lat[best, d]], [acc[best]], marker="*", s=180, c="tab:orange", zorder=5, label="best")
        for k, (name, ref) in enumerate((references or {}).items()):
            ref_acc, ref_lat, ref_std = (*ref, 0.0)[:3]  # (accuracy, latencies[, std over seeds])
            is_best = name.startswith("best")
            ax.errorbar([ref_lat[d]], [ref_acc], yerr=[ref_std], fmt="*" if is_best else "s",
                        ms=12 if is_best else 6, c="tab:purple" if is_best else "k", capsize=3, zorder=5)
            ax.annotate(name, (ref_lat[d], ref_acc), textcoords="offset points", xytext=(6, -10 * (k % 2) + 3),
                        fontsize=7)
        kind = "measured" if measured[d] else "predicted"
        ax.set_xlabel(f"latency on {device_names[d]} (ms, {kind})")
        ax.set_ylabel("proxy accuracy" if not references else
                      "accuracy: proxy (dots), reference training (marked)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
