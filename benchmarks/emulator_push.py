"""Push throughput (MB/s) to the emulated phone over loopback, with adb-shell (and the real `adb` client
when installed). Run: .venv/bin/python benchmarks/emulator_push.py [--mb 8] [--repeats 3] [--json]

MB = 10^6 bytes. The emulated phone runs as `mnas emulator --port 0` in its own process (as a user runs it;
in-process, the client and the daemon would share one GIL). Each repeat pushes the same random file of
--mb MB to /data/local/tmp and checks its size in the phone's sandbox; the figure is the median over
repeats of size / wall time of the push call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.emulator.process import EmulatorProcess  # noqa: E402

from adb_shell.adb_device import AdbDeviceTcp  # noqa: E402
from adb_shell.auth.keygen import keygen  # noqa: E402
from adb_shell.auth.sign_pythonrsa import PythonRSASigner  # noqa: E402


def push_adb_shell(phone: EmulatorProcess, src: Path, workdir: Path, repeats: int) -> list[float]:
    keygen(str(workdir / "adbkey"))
    signer = PythonRSASigner((workdir / "adbkey.pub").read_text(), (workdir / "adbkey").read_text())
    dev = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=30)
    dev.connect(rsa_keys=[signer], auth_timeout_s=10)
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        dev.push(str(src), f"/data/local/tmp/push{i}.bin")
        elapsed = time.perf_counter() - start
        assert (phone.sandbox / f"data/local/tmp/push{i}.bin").stat().st_size == src.stat().st_size
        rates.append(src.stat().st_size / elapsed / 1e6)
        dev.shell(f"rm /data/local/tmp/push{i}.bin")
    dev.close()
    return rates


def push_real_adb(phone: EmulatorProcess, src: Path, workdir: Path, repeats: int) -> list[float] | None:
    adb = shutil.which("adb")
    if adb is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        server_port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(workdir), ANDROID_ADB_SERVER_PORT=str(server_port))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([adb, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)

    try:
        run("connect", phone.serial)
        deadline = time.monotonic() + 15
        while run("-s", phone.serial, "get-state").stdout.strip() != "device":
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        rates = []
        for i in range(repeats):
            start = time.perf_counter()
            done = run("-s", phone.serial, "push", str(src), f"/data/local/tmp/adb{i}.bin")
            elapsed = time.perf_counter() - start  # includes starting the adb client process
            if done.returncode != 0:
                return None
            assert (phone.sandbox / f"data/local/tmp/adb{i}.bin").stat().st_size == src.stat().st_size
            rates.append(src.stat().st_size / elapsed / 1e6)
        return rates
    finally:
        run("kill-server")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        src = workdir / "payload.bin"
        src.write_bytes(os.urandom(int(args.mb * 1e6)))
        phone = EmulatorProcess(workdir / "sandbox")
        try:
            result = {"mb": args.mb, "repeats": args.repeats,
                      "adb_shell_mb_s": push_adb_shell(phone, src, workdir, args.repeats),
                      "adb_client_mb_s": push_real_adb(phone, src, workdir, args.repeats)}
        finally:
            phone.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"push of {args.mb:g} MB to the emulated phone over loopback, median of {args.repeats}:")
    print(f"  adb-shell 0.4.4: {statistics.median(result['adb_shell_mb_s']):.1f} MB/s "
          f"(all: {', '.join(f'{r:.1f}' for r in result['adb_shell_mb_s'])})")
    if result["adb_client_mb_s"] is None:
        print("  adb client: not installed or not reachable; skipped")
    else:
        print(f"  adb client:      {statistics.median(result['adb_client_mb_s']):.1f} MB/s "
              f"(all: {', '.join(f'{r:.1f}' for r in result['adb_client_mb_s'])}; includes adb process start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
