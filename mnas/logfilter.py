"""Drop the C++ chatter of TensorFlow and LiteRT from the process's stderr (fd 2), keep everything else.

TF 2.21 and LiteRT log from C++ before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not silence
"oneDNN custom operations are on", "All log messages before absl::InitializeLog()" or "Created TensorFlow Lite
XNNPACK delegate for CPU" (seen on every `make search`). Python cannot intercept C++ writes, so fd 2 is pointed at
a pipe and a thread forwards what is not chatter to the real stderr as it arrives (progress bars included).
Errors and warnings of Python and of C++ (E/F lines) pass. `mnas --verbose` does not install it.
"""

from __future__ import annotations

import os
import re
import threading

# A whole line is dropped when it matches. absl lines: severity I or W, MMDD, time, thread id, file:line].
CHATTER = re.compile(rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] .*"
                     rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
                     rb"|INFO: Initialized TensorFlow Lite runtime\.)\r?$")
# A partial line that may still become chatter is held until its newline; anything else is forwarded at once.
_PREFIXES = (b"I", b"W", b"INFO: ")


class StderrFilter:
    """Context manager: fd 2 -> pipe -> filter thread -> the original stderr."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StderrFilter":
        read_fd, write_fd = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._thread = threading.Thread(target=self._pump, args=(read_fd, self._saved), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import sys

        sys.stderr.flush()
        assert self._saved is not None and self._thread is not None
        os.dup2(self._saved, 2)  # the pipe's last writer in this process goes: the thread sees EOF and drains
        # Child processes that inherited the pipe (Ray's daemons) may hold it open: do not wait for them long.
        self._thread.join(timeout=2)
        os.close(self._saved)

    @staticmethod
    def _pump(read_fd: int, out_fd: int) -> None:
        pending = b""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending = _forward(pending + chunk, out_fd)
        if pending:
            _write(out_fd, pending)


def _forward(data: bytes, out_fd: int) -> bytes:
    """Write every complete non-chatter line of `data`; return the held tail (a partial line, maybe chatter)."""
    *lines, tail = data.split(b"\n")
    kept = b"".join(line + b"\n" for line in lines if not CHATTER.match(line))
    if tail and not any(tail.startswith(p) or p.startswith(tail) for p in _PREFIXES):
        kept, tail = kept + tail, b""
    if kept:
        _write(out_fd, kept)
    return tail


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:  # the real stderr is gone: keep draining the pipe, or writers would block on a full pipe
        pass
