"""Bring your own phone: the fbnet space, per-network CSV import, few-shot adaptation, suggestions and batch
prediction, on the real-device data shipped in data/real_devices (Pixel 3, Raspberry Pi 4, Samsung A50; measured
by others). No TensorFlow: tables are imported or adapted, never measured, here."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from latency.fewshot import (accuracy, choose_covering, fit_adapted, key_counts, predict_features, prior_features,
                             read_measurements, solve_additive)
from latency.opkeys import op_key, op_type
from latency.predictor import Predictor
from latency.store import TableStore
from mnas import spaces
from mnas.cli import main
from mnas.costs import layer_cost
from mnas.errors import UserError
from mnas.ops import layer_ops
from mnas.spaces.fbnet import OPS

DATA = Path(__file__).resolve().parents[1] / "data" / "real_devices" / "fbnet_cifar"
SAMPLE0 = "7.8.1.8.4.8.8.8.7.4.1.4.7.3.2.7.3.2.4.2.4.5"  # the data's first row


@pytest.fixture(scope="module")
def space():
    return spaces.get("fbnet")


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    """The three devices imported into one table file each (in process, as `mnas table import` does)."""
    from mnas.fewshot_jobs import ImportMeasuredConfig, import_measured

    root = tmp_path_factory.mktemp("byo")
    out = {}
    for name in ("pixel3", "raspi4", "samsung_a50"):
        out[name] = root / f"{name}.db"
        import_measured(ImportMeasuredConfig(DATA / f"{name}.csv.gz", out[name], "fbnet"))
    return out


# -- the space ----------------------------------------------------------------------------------------------
def test_fbnet_network_is_the_datas(space):
    assert len(space.choices) == 22 and all(c.options == OPS for c in space.choices)
    spec = space.to_spec(space.decode_sample(SAMPLE0))
    layers = spec.layers()
    assert spec.resolution == 32 and spec.num_classes == 100
    stem, head, classifier = layers[0], layers[-3], layers[-1]
    assert (stem.kind, stem.stride, stem.out_channels, stem.out_size) == ("stem", 1, 16, 32)
    assert (head.in_channels, head.out_channels, head.in_size) == (352, 1504, 4) and classifier.out_channels == 100
    blocks = [layer for layer in layers if layer.block_index >= 0]
    # a skip is no layer where the shape is kept: everywhere but the first layers of stages 1..6
    identity = [j for j, o in enumerate(map(int, SAMPLE0.split("."))) if o == 8 and j not in (1, 5, 9, 13, 17, 21)]
    assert identity == [3, 6, 7] and len(blocks) == 22 - 3
    first = blocks[0]  # k5_e6 at 16 -> 16, stride 1: residual
    assert (first.kind, first.kernel_size, first.expanded, first.skip) == ("ir", 5, 96, "id")
    skip_conv = blocks[1]  # skip at stage 1's first layer (16 -> 24): a 1x1 conv + BN + ReLU
    assert (skip_conv.kind, skip_conv.kernel_size, skip_conv.in_channels, skip_conv.out_channels) == ("cn", 1, 16, 24)
    assert [b.out_size for b in blocks][-1] == 4


def test_grouped_shuffled_e1_block_recipe_and_costs(space):
    """k3_e1_g2 at 24 -> 24: 1x1 conv in 2 groups (kept at E = 1), BN, ReLU, channel shuffle, dw 3x3, BN, ReLU,
    1x1 conv in 2 groups, BN, residual add."""
    sample = [0] * 22
    sample[2] = OPS.index("k3_e1_g2")
    layer = [x for x in space.to_spec(sample).layers() if x.block_index >= 0][2]
    assert layer.has_expand and layer.expanded == layer.in_channels == 24 and layer.shuffle
    kinds = [op.kind for op in layer_ops(layer)]
    assert kinds.count("shuffle") == 1 and kinds.index("shuffle") < kinds.index("dwconv") and kinds[-1] == "add"
    # two grouped 1x1 convs (2 x 12x12 weights each), a 3x3 depthwise, three BNs (gamma, beta)
    assert layer_cost(layer).params == 2 * (2 * 12 * 12) + 9 * 24 + 3 * 2 * 24
    key = op_key(layer)
    assert "groups:2.2" in key and "shuffle:1" in key and "expandconv:1" in key
    plain = [x for x in space.to_spec([0] * 22).layers() if x.block_index >= 0][2]  # k3_e1: no groups
    assert op_type(plain) != op_type(layer) and "expandconv:1" in op_key(plain)


def test_block_strings_and_spec_fields_of_the_new_features():
    from mnas.blocks import BlockStringError, decode, encode
    from mnas.spec import ModelSpec

    text = "r1_k3_a1.1_p1.1_s11_e1_i24_o24_keepexpand_shuffle"
    block = decode(text)
    assert block.keep_expand and block.shuffle and block.expand_groups == 2 and encode(block) == text
    assert encode(decode("r1_k5_s11_e1_i16_o16_keepexpand")) == "r1_k5_s11_e1_i16_o16_keepexpand"
    with pytest.raises(BlockStringError, match="shuffle needs"):
        decode("r1_k3_s11_e1_i24_o24_shuffle")
    with pytest.raises(BlockStringError, match="keepexpand applies to ir"):
        decode("cn_r1_k3_s11_e1_i24_o24_keepexpand")
    spec = ModelSpec.from_strings("x", [text], stem_stride=1, resolution=32)
    assert spec.global_params()["stem_stride"] == 1 and spec.layers()[0].out_size == 32
    assert "stem_stride" not in spec.replace(stem_stride=2).global_params()  # old arch files and keys unchanged
    with pytest.raises(UserError, match="stem_stride"):
        spec.replace(stem_stride=3)


def test_exact_size_layers_and_smallest_of_a_tiny_fbnet_match_brute_force():
    import itertools

    from mnas.costs import count_macs
    from mnas.spaces import position_free
    from mnas.spaces.fbnet import fbnet_space

    tiny = fbnet_space("tiny-fbnet", stages=((24, 3, 2),))  # 9^3 samples; a skip in layer 1 or 2 is no layer
    seen, layers, macs = set(), set(), {}
    for sample in itertools.product(range(9), repeat=3):
        spec = tiny.to_spec(sample)
        free = tuple(position_free(layer) for layer in spec.layers())
        seen.add(free)
        layers.update(free)
        macs[sample] = count_macs(spec)
    assert tiny.num_architectures == len(seen) == 9 * (1 + 8 + 8 * 8) < 9 ** 3  # [A, skip] == [skip, A]
    assert set(tiny.distinct_layers(32)) == layers
    assert count_macs(tiny.smallest_spec()) == min(macs.values())


def test_layers_by_choice_add_up_to_every_network(space):
    rng = np.random.default_rng(3)
    samples = np.array([space.sample_random(rng) for _ in range(40)])
    fast = key_counts(space, samples, 32)

    class Plain:  # the same space without its declaration: counted spec by spec
        name, num_options, to_spec = space.name, space.num_options, space.to_spec

    slow = key_counts(Plain(), samples, 32)
    used = [k for k, n in zip(fast.keys, fast.counts.sum(axis=0)) if n]  # per choice, every option has a column
    order = [fast.keys.index(k) for k in slow.keys]
    assert sorted(slow.keys) == sorted(used) and np.array_equal(fast.counts[:, order], slow.counts)
    distinct = {op_key(layer) for layer in space.distinct_layers(32)}
    assert set(fast.keys) <= distinct and len(distinct) == 106  # 102 block ops, stem, head, pool, classifier


# -- import ---------------------------------------------------------------------------------------------------
def test_additive_devices_import_exactly_and_batch_predict(space, tables):
    data = read_measurements(DATA / "pixel3.csv.gz", space)
    predictor = Predictor.load(tables["pixel3"])
    predicted = predictor.predict_samples(space, data.samples, resolution=32)
    assert np.max(np.abs(predicted / data.latency_ms - 1)) < 1e-6
    with TableStore.open(tables["pixel3"]) as store:
        info = store.fingerprints()[predictor.fingerprint_key]
        assert len(store.measurements(predictor.fingerprint_key)) == 5000
    assert info["additive"] and info["residual_rel_rms"] < 1e-6 and info["space"] == "fbnet"
    assert min(predictor.values.values()) >= -1e-9  # the undetermined split is kept non-negative


def test_samsung_is_not_additive_and_is_kept_as_measurements(space, tables):
    with TableStore.open(tables["samsung_a50"]) as store:
        (key, info), = store.fingerprints().items()
        assert store.counts() == {} and store.measurement_counts() == {key: 5000}
    # the README's figures of the same least-squares fit
    assert not info["additive"] and abs(info["residual_rel_rms"] - 0.082) < 0.002
    assert abs(info["fit_spearman"] - 0.898) < 0.002


def test_few_rows_cannot_show_additivity(space, tmp_path):
    data = read_measurements(DATA / "samsung_a50.csv.gz", space)
    solution = solve_additive(key_counts(space, data.samples[:20], 32), data.latency_ms[:20])
    assert solution.residual_rel_rms < 1e-9 and not solution.additive  # fits exactly: too few to tell


# -- adapt -----------------------------------------------------------------------------------------------------
def test_adapt_from_another_phone_with_twenty_networks(space, tables, tmp_path):
    from mnas.fewshot_jobs import AdaptConfig, adapt

    out = tmp_path / "pixel3-from-raspi4.db"
    payload, lines = adapt(AdaptConfig(tables["raspi4"], out, measured=DATA / "pixel3.csv.gz", samples=20))
    assert payload["k"] == 20 and payload["cv_rmspe"] is not None and payload["held_out"]["n"] == 4980
    unadapted = Predictor.load(tables["raspi4"])
    data = read_measurements(DATA / "pixel3.csv.gz", space)
    before = accuracy(unadapted.predict_samples(space, data.samples), data.latency_ms)
    held = payload["held_out"]
    assert held["spearman"] > before["spearman"] + 0.02 and held["within_10pct"] > 0.95  # 0.957 -> 0.98-0.99
    # the stored table predicts what the fit predicted, through the ordinary predictor
    adapted = Predictor.load(out)
    assert adapted.calibration.kind == "adapted" and adapted.calibration.n == 20
    features = prior_features(unadapted, key_counts(space, data.samples, 32))
    direct = predict_features(adapted.calibration, features)
    assert np.allclose(adapted.predict_samples(space, data.samples), direct, rtol=1e-9)
    with TableStore.open(out) as store:
        stored = store.calibration(adapted.fingerprint_key)
    assert stored["cv_rmspe"] == payload["cv_rmspe"] and len(stored["points"]) == 20
    assert "leave-one-out RMSPE" in lines[0]


def test_adapt_measures_the_chosen_networks_on_a_device(space, tables, tmp_path, capsys):
    """`--device`: K networks chosen by coverage, written by the fast writer, timed on the host (LiteRT, thread
    CPU time), fitted; the table then predicts for that device and keeps them for `table validate`'s drift check."""
    out = tmp_path / "host.db"
    assert main(["table", "adapt", "--from", str(tables["pixel3"]), "--device", "host-cpu", "--samples", "4",
                 "--candidates", "40", "--out", str(out), "--no-progress", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["k"] == 4 and payload["fingerprint_key"].startswith("host:") and payload["held_out"] is None
    predictor = Predictor.load(out, device_key=payload["fingerprint_key"])
    measured = [space.decode_sample(s) for s in payload["measured"]]
    assert np.all(predictor.predict_samples(space, np.array(measured)) > 0)
    with TableStore.open(out) as store:
        points = store.calibration(payload["fingerprint_key"])["points"]
    assert [p["sample"] for p in points] == payload["measured"] and all(p["measured_ms"] > 0 for p in points)
    assert points[0]["arch"]["stem_stride"] == 1  # a whole spec, as `table validate` re-measures it


def test_coverage_choice_covers_every_op_and_beats_random_draws(space):
    from latency.fewshot import mac_features
    from mnas.fewshot_jobs import SuggestConfig, suggest

    payload, lines = suggest(SuggestConfig("fbnet", 10))
    chosen = [space.decode_sample(s) for s in payload["samples"]]
    assert lines[0] == "sample" and len(set(payload["samples"])) == 10
    assert {o for s in chosen for o in s} == set(range(9))
    rng = np.random.default_rng(0)
    pool = np.array([space.sample_random(rng) for _ in range(500)])
    x = mac_features(key_counts(space, pool, 32))
    x = x[:, x.std(axis=0) > 1e-9 * np.abs(x).mean(axis=0)]
    z = np.column_stack([np.ones(len(x)), (x - x.mean(0)) / x.std(0)])

    def mean_variance(rows) -> float:  # of the fit's predictions over the pool: what the design minimises
        return float(np.trace(z.T @ z / len(z) @ np.linalg.inv(z[rows].T @ z[rows] + np.eye(z.shape[1]))))

    picked = choose_covering(x, 20)
    assert mean_variance(picked) < min(mean_variance(rng.choice(len(x), 20, replace=False)) for _ in range(20))


def test_one_network_fits_a_ratio():
    from latency.fewshot import PriorFeatures

    features = PriorFeatures(np.array([2.0]), ["f"], np.array([[1.0]]), [8], np.array([[1.0]]))
    fit = fit_adapted(features, np.array([5.0]))
    assert fit.model == "ratio" and fit.cv_rmspe is None and fit.calibration.slope == 2.5


# -- the command line -------------------------------------------------------------------------------------------
def test_cli_import_predict_suggest(tmp_path, capsys):
    table = tmp_path / "raspi4.db"
    assert main(["table", "import", str(DATA / "raspi4.csv.gz"), "--space", "fbnet", "--out", str(table)]) == 0
    assert "are a per-op sum" in capsys.readouterr().out
    rows = tmp_path / "few.csv"
    rows.write_text("sample\n" + SAMPLE0 + "\n" + ".".join(["0"] * 22) + "\n")
    assert main(["predict", "--table", str(table), "--space", "fbnet", "--samples", str(rows), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["sample"] for r in got] == [SAMPLE0, ".".join(["0"] * 22)]
    assert abs(got[0]["latency_ms"] - 30.25286) < 1e-4  # the data's first row on the Raspberry Pi 4
    assert main(["table", "suggest", "--space", "fbnet", "--samples", "5", "--candidates", "200"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == "sample" and len(out.out.splitlines()) == 6 and "I-optimal" in out.err


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_input_is_one_line_exit_2(tmp_path, tables, capsys):
    out = str(tmp_path / "new.db")
    cases = [
        (["table", "import", str(_bad(tmp_path, "cols.csv", "arch,ms\n1,2\n")), "--space", "fbnet", "--out", out],
         "needs the column(s) sample, latency_ms"),
        (["table", "import", str(_bad(tmp_path, "short.csv", "sample,latency_ms\n1.2.3,4\n")), "--space", "fbnet",
          "--out", out], "has 22 option indices, got 3"),
        (["table", "import", str(_bad(tmp_path, "neg.csv", f"sample,latency_ms\n{SAMPLE0},0\n")), "--space",
          "fbnet", "--out", out], "must be a positive number"),
        (["table", "adapt", "--from", str(tables["raspi4"]), "--measured",
          str(_bad(tmp_path, "two.csv", f"sample,latency_ms\n{SAMPLE0},3\n{'.'.join(['0'] * 22)},2\n")),
          "--samples", "5", "--out", out], "--samples 5 is more than the 2 networks"),
        (["table", "adapt", "--from", str(tables["raspi4"]), "--measured", str(DATA / "pixel3.csv.gz"),
          "--space", "mnasnet", "--out", out], "was made for space fbnet, not mnasnet"),
        (["predict", "--table", str(tables["raspi4"]), "--space", "mnasnet", "--samples",
          str(DATA / "pixel3.csv.gz")], "a mnasnet sample has 42 option indices, got 22"),
        (["table", "import", str(DATA / "pixel3.csv.gz"), "--space", "nope", "--out", out], "nope"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)
    with gzip.open(tmp_path / "bad.csv.gz", "wt") as handle:
        handle.write("sample,latency_ms\n" + SAMPLE0 + ",fast\n")
    with pytest.raises(UserError, match="line 2: latency_ms 'fast' is not a number"):
        read_measurements(tmp_path / "bad.csv.gz", spaces.get("fbnet"))
