"""AutoHAS: hyperparameters in the sample (every controller), W* trained and discarded, resume, bad grids, best.json.

A two-block space with one op per block and a 32-filter head keeps the supernet's traces to seconds; TF is imported
only by the tests that train (one import for the module).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas import controllers
from mnas.errors import UserError
from mnas.hparams import DEFAULT_GRID, HparamSpace, check_grid, load_grid, search_space, shift_images
from mnas.runstore import spec_key
from mnas.spaces.base import Space
from mnas.spaces.mnasnet import MNASNET_PARAMS, BlockStage

TINY = Space("tiny-autohas", [
    BlockStage(0, 16, 1, 2, ops=("dsconv",), se_ratios=(0.0,), skips=("none", "pool"), layer_deltas=(0, 1)),
    BlockStage(1, 24, 1, 2, ops=("mbconv3",), se_ratios=(0.0, 0.25), skips=("none", "pool"), layer_deltas=(0,)),
], dict(MNASNET_PARAMS, stem_filters=8, head_filters=32))
GRID = {"learning_rate": (1e-3, 4e-3), "weight_decay": (0.0, 1e-3), "label_smoothing": (0.0, 0.1),
        "dropout": (0.0, 0.3), "augment": (0, 2)}


def test_the_sample_carries_the_hparams_and_every_controller_runs_on_it():
    space = HparamSpace(TINY, GRID)
    assert space.num_options == TINY.num_options + (2, 2, 2, 2, 2)
    for name in controllers.names():
        ctrl = controllers.create(name, space, seed=1)
        for _ in range(3):
            samples = ctrl.ask(4)
            ctrl.tell(samples, [float(np.mean(s)) for s in samples])
        again = controllers.create(name, space, seed=1)
        again.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))
        assert again.ask(2) == ctrl.ask(2), name
    sample = samples[0]
    arch, hp = space.split(sample)
    assert set(hp) == set(GRID) and all(hp[k] in GRID[k] for k in GRID)
    assert space.join(arch, hp) == sample and space.decode_sample(space.encode_sample(sample)) == sample
    spec = space.to_spec(sample)
    # the network (and so its latency and key) is the architecture's alone; the recipe rides along
    assert spec_key(spec) == spec_key(TINY.to_spec(arch)) and spec.extra["hparams"] == hp
    assert len(space.smallest_sample()) == len(space.choices)
    with pytest.raises(UserError, match="hp/augment"):
        space.validate(arch + (0, 0, 0, 0, 2))


@pytest.mark.parametrize("doc, needle", [
    ({"learning_rte": [0.1]}, "unknown hyperparameter 'learning_rte'"),
    ({"learning_rate": []}, "empty list"),
    ({"learning_rate": 0.1}, "must be a list"),
    ({"learning_rate": ["fast"]}, "learning_rate values must be floats"),
    ({"augment": [1.5]}, "augment values must be ints"),
    ({"dropout": [True]}, "dropout values must be floats"),
    ({"dropout": [1.0]}, "dropout must be >= 0 and < 1"),
    ({"learning_rate": [0]}, "learning_rate must be > 0"),
    ({"weight_decay": [0.1, 0.1]}, "lists a value twice"),
    ([0.1], "expected a mapping"),
])
def test_bad_grids_name_the_problem(tmp_path, doc, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        check_grid(doc, "grid.json")
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML: the file route gives the same line
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        load_grid(path)


def test_default_grid_and_which_evaluators_take_one():
    assert load_grid("default") == DEFAULT_GRID
    assert isinstance(search_space(TINY, None, "autohas"), HparamSpace)
    assert search_space(TINY, None, "supernet") is TINY
    with pytest.raises(UserError, match="--hparams needs --evaluator autohas"):
        search_space(TINY, "DEFAULT", "supernet")
    with pytest.raises(UserError, match="neither DEFAULT nor a file"):
        load_grid("nope.json")


@pytest.mark.parametrize("args, needle", [
    (["--evaluator", "autohas", "--hparams", "GRID"], "unknown hyperparameter 'lr'"),
    (["--evaluator", "supernet", "--hparams", "DEFAULT"], "--hparams needs --evaluator autohas"),
])
def test_cli_bad_hparams_is_one_line_exit_2(run_cli, tmp_path, args, needle):
    grid = tmp_path / "grid.json"
    grid.write_text('{"lr": [0.001]}')
    proc = run_cli("search", "--space", "mnasnet", "--device", "host", *[str(grid) if a == "GRID" else a
                                                                          for a in args], "--out", tmp_path / "run")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], \
        proc.stderr


def test_shifted_images_move_by_at_most_the_strength():
    x = np.zeros((20, 9, 9, 1), np.float32)
    x[:, 4, 4] = 1.0
    out = shift_images(x, 2, np.random.default_rng(0))
    where = np.argwhere(out[..., 0] == 1.0)
    assert len(where) == 20 and np.all(np.abs(where[:, 1:] - 4) <= 2) and len({tuple(w) for w in where[:, 1:]}) > 1
    assert shift_images(x, 0, np.random.default_rng(0)) is x


def test_standalone_keys_stay_for_the_default_recipe_and_follow_a_spec_recipe():
    from mnas.data import load_proxy_data
    from mnas.evaluators.standalone import StandaloneEvaluator

    ev = StandaloneEvaluator(load_proxy_data().subset(train=64, val=32), epochs=1, batch_size=32)
    # the keys every stand-alone cache row was written with, and no other: old run stores still resume
    assert set(ev.settings()) == {"evaluator", "epochs", "batch_size", "proxy_resolution", "seed", "lr",
                                  "optimizer", "recal_batches", "grappler", "data", "train", "val"}
    space = HparamSpace(TINY, GRID)
    spec = space.to_spec(space.join(TINY.smallest_sample(), {"learning_rate": 4e-3, "weight_decay": 1e-3,
                                                             "label_smoothing": 0.1, "dropout": 0.3, "augment": 2}))
    recipe = ev._recipe(spec)
    assert recipe == {"learning_rate": 4e-3, "weight_decay": 1e-3, "label_smoothing": 0.1, "dropout": 0.3,
                      "augment": 2}
    assert ev._settings(recipe) == ev.settings() | {"lr": 4e-3, "weight_decay": 1e-3, "label_smoothing": 0.1,
                                                    "augment": 2}
    with pytest.raises(UserError, match="label_smoothing must be"):
        StandaloneEvaluator(load_proxy_data().subset(train=64, val=32), label_smoothing=1.5)


# -- TF: the evaluator --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    from mnas.data import load_proxy_data

    return load_proxy_data().subset(train=200, val=64)


class MacsLatency:
    """A real (analytic) latency source: MACs at the spec's resolution, in millions, read as ms."""

    name, measured = "macs", False

    def latency_ms(self, specs):
        from mnas.costs import count_macs

        return [count_macs(spec) / 1e6 for spec in specs]

    def settings(self) -> dict:
        return {"kind": "macs"}


@pytest.mark.slow
def test_features_feed_the_classifier_of_both_supernets():
    import tensorflow as tf

    from mnas.evaluators.autohas import features
    from mnas.spaces.layerwise import mobilenetv3_space
    from mnas.supernet.model import make_supernet

    x = tf.random.normal([3, 32, 32, 3], seed=1)
    for space in (TINY, mobilenetv3_space("tiny-mbv3", skeleton=((16, 1, 1), (24, 2, 2)))):
        net = make_supernet(space, 10, 32, seed=0)
        net.classifier_kernel.assign(np.random.default_rng(0).normal(size=net.classifier_kernel.shape)
                                     .astype("float32"))
        sample = tf.constant(space.sample_random(np.random.default_rng(2)), tf.int32)
        logits = features(net, x, sample) @ net.classifier_kernel + net.classifier_bias
        np.testing.assert_allclose(logits.numpy(), net(x, sample).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_w_star_is_trained_then_discarded_and_the_search_resumes(data, tmp_path):
    from mnas import evaluators
    from mnas.evaluators.autohas import hparam_report
    from mnas.reward import Reward
    from mnas.runstore import RunStore
    from mnas.search import SearchSetup, run_search, write_outputs

    space = HparamSpace(TINY, GRID)

    def setup(store):
        ev = evaluators.create("autohas", data=data, epochs=1, batch_size=32, proxy_resolution=32, seed=0,
                               cache=store.cache("accuracy"), space=space, child_steps=2, shared_steps=1,
                               val_batch=64, checkpoint_every=1)
        return ev, SearchSetup(space=space, controller="reinforce", evaluator=ev, sources=[MacsLatency()],
                               reward=Reward("soft", [1.0]), steps=3, batch=1, seed=0, resolution=32)

    class Killed(Exception):
        pass

    def kill_after_two(child):
        if child.step == 1:
            raise Killed

    with RunStore(tmp_path / "run" / "run.db") as store:
        ev, s = setup(store)
        arch, hp = space.split(space.sample_random(np.random.default_rng(4)))
        before = [w.copy() for w in ev.model.get_weights()] + [v.numpy() for v in ev.optimizer.variables]
        accuracies = [ev.child_score(arch, hp | {"learning_rate": lr})[0] for lr in (1e-3, 4e-3)]
        after = ev.model.get_weights() + [v.numpy() for v in ev.optimizer.variables]
        assert all(np.array_equal(a, b) for a, b in zip(before, after)) and ev.steps == 0  # W* discarded
        assert all(0.0 <= a <= 1.0 for a in accuracies)
        with pytest.raises(Killed):
            run_search(s, store, progress=False, on_child=kill_after_two)
        assert ev.steps == 2 and (tmp_path / "run" / "autohas" / "supernet.npz").exists()  # 1 shared step each
        assert not all(np.array_equal(a, b) for a, b in zip(before, ev.model.get_weights()))
        saved = ev.model.get_weights()
    with RunStore(tmp_path / "run" / "run.db") as store:
        ev, s = setup(store)
        assert ev.steps == 2 and all(np.array_equal(a, b) for a, b in zip(saved, ev.model.get_weights()))
        result = run_search(s, store, resume=True, progress=False)
        assert result.new_children == 1 and ev.steps == 3 and len(result.children) == 3
        assert all(set(c.detail["hparams"]) == set(GRID) for c in result.children)
        summary = write_outputs(s, store, tmp_path / "out", export=False)
        report = hparam_report(s, store, tmp_path / "out", data, 1, 32, 0, 2e-3, 32)
        best = json.loads((tmp_path / "out" / "best.json").read_text())
        assert best["search"]["hparams"] == space.split(summary["best"]["sample"])[1] == report["hparams"]
        # the stand-alone retrain trained the pick with its own recipe: its cache row is keyed by it
        from mnas.evaluators.standalone import StandaloneEvaluator

        trainer = StandaloneEvaluator(data, epochs=1, batch_size=32, seed=0)
        spec = space.to_spec(summary["best"]["sample"], resolution=32)
        recipe = trainer._recipe(spec)
        child = trainer.proxy_spec(spec).replace(dropout=recipe["dropout"])
        assert store.cache("standalone").get(spec_key(child, **trainer._settings(recipe))) is not None
        retrained = report["retrain"]
        assert 0.0 <= retrained["standalone_accuracy"] <= 1.0 and not retrained["cached"]
        again = hparam_report(s, store, tmp_path / "out", data, 1, 32, 0, 2e-3, 32)
        assert again["retrain"]["cached"] and again["retrain"]["standalone_accuracy"] == \
            retrained["standalone_accuracy"]
