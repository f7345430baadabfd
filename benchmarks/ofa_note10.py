"""OFA Note10 exactness: our predictor on OFA's published Note10 tables vs the figures OFA's code gives.

    .venv/bin/python benchmarks/ofa_note10.py [--luts DIR] [--json]

Imports the five ofa_note10/{160..224}_lookup_table.yaml files into a temporary table, reads the 8
specialised nets' net.config (mnas.ofa_config), and predicts each at 224 and at its run.config resolution.
OFA's own table code sums the 224 table's means for the 30, 41 and 50 ms nets to 29.97, 40.25, 50.34 ms;
the other nets use a stem width (16) or a resolution (220, 260) the tables do not cover, and must be
refused with an error naming the first missing key.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.predictor import Predictor  # noqa: E402
from latency.public_luts import default_luts_dir, import_yaml  # noqa: E402
from latency.store import TableStore  # noqa: E402
from mnas.errors import UserError  # noqa: E402
from mnas.ofa_config import load_ofa_net_config  # noqa: E402

OFA_FIGURES = {"note10_lat-30ms": 29.97, "note10_lat-41ms": 40.25, "note10_lat-50ms": 50.34}
NOTE10 = "published:Samsung_Galaxy_Note10:ofa-note10"


def _predict(table: Path, spec) -> tuple[float | None, str | None]:
    try:
        return Predictor.load(table, fingerprint_key=NOTE10, resolution=spec.resolution).predict(spec), None
    except UserError as err:
        return None, str(err)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--luts", type=Path, default=default_luts_dir())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "note10.db"
        with TableStore.open(table, create=True) as store:
            for f in sorted((args.luts / "ofa_note10").glob("*_lookup_table.yaml")):
                import_yaml(f, store)
        for folder in sorted((args.luts / "ofa_note10_specialized_nets").iterdir(),
                             key=lambda p: int(p.name.split("_lat-")[1].split("ms")[0])):
            own = load_ofa_net_config(folder / "net.config")
            at224, err224 = _predict(table, own.replace(resolution=224))
            at_own, err_own = _predict(table, own)
            tag = folder.name.split("_top1")[0]
            rows.append({"net": folder.name, "stem": own.stem_channels, "run_config_resolution": own.resolution,
                         "ofa_figure_224_ms": OFA_FIGURES.get(tag), "predicted_224_ms": at224,
                         "abs_diff_ms": abs(at224 - OFA_FIGURES[tag]) if tag in OFA_FIGURES and at224 else None,
                         "refusal_224": err224, "predicted_own_resolution_ms": at_own, "refusal_own": err_own})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'net':40s} {'stem':>4s} {'res':>4s} {'OFA@224':>8s} {'ours@224':>9s} {'|diff|':>7s}  ours@own res")
    for r in rows:
        ours = f"{r['predicted_224_ms']:9.3f}" if r["predicted_224_ms"] is not None else "  refused"
        ofa = f"{r['ofa_figure_224_ms']:8.2f}" if r["ofa_figure_224_ms"] else "       -"
        diff = f"{r['abs_diff_ms']:7.4f}" if r["abs_diff_ms"] is not None else "      -"
        own = f"{r['predicted_own_resolution_ms']:.3f}" if r["predicted_own_resolution_ms"] is not None else "refused"
        print(f"{r['net']:40s} {r['stem']:4d} {r['run_config_resolution']:4d} {ofa} {ours} {diff}  {own}")
    for r in rows:
        if r["refusal_224"]:
            print(f"  {r['net']} @224: {r['refusal_224'].split(';')[0]}")
        if r["refusal_own"] and r["run_config_resolution"] != 224:
            print(f"  {r['net']} @{r['run_config_resolution']}: {r['refusal_own'].split(';')[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
