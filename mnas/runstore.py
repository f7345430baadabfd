"""The run store: one SQLite file per search run; the run's resumable state IS this file (as in Optuna).

Tables
- settings: what defines the run (space, controller, reward, targets, devices/tables, seed, evaluator, budget),
  written once. Resuming with other settings is refused, naming the keys that differ.
- steps: one row per controller step: the samples the controller asked for and its state right after `ask`
  (written before any child of the step is evaluated), then its state after `tell` (written when the step ends).
- children: one row per evaluated child, committed as soon as it finishes; primary key (step, idx), so a child
  can never be stored twice.
- cache: namespaced key -> JSON results (accuracy per spec + training settings, latency per spec + device), so a
  re-sampled child is neither retrained nor re-measured, and a resumed run reuses everything already paid for.

Why this is kill -9 safe: a step's `tell` state is written in the same transaction that closes the step, and a
step is closed only when all its child rows exist. On resume, the last closed step's state is loaded; an open step
restores the state saved right after its `ask` and evaluates only the children that have no row yet.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mnas.archfile import spec_from_dict, spec_to_dict  # noqa: F401 - re-exported: one definition, two homes
from mnas.errors import UserError
from mnas.spec import ModelSpec

SCHEMA_VERSION = 2
# What each older schema needs to become the current one (applied in order, in one transaction).
MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE children ADD COLUMN state TEXT NOT NULL DEFAULT 'complete'",
        "ALTER TABLE children ADD COLUMN error TEXT"],
}
CHILD_STATES = ("complete", "failed")
_CHILD_COLUMNS = ("step", "idx", "sample", "spec", "spec_key", "accuracy", "latency_ms", "measured", "reward",
                  "seconds", "cached", "detail", "created", "state", "error")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    step INTEGER PRIMARY KEY,
    samples TEXT NOT NULL,
    asked_state TEXT NOT NULL,
    told_state TEXT,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS children (
    step INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    sample TEXT NOT NULL,
    spec TEXT NOT NULL,
    spec_key TEXT NOT NULL,
    accuracy REAL NOT NULL,
    latency_ms TEXT NOT NULL,
    measured TEXT NOT NULL,
    reward REAL NOT NULL,
    seconds TEXT NOT NULL,
    cached INTEGER NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'complete',
    error TEXT,
    PRIMARY KEY (step, idx)
);
CREATE TABLE IF NOT EXISTS skipped (
    step INTEGER NOT NULL,
    sample TEXT NOT NULL,
    latency_ms TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cache (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""


# -- spec identity (spec_to_dict / spec_from_dict: the arch-file document, one definition) ---------------
def spec_key(spec: ModelSpec, **settings: Any) -> str:
    """Hash of what defines the network (block strings + global params, not the name) plus `settings`."""
    payload = {"blocks": spec.block_strings(), "globals": spec.global_params(), "settings": settings}
    return hashlib.sha256(_dumps(payload).encode()).hexdigest()[:24]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    # numpy arrays / scalars from controller states: stored as plain lists / numbers.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# -- caches ---------------------------------------------------------------------------------------
class ResultCache(Protocol):
    """Where evaluators and latency sources keep results by key (the run store, or a dict in tests)."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...


class MemoryCache:
    """A ResultCache in a dict: for library use without a run store."""

    def __init__(self) -> None:
        self._data: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, value: dict) -> None:
        self._data[key] = value


class _StoreCache:
    def __init__(self, store: "RunStore", namespace: str) -> None:
        self._store, self._namespace = store, namespace

    def get(self, key: str) -> dict | None:
        return self._store.cache_get(self._namespace, key)

    def put(self, key: str, value: dict) -> None:
        self._store.cache_put(self._namespace, key, value)


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildRecord:
    """One evaluated child, as stored."""

    step: int
    idx: int
    sample: list
    spec: dict  # spec_to_dict at the latency (target) resolution
    spec_key: str
    accuracy: float
    latency_ms: dict[str, float]  # per latency source name, in source order
    measured: dict[str, bool]
    reward: float
    seconds: dict[str, float]  # build/train/eval/latency... breakdown
    cached: bool
    detail: dict = field(default_factory=dict)
    created: float = 0.0
    state: str = "complete"  # complete | failed (the error is kept; the controller is not told it)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    def to_spec(self) -> ModelSpec:
        return spec_from_dict(self.spec)


@dataclass(frozen=True)
class OpenStep:
    """A step whose samples were asked for but whose `tell` has not been stored yet."""

    step: int
    samples: list
    asked_state: dict


def _child_from_row(row: dict) -> ChildRecord:
    decoded = {k: json.loads(row[k]) for k in ("sample", "spec", "latency_ms", "measured", "seconds", "detail")}
    return ChildRecord(**{**row, **decoded, "cached": bool(row["cached"])})


# -- the store ------------------------------------------------------------------------------------
class RunStore:
    """SQLite run store. Every write commits at once (WAL), so a killed process loses nothing written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise UserError(f"cannot open run store {str(self.path)!r}: {err}") from None
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        else:
            self._migrate(int(version[0]))

    def _migrate(self, version: int) -> None:
        """Bring an older store to SCHEMA_VERSION in place; refuse a newer one (one line naming both)."""
        if version > SCHEMA_VERSION or version not in MIGRATIONS and version != SCHEMA_VERSION:
            raise UserError(f"run store {str(self.path)!r} has schema {version}, this mnas reads schemas 1.."
                            f"{SCHEMA_VERSION}; use the mnas version that wrote it")
        if version == SCHEMA_VERSION:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    self._db.execute(statement)
            self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings -----------------------------------------------------------------------------------
    def settings(self) -> dict:
        rows = self._db.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def start_or_resume(self, settings: dict, resume: bool) -> bool:
        """Store `settings` for a new run, or check them against the stored run. Returns True when resuming.

        A store that holds a run refuses a start without `resume` (nothing is overwritten by accident), and a
        resume whose settings differ (one line naming the keys). `resume` on an empty store starts the run.
        """
        settings = json.loads(_dumps(settings))  # normalise tuples/numpy as stored
        stored = self.settings()
        if not stored:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO settings VALUES (?, ?)",
                                     [(k, _dumps(v)) for k, v in sorted(settings.items())])
            return False
        if not resume:
            raise UserError(f"{str(self.path)!r} already holds a run; pass --resume to continue it, "
                            "or choose another --out")
        differing = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        if differing:
            detail = "; ".join(f"{k}: stored {stored.get(k)!r}, given {settings.get(k)!r}" for k in differing)
            raise UserError(f"cannot resume {str(self.path)!r} with other settings ({detail})")
        return True

    # -- steps --------------------------------------------------------------------------------------
    def open_step(self) -> OpenStep | None:
        row = self._db.execute("SELECT step, samples, asked_state FROM steps WHERE told_state IS NULL "
                               "ORDER BY step LIMIT 1").fetchone()
        return None if row is None else OpenStep(row[0], json.loads(row[1]), json.loads(row[2]))

    def last_closed_step(self) -> tuple[int, dict] | None:
        """(step, controller state after its tell) of the latest closed step."""
        row = self._db.execute("SELECT step, told_state FROM steps WHERE told_state IS NOT NULL "
                               "ORDER BY step DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def closed_step_states(self) -> list[tuple[int, dict, dict]]:
        """(step, state after ask, state after tell) of every closed step, in order."""
        rows = self._db.execute("SELECT step, asked_state, told_state FROM steps WHERE told_state IS NOT NULL "
                                "ORDER BY step").fetchall()
        return [(r[0], json.loads(r[1]), json.loads(r[2])) for r in rows]

    def closed_steps(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM steps WHERE told_state IS NOT NULL").fetchone()[0]

    def begin_step(self, step: int, samples: list, asked_state: dict) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO steps (step, samples, asked_state, created) VALUES (?, ?, ?, ?)",
                             (step, _dumps(samples), _dumps(asked_state), time.time()))

    def close_step(self, step: int, told_state: dict) -> None:
        """Store the controller state after `tell`; refuses to close a step with missing children."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT samples, told_state FROM steps WHERE step=?", (step,)).fetchone()
            if row is None or row[1] is not None:
                raise RuntimeError(f"step {step} is not open")
            have = self._db.execute("SELECT COUNT(*) FROM children WHERE step=?", (step,)).fetchone()[0]
            if have != len(json.loads(row[0])):
                raise RuntimeError(f"step {step} has {have} of {len(json.loads(row[0]))} children")
            self._db.execute("UPDATE steps SET told_state=?, finished=? WHERE step=?",
                             (_dumps(told_state), time.time(), step))

    # -- children -----------------------------------------------------------------------------------
    def add_child(self, child: ChildRecord) -> None:
        with self._db:
            self._db.execute("BEGIN")
            if child.state not in CHILD_STATES:
                raise ValueError(f"child state must be one of {CHILD_STATES}, got {child.state!r}")
            self._db.execute(
                f"INSERT INTO children ({', '.join(_CHILD_COLUMNS)}) VALUES ({', '.join('?' * len(_CHILD_COLUMNS))})",
                (child.step, child.idx, _dumps(child.sample), _dumps(child.spec), child.spec_key,
                 float(child.accuracy), _dumps(child.latency_ms), _dumps(child.measured), float(child.reward),
                 _dumps(child.seconds), int(child.cached), _dumps(child.detail), child.created or time.time(),
                 child.state, child.error))

    def children(self, step: int | None = None, state: str | None = "complete") -> list[ChildRecord]:
        """Children in (step, idx) order: the complete ones by default, `state=None` for all."""
        where, args = [], []
        if step is not None:
            where, args = where + ["step=?"], args + [step]
        if state is not None:
            where, args = where + ["state=?"], args + [state]
        query = f"SELECT {', '.join(_CHILD_COLUMNS)} FROM children"
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = self._db.execute(query + " ORDER BY step, idx", args).fetchall()
        return [_child_from_row(dict(zip(_CHILD_COLUMNS, r))) for r in rows]

    def count_children(self, state: str | None = None) -> int:
        if state is None:
            return self._db.execute("SELECT COUNT(*) FROM children").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM children WHERE state=?", (state,)).fetchone()[0]

    # -- candidates measured and not trained (outside the latency band) ----------------------------------
    def add_skipped(self, step: int, sample: list, latency_ms: dict, reason: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO skipped (step, sample, latency_ms, reason, created) VALUES (?, ?, ?, ?, ?)",
                             (step, _dumps(sample), _dumps(latency_ms), reason, time.time()))

    def skipped(self) -> list[dict]:
        rows = self._db.execute("SELECT step, sample, latency_ms, reason FROM skipped ORDER BY rowid").fetchall()
        return [{"step": r[0], "sample": json.loads(r[1]), "latency_ms": json.loads(r[2]), "reason": r[3]}
                for r in rows]

    # -- caches -------------------------------------------------------------------------------------
    def cache(self, namespace: str) -> ResultCache:
        return _StoreCache(self, namespace)

    def cache_get(self, namespace: str, key: str) -> dict | None:
        row = self._db.execute("SELECT value FROM cache WHERE namespace=? AND key=?", (namespace, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def cache_put(self, namespace: str, key: str, value: dict) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?)",
                             (namespace, key, _dumps(value), time.time()))
