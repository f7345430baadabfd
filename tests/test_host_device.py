"""The host device: LiteRT on this CPU, same interface and statistics as a phone (real LiteRT runs)."""

from pathlib import Path

import pytest

from devices.base import Device, Profile, ProfileOptions
from devices.emulator.sample_model import tiny_cnn_tflite
from devices.host import HostDevice, to_celsius, thermal_zones
from mnas.errors import UserError

FAST = ProfileOptions(threads=1, warmup_runs=2, runs=15, max_rounds=3, target_rel_ci=0.5)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("host") / "tiny.tflite"
    path.write_bytes(tiny_cnn_tflite(resolution=32, channels=8, classes=10))
    return path


def test_host_profile_has_stats_and_fingerprint(tiny_model):
    device = HostDevice()
    assert isinstance(device, Device) and device.id == "host"
    profile = device.profile(tiny_model, FAST)
    assert isinstance(profile, Profile)
    assert 2 <= profile.rounds <= 3 and profile.runs == 15 * profile.rounds
    assert 0 < profile.p5_ms <= profile.median_ms <= profile.p95_ms
    assert profile.std_ms >= 0 and profile.mean_ms > 0 and len(profile.round_medians_ms) == profile.rounds
    assert profile.ops is None
    assert {"cv", "rel_ci95", "rounds_cv", "stable"} <= set(profile.noise)
    fp = profile.fingerprint
    assert fp.kind == "host" and fp.model and len(fp.binary_sha256) == 64
    assert fp.extra["versions"]["ai-edge-litert"]
    data = profile.to_dict()
    assert data["device"]["kind"] == "host" and data["device"]["key"].startswith("host:")


def test_host_op_profile_rows(tiny_model):
    profile = HostDevice().profile(tiny_model, ProfileOptions(runs=5, warmup_runs=1, max_rounds=1, op_profile=True))
    types = [op.node_type for op in profile.ops]
    assert "CONV_2D" in types and "DEPTHWISE_CONV_2D" in types
    assert all(op.avg_ms > 0 for op in profile.ops)
    assert profile.to_dict()["ops"][0]["node_type"] == types[0]


def test_corrupt_tflite_is_user_error(tmp_path, tiny_model):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(UserError, match="not a TFLite model"):
        HostDevice().profile(junk, FAST)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny_model.read_bytes()[:200])
    with pytest.raises(UserError):
        HostDevice().profile(truncated, FAST)
    with pytest.raises(UserError, match="not found"):
        HostDevice().profile(tmp_path / "missing.tflite", FAST)


def test_fingerprint_key_is_stable_across_calls():
    device = HostDevice()
    assert device.fingerprint().key == device.fingerprint().key


def test_thermal_zone_reading(tmp_path):
    for i, (kind, raw) in enumerate([("cpu", "47500"), ("battery", "31"), ("off", "-273000")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(raw + "\n")
    assert thermal_zones(tmp_path) == {"cpu": 47.5, "battery": 31.0}
    assert to_celsius("garbage") is None


def test_cli_profile_host_json(tiny_model, capsys):
    import json

    from mnas.cli import main

    code = main(["profile", "--device", "host", "--model", str(tiny_model), "--runs", "10", "--rounds", "2",
                 "--warmup", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"median_ms", "mean_ms", "std_ms", "p95_ms", "p5_ms", "runs", "device", "bimodal", "noise"} <= set(data)
    assert data["device"]["kind"] == "host" and data["runs"] == 10 * data["rounds"] and "ops" not in data


@pytest.mark.parametrize("argv,needle", [
    (["profile", "--device", "bad id!", "--model", "x.tflite"], "unknown device"),
    (["profile", "--device", "host", "--model", "missing.tflite"], "model file not found"),
    (["profile", "--device", "10.0.0.1:99999", "--model", "x.tflite"], "unknown device"),
])
def test_cli_errors_are_one_line_exit_2(argv, needle, capsys):
    from mnas.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_cli_corrupt_tflite_exit_2(tmp_path, capsys):
    from mnas.cli import main

    junk = tmp_path / "corrupt.tflite"
    junk.write_bytes(b"TFL3" * 8)
    assert main(["profile", "--device", "host", "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "corrupt.tflite" in err


def test_thread_cpu_clock_is_its_own_device(tiny_model):
    from devices.registry import open_device

    wall, cpu = open_device("host"), open_device("host-cpu")
    assert cpu.id == "host-cpu" and cpu.fingerprint().key != wall.fingerprint().key
    profile = cpu.profile(tiny_model, FAST)
    assert 0 < profile.median_ms < 1000 and "thread CPU time" in profile.fingerprint.model
    with pytest.raises(UserError, match="1 thread"):
        cpu.profile(tiny_model, ProfileOptions(threads=2, runs=3, max_rounds=1))
