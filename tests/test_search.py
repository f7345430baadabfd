"""The search loop: budget, outputs, Pareto front, target floor, and resume after a crash or a kill -9.

Latency comes from a real table (OFA's published Note10 table, imported) so runs are deterministic. Accuracy
comes from `CostEvaluator`, a test stand-in: proxy training makes a kill/resume test minutes long, and these
tests are about the loop, not about accuracy (tests/test_evaluator.py and tests/test_cli_search.py train real
children).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnas import spaces
from mnas.costs import count_macs
from mnas.errors import UserError
from mnas.evaluators.base import EvalResult
from mnas.pareto import best_within, pareto_front
from mnas.reward import Reward
from mnas.runstore import RunStore
from mnas.search import SearchSetup, check_targets, run_search, summarize, write_outputs

REPO = Path(__file__).resolve().parents[1]
NOTE10_224 = "ofa_note10/224_lookup_table.yaml"


class CostEvaluator:
    """Test stand-in evaluator: accuracy rises smoothly with the child's MACs (as it tends to on a proxy)."""

    name = "cost-standin"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def settings(self) -> dict:
        return {"evaluator": self.name}

    def evaluate(self, specs):
        out = []
        for spec in specs:
            self.calls += 1
            time.sleep(self.delay_s)
            macs = count_macs(spec)
            out.append(EvalResult(0.5 + 0.4 * (1 - math.exp(-macs / 3e8)), self.delay_s, False, {"macs": macs}))
        return out


def note10_table(directory: Path) -> Path:
    from latency.public_luts import default_luts_dir, import_yaml
    from latency.store import TableStore

    yaml_path = default_luts_dir() / NOTE10_224
    assert yaml_path.exists(), f"published Note10 table not at {yaml_path} (shipped in data/public_luts)"
    path = directory / "note10.db"
    if not path.exists():
        with TableStore.open(path, create=True) as store:
            import_yaml(yaml_path, store)
    return path


def make_setup(table: Path, controller: str = "ppo", steps: int = 4, batch: int = 3, target_ms: float = 45.0,
               delay_s: float = 0.0, **options) -> SearchSetup:
    from latency.predictor import Predictor
    from mnas.latency_sources import TableLatency

    source = TableLatency(Predictor.load(table, resolution=224), name="note10")
    return SearchSetup(space=spaces.get("ofa-mbv3"), controller=controller, evaluator=CostEvaluator(delay_s),
                       sources=[source], reward=Reward("soft", [target_ms]), steps=steps, batch=batch, seed=3,
                       controller_options=options)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return note10_table(tmp_path_factory.mktemp("luts"))


def _trace(store: RunStore) -> list[tuple]:
    return [(c.step, c.idx, tuple(c.sample), round(c.reward, 12)) for c in store.children()]


def test_search_fills_the_budget_and_writes_history_plot_and_best(tmp_path, table):
    setup = make_setup(table)
    with RunStore(tmp_path / "run" / "run.db") as store:
        result = run_search(setup, store, progress=False)
        assert result.new_children == 12 and len(result.children) == 12 and store.closed_steps() == 4
        summary = write_outputs(setup, store, tmp_path / "run", export=False)
    best = summary["best"]
    assert best["within_target"] and best["latency_ms"]["note10"] <= 45.0
    within = [c for c in result.children if c.latency_ms["note10"] <= 45.0]
    assert best["accuracy"] == max(c.accuracy for c in within)
    assert all(c.measured == {"note10": False} for c in result.children)  # predicted, and said so
    lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(lines) == 13 and "latency_ms[note10]" in lines[0]
    assert (tmp_path / "run" / "pareto.png").stat().st_size > 5000
    from mnas.archfile import load_arch_file

    assert load_arch_file(tmp_path / "run" / "best.json").block_strings() == best["blocks"]


@pytest.mark.parametrize("controller, options", [("ppo", {}), ("reinforce", {}), ("evolution", {"population": 4,
                                                                                                    "sample_size": 2}),
                                                 ("random", {})])
def test_a_crashed_run_resumes_to_exactly_the_uninterrupted_run(tmp_path, table, controller, options):
    with RunStore(tmp_path / "a.db") as store:
        run_search(make_setup(table, controller, **options), store, progress=False)
        expected = _trace(store)

    class Crash(Exception):
        pass

    def crash_after_five(child):
        if child.step * 3 + child.idx == 4:
            raise Crash

    with RunStore(tmp_path / "b.db") as store:
        with pytest.raises(Crash):
            run_search(make_setup(table, controller, **options), store, progress=False, on_child=crash_after_five)
        assert store.count_children() == 5 and store.open_step().step == 1
    with RunStore(tmp_path / "b.db") as store:
        setup = make_setup(table, controller, **options)
        result = run_search(setup, store, resume=True, progress=False)
        assert result.resumed and result.new_children == 7 and setup.evaluator.calls == 7
        assert _trace(store) == expected


KILL_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from mnas.runstore import RunStore
from mnas.search import run_search
from tests.test_search import make_setup
with RunStore({db!r}) as store:
    run_search(make_setup(Path({table!r}), steps=4, batch=3, delay_s=0.4), store, resume=True, progress=False)
"""


def test_kill_9_mid_search_then_resume_loses_and_duplicates_nothing(tmp_path, table):
    with RunStore(tmp_path / "ref.db") as store:
        run_search(make_setup(table), store, progress=False)
        expected = _trace(store)
    db = tmp_path / "killed.db"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(repo=str(REPO), db=str(db), table=str(table)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        count = 0
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                with RunStore(db) as store:
                    count = store.count_children()
                if count >= 5:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with RunStore(db) as store:
        killed_at = store.count_children()
        assert 5 <= killed_at < 12
        result = run_search(make_setup(table), store, resume=True, progress=False)
        assert result.new_children == 12 - killed_at
        trace = _trace(store)
    assert len({(s, i) for s, i, *_ in trace}) == 12
    assert trace == expected


def test_resume_with_other_settings_is_refused_naming_the_keys(tmp_path, table):
    with RunStore(tmp_path / "run.db") as store:
        run_search(make_setup(table, steps=1, batch=2), store, progress=False)
    with RunStore(tmp_path / "run.db") as store, pytest.raises(UserError, match="controller: stored 'ppo'"):
        run_search(make_setup(table, "random", steps=1, batch=2), store, resume=True, progress=False)


def test_a_target_below_the_smallest_model_of_the_space_is_refused(table):
    setup = make_setup(table)
    floor = check_targets(setup.space, setup.sources, [100.0], 224)[0]
    assert 0 < floor < 100
    with pytest.raises(UserError, match=r"below the smallest model of space 'ofa-mbv3'"):
        check_targets(setup.space, setup.sources, [floor * 0.9], 224)


def test_pareto_front_and_best_within_targets():
    acc = [0.5, 0.7, 0.6, 0.9, 0.7]
    lat = [10.0, 20.0, 30.0, 40.0, 20.0]  # (0.6, 30) is dominated; the second (0.7, 20) is a duplicate
    assert pareto_front(acc, lat) == [0, 1, 3]
    assert best_within(acc, np.array(lat)[:, None], [35.0], [0.1, 0.2, 0.3, 0.4, 0.5]) == (4, True)
    assert best_within(acc, np.array(lat)[:, None], [5.0], [0.1, 0.2, 0.3, 0.4, 0.5]) == (4, False)
    two = np.array([[10, 50], [20, 10], [30, 30]], dtype=float)  # two devices: a trade-off on each keeps all three
    assert pareto_front([0.5, 0.5, 0.6], two) == [0, 1, 2]
    assert pareto_front([0.5, 0.5, 0.4], two) == [0, 1]


def test_summary_counts_and_best_reward_curve(tmp_path, table):
    setup = make_setup(table, steps=2, batch=2)
    with RunStore(tmp_path / "run.db") as store:
        children = run_search(setup, store, progress=False).children
    summary = summarize(setup, children)
    assert summary["counts"]["children"] == 4 and summary["counts"]["budget"] == 4
    curve = summary["best_reward_so_far"]
    assert curve == sorted(curve) and curve[-1] == max(c.reward for c in children)


def test_two_devices_one_target_each_multiply_the_latency_terms(tmp_path, table):
    from latency.predictor import Predictor
    from mnas.latency_sources import TableLatency

    predictor = Predictor.load(table, resolution=224)
    setup = make_setup(table, steps=1, batch=3)
    setup.sources = [TableLatency(predictor, name="phone-a"), TableLatency(predictor, name="phone-b")]
    setup.reward = Reward("soft", [45.0, 30.0])
    with RunStore(tmp_path / "run" / "run.db") as store:
        children = run_search(setup, store, progress=False).children
        summary = write_outputs(setup, store, tmp_path / "run", export=False)
    for c in children:
        a, b = c.latency_ms["phone-a"], c.latency_ms["phone-b"]
        assert c.reward == pytest.approx(c.accuracy * (a / 45.0) ** -0.07 * (b / 30.0) ** -0.07)
    assert summary["targets_ms"] == {"phone-a": 45.0, "phone-b": 30.0}
    assert not summary["best"]["within_target"]  # none of these seeded samples meets 30 ms: best reward shown
    assert "latency_ms[phone-b]" in (tmp_path / "run" / "history.csv").read_text().splitlines()[0]


def test_setup_refuses_a_target_count_other_than_the_source_count(table):
    with pytest.raises(UserError, match="1 latency source\\(s\\) but 2 target\\(s\\)"):
        SearchSetup(space=spaces.get("ofa-mbv3"), controller="random", evaluator=CostEvaluator(),
                    sources=make_setup(table).sources, reward=Reward("soft", [1.0, 2.0]), steps=1)


class ParallelCostEvaluator(CostEvaluator):
    """The stand-in, declared parallel (as `mnas.executors.children.ParallelEvaluator` is): records batch sizes."""

    parallel = True

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def evaluate(self, specs):
        self.batches.append(len(specs))
        return super().evaluate(specs)


def test_a_parallel_evaluator_gets_each_step_as_one_batch_with_the_same_results(tmp_path, table):
    serial = make_setup(table, controller="evolution", steps=3, batch=4)
    with RunStore(tmp_path / "serial.db") as store:
        expected = [(c.step, c.idx, c.reward) for c in run_search(serial, store, progress=False).children]
    parallel = make_setup(table, controller="evolution", steps=3, batch=4)
    evaluator = ParallelCostEvaluator()
    parallel.evaluator = evaluator
    with RunStore(tmp_path / "parallel.db") as store:
        got = [(c.step, c.idx, c.reward) for c in run_search(parallel, store, progress=False).children]
    assert evaluator.batches == [4, 4, 4]
    assert got == expected


class FlakyEvaluator(CostEvaluator):
    """Raises (as a child that runs out of memory would) on its 2nd and 5th calls."""

    def evaluate(self, specs):
        if self.calls + 1 in (2, 5):
            self.calls += 1
            raise RuntimeError("child blew up\nsecond line")
        return super().evaluate(specs)


def test_a_failing_child_is_recorded_and_the_search_goes_on(tmp_path, capsys):
    setup = make_setup(note10_table(tmp_path), controller="reinforce", steps=3, batch=3)
    setup.evaluator = FlakyEvaluator()
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
        failed = store.children(state="failed")
        assert [(c.step, c.idx) for c in failed] == [(0, 1), (1, 1)]
        assert all(c.error == "RuntimeError: child blew up" and c.reward == 0.0 for c in failed)
        assert store.count_children() == 9 and len(store.children()) == 7
        from mnas.search import restored_controller

        assert restored_controller(setup, store)[0].num_told == 7  # told complete children only
        summary = write_outputs(setup, store, tmp_path / "out", export=False)
        assert summary["counts"]["failed"] == 2 and summary["counts"]["children"] == 7
    assert capsys.readouterr().err.count("recorded as failed, the search goes on") == 2
    setup.steps = 3
    with RunStore(tmp_path / "run.db") as store:  # resume: failed children are not retried
        calls = setup.evaluator.calls
        run_search(setup, store, resume=True, progress=False)
        assert setup.evaluator.calls == calls


def test_a_schema_1_run_store_is_migrated_and_a_newer_one_refused(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with RunStore(path) as store:
        store.start_or_resume({"space": "x"}, resume=False)
    db = sqlite3.connect(path)  # make it look like a store written before child states existed
    db.execute("ALTER TABLE children DROP COLUMN state")
    db.execute("ALTER TABLE children DROP COLUMN error")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    with RunStore(path) as store:
        assert store.settings() == {"space": "x"} and store.children(state=None) == []
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "2"
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='9' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(UserError, match=r"has schema 9, this mnas reads schemas 1..2"):
        RunStore(path)


@pytest.mark.parametrize("controller", ["ppo", "reinforce", "evolution"])
def test_replayed_controller_state_equals_the_live_one(tmp_path, table, monkeypatch, controller):
    """Between full snapshots the state is rebuilt by replaying the stored tells. With a snapshot after every
    step the stored state is the live one; with one every 2 steps or none at all the replayed state must equal
    it bit for bit, and so must the children."""
    import mnas.search as search

    states, traces = {}, {}
    for every in (1, 2, 100):
        monkeypatch.setattr(search, "SNAPSHOT_EVERY", every)
        setup = make_setup(table, controller, steps=5, batch=3)
        with RunStore(tmp_path / f"{every}.db") as store:
            run_search(setup, store, progress=False)
            _, (step, state) = search.restored_controller(setup, store)
            assert step == 4 and state["num_told"] == 15
            states[every], traces[every] = json.dumps(state, sort_keys=True), _trace(store)
    assert states[1] == states[2] == states[100] and traces[1] == traces[2] == traces[100]


def test_default_ppo_stores_a_few_hundred_bytes_per_step(tmp_path, table):
    import sqlite3

    setup = make_setup(table, "ppo", steps=6, batch=4)
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
    db = sqlite3.connect(tmp_path / "run.db")
    per_step = db.execute(
        "SELECT AVG(LENGTH(samples) + LENGTH(asked_state) + LENGTH(told_state)) FROM steps").fetchone()
    full = len(json.dumps(search_controller_state(setup)))
    assert per_step[0] < 2_000 < 20_000 < full, (per_step, full)


def search_controller_state(setup) -> dict:
    from mnas import controllers

    return controllers.create(setup.controller, setup.space, setup.seed).state_dict()
