"""Run store: settings checked on resume, one row per child, steps closed only when complete, caches."""

from __future__ import annotations

import sqlite3

import pytest

from mnas import zoo
from mnas.errors import UserError
from mnas.runstore import ChildRecord, RunStore, spec_from_dict, spec_key, spec_to_dict

SETTINGS = {"space": "mnasnet", "controller": "ppo", "seed": 0, "reward": {"kind": "soft", "targets_ms": [10.0]}}


def _child(step: int, idx: int, reward: float = 0.5) -> ChildRecord:
    spec = zoo.get("mnasnet-a1")
    return ChildRecord(step=step, idx=idx, sample=[idx, step], spec=spec_to_dict(spec), spec_key=spec_key(spec),
                       accuracy=0.9, latency_ms={"host": 12.0}, measured={"host": True}, reward=reward,
                       seconds={"total_s": 1.0}, cached=False)


def test_settings_are_stored_once_and_a_resume_with_other_settings_names_the_keys(tmp_path):
    with RunStore(tmp_path / "run.db") as store:
        assert store.start_or_resume(SETTINGS, resume=False) is False
    with RunStore(tmp_path / "run.db") as store:
        assert store.settings() == SETTINGS
        with pytest.raises(UserError, match="already holds a run; pass --resume"):
            store.start_or_resume(SETTINGS, resume=False)
        assert store.start_or_resume(dict(SETTINGS), resume=True) is True
        other = {**SETTINGS, "seed": 1, "controller": "random"}
        with pytest.raises(UserError, match=r"other settings \(controller: stored 'ppo', given 'random'; seed"):
            store.start_or_resume(other, resume=True)


def test_resume_on_an_empty_store_starts_the_run(tmp_path):
    with RunStore(tmp_path / "run.db") as store:
        assert store.start_or_resume(SETTINGS, resume=True) is False
        assert store.settings() == SETTINGS


def test_a_step_closes_only_with_all_its_children_and_a_child_is_never_stored_twice(tmp_path):
    with RunStore(tmp_path / "run.db") as store:
        store.begin_step(0, [[0, 0], [1, 0]], {"rng": 1})
        assert store.open_step().samples == [[0, 0], [1, 0]] and store.last_closed_step() is None
        store.add_child(_child(0, 0))
        with pytest.raises(RuntimeError, match="1 of 2 children"):
            store.close_step(0, {"rng": 2})
        with pytest.raises(sqlite3.IntegrityError):
            store.add_child(_child(0, 0))
        store.add_child(_child(0, 1, reward=0.7))
        store.close_step(0, {"rng": 2})
        assert store.open_step() is None and store.last_closed_step() == (0, {"rng": 2})
    with RunStore(tmp_path / "run.db") as store:  # everything was committed
        children = store.children()
        assert [(c.step, c.idx, c.reward) for c in children] == [(0, 0, 0.5), (0, 1, 0.7)]
        assert children[0].to_spec().block_strings() == zoo.get("mnasnet-a1").block_strings()
        assert store.closed_steps() == 1


def test_store_is_wal_and_caches_are_namespaced(tmp_path):
    with RunStore(tmp_path / "run.db") as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        acc, lat = store.cache("accuracy"), store.cache("latency")
        acc.put("k", {"accuracy": 0.5})
        assert acc.get("k") == {"accuracy": 0.5} and lat.get("k") is None


def test_spec_key_ignores_the_name_but_not_params_or_settings():
    a = zoo.get("mnasnet-a1")
    assert spec_key(a) == spec_key(a.replace(name="other"))
    assert spec_key(a) != spec_key(a.replace(resolution=192))
    assert spec_key(a, epochs=1) != spec_key(a, epochs=2)
    assert spec_from_dict(spec_to_dict(a)) == a
