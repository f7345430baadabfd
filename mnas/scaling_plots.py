"""The figures of the scaling jobs (`mnas.scaling_jobs`): coefficient search and compound vs one dimension."""

from __future__ import annotations

from pathlib import Path

from mnas.scaling import Coefficients, cost_shares


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_search(path: Path, rows: list[dict], best: dict, base_name: str, reference: dict) -> None:
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ordered = sorted(rows, key=lambda r: r["accuracy"])
    labels = [f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}" for r in ordered]
    colors = ["tab:red" if r is best else "tab:blue" for r in ordered]
    ax1.barh(range(len(ordered)), [r["accuracy"] for r in ordered], color=colors)
    ax1.axvline(reference["accuracy"], color="gray", ls="--", label=f"base (phi=0) {reference['accuracy']:.3f}")
    ax1.set_yticks(range(len(ordered)), labels, fontsize=7)
    ax1.set_xlabel("proxy accuracy at phi=1")
    ax1.set_ylabel("alpha / beta / gamma")
    lo = min(r["accuracy"] for r in rows + [reference])
    ax1.set_xlim(max(0.0, lo - 0.05), min(1.0, max(r["accuracy"] for r in rows) + 0.02))
    ax1.legend(fontsize=8, loc="lower right")
    shares = [cost_shares(Coefficients(r["alpha"], r["beta"], r["gamma"])) for r in rows]
    sc = ax2.scatter([s[0] for s in shares], [s[2] for s in shares], c=[r["accuracy"] for r in rows],
                     cmap="viridis", s=60)
    bs = cost_shares(Coefficients(best["alpha"], best["beta"], best["gamma"]))
    ax2.scatter([bs[0]], [bs[2]], marker="*", s=300, facecolors="none", edgecolors="red", label="best")
    ax2.set_xlabel("share of the cost growth spent on depth  ln(alpha)/ln(a b^2 g^2)")
    ax2.set_ylabel("share spent on resolution  2 ln(gamma)/ln(a b^2 g^2)")
    ax2.set_title("width takes the rest")
    fig.colorbar(sc, ax=ax2, label="proxy accuracy")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Coefficient search on {base_name} (phi=1, alpha*beta^2*gamma^2 ~ 2)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_compare(path: Path, rows: list[dict], base_name: str, source: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    markers = {"compound": "o-", "depth-only": "s--", "width-only": "^--", "resolution-only": "v--"}
    for rule in sorted({r["rule"] for r in rows}, key=lambda x: (x != "compound", x)):
        rs = sorted((r for r in rows if r["rule"] == rule), key=lambda r: r["latency_ms"])
        ax.plot([r["latency_ms"] for r in rs], [r["accuracy"] for r in rs], markers.get(rule, "o-"), label=rule,
                lw=2.2 if rule == "compound" else 1.2)
    for t in sorted({r["target_ms"] for r in rows}):
        ax.axvline(t, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(f"latency (ms, {source})")
    ax.set_ylabel("proxy accuracy")
    ax.set_title(f"Scaling {base_name} to equal latency: compound vs one dimension")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
