"""Predictor: overhead and calibration arithmetic, device checks, batch prediction == per-spec prediction."""

from __future__ import annotations

import numpy as np
import pytest

from latency.opkeys import op_key, op_keys
from latency.predictor import (Calibration, MissingOpError, Predictor, calibration_point, choose_fingerprint,
                               fit_calibration, fit_feature_calibration, weight_mb)
from latency.public_luts import default_luts_dir, import_yaml
from latency.store import TableStore
from latency.table_builder import ops_of_space
from mnas import spaces, zoo
from mnas.costs import layer_cost
from mnas.errors import UserError

LUTS = default_luts_dir()  # the repository's data/public_luts (or $MNAS_PUBLIC_LUTS)


def _cost_table(space_name: str, resolution: int = 224) -> dict[str, float]:
    """A table whose values are each op's analytic MACs (in units of 1e8 per ms): every key of the space."""
    ops = ops_of_space(spaces.get(space_name), resolution)
    return {k: layer_cost(layer).macs / 1e8 + 0.01 for k, layer in ops.items()}


def test_fit_calibration_recovers_a_line():
    raw = np.array([1.0, 2.0, 4.0, 8.0])
    cal = fit_calibration(raw, 1.25 * raw + 0.5)
    assert cal.kind == "linear" and cal.n == 4
    assert cal.slope == pytest.approx(1.25) and cal.intercept_ms == pytest.approx(0.5)
    assert fit_calibration([3.0], [4.0]) == Calibration(1.0, 1.0, 1, "offset")
    assert fit_calibration([], []) == Calibration()
    ratio = fit_calibration([2.0, 2.0], [3.0, 3.2])  # no spread: a ratio through the origin
    assert ratio.kind == "ratio" and ratio.slope == pytest.approx(1.55)


def test_overhead_is_counted_once_and_calibration_applied():
    spec = zoo.get("mnasnet-small", resolution=64, num_classes=10)
    keys = op_keys(spec)
    values = {k: 1.0 + i for i, k in enumerate(dict.fromkeys(keys))}
    overhead = 0.25
    predictor = Predictor(values, "fp", Calibration(2.0, 0.5, 3, "linear"), overhead_ms=overhead)
    raw = overhead + sum(values[k] - overhead for k in keys)
    assert predictor.raw_ms(spec) == pytest.approx(raw)
    assert predictor.predict(spec) == pytest.approx(2.0 * raw + 0.5)
    assert predictor.predict_ms([spec, spec]) == pytest.approx([2.0 * raw + 0.5] * 2)


def test_missing_key_names_the_first_one_in_network_order():
    spec = zoo.get("mnasnet-a1")
    keys = list(dict.fromkeys(op_keys(spec)))
    values = {k: 1.0 for k in keys}
    del values[keys[5]], values[keys[9]]
    with pytest.raises(MissingOpError) as err:
        Predictor(values, "fp").predict(spec)
    assert err.value.key == keys[5]
    assert Predictor(values, "fp").missing_keys(spec) == [keys[5], keys[9]]


def test_table_of_another_device_is_refused_unless_forced(tmp_path, capsys):
    with TableStore.open(tmp_path / "t.db", create=True) as store:
        store.put("host:cpu-a:111:t1", "op", 1, 1.0)
        assert choose_fingerprint(store, device_key="host:cpu-a:111:t1") == "host:cpu-a:111:t1"
        with pytest.raises(UserError, match="not on this device .*--force"):
            choose_fingerprint(store, device_key="host:cpu-b:222:t1")
        assert choose_fingerprint(store, device_key="host:cpu-b:222:t1", force=True) == "host:cpu-a:111:t1"
        assert "warning" in capsys.readouterr().err
        store.put("host:cpu-c:333:t1", "op", 1, 1.0)
        with pytest.raises(UserError, match="several devices"):
            choose_fingerprint(store)
        with pytest.raises(UserError, match="has no device 'nope'"):
            choose_fingerprint(store, fingerprint_key="nope")


FEATURES = Calibration(1.1, 0.3, 60, "features", ((14, 0.2), (56, -0.1)), 0.05)


def _true_latency(predictor: Predictor, spec) -> float:
    """A device whose whole-model latency follows a known feature law (what the fit must recover)."""
    layers = spec.layers()
    extra = {14: 0.2, 56: -0.1}
    return (0.3 + 1.1 * predictor.raw_ms(spec) + sum(extra.get(lay.in_size, 0.0) * predictor.op_ms(lay)
                                                     for lay in layers)
            + 0.05 * sum(weight_mb(lay) for lay in layers))


def test_feature_calibration_recovers_a_known_law():
    space = spaces.get("mnasnet")
    plain = Predictor(_cost_table("mnasnet"), "synthetic", overhead_ms=0.005)
    rng = np.random.default_rng(11)
    specs = [space.to_spec(space.sample_random(rng), resolution=224) for _ in range(80)]
    points = [calibration_point(plain, spec, _true_latency(plain, spec)) for spec in specs[:60]]
    calibration = fit_feature_calibration(points)
    assert calibration.kind == "features" and calibration.n == 60
    # The coefficients themselves are not identified (the sizes' columns sum to the plain sum; with a MACs
    # table the weight bytes of a size are nearly proportional to its time): predictions are what must hold.
    fitted = Predictor(plain.values, "synthetic", calibration, overhead_ms=0.005)
    truth = np.array([_true_latency(plain, spec) for spec in specs[60:]])
    np.testing.assert_allclose(fitted.predict_ms(specs[60:]), truth, rtol=0.01)  # held-out models
    line = fit_calibration([p.raw_ms for p in points], [p.measured_ms for p in points])
    line_predictor = Predictor(plain.values, "synthetic", line, overhead_ms=0.005)
    line_error = np.abs(line_predictor.predict_ms(specs[60:]) / truth - 1)
    assert line_error.max() > 0.02  # the law is not a line: the learned terms are what fits it
    # Few models: a plain line (one parameter per input size would overfit them).
    assert fit_feature_calibration(points[:10]).kind == "linear"
    assert Calibration.from_dict(calibration.to_dict()) == calibration


@pytest.mark.parametrize("space_name", ["mnasnet", "ofa-mbv3"])
@pytest.mark.parametrize("calibration", [Calibration(1.1, 0.3, 5, "linear"), FEATURES], ids=["line", "features"])
def test_batch_prediction_equals_per_spec_prediction(space_name, calibration):
    space = spaces.get(space_name)
    predictor = Predictor(_cost_table(space_name), "synthetic", calibration, overhead_ms=0.005)
    rng = np.random.default_rng(7)
    samples = np.array([space.sample_random(rng) for _ in range(300)])
    fast = predictor.predict_samples(space, samples, resolution=224)
    slow = predictor.predict_ms(space.to_spec(s, resolution=224) for s in samples)
    assert predictor._compiled[(id(space), 224)].fast
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    assert fast.std() > 0  # the samples really differ


def test_batch_prediction_refuses_uncovered_ops():
    space = spaces.get("mnasnet")
    table = _cost_table("mnasnet")
    rng = np.random.default_rng(3)
    samples = np.array([space.sample_random(rng) for _ in range(200)])
    victim_spec = space.to_spec(samples[50], resolution=224)
    victim = op_key(victim_spec.layers()[3])
    del table[victim]
    predictor = Predictor(table, "synthetic")
    covered = [s for s in samples if victim not in op_keys(space.to_spec(s, resolution=224))]
    assert predictor.predict_samples(space, np.array(covered), resolution=224).shape == (len(covered),)
    with pytest.raises(MissingOpError) as err:
        predictor.predict_samples(space, samples, resolution=224)
    first_bad = next(s for s in samples if victim in op_keys(space.to_spec(s, resolution=224)))
    assert err.value.key == Predictor(table, "x").missing_keys(space.to_spec(first_bad, resolution=224))[0]


def test_note10_table_predicts_the_ofa_space_in_batch(tmp_path):
    with TableStore.open(tmp_path / "n10.db", create=True) as store:
        import_yaml(LUTS / "ofa_note10" / "224_lookup_table.yaml", store)
    predictor = Predictor.load(tmp_path / "n10.db", resolution=224)
    assert predictor.calibration == Calibration()  # published tables: identity
    space = spaces.get("ofa-mbv3")
    samples = np.array([space.sample_random(np.random.default_rng(1)) for _ in range(1)] * 3)
    samples = np.vstack([samples, [space.sample_random(np.random.default_rng(s)) for s in range(100)]])
    fast = predictor.predict_samples(space, samples, resolution=224)
    np.testing.assert_allclose(fast, predictor.predict_ms(space.to_spec(s) for s in samples), rtol=1e-12)
    assert 5 < fast.min() < fast.max() < 200  # Note10 ms, the range of OFA's specialised nets and beyond
