"""Does uniform-path training (the supernet's warm-up) train the shared weights? Which choice stops it?

For each variant, the supernet starts from the same initial weights and takes S single-path steps (batch 64, the
evaluator's Adam) in which only the named choices are sampled uniformly; every other choice keeps the value of one
fixed reference architecture. Reported: mean training loss of the first and last 50 steps (ln 10 = 2.303 is
chance on the 10-class proxy) and the held-out accuracy of 4 paths drawn the same way after training.

`none` trains one fixed path (a stand-alone network inside the supernet); `all` is the evaluator's warm-up.
`op:2,3` samples the op among options 2 and 3 only (mbconv3 / mbconv6, which share one branch's weights).

    taskset -c 1 .venv/bin/python benchmarks/supernet_warmup.py --steps 150 \
        --variants none,op,kernel,se,skip,filters,layers,all,op:2,3 --out benchmarks/results/supernet_warmup
    taskset -c 1 .venv/bin/python benchmarks/supernet_warmup.py --space ofa-mbv3 --steps 150 --variants none,all \
        --out benchmarks/results/supernet_warmup_ofa      # the layer-wise supernet (partial variants: mnasnet kinds)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

CHOICE_KINDS = ("op", "kernel", "se", "skip", "filters", "layers")  # the order of a block's choices


def parse_variant(text: str) -> tuple[set[str], dict[str, tuple[int, ...]]]:
    """'op+skip' -> ({op, skip}, {}); 'op:2,3' -> ({op}, {op: (2, 3)}); 'all' / 'none'."""
    if text == "all":
        return {"*"}, {}  # every choice of the space (layer-wise spaces have other kinds: depth, expand, act)
    if text == "none":
        return set(), {}
    free, pools = set(), {}
    for part in text.split("+"):
        kind, _, pool = part.partition(":")
        if kind not in CHOICE_KINDS:
            raise SystemExit(f"unknown choice kind {kind!r} in variant {text!r} (one of {CHOICE_KINDS})")
        free.add(kind)
        if pool:
            pools[kind] = tuple(int(v) for v in pool.split(","))
    return free, pools


def split_variants(text: str) -> list[str]:
    """Variants are comma-separated, but 'op:2,3' keeps its own commas: a bare number joins the previous one."""
    out: list[str] = []
    for item in text.split(","):
        if item.isdigit() and out:
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mnasnet")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--variants", default="none,op,kernel,se,skip,filters,layers,all,op:2,3")
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/supernet_warmup")
    args = p.parse_args()

    from mnas import spaces
    from mnas.data import load_proxy_data
    from mnas.supernet.evaluator import SupernetEvaluator

    space = spaces.get(args.space)
    data = load_proxy_data().subset(train=args.train, val=args.val)
    sup = SupernetEvaluator(data, space=space, warmup_steps=0, steps_per_child=0, learning_rate=args.lr,
                            seed=args.seed)
    initial = sup.snapshot()
    reference = list(space.sample_random(np.random.default_rng(args.seed + 5)))
    kinds = [c.tag.split("/")[-1] for c in space.choices]
    kinds = ["kernel" if k.startswith("kernel") else k for k in kinds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args), "reference": space.encode_sample(reference), "variants": [],
                     "load_avg_start": os.getloadavg(), "chance_loss": float(np.log(data.num_classes))}

    def draw(rng: np.random.Generator, free: set[str], pools: dict) -> list[int]:
        sample = list(space.sample_random(rng))
        path = []
        for i, kind in enumerate(kinds):
            if kind not in free and "*" not in free:
                path.append(reference[i])
            elif kind in pools:
                allowed = [v for v in pools[kind] if v < len(space.choices[i].options)]
                path.append(int(rng.choice(allowed)) if allowed else reference[i])
            else:
                path.append(sample[i])
        return path

    for variant in split_variants(args.variants):
        free, pools = parse_variant(variant)
        sup.rollback(initial)
        rng = np.random.default_rng(args.seed + 1)
        t0 = time.perf_counter()
        losses = [sup.train_path(draw(rng, free, pools), 1) for _ in range(args.steps)]
        seconds = time.perf_counter() - t0
        probes = [sup.score(draw(rng, free, pools)) for _ in range(4)]
        row = {"variant": variant, "loss_first50": float(np.mean(losses[:50])),
               "loss_last50": float(np.mean(losses[-50:])), "probe_accuracy": probes, "seconds": seconds}
        results["variants"].append(row)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(f"{variant:>10}: loss {row['loss_first50']:.3f} -> {row['loss_last50']:.3f}, held-out accuracy of 4 "
              f"paths {np.round(probes, 3).tolist()} ({seconds:.0f} s)", flush=True)
    results["load_avg_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
