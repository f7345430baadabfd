"""Shared test fixtures (kept minimal: each test module owns its own helpers).

- `run_cli`: run the real `mnas` console script in a subprocess (the installed `.venv/bin/mnas`, or
  `python -m mnas.cli` when the script is not installed), with `MNAS_CACHE` pointed at a temp dir.
- `mnas_cache`: point `MNAS_CACHE` (export cache) at a fresh temp dir for in-process tests.
- `require(condition, what)`: the one guard for an optional piece a developer machine may lack (Ray, the adb
  client). It skips there, and fails under CI=true, where every piece is installed and every test must run.
  Everything else the tests need is a hard dependency or ships in the repository (data/public_luts), so it is
  imported or asserted plainly; tests/test_suite_complete.py refuses any other skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def require(condition: bool, what: str) -> None:
    """Go on if `condition`; else skip (a developer machine) or fail (CI=true) with "needs WHAT".

    Usable in a test, a fixture or at module level (the whole module is skipped, or its collection fails)."""
    __tracebackhide__ = True  # reports name the caller's line, not this one
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"needs {what} (CI=true: a missing piece fails instead of skipping)", pytrace=False)
    pytest.skip(f"needs {what}", allow_module_level=True)


def _cli_command() -> list[str]:
    script = Path(sys.executable).parent / "mnas"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mnas.cli"]


@pytest.fixture
def mnas_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "mnas-cache"
    monkeypatch.setenv("MNAS_CACHE", str(cache))
    return cache


@pytest.fixture
def run_cli(tmp_path: Path):
    """run_cli(*args, timeout=120) -> CompletedProcess with text stdout / stderr."""
    env = {**os.environ, "MNAS_CACHE": str(tmp_path / "mnas-cache-cli")}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(_cli_command() + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, env=env)

    return run
