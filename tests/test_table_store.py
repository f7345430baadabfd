"""The SQLite table store: round trips, bad files, rows kept when the writer is killed, export."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from latency.store import Entry, TableStore
from mnas.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_and_wal(tmp_path):
    path = tmp_path / "t.db"
    with TableStore.open(path, create=True) as store:
        store.add_fingerprint("host:cpu:abc:t1", {"kind": "host", "model": "cpu"})
        store.put("host:cpu:abc:t1", "Conv-input:32x32x3-output:16x16x8", 30, 0.5, 0.45, 0.02, {"rounds": 2})
        store.put_many("host:cpu:abc:t1", [Entry("AvgPool2D-input:2x2x8-output:1x1x8", 10, 0.01, None, 0.0, {})])
        store.set_calibration("host:cpu:abc:t1", {"slope": 1.1, "intercept_ms": 0.2, "n": 3, "kind": "linear"})
    with TableStore.open(path) as store:
        entries = store.entries("host:cpu:abc:t1")
        assert entries["Conv-input:32x32x3-output:16x16x8"].value_ms == 0.45  # median when measured
        assert entries["AvgPool2D-input:2x2x8-output:1x1x8"].value_ms == 0.01  # mean when no median
        assert entries["Conv-input:32x32x3-output:16x16x8"].extra == {"rounds": 2}
        assert store.fingerprints() == {"host:cpu:abc:t1": {"kind": "host", "model": "cpu"}}
        assert store.calibration("host:cpu:abc:t1")["slope"] == 1.1
        assert store.counts() == {"host:cpu:abc:t1": 2}
        assert store.has("host:cpu:abc:t1", "AvgPool2D-input:2x2x8-output:1x1x8")
        assert not store.has("other", "AvgPool2D-input:2x2x8-output:1x1x8")
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TableStore.open(tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UserError, match="not an mnas latency table"):
        TableStore.open(garbage)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(UserError, match="not an mnas latency table"):
        TableStore.open(foreign)
    with pytest.raises(UserError, match="not an mnas latency table"):
        TableStore.open(tmp_path)


def test_rows_committed_before_a_kill_are_kept(tmp_path):
    # A writer killed with SIGKILL mid-build keeps every row it had stored (one commit per op).
    path = tmp_path / "kill.db"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from latency.store import TableStore
        store = TableStore.open({str(path)!r}, create=True)
        for i in range(10_000):
            store.put("fp", f"op{{i}}", 1, float(i))
            print(i, flush=True)
            time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    seen = -1
    try:
        for line in proc.stdout:
            seen = int(line)
            if seen >= 5:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with TableStore.open(path) as store:
        keys = store.op_keys("fp")
    assert {f"op{i}" for i in range(seen + 1)} <= keys


def test_export_csv_and_parquet(tmp_path):
    with TableStore.open(tmp_path / "t.db", create=True) as store:
        for i in range(3):
            store.put("fp", f"op{i}", 5, i / 10, i / 10, 0.0)
        out = store.export(tmp_path / "t.csv")
        frame = pd.read_csv(out)
        assert list(frame["op_key"]) == ["op0", "op1", "op2"]
        assert frame["mean_ms"].tolist() == [0.0, 0.1, 0.2]
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            with pytest.raises(UserError, match="pyarrow"):
                store.export(tmp_path / "t.parquet")
        else:
            assert pd.read_parquet(store.export(tmp_path / "t.parquet"))["op_key"].tolist() == ["op0", "op1", "op2"]
