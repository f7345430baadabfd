"""Ours vs published params / MACs for the 22 zoo models, as a markdown table (pasted into docs/foundation.md).

    .venv/bin/python benchmarks/zoo_costs.py

Analytic counts (mnas.costs) at each model's default resolution with a 1000-class head; no TF import.
"""

from __future__ import annotations

import time

from mnas import costs, zoo


def main() -> None:
    start = time.perf_counter()
    rows = [(name, zoo.get(name)) for name in zoo.names()]
    print("| model | res | params (M) ours | published | diff | MACs (M) ours | published | diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, spec in rows:
        cost = costs.model_cost(spec)
        pub_params, pub_macs = zoo.PUBLISHED[name]
        params, macs = cost.params / 1e6, cost.macs / 1e6
        print(f"| {name} | {spec.resolution} | {params:.3f} | {pub_params:g} | {params / pub_params - 1:+.1%} "
              f"| {macs:.1f} | {pub_macs:g} | {macs / pub_macs - 1:+.1%} |")
    print(f"\n{len(rows)} models counted in {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
