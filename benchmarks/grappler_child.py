"""Grappler on vs off for one stand-alone child: the first step (trace + graph optimisation) and the whole epoch.

    .venv/bin/python benchmarks/grappler_child.py [--arch mnasnet-a1] [--rounds 2]

Alternates both settings in one process (so a change of machine load hits both alike), `--rounds` times, with
the default proxy (1 epoch, 4,000 images, 32 px, batch 128, Adam 2e-3): prints one line per training and the
medians. Why `StandaloneEvaluator(grappler=False)` is the default (`mnas.tfgraphs.grappler_off`).
"""

from __future__ import annotations

import argparse
import statistics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mnasnet-a1")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from mnas import zoo
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator

    data = load_proxy_data()
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for _ in range(args.rounds):
        for grappler in (True, False):
            ev = StandaloneEvaluator(data, epochs=1, grappler=grappler)
            acc, d = ev.train_and_score(ev.proxy_spec(zoo.get(args.arch)))
            runs[grappler].append({"acc": acc, **d})
            print(f"grappler={'on ' if grappler else 'off'} accuracy {acc:.3f}  first step {d['first_step_s']:.2f} s  "
                  f"train {d['train_s']:.2f} s  build {d['build_s']:.2f} s  BN recal {d['bn_recal_s']:.2f} s  "
                  f"score {d['score_s']:.2f} s", flush=True)
    for grappler, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("first_step_s", "train_s", "bn_recal_s")}
        print(f"median, grappler {'on' if grappler else 'off'}: first step {med['first_step_s']:.2f} s, "
              f"train {med['train_s']:.2f} s, BN recal {med['bn_recal_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
