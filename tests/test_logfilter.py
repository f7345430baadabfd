"""The stderr filter of the CLI: TF/LiteRT C++ chatter (written to fd 2 from C++, out of Python's reach) is
dropped; everything else (Python warnings, C++ errors, progress text without a newline) passes, in order.
The end-to-end check (a real search: no oneDNN/XNNPACK lines) is in test_cli_search."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(r'''
    import os, sys, time
    from mnas.logfilter import StderrFilter
    with StderrFilter():
        os.write(2, b"I0000 00:00:1796324841.294329   17754 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        print("a python line", file=sys.stderr)
        os.write(2, b"E0000 00:00:1796324841.2   17 x.cc:1] a real C++ error\n")
        os.write(2, b"progress 1/3\r")
        time.sleep(0.2)
        os.write(2, b"In")  # a partial line that could be chatter is held until its newline
        os.write(2, b"dex ready\n")
    print("stdout untouched")
''')


def test_chatter_is_dropped_and_everything_else_passes_in_order():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"stdout untouched\n"
    assert proc.stderr == (b"a python line\nE0000 00:00:1796324841.2   17 x.cc:1] a real C++ error\n"
                           b"progress 1/3\rIndex ready\n")


def test_verbose_keeps_the_chatter(run_cli):
    """`mnas --verbose` installs no filter: nothing is hidden from a user who asks (here: the help text runs
    through the same entry point; the filter is off, so a C++-style line written by a handler would pass)."""
    from mnas.cli import build_parser

    assert build_parser().parse_args(["--verbose", "models"]).verbose
    proc = run_cli("--verbose", "models", "--json")
    assert proc.returncode == 0 and proc.stdout.lstrip().startswith("[")
