"""`mnas scale`: flag checks (exit 2, one line), the fixed-phi path, the coefficient search (resumable)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mnas import zoo
from mnas.archfile import load_arch_file
from mnas.cli import main
from mnas.scaling import scale

TINY = ["--arch", "mnasnet-small", "--resolution", "32", "--num-classes", "10"]


def run_cli(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, needle", [
    (["--phi", "-1"], "allow-downscale"),
    (["--phi", "nan"], "finite"),
    (["--phi", "1", "--alpha", "0.9"], "alpha must be a number >= 1"),
    (["--phi", "1", "--gamma", "0"], "gamma"),
    (["--phi", "1", "--target-ms", "10", "--table", "x.json"], "conflict"),
    ([], "give --phi"),
    (["--target-ms", "10"], "--device ID or --table FILE"),
    (["--target-ms", "10,abc", "--device", "host"], "not a number"),
    (["--target-ms", "-5", "--device", "host"], "> 0"),
    (["--target-ms", "10", "--table", "/nonexistent/table.json"], "does not exist"),
    (["search", "--phi", "1"], "does not apply"),
    (["search", "--target-ms", "5", "--device", "host"], "do not apply"),
    (["compare", "--device", "host"], "needs --target-ms"),
    (["--phi", "1", "--resolution-multiple", "0"], "resolution-multiple"),
    (["--phi", "1", "--epochs", "0"], "--epochs"),
    (["--phi", "-9", "--allow-downscale"], "floor"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, needle):
    rc, out, err = run_cli(capsys, ["scale", *TINY, "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert needle in lines[0]
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_unknown_arch_is_exit_2(capsys, tmp_path):
    rc, _, err = run_cli(capsys, ["scale", "--arch", "no-such-net", "--phi", "1", "--out", str(tmp_path)])
    assert rc == 2 and "unknown model 'no-such-net'" in err


def test_unknown_action_is_an_argparse_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["scale", "grow", *TINY, "--phi", "1", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_fixed_phi_json_and_arch_file(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, ["scale", "--arch", "efficientnet-b0", "--phi", "2", "--no-export",
                                  "--out", str(tmp_path), "--json"])
    assert rc == 0
    payload = json.loads(out)
    (model,) = payload["models"]
    for key in ("name", "phi", "depth", "width", "resolution", "params", "macs", "latency_ms", "latency_measured"):
        assert key in model
    expected = scale(zoo.get("efficientnet-b0"), 1.2, 1.1, 1.15, 2)
    assert model["phi"] == 2.0 and model["resolution"] == expected.resolution
    assert model["depth"] == pytest.approx(1.2 ** 2) and model["width"] == pytest.approx(1.1 ** 2)
    assert model["latency_ms"] is None and model["latency_measured"] is False
    saved = load_arch_file(model["arch_file"])
    assert saved.replace(name="") == expected.replace(name="")
    assert (tmp_path / "family.csv").read_text().count("\n") == 2
    assert (tmp_path / "family.md").exists()


def test_plain_and_family_action_are_the_same(capsys, tmp_path):
    argv = [*TINY, "--phi", "0.5", "--no-export", "--json"]
    _, plain, _ = run_cli(capsys, ["scale", *argv, "--out", str(tmp_path / "a")])
    _, named, _ = run_cli(capsys, ["scale", "family", *argv, "--out", str(tmp_path / "b")])
    strip = lambda m: {k: v for k, v in m.items() if k != "arch_file"}  # noqa: E731
    assert [strip(m) for m in json.loads(plain)["models"]] == [strip(m) for m in json.loads(named)["models"]]


def test_lite_and_downscale(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, ["scale", "--arch", "efficientnet-b0", "--phi", "-1", "--allow-downscale", "--lite",
                                  "--no-export", "--out", str(tmp_path), "--json"])
    assert rc == 0
    (model,) = json.loads(out)["models"]
    saved = load_arch_file(model["arch_file"])
    assert saved.resolution < 224 and saved.width < 1 and saved.depth < 1
    assert not saved.scale_stem and not saved.scale_head and saved.fix_first_last_repeats


@pytest.mark.slow
def test_fixed_phi_exports_tflite_at_the_scaled_resolution(capsys, tmp_path):
    from mnas.export import load_interpreter

    rc, out, _ = run_cli(capsys, ["scale", *TINY, "--phi", "1", "--out", str(tmp_path), "--json"])
    assert rc == 0
    (model,) = json.loads(out)["models"]
    assert model["resolution"] == 40  # 32 * 1.15 = 36.8 -> nearest multiple of 8
    interpreter = load_interpreter(model["tflite"])
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 40, 40, 3]
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 10]


@pytest.mark.slow
def test_coefficient_search_trains_stores_and_resumes(capsys, tmp_path):
    argv = ["scale", "search", *TINY, "--max-candidates", "1", "--train-examples", "128", "--val-examples", "64",
            "--proxy-resolution", "32", "--batch-size", "64", "--out", str(tmp_path), "--json"]
    rc, out, _ = run_cli(capsys, argv)
    assert rc == 0
    payload = json.loads(out)
    rows = payload["candidates"]
    assert len(rows) == 2 and rows[0]["reference"] and rows[0]["phi"] == 0.0
    for r in rows[1:]:
        assert abs(r["alpha"] * r["beta"] ** 2 * r["gamma"] ** 2 - 2) <= 0.1 + 1e-9
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["proxy_resolution"] == r["resolution"]  # base proxy = base resolution (32)
    assert payload["best_accuracy"] == max(r["accuracy"] for r in rows[1:])
    for name in ("search.csv", "search.md", "search.png"):
        assert (tmp_path / name).stat().st_size > 0
    db = sqlite3.connect(tmp_path / "scale-search.sqlite")
    assert db.execute("SELECT COUNT(*) FROM cache WHERE namespace='scale-search'").fetchone()[0] == 2
    db.close()
    # the same command again resumes: nothing is retrained, the same table comes back
    rc, again, _ = run_cli(capsys, argv)
    assert rc == 0 and json.loads(again)["candidates"] == rows
    # other settings in the same folder: refused, one line
    rc, _, err = run_cli(capsys, [*argv[:-3], "--epochs", "2", "--out", str(tmp_path)])
    assert rc == 2 and "cannot resume" in err


@pytest.mark.slow
def test_target_below_the_base_on_the_host_is_exit_2(capsys, tmp_path):
    rc, out, err = run_cli(capsys, ["scale", *TINY, "--target-ms", "0.0001", "--device", "host", "--no-export",
                                    "--statistic", "p5", "--out", str(tmp_path)])
    assert rc == 2 and out == ""
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: latency target 0.0001 ms is below the base model's latency")
    assert "--allow-downscale" in line


@pytest.mark.slow
def test_family_on_the_host_meets_targets_from_below(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, ["scale", *TINY, "--target-ms", "1,0.3", "--device", "host", "--max-phi", "3",
                                  "--no-export", "--name", "tiny", "--out", str(tmp_path), "--json"])
    assert rc == 0
    payload = json.loads(out)
    models = payload["models"]
    assert [m["name"] for m in models] == ["tiny-d0", "tiny-d1"]
    assert [m["target_ms"] for m in models] == [0.3, 1.0]
    assert models[0]["phi"] <= models[1]["phi"] <= 3.0
    for m in models:
        assert m["solve_ms"] <= m["target_ms"]  # chosen from below on the solve's own measurements
        assert m["latency_measured"] is True and m["measured_ms"] > 0  # re-measured independently
        assert load_arch_file(m["arch_file"]).resolution == m["resolution"]
    assert payload["latency_source"] == "device host (median)"
    assert (tmp_path / "scale.sqlite").exists()  # device timings kept for a rerun


def test_compare_summary_counts_wins_per_baseline():
    from mnas.scaling_jobs import compare_summary

    acc = {("compound", 5.0): 0.8, ("compound", 9.0): 0.9, ("depth-only", 5.0): 0.7, ("depth-only", 9.0): 0.95,
           ("width-only", 5.0): 0.8, ("width-only", 9.0): 0.6}
    rows = [{"rule": rule, "target_ms": t, "accuracy": a} for (rule, t), a in acc.items()]
    summary = compare_summary(rows)
    assert summary["compound_wins"] == {"depth-only": 1, "width-only": 2}
    assert summary["mean_accuracy"]["compound"] == pytest.approx(0.85)
    assert any(line.startswith("compound >= depth-only: 1/2") for line in summary["lines"])


def test_the_library_call_is_what_the_command_prints(capsys, tmp_path):
    """`mnas scale` only turns flags into a FamilyConfig: the library gives the same models and the same lines."""
    from mnas.scaling_jobs import FamilyConfig, ScalingFlags, run_family

    rc, text, _ = run_cli(capsys, ["scale", *TINY, "--phi", "0.5", "--lite", "--no-export",
                                   "--out", str(tmp_path / "c")])
    assert rc == 0
    flags = ScalingFlags(lite=True, resolution=32, num_classes=10)
    payload, lines = run_family(FamilyConfig("mnasnet-small", tmp_path / "l", flags, phi=0.5, export=False))
    assert lines == text.splitlines() and len(lines) == 1
    saved = json.loads((tmp_path / "c" / "family.json").read_text())
    strip = lambda m: {k: v for k, v in m.items() if k != "arch_file"}  # noqa: E731
    assert [strip(m) for m in payload["models"]] == [strip(m) for m in saved["models"]]
    assert payload["models"][0]["phi"] == 0.5 and (tmp_path / "l" / "family.csv").exists()
