"""`mnas search` from the command line: bad input is one line and exit 2; a tiny real search end to end
(table latency, real proxy training, TFLite export) and its resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnas.runstore import RunStore
from tests.test_search import note10_table


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return note10_table(tmp_path_factory.mktemp("luts"))


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--space", "nope", "--device", "host"], ["unknown search space 'nope'", "mnasnet"]),
    (["--space", "mnasnet", "--device", "host", "--controller", "rnn"], ["unknown controller 'rnn'", "ppo"]),
    (["--space", "mnasnet", "--device", "host", "--evaluator", "oracle"], ["unknown evaluator 'oracle'"]),
    (["--space", "mnasnet", "--device", "host", "--reward", "linear"], ["unknown reward 'linear'"]),
    (["--space", "mnasnet", "--device", "host", "--target-ms", "fast"], ["--target-ms must be numbers"]),
    (["--space", "mnasnet", "--device", "host", "--target-ms", "10,20"], ["2 value(s) but 1 device/table"]),
    (["--space", "mnasnet", "--device", "host", "--target-ms", "-3"], ["must be positive"]),
    (["--space", "mnasnet"], ["at least one --device ID or --table FILE"]),
    (["--space", "mnasnet", "--device", "host", "--controller", "evolution", "--controller-opt", "size=3"],
     ["has no option 'size'"]),
    (["--space", "mnasnet", "--device", "host", "--rank-children", "5"], ["use them with --evaluator supernet"]),
    (["--space", "mnasnet", "--device", "host", "--evaluator", "supernet", "--evaluator-opt", "warmup=0"],
     ["'warmup' is not an option of evaluator 'supernet'", "warmup_steps"]),
    (["--space", "mnasnet", "--device", "host", "--evaluator", "supernet", "--evaluator-opt", "warmup_steps"],
     ["--evaluator-opt must be KEY=VALUE"]),
    (["--space", "mnasnet", "--device", "host", "--evaluator", "supernet", "--rank-children", "4",
      "--retrain-epochs", "0"], ["--retrain-epochs must be >= 1"]),
])
def test_bad_names_and_targets_are_one_line_exit_2(run_cli, tmp_path, args, needles):
    _one_line_error(run_cli("search", *args, "--out", tmp_path / "run"), *needles)


def test_bad_data_is_one_line_exit_2(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(run_cli("search", "--space", "mnasnet", "--device", "host", "--data", tmp_path / "empty",
                            "--out", tmp_path / "run"), "no class sub-folders")
    (tmp_path / "one" / "cls").mkdir(parents=True)
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "one" / "cls" / f"{i}.png")
    _one_line_error(run_cli("search", "--space", "mnasnet", "--device", "host", "--data", tmp_path / "one",
                            "--out", tmp_path / "run"), "1 class(es)")


def test_target_below_the_smallest_model_is_one_line_exit_2(run_cli, tmp_path, table):
    proc = run_cli("search", "--space", "ofa-mbv3", "--table", table, "--target-ms", "1", "--out", tmp_path / "r")
    _one_line_error(proc, "target 1 ms", "below the smallest model of space 'ofa-mbv3'")


def test_band_out_of_reach_and_bad_band_are_one_line_exit_2(run_cli, tmp_path, table):
    base = ["search", "--space", "ofa-mbv3", "--table", table, "--out", tmp_path / "r"]
    _one_line_error(run_cli(*base, "--target-ms", "1000"), "latency band 850-1e+03 ms on table:",
                    "out of reach of space 'ofa-mbv3'", "its fastest network takes", "its slowest about")
    _one_line_error(run_cli(*base, "--target-ms", "40", "--band", "1,0.5"), "--band must be LOW,HIGH")
    _one_line_error(run_cli(*base, "--target-ms", "40", "--baselines", "resnet50"), "unknown baseline model")
    _one_line_error(run_cli(*base, "--target-ms", "40", "--reference-seeds", "0"), "--reference-seeds must be >= 1")


def test_default_target_needs_a_table_that_covers_the_reference(run_cli, tmp_path, table):
    proc = run_cli("search", "--space", "ofa-mbv3", "--table", table, "--out", tmp_path / "r")
    _one_line_error(proc, "no --target-ms given", "mnasnet-a1")


def test_existing_run_needs_resume_and_resume_needs_the_same_settings(run_cli, tmp_path, table):
    out = tmp_path / "run"
    with RunStore(out / "run.db") as store:
        store.start_or_resume({"space": "ofa-mbv3", "controller": "ppo"}, resume=False)
    base = ["search", "--space", "ofa-mbv3", "--table", table, "--target-ms", "40", "--out", out]
    _one_line_error(run_cli(*base), "already holds a run; pass --resume")
    _one_line_error(run_cli(*base, "--resume"), "cannot resume", "with other settings", "batch: stored None")


@pytest.mark.slow
def test_tiny_search_end_to_end_then_resume_adds_nothing(run_cli, tmp_path, table):
    out = tmp_path / "run"
    args = ["search", "--space", "ofa-mbv3", "--table", table, "--target-ms", "45", "--controller", "random",
            "--steps", "1", "--batch", "1", "--epochs", "1", "--train-size", "128", "--val-size", "64",
            "--out", out, "--json", "--no-progress"]
    proc = run_cli(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["counts"]["children"] == 1 and summary["counts"]["new_this_run"] == 1
    assert 0.0 <= summary["best"]["accuracy"] <= 1.0 and summary["best"]["measured"] == {f"table:{table}": False}
    for key in ("history", "pareto_png", "best_json", "best_tflite"):
        assert Path(summary["files"][key]).stat().st_size > 0, key
    assert Path(summary["files"]["best_tflite"]).read_bytes()[4:8] == b"TFL3"
    # the Note10 table covers ofa-mbv3's ops only: every default baseline is named, left out, and the run goes on
    comparison = summary["comparison"]
    assert [b["name"] for b in comparison["baselines"]] == ["mnasnet-a1", "mobilenetv3-large", "mobilenetv2-1.0"]
    assert all(b["width"] is None and "no latency for it" in b["note"] for b in comparison["baselines"])
    assert comparison["verdict"]["compared"] is False and len(comparison["best"]["accuracies"]) == 3
    assert proc.stderr.count("cannot be scaled down to the target") == 3
    again = run_cli(*args, "--resume", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["resumed"] and resumed["counts"]["new_this_run"] == 0
    assert resumed["best"] == summary["best"]


@pytest.mark.slow
def test_supernet_search_reports_the_retrained_pick_and_its_ranking(run_cli, tmp_path):
    """`--evaluator supernet` on the full mnasnet space: options reach the evaluator, the chosen child and the
    policy's argmax are retrained alone, and the Kendall tau of the search's reward signal is written (rank.csv,
    rank.png) and summarised."""
    out = tmp_path / "run"
    proc = run_cli("search", "--space", "mnasnet", "--device", "host", "--target-ms", "5", "--controller", "reinforce",
                   "--evaluator", "supernet", "--evaluator-opt", "steps_per_child=1", "--evaluator-opt", "val_batch=64",
                   "--steps", "2", "--batch", "1", "--train-size", "128", "--val-size", "64", "--rank-children", "2",
                   "--baselines", "none", "--band", "off",
                   "--no-export", "--out", out, "--json", "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["settings"]["evaluator"] == "supernet" and summary["counts"]["children"] == 2
    retrained = summary["one_shot"]["retrain"]
    assert 0.0 <= retrained["one_shot_accuracy"] <= 1.0 and 0.0 <= retrained["standalone_accuracy"] <= 1.0
    assert retrained["standalone_epochs"] == 1 and retrained["rule"] == "best one-shot reward"
    assert retrained["standalone_reward"] > 0 and set(retrained["latency_ms"]) == {"host"}
    # reinforce has a factorised policy: its most likely child (TuNAS's pick) is retrained and saved too
    argmax = summary["one_shot"]["argmax"]
    assert 0.0 <= argmax["standalone_accuracy"] <= 1.0 and argmax["latency_ms"]["host"] > 0
    assert json.loads(Path(summary["files"]["argmax_json"]).read_text())["blocks"]
    # one answer: the retrained child with the higher stand-alone reward, saved as picked.json
    pick = summary["one_shot"]["pick"]
    higher = max((retrained, argmax), key=lambda r: r["standalone_reward"])
    assert pick["rule"] == higher["rule"] and pick["standalone_reward"] == higher["standalone_reward"]
    picked = json.loads(Path(summary["files"]["picked_json"]).read_text())
    source = "best.json" if pick["rule"] == retrained["rule"] else "argmax.json"
    assert picked["blocks"] == json.loads((out / source).read_text())["blocks"]
    rank = summary["one_shot"]["rank"]
    assert rank["children"] == 2 and rank["finetune_steps"] == 1
    assert len(Path(summary["files"]["rank_csv"]).read_text().splitlines()) == 3
    assert Path(summary["files"]["rank_png"]).stat().st_size > 1000


@pytest.mark.slow
def test_default_search_on_the_host_compares_with_baselines_at_equal_latency(run_cli, tmp_path):
    """What `make search` runs (`mnas search --device host`, every other setting its default), on a tiny budget
    and data: children inside the band, the best child and the three baselines width-matched on the host and
    trained alike with several seeds, the verdict in the summary, best.json and pareto.png."""
    out = tmp_path / "run"
    proc = run_cli("search", "--device", "host", "--steps", "1", "--batch", "2", "--train-size", "128",
                   "--val-size", "64", "--reference-epochs", "1", "--reference-seeds", "2", "--baselines",
                   "mnasnet-a1,mobilenetv2-1.0", "--no-export", "--out", out, "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    band = summary["band"]
    assert band["band"] == {"low": 0.85, "high": 1.0} and band["bootstrap_measured"] == 12
    assert band["trained"] == 2 and band["share_in_band"] >= 0.5
    comparison = summary["comparison"]
    target = summary["targets_ms"]["host"]
    assert comparison["reference_training"] == {"epochs": 1, "seeds": [1000, 1001]}
    for b in comparison["baselines"]:
        assert b["width"] is not None and b["latency_ms"]["host"] <= target, b
        assert len(b["reference"]["accuracies"]) == 2
    assert comparison["verdict"]["compared"] and comparison["verdict"]["line"].startswith("search ")
    assert json.loads((out / "best.json").read_text())["search"]["comparison"]["verdict"] == comparison["verdict"]
    assert Path(summary["files"]["pareto_png"]).stat().st_size > 1000
    assert [b["name"] for b in comparison["baselines"]] == ["mnasnet-a1", "mobilenetv2-1.0"]
    assert "reference training 7/6" not in proc.stderr and "reference training 6/6" in proc.stderr
    # TF and LiteRT ran (training, conversion, host timing), and their C++ chatter stayed out of the user's way
    for chatter in ("oneDNN", "XNNPACK delegate", "absl::InitializeLog"):
        assert chatter not in proc.stderr, proc.stderr[:2000]


def test_make_search_runs_the_cli_defaults_that_the_tests_cover():
    """`make search` must pass no setting of its own beyond the device and the run directory, so what the CLI
    tests exercise with the defaults (test_default_search_on_the_host_...) is what a user runs."""
    import re
    import shlex

    recipe = re.search(r"^search:.*\n\t(.+)$", (Path(__file__).resolve().parents[1] / "Makefile").read_text(),
                       re.M).group(1)
    assert shlex.split(recipe)[1:] == ["search", "--device", "host", "--out", "runs/default", "--resume"]
