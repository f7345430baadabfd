"""A latency table over a compound-scaled family (`mnas table build --scale-arch`), used by `mnas scale --table`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mnas import zoo
from mnas.cli import main
from mnas.scaling import ROUNDING_MODES, Coefficients, compound_scaler, network_key, reachable_specs

TINY = ["--resolution", "32", "--num-classes", "10", "--lite", "--max-phi", "0.3"]


def run_cli(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("repeats_rounding", ["ceil", "nearest"])
def test_reachable_specs_are_every_network_a_dense_sweep_finds(repeats_rounding):
    base = zoo.get("efficientnet-lite0", resolution=64, num_classes=10).replace(repeats_rounding=repeats_rounding)
    make = compound_scaler(base, Coefficients(1.2, 1.1, 1.15), lite=True)
    found = reachable_specs(make, 0.0, 1.0)
    keys = [network_key(s) for _, _, s in found]
    assert len(keys) == len(set(keys)) and keys[0] == network_key(base)
    assert [phi for phi, _, _ in found] == sorted(phi for phi, _, _ in found)
    dense = {network_key(make(phi, r)) for phi in np.linspace(0.0, 1.0, 4001) for r in ROUNDING_MODES}
    assert dense <= set(keys)
    for phi, rounding, spec in found:  # each entry is what make gives at its phi
        assert network_key(make(phi, rounding)) == network_key(spec)


@pytest.mark.parametrize("argv, needle", [
    ([], "give one of --space SPACE or --scale-arch"),
    (["--space", "mnasnet", "--scale-arch", "efficientnet-lite0"], "give one of"),
    (["--scale-arch", "efficientnet-lite0"], "needs --max-phi"),
    (["--space", "mnasnet", "--max-phi", "1"], "--max-phi applies only with --scale-arch"),
    (["--space", "mnasnet", "--lite"], "--lite applies only"),
    (["--scale-arch", "efficientnet-lite0", "--max-phi", "0"], "--max-phi must be > 0"),
    (["--scale-arch", "efficientnet-lite0", "--max-phi", "1", "--alpha", "0.5"], "alpha must be a number >= 1"),
    (["--scale-arch", "no-such-net", "--max-phi", "1"], "unknown model"),
])
def test_table_build_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, needle):
    rc, out, err = run_cli(capsys, ["table", "build", "--device", "host", "--out", str(tmp_path / "t.db"), *argv])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (tmp_path / "t.db").exists()


@pytest.mark.slow
def test_table_over_a_scaled_family_serves_scale_end_to_end(capsys, tmp_path):
    table = tmp_path / "lite.db"
    rc, out, _ = run_cli(capsys, ["table", "build", "--device", "host", "--scale-arch", "efficientnet-lite0", *TINY,
                                  "--calibrate", "3", "--statistic", "p5", "--no-progress", "--out", str(table),
                                  "--json"])
    assert rc == 0
    report = json.loads(out)
    assert report["networks"] >= 3 and report["measured"] == report["total_ops"] + 1  # + the overhead model
    assert len(report["calibration_points"]) == 3
    # a rerun resumes: nothing is measured again
    rc, out, _ = run_cli(capsys, ["table", "build", "--device", "host", "--scale-arch", "efficientnet-lite0", *TINY,
                                  "--calibrate", "0", "--statistic", "p5", "--no-progress", "--out", str(table),
                                  "--json"])
    assert rc == 0 and json.loads(out)["measured"] == 0

    # predicted only: the solve runs on the table. Targets relative to the table's base latency (host timings
    # move with load: a fixed 0.2 ms fell below a 0.205 ms base on a busy CI machine)
    from latency.predictor import Predictor
    from mnas.archfile import resolve_arch
    from mnas.latency_sources import TableLatency

    base = resolve_arch("efficientnet-lite0", resolution=32, num_classes=10)
    base_ms = float(TableLatency(Predictor.load(table)).latency_ms([base])[0])
    targets = f"{base_ms * 1.2:.4f},{base_ms * 1.6:.4f}"  # margin: the device part re-solves on measurements
    scale = ["scale", "--arch", "efficientnet-lite0", *TINY, "--target-ms", targets, "--no-export", "--json"]
    rc, out, err = run_cli(capsys, [*scale, "--table", str(table), "--out", str(tmp_path / "p")])
    assert rc == 0, err
    for m in json.loads(out)["models"]:
        assert m["latency_measured"] is False and m["predicted_ms"] == m["latency_ms"] == m["solve_ms"]
        assert m["predicted_ms"] <= m["target_ms"]
    # table and device: the device solves, the table's prediction is reported beside the measurement
    rc, out, err = run_cli(capsys, [*scale, "--table", str(table), "--device", "host", "--statistic", "p5",
                                    "--out", str(tmp_path / "pm")])
    assert rc == 0, err
    rows = list(csv.DictReader(open(tmp_path / "pm" / "family.csv")))
    assert len(rows) == 2
    for row in rows:
        assert float(row["predicted_ms"]) > 0 and float(row["measured_ms"]) > 0
        assert row["latency_measured"] == "True"

    # a family beyond the table's max phi: refused, one line, with how to build the right table
    rc, out, err = run_cli(capsys, ["scale", "--arch", "efficientnet-lite0", *TINY[:-1], "3", "--target-ms",
                                    f"{base_ms * 1.2:.4f},5",
                                    "--table", str(table), "--no-export", "--out", str(tmp_path / "x")])
    assert rc == 2 and out == ""
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: latency table") and "mnas table build --device ID --scale-arch" in line
