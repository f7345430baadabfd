"""An emulated phone in a child process (`mnas emulator --port 0`): for benchmarks and tools that must not
share the GIL (or a core's worth of Python) with the client they measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


class EmulatorProcess:
    """Starts `mnas emulator --port 0 --sandbox DIR`, reads the port it prints; `close()` stops it (SIGTERM)."""

    def __init__(self, sandbox: Path, *extra_args: str) -> None:
        self.sandbox = Path(sandbox)
        self.proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "emulator", "--port", "0", "--sandbox",
                                      str(self.sandbox), *extra_args], stdout=subprocess.PIPE, text=True)
        match = re.search(r"127\.0\.0\.1:(\d+)", self.proc.stdout.readline())
        if match is None:
            self.close()
            raise RuntimeError("the emulated phone did not print its address")
        self.port = int(match.group(1))
        self.serial = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> "EmulatorProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
