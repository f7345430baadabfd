"""The one-shot supernet: one trace for every path, masked widths, the evaluator's scores, checkpoint round trip.

A tiny two-block mnasnet space keeps tracing and training within seconds on 2 cores; the full mnasnet space is
exercised by benchmarks/supernet_vs_standalone.py (its first trace takes minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from mnas.data import load_proxy_data
from mnas.errors import UserError
from mnas.spaces import get as get_space
from mnas.spaces.layerwise import mobilenetv3_space
from mnas.spaces.mnasnet import mixnet_space, mnasnet_space
from mnas.supernet.evaluator import SupernetEvaluator, sample_of
from mnas.supernet.layerwise import is_layerwise, plan_layers
from mnas.supernet.model import Supernet, make_supernet, plan_space

# b0 widths (16, 24), b1 widths (24, 32) and layers (1, 2, 3): every kind of choice has >= 2 options.
TINY = mnasnet_space("tiny-mnasnet", skeleton=((16, 1, 1), (24, 2, 2)))
# for training: fewer layers (b1 layers (1, 2)) and a stride-2 first block, so tracing and steps stay cheap
SMALL = mnasnet_space("small-mnasnet", skeleton=((16, 1, 2), (24, 1, 2)))


@pytest.fixture(scope="module")
def data():
    return load_proxy_data().subset(train=1500, val=300)


@pytest.fixture(scope="module")
def model():
    return Supernet(TINY, num_classes=10, resolution=32, seed=0)


def _index(space, tag: str, value) -> int:
    choice = next(c for c in space.choices if c.tag == tag)
    return choice.options.index(value)


def test_one_trace_serves_many_paths(model):
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3]), tf.TensorSpec([len(TINY.choices)], tf.int32)])
    def forward(x, sample):
        traces.append(1)
        return model(x, sample)

    rng = np.random.default_rng(0)
    x = tf.random.normal([4, 32, 32, 3], seed=1)
    outs = [forward(x, tf.constant(TINY.sample_random(rng), tf.int32)).numpy() for _ in range(12)]
    assert len(traces) == 1
    assert all(o.shape == (4, 10) for o in outs)
    # the classifier starts at zero (uniform predictions); after perturbing it, paths must differ
    model.classifier_kernel.assign(tf.random.normal(model.classifier_kernel.shape, seed=2))
    outs = [forward(x, tf.constant(s, tf.int32)).numpy() for s in (TINY.sample_random(rng) for _ in range(4))]
    assert len(traces) == 1
    assert not np.allclose(outs[0], outs[1])


def test_path_output_shapes(model):
    sample = TINY.sample_random(np.random.default_rng(3))
    stages = model.stage_outputs(tf.random.normal([2, 32, 32, 3]), tf.constant(sample, tf.int32))
    # stem stride 2 -> 16x16; block 0 stride 1 (max width 24), block 1 stride 2 (max width 32)
    assert [tuple(s.shape) for s in stages] == [(2, 16, 16, 24), (2, 8, 8, 32)]


@pytest.mark.parametrize("op", ["conv", "dsconv", "mbconv3", "mbconv6"])
def test_narrow_path_zeroes_unused_channels(model, op):
    sample = list(TINY.sample_random(np.random.default_rng(4)))
    tags = [c.tag for c in TINY.choices]
    # 0.75x in both blocks (16 of 24, 24 of 32 channels), the pool skip's projection on, every op in block 1
    for tag, value in (("b0/filters", 16), ("b1/filters", 24), ("b1/op", op), ("b1/skip", "pool")):
        sample[tags.index(tag)] = _index(TINY, tag, value)
    b0, b1 = model.stage_outputs(tf.random.normal([3, 32, 32, 3], seed=5), tf.constant(sample, tf.int32))
    assert np.all(b0.numpy()[..., 16:] == 0.0) and np.any(b0.numpy()[..., :16] != 0.0)
    assert np.all(b1.numpy()[..., 24:] == 0.0) and np.any(b1.numpy()[..., :24] != 0.0)


def test_spaces_it_cannot_express_name_the_choice():
    with pytest.raises(UserError, match="s0.l0/expand"):
        plan_space(get_space("mobilenetv3"))  # the block-wise planner refuses layer-wise stages
    swish = mobilenetv3_space("swish-mobilenetv3", skeleton=((16, 1, 1),),
                              layer_options=(("expand", (3, 6)), ("act", ("relu", "swish"))))
    with pytest.raises(UserError, match="s0.l0/act"):
        make_supernet(swish, num_classes=10)
    expand_one = mobilenetv3_space("e1-mobilenetv3", skeleton=((16, 1, 1),), layer_options=(("expand", (1, 6)),))
    with pytest.raises(UserError, match="s0.l0/expand"):
        make_supernet(expand_one, num_classes=10)
    for name in ("mnasnet", "mixnet", "mobilenetv3", "ofa-mbv3"):  # every registered space has a supernet
        assert plan_layers(get_space(name)) if is_layerwise(get_space(name)) else plan_space(get_space(name))
    mixnet = mixnet_space("tiny-mixnet", skeleton=((16, 1, 1),))  # MixConv kernel groups: supported
    net = Supernet(mixnet, num_classes=10)
    sample = [0] * len(mixnet.choices)
    sample[[c.tag for c in mixnet.choices].index("b0/op")] = _index(mixnet, "b0/op", "mbconv6")
    sample[[c.tag for c in mixnet.choices].index("b0/kernels")] = _index(mixnet, "b0/kernels", (3, 5, 7, 9))
    assert tuple(net(tf.random.normal([2, 32, 32, 3]), tf.constant(sample, tf.int32)).shape) == (2, 10)


def test_sample_of_maps_specs_back(model):
    rng = np.random.default_rng(6)
    for _ in range(5):
        sample = TINY.sample_random(rng)
        spec = TINY.to_spec(sample)
        assert sample_of(TINY, spec) == sample
        stripped = spec.replace(extra={})  # e.g. a spec rebuilt from the run store
        assert TINY.to_spec(sample_of(TINY, stripped)).block_strings() == spec.block_strings()
    other = get_space("mnasnet").to_spec(get_space("mnasnet").sample_random(rng))
    with pytest.raises(UserError, match="space"):
        sample_of(TINY, other)
    # layer-wise spaces: matched layer by layer, backtracking over how many layers each stage keeps (a greedy
    # stage-by-stage match took too few layers of an elastic stage; their full products are millions of values)
    for name in ("ofa-mbv3", "mobilenetv3"):
        space = get_space(name)
        for _ in range(5):
            spec = space.to_spec(space.sample_random(rng)).replace(extra={})
            assert space.to_spec(sample_of(space, spec)).block_strings() == spec.block_strings()


@pytest.mark.slow
def test_evaluator_scores_improve_and_checkpoint_round_trips(data, tmp_path):
    ev = SupernetEvaluator(data, space=SMALL, warmup_steps=50, steps_per_child=3, batch_size=32, val_batch=300,
                           learning_rate=3e-3, seed=0, state_dir=tmp_path / "supernet", checkpoint_every=1)
    rng = np.random.default_rng(7)
    probes = [SMALL.sample_random(rng) for _ in range(3)]
    before = [ev.score(s) for s in probes]
    specs = [SMALL.to_spec(s) for s in probes]
    results = ev.evaluate(specs)  # warm-up + 3 steps per child
    assert all(0.0 <= r.accuracy <= 1.0 for r in results)
    assert results[0].detail["warmup_s"] > 0 and ev.steps == 50 + 3 * 3
    after = [ev.score(s) for s in probes]
    # 59 shared steps on a 2-block net: measured 0.10 -> 0.28 (chance 0.10); the margin leaves room for noise
    assert np.mean(after) > np.mean(before) + 0.08, (before, after)
    assert np.mean(after) > data.chance + 0.08
    assert ev.traces == 2  # one train step trace, one scoring trace, for every path

    # restore: a fresh evaluator on the same state_dir continues with identical weights, counters and rng
    again = SupernetEvaluator(data, space=SMALL, warmup_steps=50, steps_per_child=3, batch_size=32, val_batch=300,
                              learning_rate=3e-3, seed=0, state_dir=tmp_path / "supernet", checkpoint_every=1)
    assert again.steps == ev.steps and again.calls == 1 and again.warmed_up
    assert [again.score(s) for s in probes] == after
    a, b = ev.evaluate(specs[:1])[0], again.evaluate(specs[:1])[0]
    assert a.accuracy == b.accuracy and a.detail["warmup_s"] == 0.0
    assert a.detail["train_loss"] == pytest.approx(b.detail["train_loss"], rel=1e-5)

    with pytest.raises(UserError, match="other settings"):
        SupernetEvaluator(data, space=mnasnet_space("small-mnasnet", skeleton=((16, 1, 2), (24, 1, 2))),
                          warmup_steps=50, steps_per_child=4, batch_size=32, val_batch=300, learning_rate=3e-3,
                          seed=0, state_dir=tmp_path / "supernet")


def test_fixed_child_start_scores_a_child_alike_whatever_came_before(data, tmp_path):
    kwargs = dict(space=SMALL, warmup_steps=5, steps_per_child=2, batch_size=16, val_batch=100, seed=0,
                  checkpoint_every=1, child_start="fixed")
    ev = SupernetEvaluator(data, state_dir=tmp_path / "fixed", **kwargs)
    rng = np.random.default_rng(3)
    a, b = (SMALL.to_spec(SMALL.sample_random(rng)) for _ in range(2))
    first = ev.evaluate([a])[0]
    start = [w.copy() for w in ev.model.get_weights()]
    ev.evaluate([b, b])
    again = ev.evaluate([a])[0]
    # same start weights, fresh Adam and the same batches for every child: b's training left nothing behind
    assert again.accuracy == first.accuracy
    assert again.detail["train_loss"] == pytest.approx(first.detail["train_loss"], rel=1e-5)
    assert all(np.array_equal(x, y) for x, y in zip(start, ev.model.get_weights()))
    assert ev.steps == 5 + 4 * 2 and ev.traces == 2 and ev.settings()["child_start"] == "fixed"
    # a resumed evaluator starts its children from the same weights
    resumed = SupernetEvaluator(data, state_dir=tmp_path / "fixed", **kwargs)
    assert resumed.evaluate([a])[0].accuracy == first.accuracy
    # the default ("shared") keeps what each child's steps taught the shared weights
    shared = SupernetEvaluator(data, **(kwargs | {"child_start": "shared"}))
    shared.evaluate([b])
    before = shared.model.get_weights()
    shared.evaluate([a])
    assert not all(np.array_equal(x, y) for x, y in zip(before, shared.model.get_weights()))
    assert "child_start" not in shared.settings()
    with pytest.raises(UserError, match="child_start"):
        SupernetEvaluator(data, space=TINY, child_start="reset")


def test_evaluator_settings_name_the_space(data):
    ev = SupernetEvaluator(data, space=TINY, warmup_steps=0, steps_per_child=1, batch_size=8, val_batch=16)
    assert ev.settings()["space"] == "tiny-mnasnet" and ev.settings()["evaluator"] == "supernet"
    with pytest.raises(UserError, match="cannot express choice 's0.l0/act'"):
        SupernetEvaluator(data, space=mobilenetv3_space("swish", skeleton=((16, 1, 1),),
                                                        layer_options=(("act", ("relu", "swish")),)))


def _sample_with(space, **values) -> tuple[int, ...]:
    """The first option of every choice, except `values` (tag with '/' as '__')."""
    sample = [0] * len(space.choices)
    for tag, value in values.items():
        tag = tag.replace("__", "/")
        sample[[c.tag for c in space.choices].index(tag)] = _index(space, tag, value)
    return tuple(sample)


@pytest.mark.parametrize("update", ["path", "all"])
def test_path_update_leaves_weights_off_the_path_alone(data, update):
    ev = SupernetEvaluator(data, space=TINY, steps_per_child=1, batch_size=8, val_batch=16, update=update)
    blocks = ev.model.blocks_weights
    # b0: dsconv without SE; b1: mbconv6 with one layer (its layers 1 and 2 are off the path)
    path = _sample_with(TINY, b0__op="dsconv", b0__se=0.0, b1__op="mbconv6", b1__layers=1, b1__se=0.25)
    on = [blocks[0][0]["ds_dw"], blocks[0][0]["ds_project"], blocks[1][0]["ir_expand"], blocks[1][0]["ir_se"][0],
          ev.model.stem_kernel, ev.model.classifier_kernel]
    # off the path, but trained by `other` first (so they have momentum): b0's conv, b1's layers 1 and 2
    other = _sample_with(TINY, b0__op="conv", b1__op="mbconv6", b1__layers=3)
    off = [blocks[0][0]["conv"], blocks[1][1]["ir_expand"], blocks[1][2]["ir_project"]]
    ev.train_path(other, 2)  # the classifier starts at zero: the first step gives the body no gradient
    before = [v.numpy().copy() for v in on + off]
    ev.train_path(path, 2)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, on + off)]
    assert all(moved[:len(on)])
    # `all`: weights off the path get a zero gradient and still move by their momentum; `path` leaves them alone
    assert not any(moved[len(on):]) if update == "path" else all(moved[len(on):])
    assert ev.settings().get("update", "all") == update and ev.traces == 1
    with pytest.raises(UserError, match="update"):
        SupernetEvaluator(data, space=TINY, update="lazy")


def test_path_update_of_the_layerwise_supernet(data):
    space = mobilenetv3_space("tiny-mbv3", skeleton=((16, 1, 1), (24, 3, 2)))
    ev = SupernetEvaluator(data, space=space, update="path", steps_per_child=1, batch_size=16, val_batch=32)
    layers = ev.model.layers_weights  # positions: s0.l0, s1.l0, s1.l1, s1.l2
    path = _sample_with(space, **{"s1.l2__skip": "skip", "s1.l1__se": 0})
    ev.train_path(path, 2)  # the classifier starts at zero: the first step gives the body no gradient
    watched = (layers[3]["project"], layers[2]["se"][0], layers[2]["project"])
    before = [v.numpy().copy() for v in watched]
    ev.train_path(path, 2)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, watched)]
    assert moved == [False, False, True]  # skipped layer, SE switched off: untouched; a kept layer: trained


def test_kendall_tau_of_orderings():
    from mnas.supernet.rank import kendall_tau

    assert kendall_tau([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.9])[0] == pytest.approx(1.0)
    assert kendall_tau([0.1, 0.2, 0.3, 0.4], [0.9, 0.7, 0.6, 0.5])[0] == pytest.approx(-1.0)
    assert np.isnan(kendall_tau([0.5], [0.5])[0])


class MacsLatency:
    """A real (analytic) latency source: MACs at the spec's resolution, in millions, read as ms."""

    name, measured = "macs", False

    def latency_ms(self, specs):
        from mnas.costs import count_macs

        return [count_macs(spec) / 1e6 for spec in specs]

    def settings(self) -> dict:
        return {"kind": "macs"}


@pytest.mark.slow
def test_search_loop_resumes_with_the_shared_weights(data, tmp_path):
    from mnas import evaluators
    from mnas.reward import Reward
    from mnas.runstore import RunStore
    from mnas.search import SearchSetup, run_search

    def setup(store, steps):
        # what `mnas search` does: the run store's cache is passed, the evaluator derives <run dir>/supernet
        ev = evaluators.create("supernet", data=data, epochs=1, batch_size=32, proxy_resolution=32, seed=0,
                               cache=store.cache("accuracy"), space=SMALL, warmup_steps=10, steps_per_child=2,
                               val_batch=100, checkpoint_every=1)
        return ev, SearchSetup(space=SMALL, controller="reinforce", evaluator=ev, sources=[MacsLatency()],
                               reward=Reward("soft", [5.0]), steps=steps, batch=1, seed=0, resolution=32)

    class Killed(Exception):
        pass

    def kill_after_two(child):
        if child.idx == 0 and child.step == 1:
            raise Killed

    with RunStore(tmp_path / "run" / "run.db") as store:
        ev, s = setup(store, 3)
        with pytest.raises(Killed):
            run_search(s, store, progress=False, on_child=kill_after_two)
        assert ev.steps == 10 + 2 * 2 and (tmp_path / "run" / "supernet" / "supernet.npz").exists()
    with RunStore(tmp_path / "run" / "run.db") as store:
        ev, s = setup(store, 3)
        assert ev.steps == 14 and ev.warmed_up  # restored: no second warm-up
        result = run_search(s, store, resume=True, progress=False)
        assert result.new_children == 1 and ev.steps == 16
        assert len(result.children) == 3 and all(0.0 <= c.accuracy <= 1.0 for c in result.children)


@pytest.mark.slow
def test_one_shot_check_retrains_the_pick_and_ranks_the_reward_signal(data, tmp_path):
    from mnas.runstore import MemoryCache
    from mnas.supernet.rank import one_shot_check, standalone_evaluator, write_rank

    small = data.subset(train=256, val=100)
    ev = SupernetEvaluator(small, space=SMALL, warmup_steps=5, steps_per_child=2, batch_size=32, val_batch=100)
    trainer = standalone_evaluator(small, epochs=1, batch_size=64, cache=MemoryCache())
    chosen = SMALL.to_spec(SMALL.sample_random(np.random.default_rng(3)))
    ev.evaluate([chosen])  # the search: 5 warm-up steps, 2 on the child's path
    report = one_shot_check(ev, chosen, trainer, rank_children=3, seed=0)
    retrained = report["retrain"]
    assert 0.0 <= retrained["one_shot_accuracy"] <= 1.0 and 0.0 <= retrained["standalone_accuracy"] <= 1.0
    assert not retrained["cached"] and retrained["standalone_epochs"] == 1
    rank = report["rank"]
    # the ranked signal is the search's own: each child's path trained the evaluator's 2 steps, then scored
    assert rank["children"] == 3 and rank["finetune_steps"] == 2 and ev.steps == 7 + 3 * 2
    assert np.isnan(rank["kendall_tau"]) or -1.0 <= rank["kendall_tau"] <= 1.0
    # the same trainer (the run store's cache in `mnas search`): a second check retrains nothing
    again = one_shot_check(ev, chosen, trainer)
    assert again["retrain"]["cached"] and again["retrain"]["standalone_accuracy"] == retrained["standalone_accuracy"]
    write_rank(rank, tmp_path / "rank.csv", tmp_path / "rank.png")
    lines = (tmp_path / "rank.csv").read_text().splitlines()
    assert lines[0] == "sample,one_shot,standalone,standalone_s" and len(lines) == 4
    assert (tmp_path / "rank.png").stat().st_size > 1000


def test_switch_and_mask_routing_compute_the_same_path():
    # same seed -> same weights; `switch` runs one branch (identity for skipped layers), `mask` runs all
    nets = [Supernet(TINY, num_classes=10, seed=3, routing=r) for r in ("switch", "mask")]
    kernel = np.random.default_rng(0).normal(size=nets[0].classifier_kernel.shape).astype("float32")
    for net in nets:
        net.classifier_kernel.assign(kernel)
    x = tf.random.normal([4, 32, 32, 3], seed=8)
    rng = np.random.default_rng(9)
    for _ in range(6):
        sample = tf.constant(TINY.sample_random(rng), tf.int32)
        a, b = (net(x, sample).numpy() for net in nets)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_cli_searches_ofa_mbv3_with_the_supernet_on_the_note10_table(run_cli, tmp_path):
    """The layer-wise supernet behind `mnas search`: OFA's space, latencies predicted from the Note10 table."""
    from tests.test_search import note10_table

    table = note10_table(tmp_path / "luts")
    proc = run_cli("search", "--space", "ofa-mbv3", "--table", table, "--target-ms", "30", "--evaluator", "supernet",
                   "--evaluator-opt", "steps_per_child=1", "--evaluator-opt", "val_batch=64", "--controller",
                   "reinforce", "--steps", "3", "--batch", "1", "--train-size", "128", "--val-size", "64",
                   "--no-export", "--out", tmp_path / "run", "--json", "--no-progress", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["settings"]["evaluator"] == "supernet" and summary["counts"]["children"] == 3
    latency = summary["best"]["latency_ms"]
    assert 0.0 <= summary["best"]["accuracy"] <= 1.0 and len(latency) == 1 and all(ms > 0 for ms in latency.values())
    # the end-of-search check scores the chosen path on the shared weights and retrains it alone
    retrained = summary["one_shot"]["retrain"]
    assert retrained["sample"] == summary["best"]["sample"] and 0.0 <= retrained["standalone_accuracy"] <= 1.0
    assert summary["one_shot"]["pick"]["rule"] in (retrained["rule"], summary["one_shot"]["argmax"]["rule"])
