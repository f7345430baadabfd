"""AutoML-Zero (`mnas.zero`, `mnas zero`): the op table, the text form, the compiled interpreter checked op by op
against an independent numpy one, hand-written algorithms trained to high fitness by it, FEC, mutation,
evolution, the resumable store, the demo protocol, the CLI's bad-input lines and islands on a real Ray cluster.

The numba kernels compile once per process (and load from numba's on-disk cache after that); every test here
shares them, with tiny populations and task sets.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import re

import numpy as np
import pytest

from mnas.cli import main
from mnas.errors import UserError
from mnas.zero import kernels as K
from mnas.zero.baselines import BASELINES, baseline
from mnas.zero.numpy_interp import evaluate_numpy, execute_numpy
from mnas.zero.ops import BY_NAME, CONST_M, GAUSSIAN, KINDS, NUM_OPS, OPS, UNIFORM, op_by_name, parse_op_list
from mnas.zero.population import Evaluation, Population, SearchSpace, evaluate_program
from mnas.zero.program import Instruction, Memory, Program, parse_instruction, parse_program
from mnas.zero.search import Budget, DemoConfig, SearchConfig, preset, run_demo, run_search, \
    selection_fitness
from mnas.zero.store import ZeroStore
from mnas.zero.tasks import held_out_mnist_tasks, held_out_pairs, linear_tasks, sampled_mnist_tasks, search_pairs
from tests.conftest import require

RANDOM_OPS = {op.id for op in OPS if op.data in (GAUSSIAN, UNIFORM)}
DETERMINISTIC_OPS = [op.id for op in OPS[1:] if op.id not in RANDOM_OPS]
MEM = Memory(5, 4, 3)


def _random_instruction(rng: random.Random, op_id: int, memory: Memory = MEM,
                        writes_inputs: bool = True) -> Instruction:
    """writes_inputs=False: never writes s0/v0 (as evolution never does)."""
    op = OPS[op_id]
    pick = lambda kind: rng.randrange(memory.size(kind)) if kind else 0  # noqa: E731
    out = pick(op.out)
    if not writes_inputs and op.out in (1, 2):
        out = rng.randrange(1, memory.size(op.out))
    d1 = rng.uniform(0, 1) if op.data == CONST_M else rng.uniform(-1, 1)  # a matrix index is a fraction
    return Instruction(op.id, pick(op.in1), pick(op.in2), out, rng.uniform(0, 1), d1, rng.uniform(-1, 1))


def _random_program(rng: random.Random, ops: list[int], sizes=(3, 3, 4)) -> Program:
    return Program(*(tuple(_random_instruction(rng, rng.choice(ops)) for _ in range(n)) for n in sizes))


# -- the op set and its text ------------------------------------------------------------------------------
def test_op_table_has_the_65_ops_of_instruction_proto():
    assert NUM_OPS == 65 and OPS[0].name == "NO_OP"
    ids = {"SCALAR_SUM_OP": 1, "SCALAR_HEAVYSIDE_OP": 15, "SCALAR_VECTOR_PRODUCT_OP": 18, "VECTOR_SUM_OP": 23,
           "VECTOR_INNER_PRODUCT_OP": 27, "MATRIX_VECTOR_PRODUCT_OP": 31, "MATRIX_MATRIX_PRODUCT_OP": 43,
           "MATRIX_ROW_ST_DEV_OP": 53, "SCALAR_CONST_SET_OP": 56, "MATRIX_GAUSSIAN_SET_OP": 64}
    assert all(BY_NAME[name].id == i for name, i in ids.items())
    dot = BY_NAME["VECTOR_INNER_PRODUCT_OP"]
    assert (dot.in1, dot.in2, dot.out) == (2, 2, 1) and KINDS.shape == (65, 4)
    assert op_by_name("scalar_sum").id == 1 and op_by_name("27").name == "VECTOR_INNER_PRODUCT_OP"
    assert parse_op_list("all") == tuple(range(1, 65))
    with pytest.raises(UserError, match="unknown op 'SCALAR_FOO'"):
        parse_op_list("SCALAR_SUM_OP,SCALAR_FOO")


def test_every_instruction_prints_and_parses_back_exactly():
    rng = random.Random(0)
    for op in OPS:
        for _ in range(3):
            ins = _random_instruction(rng, op.id)
            assert parse_instruction(ins.text()) == dataclasses.replace(
                ins, **{f: 0 for f, k in (("in1", op.in1), ("in2", op.in2), ("out", op.out)) if not k},
                **_unused_data(op))
    program = _random_program(rng, list(range(65)), (4, 3, 5))
    parsed, memory = parse_program(program.to_text(MEM, "a comment"))
    assert memory == MEM and parsed.sizes == (4, 3, 5)


def _unused_data(op) -> dict:
    used = {0: 0, 1: 1, 2: 2, 3: 3, 4: 2, 5: 2}[op.data]
    return {f"d{i}": 0.0 for i in range(used, 3)}


def test_bad_program_text_is_one_line_naming_the_line_and_reason():
    good = BASELINES["linear-regression"]
    cases = {"def Setup():\n  s1 = foo(s2)\n": "program:2: cannot parse 's1 = foo(s2)': unknown op 'foo'",
             "def Setup():\n  s1 = s2 + v1\n": "no op of the 65 takes these argument kinds",
             "  s1 = s2 + s3\n": "program:1: 's1 = s2 + s3' comes before any",
             "def Train():\n": "unknown function 'Train'",
             "# memory: scalars=3 vectors=3 matrices=1\n" + good: "uses s3, outside the memory"}
    for text, message in cases.items():
        with pytest.raises(UserError, match=re.escape(message)) as err:
            parse_program(text)
        assert "\n" not in str(err.value)


# -- the interpreter ----------------------------------------------------------------------------------------
def test_compiled_interpreter_matches_numpy_on_every_op():
    """Each deterministic op on random memory (aliased addresses included), F = 3: the numba `execute` and the
    numpy interpreter write the same memory."""
    rng = random.Random(1)
    nrng = np.random.default_rng(1)
    F = 3
    for op_id in DETERMINISTIC_OPS:
        for _ in range(6):
            ins = _random_instruction(rng, op_id, writes_inputs=False)
            s, v, m = nrng.normal(size=MEM.scalars), nrng.normal(size=(MEM.vectors, F)), \
                nrng.normal(size=(MEM.matrices, F, F))
            s[0], v[0] = 0.0, 0.5  # what the run loads into s0 (Predict's label slot) and v0 (features) later
            ref = [s[None].copy(), v[None].copy(), m[None].copy()]
            code, data, lens = Program(setup=(ins,)).arrays()
            one_task = (np.full((1, 1, F), 0.5), np.zeros((1, 1)), np.full((1, 1, F), 0.5), np.zeros((1, 1)))
            K.score(code[None], data[None], lens[None], one_task, (0, 1, K.RMS_ERROR, np.inf), MEM.as_array(),
                    (s, v, m, np.zeros(F), np.zeros((F, F))))
            with np.errstate(all="ignore"):
                execute_numpy([ins], *ref, nrng)
            for got, want in zip((s, v, m), ref):
                np.testing.assert_allclose(got, want[0], rtol=1e-12, atol=1e-12, equal_nan=True,
                                           err_msg=f"{OPS[op_id].name}: {ins.text()}")


def test_random_programs_score_alike_in_both_interpreters():
    """Whole programs (Setup once, Predict+Learn per example, early stop) on regression and on accuracy tasks."""
    rng = random.Random(2)
    linear = linear_tasks(3, 7, features=3, train=20, valid=10)
    pairs = sampled_mnist_tasks(2, 3, features=3, train=20, valid=10)
    for tasks in (linear, pairs):
        for _ in range(25):
            program = _random_program(rng, DETERMINISTIC_OPS)
            with np.errstate(all="ignore"):
                want = evaluate_numpy(program, tasks, MEM)
            np.testing.assert_allclose(evaluate_program(program, tasks, MEM), want, rtol=1e-9, atol=1e-9,
                                       err_msg=program.to_text())


def test_hand_written_linear_regression_passes_the_demo_bar():
    """SGD in the demo's op set and memory: selection fitness > 0.9999 on 100 fresh tasks (1000 examples each);
    the numpy interpreter agrees."""
    program = baseline("linear-regression")
    assert selection_fitness(program, seed=5) > 0.9999
    tasks = linear_tasks(5, 3, 4, 1000, 100)
    np.testing.assert_allclose(evaluate_program(program, tasks, Memory(4, 3, 1)),
                               evaluate_numpy(program, tasks, Memory(4, 3, 1)), rtol=1e-9)
    broken = dataclasses.replace(program, learn=program.learn[:-1])  # never updates the weights
    assert evaluate_program(broken, tasks, Memory(4, 3, 1)).mean() < 0.5


def test_hand_written_classifiers_learn_the_held_out_pairs():
    task, space = preset("mnist-pairs")
    tasks = held_out_mnist_tasks(projections=2, train=task.train, valid=task.valid)
    memory = space.memory
    logistic = evaluate_program(baseline("logistic-regression"), tasks, memory)
    two_layer = evaluate_program(baseline("two-layer-nn"), tasks, memory)
    assert logistic.mean() > 0.85 and two_layer.mean() > 0.85, (logistic, two_layer)  # chance: 0.5
    assert np.array_equal(two_layer, evaluate_program(baseline("two-layer-nn"), tasks, memory))  # seeded per task
    assert set(held_out_pairs()).isdisjoint(search_pairs()) and len(held_out_pairs()) == 9


# -- FEC, mutation, evolution --------------------------------------------------------------------------------
def test_fec_cache_is_an_lru_that_forgets_often_seen_entries():
    cache = K.new_cache(3)
    for key in (1, 2, 3):
        K.cache_insert(cache, np.uint64(key), key / 10)
    assert K.cache_find(cache, np.uint64(1), 0) == (0.1, True)  # 1 becomes the most recent
    K.cache_insert(cache, np.uint64(4), 0.4)  # evicts the least recent: 2
    assert not K.cache_find(cache, np.uint64(2), 0)[1]
    assert [K.cache_find(cache, np.uint64(k), 0)[1] for k in (1, 3, 4)] == [True, True, True]
    assert K.cache_find(cache, np.uint64(4), 3) == (0.4, True)  # its third sighting: dropped after this hit
    assert not K.cache_find(cache, np.uint64(4), 3)[1]
    for key in range(100, 400):  # many inserts and evictions: tombstones get cleaned, lookups stay right
        K.cache_insert(cache, np.uint64(key), float(key))
    assert K.cache_find(cache, np.uint64(399), 0) == (399.0, True) and not K.cache_find(cache, np.uint64(396), 0)[1]


def test_mutations_keep_programs_inside_the_space():
    ops = parse_op_list("SCALAR_SUM_OP,VECTOR_INNER_PRODUCT_OP,MATRIX_CONST_SET_OP,VECTOR_GAUSSIAN_SET_OP")
    space = SearchSpace((ops, ops[:2], ops), Memory(4, 3, 2), (3, 2, 3), (1, 1, 0), (5, 3, 6),
                        ("insert_or_remove", "randomize_function", "alter_param", "randomize_instruction"))
    code, data, lens = Program().arrays(space.rows)
    allowed, n_allowed, mut_types, sizes, mem, params, _ = space.kernel_args()
    rng = np.zeros(4, dtype=np.uint64)
    K.seed_rng(rng, 3)
    K.random_program(code, data, lens, sizes, allowed, n_allowed, mem, rng)
    seen_sizes = set()
    for _ in range(3000):
        K.mutate(code, data, lens, mut_types, sizes, allowed, n_allowed, mem, params[1], rng)
        program = Program.from_arrays(code, data, lens)
        program.check_memory(space.memory)
        seen_sizes.add(program.sizes)
        assert all(lo <= n <= hi for lo, n, hi in zip(space.min_sizes, program.sizes, space.max_sizes))
        for f, body in enumerate(program.functions):
            assert all(ins.op in space.ops[f] for ins in body)
            assert all(ins.out >= 1 for ins in body if OPS[ins.op].out in (1, 2))  # never the label or features
    assert len(seen_sizes) > 20


def test_constants_scale_by_half_to_double_or_flip_sign():
    code, data, _ = Program(setup=(Instruction(56, out=2, d0=0.5),)).arrays()
    rng = np.zeros(4, dtype=np.uint64)
    K.seed_rng(rng, 9)
    ratios = []
    for _ in range(2000):
        before = data[0, 0]
        K.alter_param(code, data, 0, np.array([4, 3, 1]), K.CONST_SCALE_UNIFORM, rng)
        if data[0, 0] != before:
            ratios.append(data[0, 0] / before)
        data[0, 0] = 0.5
    ratios = np.array(ratios)
    flips = np.isclose(ratios, -1.0)
    assert 0.06 < flips.mean() < 0.14 and np.all((ratios[~flips] >= 0.5) & (ratios[~flips] <= 2.0))


def _linear_config(population: int = 100, fec: bool = True, **kw) -> SearchConfig:
    task, space = preset("linear")
    return SearchConfig(task, space, Evaluation(fec=fec), population=population, **kw)


def test_evolution_improves_on_the_random_population_and_fec_hits():
    config = _linear_config(population=1000)
    pop = Population(config.space, config.evaluation, 1000, 0)
    tasks = config.task.search_tasks(0)
    pop.run(tasks, 1000)
    random_best = pop.best()[1]
    pop.run(tasks, 60_000)
    assert pop.individuals == 61_000 and pop.best()[1] > random_best + 0.05
    assert 0.5 < pop.fec_hits / pop.fec_lookups < 1.0  # most children repeat a known function (paper: ~4x)
    program, fitness = pop.best()
    assert evaluate_program(program, tasks, config.space.memory).mean() == pytest.approx(fitness, abs=1e-12)


def test_a_search_resumed_from_its_store_continues_exactly(tmp_path):
    """No FEC (a resumed run starts with an empty cache): 3,000 then a resume to 6,000 individuals is the
    uninterrupted 6,000-individual run, population for population."""
    config = _linear_config(fec=False)
    with ZeroStore(tmp_path / "a.db") as store:
        straight = run_search(config, store, Budget(individuals=6000), progress=False)
        straight_state = store.load_state()[1]
    with ZeroStore(tmp_path / "b.db") as store:
        run_search(config, store, Budget(individuals=3000), progress=False)
        with pytest.raises(UserError, match="pass --resume"):
            run_search(config, store, Budget(individuals=6000), progress=False)
        with pytest.raises(UserError, match="other settings"):
            run_search(dataclasses.replace(config, seed=1), store, Budget(individuals=6000), resume=True,
                       progress=False)
        resumed = run_search(config, store, Budget(individuals=6000), resume=True, progress=False, out_dir=tmp_path)
        resumed_state = store.load_state()[1]
        assert len(store.progress()) >= 2
    assert resumed.resumed and resumed.individuals == straight.individuals == 6000
    assert all(np.array_equal(straight_state[k], resumed_state[k]) for k in straight_state)
    assert resumed.final_fitness == straight.final_fitness and resumed.baselines["linear-regression"] > 0.9999
    assert parse_program((tmp_path / "best.txt").read_text())[0] == resumed.program


def test_demo_protocol_selects_restarts_and_scores_unseen_tasks(tmp_path):
    """A tiny demo (experiments of 20k train steps) runs experiments, selection checks at their ends, the final
    evaluation, and a resume of the stored run gives the same answer."""
    config = DemoConfig(seed=1, population=50, max_train_steps=20_000, max_seconds=1.0)
    with ZeroStore(tmp_path / "run.db") as store:
        result = run_demo(config, store, progress=False, out_dir=tmp_path)
        events = store.events("select")
        assert result.experiments >= 2 and len(store.events("experiment")) == result.experiments - 1
        assert len(events) >= result.experiments - 1
        assert result.selection_fitness == max(e["select_fitness"] for e in events)
        again = run_demo(dataclasses.replace(config, max_seconds=0.001), store, resume=True, progress=False)
    assert 0.0 <= result.final_fitness <= 1.0 and result.individuals == again.individuals
    assert again.program == result.program and (tmp_path / "best.txt").exists()


# -- the command line -----------------------------------------------------------------------------------------
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("def Setup():\n  s2 = 0.5\ndef Predict():\n  s1 = dot(v0, v1, v2)\n")
    wide = tmp_path / "wide.txt"
    wide.write_text("def Predict():\n  s9 = dot(v0, v1)\n")
    cases = [(["zero", "eval", str(bad), "--task", "linear"], f"{bad}:4: cannot parse 's1 = dot(v0, v1, v2)'"),
             (["zero", "eval", str(wide), "--task", "linear"], "uses s9, outside the memory"),
             (["zero", "eval", "linear-regression", "--task", "cifar"], "unknown task 'cifar'"),
             (["zero", "search", "--task", "linear", "--ops", "SCALAR_SUM_OP,FOO", "--out", str(tmp_path),
               "--minutes", "1"], "unknown op 'FOO'"),
             (["zero", "search", "--task", "linear", "--out", str(tmp_path), "--scalars", "9", "--minutes", "1",
               "--init-sizes", "1,2"], "--init-sizes takes three integers")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_cli_eval_scores_a_baseline(run_cli):
    out = run_cli("zero", "eval", "linear-regression", "--task", "linear", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["fitness"] > 0.9999 and result["memory"] == "scalars=4 vectors=3 matrices=1"
    assert len(result["fitness_per_task"]) == 100


# -- islands on Ray -------------------------------------------------------------------------------------------
def test_islands_on_a_real_ray_cluster_migrate(tmp_path):
    require(importlib.util.find_spec("ray") is not None, "ray (pip install 'ray==2.60.0')")
    from mnas.executors import get_executor

    config = _linear_config(population=50, islands=2, migrate_every=300, migrants=3)
    executor = get_executor("ray", num_cpus=2)
    try:
        with ZeroStore(tmp_path / "run.db") as store:
            result = run_search(config, store, Budget(individuals=1200), executor=executor, progress=False)
            migrations = store.events("migration")
    finally:
        executor.close()
    assert result.islands == 2 and result.individuals == 1200 and len(migrations) == 2
    assert all(len(m["best"]) == 2 for m in migrations)
    assert result.search_fitness == max(migrations[-1]["best"])
