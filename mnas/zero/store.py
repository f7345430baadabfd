"""The AutoML-Zero run store: one SQLite file per run; the run's resumable state is this file.

A `mnas.runstore.RunStore` (its settings table and start-or-resume rules: a resume with other settings is
refused, naming the keys that differ) with three tables of its own:
- state: one row, replaced at every checkpoint: the populations (program arrays, fitnesses, generator states,
  counters) as an .npz blob plus a JSON of the loop's own state (experiment, budget spent, best so far).
- progress: one row per checkpoint (individuals, evaluations/s, best fitness, FEC hit rate): the run's curve.
- zero_events: selection checks, experiment ends, migrations: what a reader of the run wants to see.

kill -9 safe: a checkpoint is one transaction, so the state row is always a complete, consistent snapshot.
What is not saved: the FEC cache (a resumed run starts with an empty one; hits only save time).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnas.errors import UserError
from mnas.runstore import RunStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), meta TEXT NOT NULL, arrays BLOB NOT NULL,
                                  saved REAL NOT NULL);
CREATE TABLE IF NOT EXISTS progress (individuals INTEGER NOT NULL, elapsed_s REAL NOT NULL, evals_per_s REAL NOT NULL,
                                     best_fitness REAL NOT NULL, fec_hit_rate REAL, experiment INTEGER NOT NULL,
                                     created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS zero_events (kind TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL);
"""


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


class ZeroStore(RunStore):
    """The project's run store (settings, start-or-resume, WAL) plus the AutoML-Zero tables."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise UserError(f"{str(self.path)!r} is not an AutoML-Zero run store: {err}") from None

    def save_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], progress: dict[str, Any]) -> None:
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?)",
                             (json.dumps(meta), pack_arrays(arrays), now))
            self._db.execute("INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (progress["individuals"], progress["elapsed_s"], progress["evals_per_s"],
                              progress["best_fitness"], progress.get("fec_hit_rate"), progress.get("experiment", 0),
                              now))

    def load_state(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        row = self._db.execute("SELECT meta, arrays FROM state WHERE id = 1").fetchone()
        return None if row is None else (json.loads(row[0]), unpack_arrays(row[1]))

    def add_event(self, kind: str, payload: dict) -> None:
        self._db.execute("INSERT INTO zero_events VALUES (?, ?, ?)", (kind, json.dumps(payload), time.time()))

    def events(self, kind: str | None = None) -> list[dict]:
        rows = self._db.execute("SELECT kind, payload, created FROM zero_events ORDER BY rowid").fetchall()
        return [{"kind": k, **json.loads(p), "created": c} for k, p, c in rows if kind in (None, k)]

    def progress(self) -> list[dict]:
        cols = ("individuals", "elapsed_s", "evals_per_s", "best_fitness", "fec_hit_rate", "experiment")
        rows = self._db.execute(f"SELECT {', '.join(cols)} FROM progress ORDER BY rowid").fetchall()
        return [dict(zip(cols, row)) for row in rows]
