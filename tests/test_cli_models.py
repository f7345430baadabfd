"""`mnas models | arch | export` through the real console script, and architecture files in process."""

from __future__ import annotations

import json
import time

import pytest

from latency.public_luts import default_luts_dir
from mnas import costs, zoo
from mnas.archfile import load_arch_file, resolve_arch, save_arch_file
from mnas.blocks import BlockStringError
from mnas.errors import UserError

OFA_NETS = default_luts_dir() / "ofa_note10_specialized_nets"  # shipped in the repository's data/public_luts


def _one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_models_json_is_fast_and_complete(run_cli) -> None:
    start = time.perf_counter()
    result = run_cli("models", "--json")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == zoo.names() and len(rows) == 22
    for row in rows:
        spec = zoo.get(row["name"])
        assert row == {"name": spec.name, "params": costs.count_params(spec), "macs": costs.count_macs(spec),
                       "resolution": spec.resolution}
    assert elapsed < 5.0, f"mnas models --json took {elapsed:.1f} s"


def test_models_table_shows_published(run_cli) -> None:
    result = run_cli("models")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("mnasnet-a1 "))
    assert line.split()[1:] == ["224", "3.89", "3.9", "311.6", "312"]


def test_arch_prints_blocks_and_round_trips_through_a_file(run_cli, tmp_path) -> None:
    result = run_cli("arch", "mixnet-s")
    assert result.returncode == 0
    assert "r1_k3.5.7.9.11_a1_p1_s22_e6_i120_o200_se0.5_sw" in result.stdout
    doc = json.loads(run_cli("arch", "mixnet-s", "--json").stdout)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc))
    again = run_cli("arch", str(path), "--json", "--resolution", "160")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {**doc, "resolution": 160}


@pytest.mark.parametrize("case", ["bad_block", "unknown_model", "missing_file", "low_resolution", "bad_json",
                                  "unknown_key"])
def test_cli_errors_are_one_line_exit_2(run_cli, tmp_path, case: str) -> None:
    bad_block = tmp_path / "bad.json"
    bad_block.write_text(json.dumps({"name": "bad", "blocks": ["r1_k3_s11_e1_i32_o16", "r2_k4_s22_e6_i16_o24"]}))
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"name": "x", "blocks": [')
    unknown_key = tmp_path / "typo.yaml"
    unknown_key.write_text("name: t\nblocks: [r1_k3_s11_e1_i32_o16]\nresolutoin: 128\n")
    if case == "bad_block":
        _one_line_error(run_cli("arch", bad_block), "r2_k4_s22_e6_i16_o24", "bad.json")
        _one_line_error(run_cli("export", bad_block, "--out", tmp_path / "x.tflite"), "r2_k4_s22_e6_i16_o24")
    elif case == "unknown_model":
        _one_line_error(run_cli("export", "mnasnet-z9", "--out", tmp_path / "x.tflite"), "mnasnet-z9",
                        "mnasnet-a1")
    elif case == "missing_file":
        _one_line_error(run_cli("arch", tmp_path / "nope.yaml"), "not found", "nope.yaml")
    elif case == "low_resolution":
        _one_line_error(run_cli("export", "mnasnet-a1", "--out", tmp_path / "x.tflite", "--resolution", "31"),
                        "resolution", "31")
    elif case == "bad_json":
        _one_line_error(run_cli("arch", bad_json), "malformed JSON", "broken.json")
    else:
        _one_line_error(run_cli("arch", unknown_key), "resolutoin")
    assert not (tmp_path / "x.tflite").exists()


@pytest.mark.slow
def test_export_command_writes_a_runnable_file(run_cli, tmp_path) -> None:
    out = tmp_path / "sub" / "m.tflite"
    result = run_cli("export", "mnasnet-small", "--out", out, "--resolution", "32", "--num-classes", "10",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # converter chatter silenced
    assert result.stdout.startswith(f"wrote {out}")
    from mnas.export import run_tflite  # imports LiteRT only (no TF)

    import numpy as np

    assert run_tflite(out, np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 10)


# -- architecture files in process ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_arch_file_round_trip(tmp_path, suffix: str) -> None:
    spec = zoo.get("mobilenetv3-large", num_classes=10, resolution=192)
    path = save_arch_file(spec, tmp_path / f"v3{suffix}")
    assert load_arch_file(path) == spec
    assert resolve_arch(str(path), resolution=128) == spec.replace(resolution=128)


def test_arch_file_defaults_and_errors(tmp_path) -> None:
    minimal = tmp_path / "m.yaml"
    minimal.write_text("name: tiny\nblocks:\n  - r1_k3_s11_e1_i32_o16_noskip\n  - r2_k5_s22_e6_i16_o24\n")
    spec = load_arch_file(minimal)
    assert spec.block_strings() == ["r1_k3_s11_e1_i32_o16_noskip", "r2_k5_s22_e6_i16_o24"]
    assert spec.resolution == 224 and spec.head_filters == 1280
    wrong_type = tmp_path / "w.json"
    wrong_type.write_text(json.dumps({"name": "w", "blocks": ["r1_k3_s11_e1_i32_o16"], "resolution": "big"}))
    with pytest.raises(UserError, match="'resolution' must be int"):
        load_arch_file(wrong_type)
    no_blocks = tmp_path / "n.json"
    no_blocks.write_text(json.dumps({"name": "n", "blocks": []}))
    with pytest.raises(UserError, match="non-empty list of block strings"):
        load_arch_file(no_blocks)
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"name": "b", "blocks": ["r1_k3_s11_e1_i32"]}))
    with pytest.raises(BlockStringError, match="missing 'o' token"):
        resolve_arch(str(bad))
    with pytest.raises(UserError, match="unknown model 'efficientnet-b9'"):
        resolve_arch("efficientnet-b9")


def test_ofa_net_config_resolves() -> None:
    nets = sorted(OFA_NETS.glob("*/net.config"))
    assert nets, f"no OFA specialised nets under {OFA_NETS}"
    net = nets[0]
    spec = resolve_arch(str(net))
    assert spec.se_style == "mobilenetv3" and spec.final_filters > 0
    assert costs.count_params(spec) > 1_000_000
