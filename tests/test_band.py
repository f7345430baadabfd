"""The latency band: only children whose latency can meet the target are trained; what was measured and skipped
is kept; the policy is told in-band children only; an unreachable band is one line. And the width-matched
baselines of the end-of-search comparison."""

from __future__ import annotations

import numpy as np
import pytest

from mnas import controllers, spaces
from mnas.band import Band, BandSampler, OnlineModel, check_band_reachable, parse_band, spec_features
from mnas.baselines import Trained, match_baselines, match_width, parse_baselines, verdict
from mnas.costs import count_macs
from mnas.errors import UserError
from mnas.reward import Reward
from mnas.runstore import RunStore, spec_key
from mnas.search import SearchSetup, run_search, write_outputs
from tests.test_search import CostEvaluator


class MacsLatency:
    """A device-free latency source: MACs at 10 GMAC/s. `measured=True` makes the band treat it as a device
    (online model, measurement before training); it counts its calls so tests can see what was measured."""

    def __init__(self, measured: bool = True, name: str = "macs", wobble: float = 0.0) -> None:
        self.measured, self.name, self.calls, self.last_seconds = measured, name, 0, {}
        self.wobble = wobble  # +-wobble/2 relative, fixed per network: what no MACs-based model predicts

    def settings(self) -> dict:
        return {"kind": "macs"}

    def latency_ms(self, specs) -> list[float]:
        self.calls += len(specs)
        return [count_macs(s) / 1e7 * (1 + self.wobble * (int(spec_key(s)[:8], 16) / 16 ** 8 - 0.5)) for s in specs]


MNASNET = spaces.get("mnasnet")
A1_MS = 31.2  # mnasnet-a1 at 10 GMAC/s (311.6M MACs)


def _setup(source, target: float = 0.8 * A1_MS, controller: str = "ppo", steps: int = 3, batch: int = 3,
           band: Band = Band()) -> SearchSetup:
    return SearchSetup(space=MNASNET, controller=controller, evaluator=CostEvaluator(), sources=[source],
                       reward=Reward("soft", [target]), steps=steps, batch=batch, seed=1, band=band)


@pytest.mark.parametrize("measured", [False, True])
def test_only_children_inside_the_band_are_trained(tmp_path, measured):
    source = MacsLatency(measured)
    setup = _setup(source)
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
        children = store.children()
        lat = np.array([[c.latency_ms["macs"]] for c in children])
        assert len(children) == 9 and setup.band.contains(lat, setup.reward.targets_ms).all()
        summary = write_outputs(setup, store, tmp_path / "out", export=False)
    band = summary["band"]
    assert band["share_in_band"] == 1.0 and band["trained_in_band"] == 9
    assert band["rejected_predicted"] > 0, "a random policy proposes mostly networks slower than the target"
    assert band["proposed"] >= 9 + band["rejected_predicted"] + band["rejected_measured"] - band["forced"]
    assert band["bootstrap_measured"] == (12 if measured else 0)
    assert band["seconds"] > 0 and band["forced"] == 0


def test_without_the_band_most_children_miss_the_target(tmp_path):
    setup = _setup(MacsLatency(False), band=parse_band("off"))
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
        summary = write_outputs(setup, store, tmp_path / "out", export=False)
    assert summary["band"]["band"] == {"off": True} and summary["band"]["share_in_band"] < 0.5


def test_measured_misses_are_stored_and_teach_the_model(tmp_path):
    """A device source: candidates predicted inside are measured; those measured outside are skipped, kept in
    the run store with their latency, and fed to the online model (also after a resume)."""
    source = MacsLatency(True, wobble=0.3)
    setup = _setup(source, band=Band(0.9, 1.0))
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
        skipped = store.skipped()
        assert skipped and all(s["reason"] == "measured outside the band" for s in skipped)
        low, high = setup.band.bounds(setup.reward.targets_ms)[0]
        assert all(not low <= s["latency_ms"]["macs"] <= high for s in skipped)
        from mnas.search import _band_sampler

        resumed = _band_sampler(setup, store)
        assert len(resumed.models[0]) == 12 + len(store.children()) + len(skipped)


def test_the_online_model_fits_an_additive_latency_exactly():
    model = OnlineModel()
    rng = np.random.default_rng(0)
    specs = [MNASNET.to_spec(MNASNET.sample_random(rng)) for _ in range(20)]
    assert np.isnan(model.predict(specs[:1])).all()  # too few observations: measure everything
    for spec in specs[:12]:
        f = spec_features(spec)
        model.observe(spec, 2.0 * f[0] / 100 + 5.0 * f[1] / 100 + 0.5)
    truth = np.array([2.0 * spec_features(s)[0] / 100 + 5.0 * spec_features(s)[1] / 100 + 0.5 for s in specs[12:]])
    assert model.predict(specs[12:]) == pytest.approx(truth, rel=1e-6)
    assert model.rmspe() < 1e-6


def test_a_band_out_of_reach_is_one_line_naming_the_fastest_and_slowest():
    source = MacsLatency(False)
    with pytest.raises(UserError, match=r"out of reach of space 'mnasnet': its fastest network takes .* ms and "
                                        r"its slowest about .* ms at 224px"):
        check_band_reachable(MNASNET, [source], [1e4], Band(), 224)
    reach = check_band_reachable(MNASNET, [source], [A1_MS], Band(), 224)
    fast, slow = reach["macs"]
    assert fast < A1_MS < slow
    with pytest.raises(UserError, match="out of reach"):
        check_band_reachable(MNASNET, [source], [0.5 * fast], Band(0.5, 1.0), 224)


@pytest.mark.parametrize("text, message", [("1,0.5", "0 <= LOW < HIGH"), ("0.9", "LOW,HIGH"),
                                           ("a,b", "LOW,HIGH")])
def test_bad_band_is_one_clear_error(text, message):
    with pytest.raises(UserError, match=message):
        parse_band(text)


def test_policy_is_told_only_the_trained_children(tmp_path):
    source = MacsLatency(False)
    setup = _setup(source, controller="reinforce", steps=2, batch=4)
    with RunStore(tmp_path / "run.db") as store:
        run_search(setup, store, progress=False)
        from mnas.search import restored_controller

        controller, _ = restored_controller(setup, store)
    assert controller.num_told == 8  # 8 trained children; dozens of rejected candidates were never told


def test_budget_too_small_for_any_update_warns_in_one_line():
    setup = _setup(MacsLatency(False), steps=1, batch=1)
    line = setup.budget_warning()
    assert line.startswith("warning: controller 'ppo' first updates after 2 children") and "\n" not in line
    assert _setup(MacsLatency(False), steps=5, batch=4).budget_warning() is None
    assert _setup(MacsLatency(False), controller="random", steps=1, batch=1).budget_warning() is None


# -- baselines at equal latency ----------------------------------------------------------------------------
def test_width_matching_meets_the_target_from_below_and_close():
    source = MacsLatency(False)
    target = 0.8 * A1_MS
    for name in ("mnasnet-a1", "mobilenetv3-large", "mobilenetv2-1.0"):
        m = match_width(name, [source], [target], 224)
        assert m.spec is not None and m.latency_ms["macs"] <= target
        assert m.latency_ms["macs"] >= 0.93 * target, (name, m.width, m.latency_ms)
    mnas_a1 = match_width("mnasnet-a1", [source], [target], 224)
    assert 0.8 < mnas_a1.width < 1.0  # 0.8 x the latency: a bit narrower than 1.0


def test_a_baseline_that_cannot_reach_the_target_is_reported_and_left_out():
    source = MacsLatency(False)
    matched = match_baselines(["mnasnet-a1", "mobilenetv2-1.0"], [source], [0.5], 224)
    assert all(m.spec is None and "even at width 0.2" in m.note for m in matched)
    with pytest.raises(UserError, match="unknown baseline model 'resnet'"):
        parse_baselines("mnasnet-a1,resnet")
    assert parse_baselines("none") == [] and len(parse_baselines(None)) == 3


def test_verdict_needs_a_margin_over_twice_the_pooled_seed_std():
    best = Trained([0.90, 0.91, 0.92])
    close = verdict(best, {"a": Trained([0.89, 0.90, 0.91]), "b": Trained([0.5, 0.5, 0.5])})
    assert close["baseline"] == "a" and not close["beat"] and close["margin"] == pytest.approx(0.01)
    assert "within seed noise" in close["line"]
    clear = verdict(best, {"a": Trained([0.80, 0.81, 0.82])})
    assert clear["beat"] and clear["line"].startswith("search beat the best baseline")
    lost = verdict(Trained([0.7, 0.7, 0.7]), {"a": Trained([0.80, 0.81, 0.82])})
    assert not lost["beat"] and "did not beat" in lost["line"]


def test_band_filter_on_the_real_host_device(tmp_path):
    """Real LiteRT measurements: bootstrap networks are measured, the model predicts, trained children were
    measured inside the band before training."""
    from devices.registry import open_device
    from mnas.latency_sources import DeviceLatency
    from mnas import zoo

    source = DeviceLatency(open_device("host"))
    target = 0.9 * source.latency_ms([zoo.get("mnasnet-a1")])[0]
    sampler = BandSampler([source], [target], Band(0.8, 1.05), lambda s: MNASNET.to_spec(s))
    stats = sampler.bootstrap(MNASNET, count=6)
    assert stats.bootstrap_measured == 6 and len(sampler.models[0]) == 6
    samples, stats = sampler.ask(controllers.create("random", MNASNET, 0), 2)
    assert len(samples) == 2 and stats.measured >= 2 and stats.proposed > stats.measured
    for sample in samples:
        ms = source.latency_ms([MNASNET.to_spec(sample)])[0]  # the cached measurement the child will use
        assert 0.8 * target <= ms <= 1.05 * target or stats.forced


def test_a_run_matches_its_baselines_once(tmp_path):
    """Resumed or re-summarised, a run compares with the baselines it matched (and trained) first, not with a
    new match made under another load."""
    from mnas.runstore import MemoryCache

    cache, source = MemoryCache(), MacsLatency(False)
    first = match_baselines(["mnasnet-a1"], [source], [0.8 * A1_MS], 224, cache=cache)
    calls = source.calls
    again = match_baselines(["mnasnet-a1"], [MacsLatency(False, wobble=0.5)], [0.8 * A1_MS], 224, cache=cache)
    assert source.calls == calls and again[0].width == first[0].width
    assert again[0].spec.block_strings() == first[0].spec.block_strings() and again[0].latency_ms == first[0].latency_ms
