"""The latency table on disk: one SQLite file (stdlib sqlite3, WAL), keyed by device fingerprint and op key.

Schema (format version in `meta`):
    meta(key PRIMARY KEY, value)                      format, version, created
    fingerprints(key PRIMARY KEY, json)               the `devices.base.Fingerprint` (or a published-table
                                                      description) the numbers were measured on
    entries(fingerprint_key, op_key, count, mean_ms, median_ms, std_ms, extra json,
            PRIMARY KEY(fingerprint_key, op_key))
    measurements(fingerprint_key, sample, latency_ms)  whole networks measured on the device (imported CSVs);
                                                      created on first use

Rows are written one at a time and committed at once, so a killed build loses at most the op being
measured, and a resumed build skips every op already stored (`has`, `op_keys`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mnas.errors import UserError

FORMAT_NAME = "mnas-latency-table"
FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fingerprints (key TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    fingerprint_key TEXT NOT NULL,
    op_key TEXT NOT NULL,
    count INTEGER NOT NULL,
    mean_ms REAL NOT NULL,
    median_ms REAL,
    std_ms REAL,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (fingerprint_key, op_key)
);
"""

# Created on first use, so files written before it existed stay readable (and unchanged) by this version.
_MEASUREMENTS = """
CREATE TABLE IF NOT EXISTS measurements (
    fingerprint_key TEXT NOT NULL,
    sample TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    PRIMARY KEY (fingerprint_key, sample)
)
"""


@dataclass(frozen=True)
class Entry:
    op_key: str
    count: int
    mean_ms: float
    median_ms: float | None
    std_ms: float | None
    extra: dict

    @property
    def value_ms(self) -> float:
        """The figure a prediction sums by default: the median when measured here, else the published mean."""
        return self.median_ms if self.median_ms is not None else self.mean_ms

    def value(self, statistic: str = "median") -> float:
        """`median` (default), `mean`, or `p5` (the 5th percentile of the runs, kept in `extra`): see
        `latency.predictor.STATISTICS`. Falls back to `value_ms` when the statistic was not recorded."""
        if statistic == "mean":
            return self.mean_ms
        if statistic == "p5" and self.extra.get("p5_ms") is not None:
            return float(self.extra["p5_ms"])
        return self.value_ms


class TableStore:
    """A latency table file. `TableStore.open(path)` checks it is ours; `create=True` makes a new one."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = False) -> "TableStore":
        path = Path(path)
        if not path.exists():
            if not create:
                raise UserError(f"latency table {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [("format", FORMAT_NAME),
                                                                  ("version", str(FORMAT_VERSION)),
                                                                  ("created", now)])
            conn.commit()
            return cls(conn, path)
        if path.is_dir():
            raise UserError(f"not an mnas latency table: {path} is a directory")
        try:
            conn = sqlite3.connect(str(path))
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            conn.execute("SELECT fingerprint_key, op_key, count, mean_ms, median_ms, std_ms, extra "
                         "FROM entries LIMIT 1").fetchall()
        except sqlite3.DatabaseError as err:
            raise UserError(f"not an mnas latency table: {path} ({err})") from None
        if meta.get("format") != FORMAT_NAME:
            conn.close()
            raise UserError(f"not an mnas latency table: {path} (format {meta.get('format')!r})")
        if meta.get("version") != str(FORMAT_VERSION):
            conn.close()
            raise UserError(f"latency table {path} has format version {meta.get('version')}, "
                            f"this mnas reads version {FORMAT_VERSION}")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass  # read-only file: reading still works
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "TableStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fingerprints ---------------------------------------------------------------------------
    def add_fingerprint(self, key: str, info: dict) -> None:
        self._conn.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?)", (key, json.dumps(info, sort_keys=True)))
        self._conn.commit()

    def fingerprints(self) -> dict[str, dict]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, json FROM fingerprints ORDER BY key")}

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta"))

    def set_calibration(self, fingerprint_key: str, calibration: dict) -> None:
        """The whole-model calibration fitted for one fingerprint (see `latency.predictor`)."""
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (f"calibration:{fingerprint_key}", json.dumps(calibration, sort_keys=True)))
        self._conn.commit()

    def calibration(self, fingerprint_key: str) -> dict | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (f"calibration:{fingerprint_key}",)).fetchone()
        return json.loads(row[0]) if row else None

    # -- entries --------------------------------------------------------------------------------
    def put(self, fingerprint_key: str, op_key: str, count: int, mean_ms: float, median_ms: float | None = None,
            std_ms: float | None = None, extra: dict | None = None) -> None:
        """Store one op's figures and commit at once (a killed build keeps every stored op)."""
        self._conn.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (fingerprint_key, op_key, int(count), float(mean_ms),
                            None if median_ms is None else float(median_ms),
                            None if std_ms is None else float(std_ms), json.dumps(extra or {}, sort_keys=True)))
        self._conn.commit()

    def put_many(self, fingerprint_key: str, rows: list[Entry]) -> None:
        """Bulk insert in one transaction (imports of published tables)."""
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   [(fingerprint_key, e.op_key, e.count, e.mean_ms, e.median_ms, e.std_ms,
                                     json.dumps(e.extra, sort_keys=True)) for e in rows])

    def has(self, fingerprint_key: str, op_key: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM entries WHERE fingerprint_key = ? AND op_key = ?",
                                 (fingerprint_key, op_key)).fetchone()
        return row is not None

    def op_keys(self, fingerprint_key: str) -> set[str]:
        return {k for (k,) in self._conn.execute("SELECT op_key FROM entries WHERE fingerprint_key = ?",
                                                 (fingerprint_key,))}

    def entries(self, fingerprint_key: str) -> dict[str, Entry]:
        rows = self._conn.execute("SELECT op_key, count, mean_ms, median_ms, std_ms, extra FROM entries "
                                  "WHERE fingerprint_key = ? ORDER BY op_key", (fingerprint_key,))
        return {r[0]: Entry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows}

    def counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT fingerprint_key, COUNT(*) FROM entries GROUP BY fingerprint_key"))

    # -- whole-network measurements (imported per-network data: `latency.fewshot`) ----------------------
    def put_measurements(self, fingerprint_key: str, rows: list[tuple[str, float]]) -> None:
        """(encoded sample, latency in ms) of whole networks measured on the device, kept with its table; they
        replace the ones stored before for the device."""
        with self._conn:
            self._conn.execute(_MEASUREMENTS)
            self._conn.execute("DELETE FROM measurements WHERE fingerprint_key = ?", (fingerprint_key,))
            self._conn.executemany("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?)",
                                   [(fingerprint_key, sample, float(ms)) for sample, ms in rows])

    def measurements(self, fingerprint_key: str) -> list[tuple[str, float]]:
        if not self._has_measurements():
            return []
        return [(s, ms) for s, ms in self._conn.execute(
            "SELECT sample, latency_ms FROM measurements WHERE fingerprint_key = ? ORDER BY rowid", (fingerprint_key,))]

    def measurement_counts(self) -> dict[str, int]:
        if not self._has_measurements():
            return {}
        return dict(self._conn.execute("SELECT fingerprint_key, COUNT(*) FROM measurements GROUP BY fingerprint_key"))

    def _has_measurements(self) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'measurements'"
                                  ).fetchone() is not None

    # -- export ---------------------------------------------------------------------------------
    def to_frame(self):  # -> pandas.DataFrame (imported here: pandas is slow to import)
        import pandas as pd

        return pd.read_sql_query("SELECT fingerprint_key, op_key, count, mean_ms, median_ms, std_ms, extra "
                                 "FROM entries ORDER BY fingerprint_key, op_key", self._conn)

    def export(self, out: str | Path) -> Path:
        """Write every entry to CSV, or Parquet when `out` ends in .parquet (needs pyarrow)."""
        out = Path(out)
        frame = self.to_frame()
        if out.suffix == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise UserError("Parquet export needs pyarrow (pip install pyarrow); use --csv instead") from None
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
        return out
