"""Figure (a) of docs/scaling.md: compound scaling of EfficientNet-B0 against the cost law, beside B1..B7.

    .venv/bin/python benchmarks/scaling_macs.py [--png runs/bench/scaling_macs.png]

For phi = 1..7 with alpha=1.2, beta=1.1, gamma=1.15: our scaled model's MACs (mnas.costs, resolution to a
multiple of 8) vs MACs(B0) * (alpha*beta^2*gamma^2)^phi, flagged against the issue's 15% band, for both repeats
roundings: ceil (the authors' round_repeats) and nearest (`--repeats-rounding nearest`), with the parts of the
ceil deviation the rounding rules explain. Then the published B1..B7 (the zoo's (w, d, r) table): their MACs,
the phi their MACs imply, and the phi each of their three multipliers implies.
Pure Python, no TF: well under a second of compute.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from mnas import zoo
from mnas.costs import count_macs
from mnas.scaling import Coefficients, expected_macs, scale

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BAND = 0.15


def total_repeats(spec) -> int:
    return sum(spec.repeats(i) for i in range(len(spec.blocks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, default=Path("runs/bench/scaling_macs.png"))
    args = parser.parse_args()
    start = time.perf_counter()
    c = Coefficients(ALPHA, BETA, GAMMA)
    b0 = zoo.get("efficientnet-b0")
    base = count_macs(b0)
    base_repeats = total_repeats(b0)
    print(f"B0: {base / 1e6:.1f} MMACs; alpha*beta^2*gamma^2 = {c.cost_ratio:.4f}\n")
    print("| phi | depth | width | res | law (M) | ceil: MACs (M) | ceil: ours/law | ceil: within 15% | "
          "ceil: ours/law, res unrounded | ceil: layers / (16 alpha^phi) | nearest: MACs (M) | nearest: ours/law | "
          "nearest: within 15% | nearest: layers / (16 alpha^phi) |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|:---:|---:|")
    ours: dict[str, list] = {"ceil": [], "nearest": []}
    for phi in range(1, 8):
        law = expected_macs(base, c, phi)
        cells = []
        for rounding in ("ceil", "nearest"):
            s = scale(b0, ALPHA, BETA, GAMMA, phi, repeats_rounding=rounding)
            macs = count_macs(s)
            ours[rounding].append((phi, macs))
            ratio = macs / law
            cells += [f"{macs / 1e6:.0f}", f"{ratio:.3f}", "yes" if abs(ratio - 1) <= BAND else "NO"]
            if rounding == "ceil":
                exact_res = scale(b0, ALPHA, BETA, GAMMA, phi, resolution_multiple=1)
                cells.append(f"{count_macs(exact_res) / law:.3f}")
            cells.append(f"{total_repeats(s) / (base_repeats * ALPHA ** phi):.3f}")
        print(f"| {phi} | {s.depth:.3f} | {s.width:.3f} | {s.resolution} | {law / 1e6:.0f} | " + " | ".join(cells)
              + " |")
    for rounding, rows in ours.items():
        devs = [m / expected_macs(base, c, phi) - 1 for phi, m in rows]
        inside = sum(abs(d) <= BAND for d in devs)
        print(f"\nrepeats {rounding}: {inside}/{len(devs)} of phi = 1..7 within 15% of the law "
              f"(deviation {min(devs):+.1%} .. {max(devs):+.1%})", end="")
    print("\n\nPublished B1..B7 (the zoo's (width, depth, resolution) table):\n")
    print("| model | width | depth | res | MACs (M) ours | published | phi from MACs | phi from depth | "
          "phi from width | phi from res | closest compound phi (ceil): MACs (M) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    published = []
    for k in range(1, 8):
        name = f"efficientnet-b{k}"
        s = zoo.get(name)
        macs = count_macs(s)
        published.append((name, macs))
        phi_macs = math.log(macs / base) / math.log(c.cost_ratio)
        phi_d = math.log(s.depth) / math.log(ALPHA)
        phi_w = math.log(s.width) / math.log(BETA) if s.width > 1 else 0.0
        phi_r = math.log(s.resolution / b0.resolution) / math.log(GAMMA)
        near = round(phi_d * 2) / 2  # the paper's table follows depth most closely
        near_macs = count_macs(scale(b0, ALPHA, BETA, GAMMA, near))
        print(f"| {name} | {s.width:g} | {s.depth:g} | {s.resolution} | {macs / 1e6:.0f} | "
              f"{zoo.PUBLISHED[name][1]:g} | {phi_macs:.2f} | {phi_d:.2f} | {phi_w:.2f} | {phi_r:.2f} | "
              f"phi={near:g}: {near_macs / 1e6:.0f} |")
    print(f"\ncomputed in {time.perf_counter() - start:.3f} s")
    plot(args.png, base, c, ours, published)
    print(f"plot: {args.png}")


def plot(path: Path, base: float, c: Coefficients, ours: dict[str, list], published: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    phis = [p for p, _ in ours["ceil"]]
    law = [expected_macs(base, c, p) / 1e9 for p in phis]
    ax.fill_between(phis, [v * (1 - BAND) for v in law], [v * (1 + BAND) for v in law], color="gray", alpha=0.2,
                    label="law +-15%")
    ax.plot(phis, law, "k--", label="MACs(B0) x 1.92^phi")
    for rounding, marker in (("ceil", "o-"), ("nearest", "^-")):
        ax.plot(phis, [m / 1e9 for _, m in ours[rounding]], marker,
                label=f"ours: scale(B0, 1.2, 1.1, 1.15, phi), repeats {rounding}")
    # at the phi their depth multiplier implies (B2..B7 ~ 1..6): placing them at the phi their MACs imply
    # would put them on the law by construction
    pub_phi = [math.log(zoo.get(name).depth) / math.log(ALPHA) for name, _ in published]
    ax.plot(pub_phi, [m / 1e9 for _, m in published], "s", color="tab:red",
            label="published B1..B7 (at the phi their depth implies)")
    for (name, m), p in zip(published, pub_phi):
        ax.annotate(name.split("-")[1].upper(), (p, m / 1e9), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("phi")
    ax.set_ylabel("GMACs")
    ax.set_title("EfficientNet-B0 compound scaling vs the cost law")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
