"""Does the default search beat hand design at equal latency? `make search`'s configuration over several seeds.

    .venv/bin/python benchmarks/search_wins.py [--seeds 0,1,2] [--out benchmarks/results/search_wins] [-- EXTRA]

Runs `mnas search --device host|host-cpu --seed S --out OUT/seedS --resume --json` (every other setting the CLI default,
as `make search`; EXTRA flags after `--` are appended) for each seed, one after the other, and collects each
run's comparison: the best child within the target and the width-matched baselines after the reference
training (mean and std over its seeds), the margin over the best baseline against twice the pooled seed std,
the band figures and the wall time. Each run is resumable, so re-running the script continues where it stopped;
a seed whose OUT/seedS/summary.json exists is finished and only collected.
Writes OUT/summary.json and OUT/summary.md (one table per seed, then the tally).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_seed(seed: int, out: Path, extra: list[str], device: str = "host") -> dict:
    if (out / "summary.json").exists():  # finished: its run may predate a settings change and not resume
        return json.loads((out / "summary.json").read_text())
    mnas = Path(sys.executable).parent / "mnas"
    cmd = [str(mnas), "search", "--device", device, "--seed", str(seed), "--out", str(out), "--resume", "--json",
           "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    (out / "stderr.log").parent.mkdir(parents=True, exist_ok=True)
    (out / "stderr.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(proc.stdout)
    summary["wall_s_this_call"] = wall
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def table(seed: int, summary: dict) -> list[str]:
    comp = summary.get("comparison")
    device, target = next(iter(summary["targets_ms"].items()))
    lines = [f"### seed {seed}: target {target:.2f} ms", ""]
    if not comp:
        return lines + ["no child within the target: no comparison", ""]
    ref = comp["reference_training"]
    lines += [f"reference training {ref['epochs']} epochs, seeds {ref['seeds']}", "",
              f"| model | width | {device} ms | proxy acc | reference acc (mean +- std) |", "|---|---|---|---|---|"]
    best = summary["best"]
    lines.append(f"| best child `{best['name']}` | - | {best['latency_ms'][device]:.2f} | {best['accuracy']:.3f} | "
                 f"{comp['best']['mean']:.4f} +- {comp['best']['std']:.4f} |")
    for b in comp["baselines"]:
        if "reference" in b:
            lines.append(f"| {b['name']} | {b['width']:g} | {b['latency_ms'][device]:.2f} | - | "
                         f"{b['reference']['mean']:.4f} +- {b['reference']['std']:.4f} |")
        else:
            lines.append(f"| {b['name']} | not scalable | - | - | {b['note']} |")
    band = summary["band"]
    lines += ["", comp["verdict"]["line"], "",
              f"band: {band['trained_in_band']}/{band['trained']} trained children inside; {band['proposed']} "
              f"proposed, {band['rejected_predicted']} rejected by prediction, {band['skipped_children']} skipped "
              f"after measurement, {band['forced']} forced, filter {band['seconds']:.1f} s; "
              f"wall {summary['wall_s_this_call']:.0f} s", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="host",
                        help="host (make search's) or host-cpu: the same CPU timed by thread CPU time, for a shared "
                             "machine where other jobs' load moves wall-clock timings")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "search_wins")
    parser.add_argument("extra", nargs="*", help="flags appended to every `mnas search` call (after --)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results, lines = {}, ["# `make search` configuration over seeds", ""]
    for seed in seeds:
        summary = run_seed(seed, args.out / f"seed{seed}", args.extra, args.device)
        results[seed] = summary
        lines += table(seed, summary)
        print(f"seed {seed}: {summary.get('comparison', {}).get('verdict', {}).get('line', 'no comparison')}",
              file=sys.stderr, flush=True)
    wins = sum(bool(r.get("comparison", {}).get("verdict", {}).get("beat")) for r in results.values())
    lines += [f"**The search beat the best baseline by more than twice the pooled seed std in {wins} of "
              f"{len(seeds)} seeds.**", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text("\n".join(lines))
    (args.out / "summary.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
