"""Shared test fixtures (kept minimal: each test module owns its own helpers).

- `run_cli`: run the real `mnas` console script in a subprocess (the installed `.venv/bin/mnas`, or
  `python -m mnas.cli` when the script is not installed), with `MNAS_CACHE` pointed at a temp dir.
- `mnas_cache`: point `MNAS_CACHE` (export cache) at a fresh temp dir for in-process tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
