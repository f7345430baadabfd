"""Table build on the real host device (LiteRT): every op stored as it comes, resumable, calibrated,
validated; and the `mnas table` / `mnas predict` command lines. Tiny models (resolution 32-64)."""

from __future__ import annotations

import json

import pytest

from devices.base import ProfileOptions
from devices.host import HostDevice
from latency.opkeys import op_keys, overhead_key
from latency.predictor import Predictor
from latency.store import TableStore
from latency.table_builder import build_table, calibrate, ops_of_space, ops_of_specs, table_fingerprint_key
from latency.validate import stored_calibration_models, validate, write_scatter
from mnas import spaces, zoo
from mnas.errors import UserError

FAST = ProfileOptions(warmup_runs=1, runs=5, max_rounds=1)


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def device():
    with HostDevice() as dev:
        yield dev


@pytest.fixture(scope="module")
def specs():
    return [zoo.get(name, resolution=32, num_classes=10) for name in ("mnasnet-small", "mobilenetv3-small")]


@pytest.fixture(scope="module")
def built(tmp_path_factory, device, specs):
    """A host table of the two specs' ops, built once (interrupted after 4 ops, then resumed)."""
    path = tmp_path_factory.mktemp("table") / "host.db"
    ops = ops_of_specs(specs)
    seen: list[str] = []

    def stop_after_four(key, profile):
        seen.append(key)
        if len(seen) == 4:
            raise Interrupt

    with TableStore.open(path, create=True) as store:
        with pytest.raises(Interrupt):
            build_table(device, store, ops, op_options=FAST, progress=False, on_op=stop_after_four)
        first = set(store.op_keys(table_fingerprint_key(device, 1)))
        resumed: list[str] = []
        report = build_table(device, store, ops, op_options=FAST, progress=False,
                             on_op=lambda key, profile: resumed.append(key),
                             description={"space": "mnasnet", "resolution": 32})
    return path, ops, seen, first, resumed, report


def test_interrupted_build_keeps_ops_and_resumes_without_remeasuring(built):
    path, ops, seen, first, resumed, report = built
    assert first == set(seen)  # every op measured before the interruption was stored
    assert seen[0] == overhead_key()
    assert not set(resumed) & first  # nothing measured twice
    assert set(resumed) | first == set(ops) | {overhead_key()}
    assert report.total_ops == len(ops) and report.skipped == len(first) - 1
    with TableStore.open(path) as store:
        entries = store.entries(report.fingerprint_key)
    assert all(e.count == FAST.runs and e.median_ms > 0 for e in entries.values())
    assert entries[overhead_key()].median_ms < min(e.median_ms for k, e in entries.items() if k != overhead_key()) * 5


def test_calibrate_and_validate_on_the_host(built, device, specs, tmp_path):
    path, *_ , report = built
    with TableStore.open(path) as store:
        calibration, points = calibrate(device, store, report.fingerprint_key, specs, progress=False)
    assert calibration.n == 2 and calibration.slope > 0
    assert [p[0] for p in points] == [s.name for s in specs]
    predictor = Predictor.load(path, device_key=table_fingerprint_key(device, 1))
    assert predictor.calibration == calibration
    with TableStore.open(path) as store:
        kept = stored_calibration_models(store.calibration(report.fingerprint_key), 1)
    assert [spec for spec, _ in kept] == specs[:1] and kept[0][1] == points[0][2]  # the arch round-trips
    result = validate(device, predictor, specs, progress=False, drift_models=kept)
    stats = result.to_dict()
    assert stats["n"] == 2 and 0 <= stats["within_10pct"] <= 1 and stats["rmspe"] >= 0
    assert -0.9 < stats["device_drift"] < 9  # the same model on the same device, re-measured: a ratio, not junk
    assert all(m["measured_ms"] > 0 and m["predicted_ms"] > 0 for m in stats["models"])
    png = write_scatter(result, tmp_path / "scatter.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_space_ops_are_the_distinct_layer_keys():
    space = spaces.get("mnasnet")
    ops = ops_of_space(space, 64)
    sample_keys = set(op_keys(space.to_spec(space.sample_random(__import__("numpy").random.default_rng(0)),
                                            resolution=64)))
    assert sample_keys <= set(ops)


# -- command lines --------------------------------------------------------------------------------
def test_cli_import_show_predict_export(run_cli, tmp_path, built, specs):
    from latency.public_luts import default_luts_dir

    path = built[0]
    show = run_cli("table", "show", path, "--json")
    assert show.returncode == 0, show.stderr
    devices = json.loads(show.stdout)["devices"]
    assert devices[0]["entries"] == len(built[1]) + 1 and devices[0]["overhead_ms"] > 0
    out = run_cli("table", "export", path, "--csv", tmp_path / "t.csv")
    assert out.returncode == 0 and (tmp_path / "t.csv").read_text().startswith("fingerprint_key,op_key")
    luts = default_luts_dir() / "ofa_note10"
    assert luts.is_dir(), f"published tables not at {luts} (shipped in data/public_luts)"
    imported = run_cli("table", "import", luts / "224_lookup_table.yaml", "--out", tmp_path / "n10.db")
    assert imported.returncode == 0, imported.stderr
    net = next((default_luts_dir() / "ofa_note10_specialized_nets").glob("note10_lat-30ms*")) / "net.config"
    pred = run_cli("predict", "--table", tmp_path / "n10.db", "--arch", net, "--json")
    assert pred.returncode == 0, pred.stderr
    assert abs(json.loads(pred.stdout)["latency_ms"] - 29.97) < 0.01
    refused = run_cli("predict", "--table", tmp_path / "n10.db", "--arch", "mnasnet-a1")
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    assert len(refused.stderr.splitlines()) == 1
    assert "Conv-input:224x224x3-output:112x112x32-act:relu" in refused.stderr


def test_cli_bad_input_is_one_line_exit_2(run_cli, tmp_path, built):
    bad = tmp_path / "bad.db"
    bad.write_text("not a table")
    cases = [
        ("table", "show", bad),
        ("table", "build", "--device", "host", "--space", "nospace", "--out", tmp_path / "x.db"),
        ("predict", "--table", bad, "--arch", "mnasnet-a1"),
        ("table", "validate", "--device", "host", "--table", tmp_path / "other.db", "--samples", "1",
         "--space", "mnasnet"),
    ]
    with TableStore.open(tmp_path / "other.db", create=True) as store:
        store.add_fingerprint("host:another-cpu:000000000000:t1", {"kind": "host", "model": "another-cpu"})
        store.put("host:another-cpu:000000000000:t1", "op", 1, 1.0)
    messages = ["not an mnas latency table", "unknown search space 'nospace'", "not an mnas latency table",
                "not on this device"]
    for args, message in zip(cases, messages):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


@pytest.mark.slow
def test_cli_validate_plot(run_cli, tmp_path):
    # A whole tiny build + validate through the CLI: the ofa-mbv3 space at resolution 32 has 96 cheap ops.
    table = tmp_path / "v.db"
    build = run_cli("table", "build", "--device", "host", "--space", "ofa-mbv3", "--resolution", "32",
                    "--out", table, "--calibrate", "2", "--no-progress", "--json", timeout=600)
    assert build.returncode == 0, build.stderr
    report = json.loads(build.stdout)
    assert report["total_ops"] == report["measured"] - 1 and report["calibration"]["n"] == 2
    result = run_cli("table", "validate", "--device", "host", "--table", table, "--samples", "3", "--json",
                     "--plot", tmp_path / "v.png", "--no-progress", timeout=600)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["n"] == 3 and {"within_5pct", "within_10pct", "rmspe"} <= set(stats)
    assert isinstance(stats["device_drift"], float)  # the table kept its 2 calibration models and re-measured them
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


def test_p5_statistic_is_recorded_and_summed(tmp_path, device, specs):
    ops = dict(list(ops_of_specs(specs[:1]).items())[:3])
    with TableStore.open(tmp_path / "p5.db", create=True) as store:
        report = build_table(device, store, ops, op_options=FAST, progress=False, statistic="p5")
        entries = store.entries(report.fingerprint_key)
        with pytest.raises(UserError, match="sums the p5"):
            build_table(device, store, ops, op_options=FAST, progress=False, statistic="median")
    predictor = Predictor.load(tmp_path / "p5.db")
    assert predictor.statistic == "p5"
    assert predictor.values == {k: e.extra["p5_ms"] for k, e in entries.items() if k != overhead_key()}
    assert all(e.extra["p5_ms"] <= e.median_ms for e in entries.values())
