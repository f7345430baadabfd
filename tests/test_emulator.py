"""The emulated phone over real loopback sockets, driven by real clients: adb-shell and the `adb` binary."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from adb_shell.exceptions import AdbCommandFailureException, PushFailedError

from devices.emulator import EmulatedPhone, FaultKnobs, PhoneProfile
from devices.emulator.sample_model import write_tiny_cnn
from mnas.errors import UserError
from tests.conftest import require

TMP = "/data/local/tmp"
FAST = "--min_secs=0 --warmup_min_secs=0"

# Regexes for the benchmark_model lines, as in the project's shared/reference/benchmark_model.md.
NUM = r"[0-9.]+(?:e[+-]?\d+)?"
ALL_SAME_LINE = re.compile(r"^(?:INFO: )?count=12 curr=\d+\(all same\)$", re.M)
COUNT_LINE = re.compile(rf"^(?:INFO: )?count=(\d+) first=(\d+) curr=(\d+) min=(\d+) max=(\d+) avg=({NUM}) "
                        rf"std=(\d+) p5=(\d+) median=(\d+) p95=(\d+)$", re.M)
TIMINGS_LINE = re.compile(rf"^(?:INFO: )?Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
                          rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})$", re.M)
OP_HEADER = re.compile(r"^\s+\[node type\]\s+\[first\]\s+\[avg ms\]\s+\[%\]\s+\[cdf%\]\s+\[mem KB\]\s+"
                       r"\[times called\]\s+\[Name\]$", re.M)
OP_ROW = re.compile(rf"^\t\s*(\S[^\t]*)\t\s*({NUM})\t\s*({NUM})\t\s*({NUM})%\t\s*({NUM})%\t\s*({NUM})"
                    rf"\t\s*(\d+)\t\[(.*)\]$", re.M)
PROFILER_TIMINGS = re.compile(r"^Timings \(microseconds\): count=(\d+) ", re.M)


def signer_for(directory: Path) -> PythonRSASigner:
    key = directory / "adbkey"
    if not key.exists():
        keygen(str(key))
    return PythonRSASigner(Path(f"{key}.pub").read_text(), key.read_text())


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return signer_for(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def phone():
    with EmulatedPhone(port=0) as running:
        yield running


def connect(phone: EmulatedPhone, signer, **timeouts) -> AdbDeviceTcp:
    device = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=timeouts.get("transport", 5))
    device.connect(rsa_keys=[signer], auth_timeout_s=timeouts.get("auth", 5), read_timeout_s=timeouts.get("read", 5))
    return device


@pytest.fixture(scope="module")
def device(phone, signer):
    dev = connect(phone, signer)
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_cnn(tmp_path_factory.mktemp("model") / "tiny.tflite")


@pytest.fixture(scope="module")
def fake_binary(tmp_path_factory):
    path = tmp_path_factory.mktemp("bin") / "benchmark_model"
    path.write_bytes(b"\x7fELF\x02\x01\x01 stand-in for the arm64 benchmark_model build")
    path.chmod(0o755)
    return path


# --- identity, shell, files -------------------------------------------------------------------------------

def test_listens_on_loopback_only(phone):
    assert phone.serial == f"127.0.0.1:{phone.port}"
    assert phone._server.getsockname()[0] == "127.0.0.1"


def test_getprop_says_emulated(device):
    assert device.shell("getprop ro.mnas.emulated").strip() == "1"
    assert "emulated" in device.shell("getprop ro.product.model")
    listing = device.shell("getprop")
    assert "[ro.product.cpu.abi]: [arm64-v8a]" in listing
    assert device.shell("getprop no.such.prop fallback").strip() == "fallback"


def test_proc_and_sys_follow_the_profile(phone, device):
    profile = phone.profile
    freqs = device.shell("cat /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq").split()
    assert [int(f) for f in freqs] == list(profile.cpu_max_khz)
    assert device.shell("cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() == profile.governor
    assert device.shell("cat /proc/cpuinfo").count("processor\t:") == profile.cores
    temp = device.shell("cat /sys/class/thermal/thermal_zone0/temp").strip()
    assert int(temp) == round(profile.thermal_zones[0].temp_c * 1000)
    assert device.shell("cat /sys/class/power_supply/battery/capacity").strip() == str(profile.battery["capacity"])
    assert "No such file" in device.shell("cat /sys/nope; echo rc=$?") and "rc=1" in device.shell("cat /x; echo rc=$?")


def test_custom_profile_and_no_auth(tmp_path):
    data = {"model": "Pixel 4a", "board": "sm7150", "cpu_max_khz": [1804800] * 6 + [2208000] * 2,
            "governor": "performance", "thermal_zones": [{"type": "skin", "temp_c": 41.5}],
            "android_version": "12", "sdk": 31}
    (tmp_path / "phone.json").write_text(json.dumps(data))
    profile = PhoneProfile.load(tmp_path / "phone.json")
    assert profile.model == "Pixel 4a (emulated)"  # an emulated phone never takes a real phone's name
    with EmulatedPhone(port=0, profile=profile, require_auth=False) as phone:
        dev = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=5)
        assert dev.connect(rsa_keys=None, read_timeout_s=5)
        assert dev.shell("getprop ro.product.model").strip() == "Pixel 4a (emulated)"
        assert dev.shell("getprop ro.build.version.release").strip() == "12"
        assert dev.shell("cat /sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq").strip() == "2208000"
        assert dev.shell("cat /sys/class/thermal/thermal_zone0/type").strip() == "skin"
        dev.close()
    with pytest.raises(UserError, match="unknown key"):
        PhoneProfile.from_dict({"cores": 8})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        PhoneProfile.load(tmp_path / "bad.json")


def test_push_pull_stat_list_byte_exact(phone, device, tmp_path):
    payload = os.urandom(300_000)  # > 64 KiB, so DATA goes in several chunks
    src, back = tmp_path / "blob.bin", tmp_path / "back.bin"
    src.write_bytes(payload)
    device.push(str(src), f"{TMP}/new/dir/blob.bin")  # parent directories are created (fixed_push_mkdir)
    mode, size, _ = device.stat(f"{TMP}/new/dir/blob.bin")
    assert size == len(payload) and mode & 0o170000 == 0o100000
    device.pull(f"{TMP}/new/dir/blob.bin", str(back))
    assert back.read_bytes() == payload
    assert (phone.sandbox / "data/local/tmp/new/dir/blob.bin").read_bytes() == payload
    names = {bytes(f.filename).decode() for f in device.list(f"{TMP}/new/dir")}
    assert names == {".", "..", "blob.bin"}
    assert device.shell(f"ls {TMP}/new/dir").split() == ["blob.bin"]
    assert device.shell(f"rm -r {TMP}/new; ls {TMP}/new; echo rc=$?").strip().endswith("rc=1")


def test_mkdir_chmod_rm_and_exit_status(device):
    out = device.shell(f"mkdir -p {TMP}/a/b && touch {TMP}/a/b/f && chmod 755 {TMP}/a/b/f && ls -l {TMP}/a/b")
    assert out.startswith("-rwxr-xr-x") and out.rstrip().endswith(" f")
    assert device.shell(f"[ -x {TMP}/a/b/f ] && echo yes || echo no").strip() == "yes"
    assert device.shell(f"rm {TMP}/a; echo rc=$?").strip().endswith("rc=1")  # a directory without -r
    assert device.shell(f"rm -rf {TMP}/a && echo gone").strip() == "gone"
    assert "Read-only file system" in device.shell("rm -f /proc/cpuinfo")
    assert device.shell("false || echo x; true && echo y").split() == ["x", "y"]


def test_shell_quoting_redirects_and_status(device):
    assert device.shell("""echo "a  b" 'c  d' e\\ f""") == "a  b c  d e f\n"
    assert device.shell(f"echo hi > {TMP}/out.txt; echo there >> {TMP}/out.txt; cat {TMP}/out.txt") == "hi\nthere\n"
    assert device.shell("cat /nope 2>/dev/null; echo rc=$?") == "rc=1\n"
    assert device.shell("echo \"status $?\"; false; echo $?") == "status 0\n1\n"
    assert "inaccessible or not found" in device.shell("rmdir_is_not_a_command x")
    assert "Permission denied" in device.shell("echo x > /system/evil")


def test_token_signature_check(signer):
    from devices.emulator.auth import parse_adb_public_key, verify_token_signature

    key = parse_adb_public_key(signer.GetPublicKey())
    token = os.urandom(20)
    signature = signer.Sign(token)
    assert verify_token_signature(key, token, signature)
    assert not verify_token_signature(key, os.urandom(20), signature)
    assert not verify_token_signature(key, token, bytes([signature[0] ^ 1]) + signature[1:])
    with pytest.raises(ValueError):
        parse_adb_public_key(b"bm90IGEga2V5 user@host\0")


# --- benchmark_model ----------------------------------------------------------------------------------

def test_benchmark_model_output_parses(device, tiny, fake_binary):
    device.push(str(tiny), f"{TMP}/tiny.tflite")
    device.push(str(fake_binary), f"{TMP}/benchmark_model")
    out = device.shell(f"taskset f0 {TMP}/benchmark_model --graph={TMP}/tiny.tflite --num_threads=1 "
                       f"--num_runs=12 --warmup_runs=2 {FAST} --enable_op_profiling=true --use_xnnpack=false",
                       read_timeout_s=120, timeout_s=300)
    counts = [c for c in COUNT_LINE.findall(out) if int(c[0]) == 12]
    if counts:
        count, first, curr, low, high, avg = (float(v) for v in counts[-1][:6])
        assert low <= float(counts[-1][8]) <= high and low <= avg <= high
    else:  # every run took the same whole microseconds: the real tool then prints its short form
        assert ALL_SAME_LINE.search(out), out[-3000:]
    timings = TIMINGS_LINE.search(out)
    assert timings and all(float(v) > 0 for v in timings.groups())
    assert OP_HEADER.search(out)
    run_order = out.split("Run Order")[1].split("Top by Computation Time")[0]
    rows = OP_ROW.findall(run_order)
    assert [r[0].strip() for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED",
                                            "SOFTMAX"]
    assert sum(float(r[3]) for r in rows) == pytest.approx(100.0, abs=0.01)
    assert PROFILER_TIMINGS.search(out)
    assert "Summary by node type" in out
    digest = device.shell(f"sha256sum {TMP}/benchmark_model").split()[0]
    import hashlib
    assert digest == hashlib.sha256(fake_binary.read_bytes()).hexdigest()


def test_benchmark_model_errors(device, tiny, fake_binary, tmp_path):
    # adb-shell pushes with mode 0770 whatever the local mode, so the exec bit is removed on the device.
    device.push(str(fake_binary), f"{TMP}/benchmark_model_noexec")
    device.shell(f"chmod 644 {TMP}/benchmark_model_noexec")
    out = device.shell(f"{TMP}/benchmark_model_noexec --graph={TMP}/tiny.tflite; echo rc=$?")
    assert "Permission denied" in out and out.strip().endswith("rc=126")
    device.push(str(fake_binary), f"{TMP}/benchmark_model")
    assert "rc=127" in device.shell(f"{TMP}/nothing_here; echo rc=$?")
    out = device.shell(f"{TMP}/benchmark_model --graph={TMP}/missing.tflite; echo rc=$?")
    assert "ERROR: Could not open" in out and out.strip().endswith("rc=1")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0\0\0\0TFL3 truncated")
    device.push(str(junk), f"{TMP}/junk.tflite")
    out = device.shell(f"{TMP}/benchmark_model --graph={TMP}/junk.tflite {FAST}; echo rc=$?")
    assert "ERROR:" in out and out.strip().endswith("rc=1")
    assert "Please specify" in device.shell(f"{TMP}/benchmark_model")


# --- sandbox ------------------------------------------------------------------------------------------

def test_shell_injection_has_no_effect(phone, device, tmp_path):
    marker = tmp_path / "pwned"
    for line in (f"ls; touch {marker}", f"echo $(touch {marker})", f"echo `touch {marker}`",
                 f"ls ';touch {marker}'", f"getprop \"$(touch {marker})\"", f"ls {TMP} | touch {marker}",
                 f"ls & touch {marker}", f"cat {TMP}/x;rm -rf /", f"ls > {marker}", "cd /..; touch pwned"):
        device.shell(line)
    assert not marker.exists()
    assert "not supported" in device.shell("echo $(id)")
    assert device.shell("echo '$(id)' \"`x`\" 2>&1").startswith("/system/bin/sh")  # backticks refused
    assert device.shell("echo '$(id) `x`'").strip() == "$(id) `x`"  # single quotes keep them literal
    assert "Permission denied" in device.shell(f"touch {marker}")


def test_sync_paths_cannot_leave_the_sandbox(phone, device, tmp_path):
    src = tmp_path / "evil.txt"
    src.write_bytes(b"evil")
    target = tmp_path / "escaped.txt"
    for remote in (f"{TMP}/../../../..{target}", f"../../../..{target}", str(target)):
        with pytest.raises((PushFailedError, AdbCommandFailureException)):
            device.push(str(src), remote)
    assert not target.exists()
    with pytest.raises(AdbCommandFailureException):
        device.pull("../../etc/passwd", str(tmp_path / "passwd"))
    assert device.stat("/../../etc/passwd") == (0, 0, 0)


def test_symlinks_out_of_the_sandbox_are_refused(phone, device, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    os.symlink(secret, phone.sandbox / "data/local/tmp/link")
    os.symlink(tmp_path, phone.sandbox / "data/local/tmp/linkdir")
    assert "host secret" not in device.shell(f"cat {TMP}/link; cat {TMP}/linkdir/secret.txt")
    assert {"link", "linkdir"} <= set(device.shell(f"ls {TMP}").split())  # listed, never followed
    assert "secret.txt" not in device.shell(f"ls {TMP}/linkdir; ls -l {TMP}; ls {TMP}/linkdir/")
    with pytest.raises(AdbCommandFailureException):
        device.pull(f"{TMP}/link", str(tmp_path / "copy"))
    src = tmp_path / "x"
    src.write_text("overwrite")
    with pytest.raises((PushFailedError, AdbCommandFailureException)):
        device.push(str(src), f"{TMP}/linkdir/secret.txt")
    assert secret.read_text() == "host secret"
    device.shell(f"rm {TMP}/link {TMP}/linkdir")
    assert secret.exists() and not (phone.sandbox / "data/local/tmp/link").exists()


# --- concurrency and fault knobs ----------------------------------------------------------------------

def test_two_clients_at_once(phone, signer):
    import threading

    results = []

    def work():
        dev = connect(phone, signer)
        results.append(dev.shell("getprop ro.mnas.emulated").strip())
        dev.close()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == ["1", "1", "1"]


def test_drop_after_bytes_fails_fast_and_leaves_no_partial_file(signer, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(400_000))
    with EmulatedPhone(port=0, knobs=FaultKnobs(drop_after_bytes=150_000, drop_connections=1)) as phone:
        dev = connect(phone, signer, transport=2, read=2)
        start = time.monotonic()
        with pytest.raises(Exception):
            dev.push(str(src), f"{TMP}/big.bin", read_timeout_s=2)
        assert time.monotonic() - start < 10
        dev.close()
        leftovers = lambda: list((phone.sandbox / "data/local/tmp").iterdir())  # noqa: E731
        deadline = time.monotonic() + 5  # the service thread removes its temporary file when it sees the drop
        while leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers() == []  # no half-written file, under the target name or any other
        retry = connect(phone, signer)  # only the first connection is dropped: a retry succeeds
        retry.push(str(src), f"{TMP}/big.bin")
        assert (phone.sandbox / "data/local/tmp/big.bin").read_bytes() == src.read_bytes()
        retry.close()


def test_slow_link_limits_throughput(signer, tmp_path):
    src = tmp_path / "slow.bin"
    src.write_bytes(os.urandom(150_000))
    bps = 300_000
    with EmulatedPhone(port=0, knobs=FaultKnobs(slow_bps=bps)) as phone:
        dev = connect(phone, signer)
        start = time.monotonic()
        dev.push(str(src), f"{TMP}/slow.bin")
        elapsed = time.monotonic() - start
        dev.close()
    assert elapsed >= 0.8 * src.stat().st_size / bps


def test_reject_auth_gives_the_client_an_error(signer):
    with EmulatedPhone(port=0, knobs=FaultKnobs(reject_auth=True)) as phone:
        dev = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=2)
        start = time.monotonic()
        with pytest.raises(Exception) as info:
            dev.connect(rsa_keys=[signer], auth_timeout_s=1, read_timeout_s=2)
        assert time.monotonic() - start < 10
        assert "timed out" in str(info.value).lower() or "timeout" in type(info.value).__name__.lower()
        assert not dev.available
        dev.close()


def test_allow_list_accepts_only_listed_keys(signer, tmp_path):
    other = signer_for(tmp_path)
    with EmulatedPhone(port=0, allowed_keys=[other.GetPublicKey()]) as phone:
        assert connect(phone, other).shell("echo ok").strip() == "ok"
        dev = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=2)
        with pytest.raises(Exception):
            dev.connect(rsa_keys=[signer], auth_timeout_s=1, read_timeout_s=2)


# --- the real adb client -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def adb_runner(home: Path):
    """`run(*args)` for the real adb client with a private server port and HOME (its key is made there)."""
    adb = shutil.which("adb")
    require(adb is not None, "the adb client (make system-deps)")
    env = dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(free_port()))
    env.pop("ANDROID_SERIAL", None)

    def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run([adb, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    return run


def test_real_adb_client(phone, tmp_path):
    run = adb_runner(tmp_path)
    serial = phone.serial
    try:
        run("connect", serial)
        deadline = time.monotonic() + 15
        while run("-s", serial, "get-state").stdout.strip() != "device":
            assert time.monotonic() < deadline, run("devices").stdout
            time.sleep(0.2)
        assert (tmp_path / ".android" / "adbkey").exists()  # the key was created in the private HOME
        assert run("-s", serial, "shell", "getprop", "ro.product.model").stdout.strip() == phone.profile.model
        payload = os.urandom(200_000)
        (tmp_path / "r.bin").write_bytes(payload)
        pushed = run("-s", serial, "push", str(tmp_path / "r.bin"), f"{TMP}/adb_push.bin")
        assert pushed.returncode == 0, pushed.stderr
        assert (phone.sandbox / "data/local/tmp/adb_push.bin").read_bytes() == payload
        pulled = run("-s", serial, "pull", f"{TMP}/adb_push.bin", str(tmp_path / "back.bin"))
        assert pulled.returncode == 0 and (tmp_path / "back.bin").read_bytes() == payload
    finally:
        run("kill-server", timeout=10)


def test_real_adb_client_rejected(tmp_path):
    run = adb_runner(tmp_path)
    with EmulatedPhone(port=0, knobs=FaultKnobs(reject_auth=True)) as phone:
        try:
            run("connect", phone.serial)
            deadline = time.monotonic() + 10
            while "unauthorized" not in run("devices").stdout:
                assert time.monotonic() < deadline, run("devices").stdout
                time.sleep(0.2)
            shell = run("-s", phone.serial, "shell", "echo", "hi")
            assert shell.returncode != 0 and "unauthorized" in shell.stderr and "hi" not in shell.stdout
        finally:
            run("kill-server", timeout=10)


# --- the CLI --------------------------------------------------------------------------------------------

def test_cli_runs_in_foreground_and_prints_the_port(signer, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "emulator", "--port", "0", "--sandbox",
                             str(tmp_path / "sbx")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        dev = AdbDeviceTcp("127.0.0.1", port, default_transport_timeout_s=5)
        dev.connect(rsa_keys=[signer], auth_timeout_s=5, read_timeout_s=5)
        assert dev.shell("getprop ro.mnas.emulated").strip() == "1"
        dev.close()
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run([sys.executable, "-m", "mnas.cli", "emulator", "--slow-bps", "0"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
