"""devices.stats: summaries, CI of the median, stopping rule, bimodal detection, cool-down (synthetic numbers)."""

import math

import numpy as np
import pytest

from devices import stats


def _rounds(medians, rel_sigma, rng, runs=30):
    return [stats.Round.from_times(rng.normal(m, rel_sigma * m, runs)) for m in medians]


def test_issue_case_bimodal_rounds_are_flagged_and_named():
    # The issue's measurement: round medians 5.6-6.6 ms, some rounds at 9.2-9.9 ms.
    rng = np.random.default_rng(1)
    medians = [5.6, 6.2, 9.4, 6.6, 5.9, 9.2, 9.9, 6.1]
    summary = stats.summarize(_rounds(medians, 0.03, rng))
    assert summary.bimodal
    assert 5.5 < summary.modes.low < 6.7 and 9.1 < summary.modes.high < 10.0
    assert (summary.modes.low_count, summary.modes.high_count) == (5, 3)
    message = " ".join(summary.warnings)
    assert "bimodal rounds" in message and f"{summary.modes.low:.3g} ms" in message
    assert f"{summary.modes.high:.3g} ms" in message
    assert not summary.stable and summary.rounds_cv > 0.2
    noise = summary.noise(0.02)
    assert noise["modes"] == [summary.modes.low, summary.modes.high] and noise["stable"] is False


def test_issue_case_with_summaries_only_like_benchmark_model():
    # Android rounds: only per-round summaries, no per-run times.
    medians = [5.6, 9.5, 6.3, 9.8, 6.0]
    rounds = [stats.Round(count=30, median=m, mean=m * 1.01, std=0.1 * m, p5=0.9 * m, p95=1.2 * m) for m in medians]
    summary = stats.summarize(rounds)
    assert summary.bimodal and summary.runs == 150
    assert summary.median == pytest.approx(float(np.median(medians)))


def test_stable_model_is_not_bimodal_and_stops_early():
    rng = np.random.default_rng(2)
    made = []

    def run_round(i):
        made.append(i)
        center = 6.0 * (1 + 0.002 * rng.standard_normal())  # rounds within 0.5%
        return stats.Round.from_times(rng.normal(center, 0.01 * center, 30))

    rounds = stats.measure_rounds(run_round, max_rounds=5, target_rel_ci=0.02)
    summary = stats.summarize(rounds, target_rel_ci=0.02, max_rounds=5)
    assert not summary.bimodal and summary.stable
    assert stats.MIN_ROUNDS <= len(rounds) < 5 and made == list(range(len(rounds)))
    assert summary.rel_ci95 <= 0.02 and max(summary.round_medians) / min(summary.round_medians) < 1.01
    assert not any("bimodal" in w for w in summary.warnings)


def test_noisy_rounds_run_to_max_rounds_and_warn():
    rng = np.random.default_rng(3)
    rounds = stats.measure_rounds(lambda i: stats.Round.from_times(rng.normal(6 + 0.6 * (i % 2), 0.3, 10)),
                                  max_rounds=4, target_rel_ci=0.005)
    assert len(rounds) == 4
    summary = stats.summarize(rounds, target_rel_ci=0.005)
    assert not summary.stable and any("not stable" in w for w in summary.warnings)


def test_drift_is_not_two_modes():
    assert stats.find_modes([6, 7, 8, 9, 10]) is None


def test_single_outlier_among_many_rounds_is_not_a_mode():
    values = [6.0, 6.01, 5.99, 6.02, 6.0, 6.01, 5.98, 6.0, 6.03, 6.0, 9.5]
    assert stats.find_modes(values) is None  # 1 of 11 < 20% share


def test_bimodal_runs_within_one_round():
    rng = np.random.default_rng(4)
    times = np.concatenate([rng.normal(6.0, 0.1, 40), rng.normal(9.5, 0.15, 20)])
    rng.shuffle(times)
    summary = stats.summarize([stats.Round.from_times(times)])
    assert summary.bimodal and "bimodal runs" in summary.warnings[0]


def test_unimodal_heavy_tail_runs_not_bimodal():
    rng = np.random.default_rng(5)
    for seed in range(20):
        times = 6.0 + rng.exponential(0.3, 60)
        assert stats.find_modes(times, stats.RUNS_RULE) is None, seed


def test_median_ci_matches_binomial_order_statistics():
    lo, hi = stats.median_ci(np.arange(1, 101))
    assert (lo, hi) == (40, 61)  # the textbook 95% CI of the median for n = 100
    lo, hi = stats.median_ci([3.0, 1.0, 2.0])
    assert (lo, hi) == (1.0, 3.0)  # n < 6: min..max


def test_summary_figures_from_times():
    rng = np.random.default_rng(6)
    a, b = rng.normal(10, 1, 50), rng.normal(10.1, 1, 50)
    summary = stats.summarize([stats.Round.from_times(a), stats.Round.from_times(b)])
    both = np.concatenate([a, b])
    assert summary.median == pytest.approx(np.median(both)) and summary.mean == pytest.approx(both.mean())
    assert summary.p95 == pytest.approx(np.percentile(both, 95)) and summary.runs == 100
    assert summary.cv == pytest.approx(both.std(ddof=1) / both.mean())


def test_old_build_without_percentiles_says_so():
    rounds = [stats.Round(count=50, median=10.0, mean=10.0, std=0.2), stats.Round(count=50, median=10.02,
                                                                                   mean=10.02, std=0.2)]
    summary = stats.summarize(rounds)
    assert math.isnan(summary.p5) and any("percentiles" in w for w in summary.warnings)


def test_t_quantile_is_conservative():
    assert stats.t975(1) == pytest.approx(12.706) and stats.t975(11) == stats.t975(10) and stats.t975(500) < 2


def test_cooldown_waits_until_cool_and_gives_up_at_max():
    clock = [0.0]
    temps = iter([52.0, 50.0, 47.0, 44.0])
    result = stats.wait_for_cooldown(lambda: next(temps), 45.0, 60.0, poll_s=2.0,
                                     sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert not result.timed_out and result.waited_s == 6.0 and result.end_c == 44.0
    clock[0] = 0.0
    hot = stats.wait_for_cooldown(lambda: 80.0, 45.0, 10.0, poll_s=3.0,
                                  sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert hot.timed_out and hot.waited_s >= 10.0
    none = stats.wait_for_cooldown(lambda: None, 45.0, 10.0)
    assert none.waited_s < 1 and not none.timed_out


def test_cooldown_guard_reports_hot_rounds_into_profile_fields():
    from devices.stats import CooldownGuard

    guard = CooldownGuard(lambda: 80.0, threshold_c=45.0, max_wait_s=0.0)  # always hot, no time to wait
    guard(0)
    guard(1)
    cool = CooldownGuard(lambda: None, threshold_c=45.0, max_wait_s=10.0)  # no thermal zone: never waits
    cool(0)
    fields = guard.add_to({"noise": {}, "warnings": ("earlier",)})
    assert fields["warnings"][0] == "earlier" and len(fields["warnings"]) == 3
    assert "round 2: still 80.0 C" in fields["warnings"][2] and fields["noise"]["cooldown_s"] >= 0
    assert cool.warnings == [] and cool.waited_s < 1.0
