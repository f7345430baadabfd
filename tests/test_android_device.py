"""AndroidDevice over real sockets against the emulated phone (devices/emulator), with real adb-shell."""

import hashlib
import os
import shutil
import subprocess
import socket
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.adb_keys import ensure_key
from devices.android import REMOTE_BINARY, REMOTE_DIR, AndroidDevice, big_core_mask, parse_cpu_list, shell_command
from devices.base import ProfileOptions
from devices.emulator.daemon import EmulatedPhone, FaultKnobs
from devices.emulator.sample_model import tiny_cnn_tflite
from mnas.errors import UserError
from tests.conftest import require

FAST = ProfileOptions(threads=1, warmup_runs=2, runs=10, max_rounds=3, target_rel_ci=0.5)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    return ensure_key(tmp_path_factory.mktemp("adbkey") / "adbkey")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("android")
    binary = root / "benchmark_model"
    binary.write_bytes(b"\x7fELF not really an arm64 build; the emulated phone runs LiteRT instead\n" * 8)
    model = root / "tiny.tflite"
    model.write_bytes(tiny_cnn_tflite(resolution=16, channels=4, classes=4))
    big = root / "wide.tflite"
    big.write_bytes(tiny_cnn_tflite(resolution=32, channels=64, classes=10))
    return {"binary": binary, "model": model, "big": big, "root": root}


def _device(phone: EmulatedPhone, key: Path, **kwargs) -> AndroidDevice:
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("auth_timeout_s", 2.0)
    return AndroidDevice(f"127.0.0.1:{phone.port}", key_path=key, **kwargs)


@pytest.fixture(scope="module")
def phone(key, files):
    with EmulatedPhone(port=0) as running:
        with _device(running, key) as device:
            device.setup(files["binary"])
        yield running


def test_setup_records_binary_and_fingerprint_is_emulated(phone, key, files):
    with _device(phone, key) as device:
        fp = device.fingerprint()
    assert fp.kind == "emulated" and fp.kind != "android"
    assert fp.binary_sha256 == hashlib.sha256(files["binary"].read_bytes()).hexdigest()
    assert fp.cpu_max_khz == tuple(phone.profile.cpu_max_khz) and fp.governor == phone.profile.governor
    assert fp.model == phone.profile.model and fp.abi == phone.profile.abi
    assert fp.android_version == phone.profile.android_version
    assert set(fp.temperatures_c) == {z.type for z in phone.profile.thermal_zones}
    assert fp.key.startswith("emulated:")


def test_profile_tiny_model_with_ops_and_cleanup(phone, key, files):
    with _device(phone, key) as device:
        profile = device.profile(files["model"], ProfileOptions(runs=10, warmup_runs=2, max_rounds=2,
                                                                 target_rel_ci=0.5, op_profile=True))
        left = device.shell(["ls", REMOTE_DIR]).split()
    assert profile.runs == 10 * profile.rounds and profile.median_ms > 0
    assert profile.p5_ms <= profile.median_ms <= profile.p95_ms
    assert profile.fingerprint.kind == "emulated"
    assert profile.noise["taskset_mask"] == big_core_mask(phone.profile.cpu_max_khz, 1)
    types = [op.node_type for op in profile.ops]
    assert types[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and "SOFTMAX" in types
    assert not [name for name in left if name.endswith(".tflite")]  # pushed model cleaned up
    data = profile.to_dict()
    assert {"median_ms", "mean_ms", "std_ms", "p95_ms", "runs", "device", "ops", "bimodal", "noise"} <= set(data)


@pytest.mark.parametrize("name", ["x; touch /data/local/tmp/pwned.tflite", "$(reboot).tflite",
                                  "`touch pwned`'\"; rm -rf tmp.tflite"])
def test_file_names_cannot_inject(phone, key, files, name):
    model = files["root"] / name.replace("/", "_")
    model.write_bytes(files["model"].read_bytes())
    with _device(phone, key) as device:
        profile = device.profile(model, FAST)
        assert profile.runs > 0
        # Each argument reaches the device program as one literal word.
        for nasty in (name, f"{REMOTE_DIR}/{name}", "a && touch /data/local/tmp/pwned.tflite", "$(id) `id` $HOME"):
            assert device.shell(["echo", nasty]) == nasty + "\n"
        device.shell(["ls", f"/data/local/tmp/{name}"])
        assert not device.stat("/data/local/tmp/pwned.tflite").exists
        assert "pwned" not in device.shell(["ls", "/data/local/tmp"])
        assert device.stat(REMOTE_BINARY).executable  # nothing removed either


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        max_size=20), min_size=1, max_size=5))
def test_shell_command_round_trips_any_argument(argv):
    import shlex

    assert shlex.split(shell_command(argv)) == argv


def test_big_core_mask_and_cpu_lists():
    snapdragon = [1785600] * 4 + [2419200] * 3 + [2841600]
    assert big_core_mask(snapdragon, 1) == "80"  # the prime core
    assert big_core_mask(snapdragon, 4) == "f0"  # prime + big cluster
    assert big_core_mask(snapdragon, 8) == "ff"
    assert big_core_mask([0, 0], 1) is None and big_core_mask([], 1) is None
    assert parse_cpu_list("0-3,6\n") == [0, 1, 2, 3, 6]


def test_push_pull_byte_exact_after_a_drop_is_retried(key):
    payload = os.urandom(300_000)
    with EmulatedPhone(port=0, knobs=FaultKnobs(drop_after_bytes=100_000, drop_connections=1)) as phone:
        with _device(phone, key) as device:
            device.push(payload, "/data/local/tmp/blob.bin")
            assert device.retried == 1
            assert device.pull_bytes("/data/local/tmp/blob.bin") == payload


def test_push_that_always_drops_fails_with_clear_error(key):
    with EmulatedPhone(port=0, knobs=FaultKnobs(drop_after_bytes=50_000)) as phone:
        with _device(phone, key) as device:
            start = time.monotonic()
            with pytest.raises(UserError, match=r"connection lost during push .* gave up after 3 tries"):
                device.push(os.urandom(200_000), "/data/local/tmp/blob.bin")
            assert time.monotonic() - start < 10


def test_profile_survives_drops_mid_run(key, files):
    # Every connection drops after 5000 bytes: fingerprint, push, rounds and the op-profile run cross that
    # budget many times; each op fits in a fresh connection, so retries complete the profile.
    with EmulatedPhone(port=0, knobs=FaultKnobs(drop_after_bytes=5000)) as phone:
        with _device(phone, key) as device:
            device.setup(files["binary"])
            profile = device.profile(files["model"], ProfileOptions(runs=10, warmup_runs=1, max_rounds=3,
                                                                     target_rel_ci=0.5, op_profile=True))
            assert device.retried >= 2
            assert any(entry.startswith("benchmark run") for entry in device.retry_log), device.retry_log
    assert profile.runs == 10 * profile.rounds and profile.ops


def test_profile_whose_push_never_fits_is_never_returned(key, files):
    with EmulatedPhone(port=0, knobs=FaultKnobs(drop_after_bytes=5000)) as phone:
        with _device(phone, key) as device:
            device.setup(files["binary"])
            with pytest.raises(UserError, match="connection lost during push"):
                device.profile(files["big"], FAST)


def test_rejected_auth_is_unauthorized(key, files):
    with EmulatedPhone(port=0, knobs=FaultKnobs(reject_auth=True)) as phone:
        with _device(phone, key, auth_timeout_s=1.0) as device:
            with pytest.raises(UserError, match=r"is unauthorized: accept the RSA prompt on the phone"):
                device.fingerprint()


def test_connection_refused_is_device_not_found(key):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    device = AndroidDevice(f"127.0.0.1:{port}", key_path=key, backoff_s=0.01)
    with pytest.raises(UserError, match="not found: connection refused"):
        device.fingerprint()


def test_missing_or_non_executable_binary(key, files):
    with EmulatedPhone(port=0) as phone:
        with _device(phone, key) as device:
            with pytest.raises(UserError, match="benchmark_model is missing"):
                device.profile(files["model"], FAST)
            device.shell(["mkdir", "-p", REMOTE_DIR])
            device.push(files["binary"].read_bytes(), REMOTE_BINARY, mode=0o644)
            with pytest.raises(UserError, match="not executable"):
                device.profile(files["model"], FAST)
            with pytest.raises(UserError, match="benchmark binary not found"):
                device.setup(files["root"] / "nope")


def test_corrupt_tflite_fails_before_touching_the_phone(phone, key, files):
    junk = files["root"] / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with _device(phone, key) as device:
        with pytest.raises(UserError, match="not a TFLite model"):
            device.profile(junk, FAST)


def test_key_created_private_and_reused(tmp_path):
    path = ensure_key(tmp_path / "sub" / "adbkey")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(f"{path}.pub").read_text().strip()
    before = path.read_bytes()
    assert ensure_key(path) == path and path.read_bytes() == before


def test_cli_setup_and_profile_on_emulated_phone(key, files, monkeypatch, capsys):
    import json

    from mnas.cli import main

    monkeypatch.setenv("MNAS_ADB_KEY", str(key))
    with EmulatedPhone(port=0) as phone:
        device_id = f"127.0.0.1:{phone.port}"
        assert main(["profile", "--device", device_id, "--model", str(files["model"])]) == 2
        assert "benchmark_model is missing" in capsys.readouterr().err
        assert main(["devices", "setup", "--device", device_id, "--benchmark-binary", str(files["binary"])]) == 0
        capsys.readouterr()
        assert main(["profile", "--device", device_id, "--model", str(files["model"]), "--runs", "8",
                     "--rounds", "2", "--op-profile", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["device"]["kind"] == "emulated" and data["runs"] == 8 * data["rounds"] and data["ops"]
        assert main(["devices", "--json", "--connect", device_id]) == 0
        listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
        assert listed["host"]["kind"] == "host" and listed[device_id]["kind"] == "emulated"


def test_cli_connection_refused_exit_2(key, monkeypatch, capsys):
    from mnas.cli import main

    monkeypatch.setenv("MNAS_ADB_KEY", str(key))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["profile", "--device", f"127.0.0.1:{port}", "--model", "x.tflite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_list_devices_asks_a_running_adb_server(key, tmp_path):
    require(shutil.which("adb") is not None, "the adb client (make system-deps)")
    from devices.registry import list_devices

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server_port = probe.getsockname()[1]
    env = dict(os.environ, HOME=str(tmp_path), ANDROID_USER_HOME=str(tmp_path / ".android"))
    adb = ["adb", "-P", str(server_port)]
    with EmulatedPhone(port=0) as phone:
        try:
            subprocess.run(adb + ["start-server"], env=env, check=True, capture_output=True, timeout=30)
            subprocess.run(adb + ["connect", f"127.0.0.1:{phone.port}"], env=env, check=True,
                           capture_output=True, timeout=30)
            deadline = time.monotonic() + 10
            while True:
                found = {e["id"]: e for e in list_devices([], adb_server=("127.0.0.1", server_port))}
                entry = found.get(f"127.0.0.1:{phone.port}")
                if (entry and entry["state"] == "device") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            subprocess.run(adb + ["kill-server"], env=env, capture_output=True, timeout=30)
    assert entry is not None and entry["state"] == "device" and entry["source"] == "adb-server"
    assert entry["transport"] == "tcp" and "host" in found


def test_parsers_for_real_phone_output():
    from devices.android import parse_dumpsys_battery, parse_getprop
    from devices.registry import parse_devices_l

    battery = parse_dumpsys_battery("Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
                                    "  status: 2\n  health: 2\n  present: true\n  level: 87\n  scale: 100\n"
                                    "  voltage: 4211\n  temperature: 305\n  technology: Li-ion\n")
    assert battery["level"] == 87 and battery["temp_c"] == 30.5 and battery["usb_powered"] == "true"
    assert parse_dumpsys_battery("/system/bin/sh: dumpsys: inaccessible or not found\n") == {}
    props = parse_getprop("[ro.product.model]: [Pixel 4a]\n[ro.soc.model]: [SM7150]\n[ro.empty]: []\n")
    assert props == {"ro.product.model": "Pixel 4a", "ro.soc.model": "SM7150", "ro.empty": ""}
    listed = parse_devices_l("0A1B2C3D4E  device usb:1-1 product:sunfish model:Pixel_4a device:sunfish "
                             "transport_id:3\n192.168.1.20:5555 unauthorized transport_id:4\n")
    assert listed[0]["model"] == "Pixel_4a" and listed[0]["transport"] == "usb"
    assert listed[1]["state"] == "unauthorized" and listed[1]["transport"] == "tcp"


def test_binary_hash_follows_a_binary_replaced_by_hand(key, files):
    other = b"\x7fELF another build of benchmark_model\n" * 3
    with EmulatedPhone(port=0) as phone:
        with _device(phone, key) as device:
            device.setup(files["binary"])
            assert device.binary_sha256() == hashlib.sha256(files["binary"].read_bytes()).hexdigest()
            device.push(other, REMOTE_BINARY, mode=0o755)  # replaced without `setup`: the record is stale
            assert device.binary_sha256() == hashlib.sha256(other).hexdigest()
