"""Compound-scaling rules and latency-aware phi solving: pure, fast (no TF)."""

from __future__ import annotations

import math

import pytest

from mnas import zoo
from mnas.costs import count_macs
from mnas.errors import UserError
from mnas.reward import parse_targets
from mnas.scaling import (DOWNSCALE_FLOOR, EFFICIENTNET_COEFFICIENTS, SINGLE_DIMENSION, CachedLatency,
                          Coefficients, coefficient_grid, cost_shares, compound_scaler, describe, expected_macs,
                          round_resolution, scale, solve_family, solve_phi)

A, B, G = EFFICIENTNET_COEFFICIENTS


@pytest.fixture(scope="module")
def b0():
    return zoo.get("efficientnet-b0")


@pytest.fixture(scope="module")
def small():
    return zoo.get("mnasnet-small", resolution=96, num_classes=10)


# -- coefficients and the grid -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [(0.9, 1.1, 1.1), (1.2, 0.5, 1.1), (1.2, 1.1, 0.99), (float("nan"), 1, 1)])
def test_coefficients_below_one_are_rejected(bad):
    with pytest.raises(UserError, match="coefficient"):
        Coefficients(*bad)


def test_paper_coefficients_obey_the_constraint_and_lie_on_the_grid():
    c = Coefficients(A, B, G)
    assert abs(c.cost_ratio - 2.0) <= 0.1
    grid = coefficient_grid(step=0.05, tolerance=0.1)
    assert c in grid


def test_grid_respects_constraint_and_sorts_balanced_first():
    grid = coefficient_grid(step=0.1, tolerance=0.1)
    assert grid and len(set(grid)) == len(grid)
    for c in grid:
        assert min(c.as_tuple()) >= 1.0
        assert abs(c.cost_ratio - 2.0) <= 0.1 + 1e-9
        assert sum(cost_shares(c)) == pytest.approx(1.0)
    largest_share = [round(max(cost_shares(c)), 9) for c in grid]
    assert largest_share == sorted(largest_share)
    assert max(cost_shares(grid[-1])) == pytest.approx(1.0)  # one-dimension corners come last
    assert len(coefficient_grid(step=0.05, tolerance=0.1)) > len(grid)  # finer grid, more candidates


@pytest.mark.parametrize("kwargs", [dict(step=0), dict(tolerance=-1), dict(target=0.5)])
def test_grid_bad_arguments(kwargs):
    with pytest.raises(UserError):
        coefficient_grid(**kwargs)


# -- resolution rounding -------------------------------------------------------------------------------
def test_round_resolution_modes_and_floor():
    assert round_resolution(257.6) == 256
    assert round_resolution(257.6, mode="floor") == 256
    assert round_resolution(257.6, mode="ceil") == 264
    assert round_resolution(260.0) == 264  # ties round up
    assert round_resolution(256.0, mode="ceil") == 256  # already a multiple: no change
    assert round_resolution(10.0) == 32  # never below the spec's minimum
    assert round_resolution(257.6, multiple=1) == 258
    with pytest.raises(UserError):
        round_resolution(224, mode="up")


# -- the scaling rule ------------------------------------------------------------------------------------
def test_phi_zero_is_the_base_network(b0):
    s = scale(b0, A, B, G, 0)
    assert s.replace(name=b0.name) == b0
    assert count_macs(s) == count_macs(b0)


def test_phi_one_follows_the_coefficients(b0):
    s = scale(b0, A, B, G, 1)
    assert s.depth == pytest.approx(A) and s.width == pytest.approx(B)
    assert s.resolution == round_resolution(224 * G)
    assert s.resolution % 8 == 0
    assert describe(s)["phi"] == 1.0
    # the authors' round_repeats (ceil) and round_filters act through the spec
    assert [s.repeats(i) for i in range(len(s.blocks))] == [math.ceil(A * b.repeats) for b in b0.blocks]
    assert s.stem_channels == 32 * B // 8 * 8 + (8 if 32 * B % 8 >= 4 else 0)


def test_scaling_composes_with_existing_multipliers(b0):
    wide = b0.replace(width=1.1, depth=1.2)
    s = scale(wide, A, B, G, 2)
    assert s.width == pytest.approx(1.1 * B ** 2)
    assert s.depth == pytest.approx(1.2 * A ** 2)
    # filters are rounded once from the base counts, not from already-rounded ones
    assert s.stem_channels == s.filters(32)


def test_fractional_phi_and_monotone_cost(b0):
    macs = [count_macs(scale(b0, A, B, G, phi)) for phi in (0, 0.5, 1, 1.5, 2, 3)]
    assert macs == sorted(macs) and len(set(macs)) == len(macs)


def test_cost_law_holds_loosely_and_tightens_with_phi(b0):
    # rounding (ceil repeats, multiple-of-8 channels) inflates small phis; large phis approach the law
    c = Coefficients(A, B, G)
    base = count_macs(b0)
    ratios = [count_macs(scale(b0, A, B, G, phi)) / expected_macs(base, c, phi) for phi in range(1, 8)]
    assert all(0.9 < r < 1.35 for r in ratios)
    assert abs(ratios[-1] - 1) < abs(ratios[1] - 1)


def test_negative_phi_needs_downscale(b0):
    with pytest.raises(UserError, match="allow-downscale"):
        scale(b0, A, B, G, -1)
    small = scale(b0, A, B, G, -1, allow_downscale=True)
    assert count_macs(small) < count_macs(b0)
    assert small.resolution == round_resolution(224 / G)
    with pytest.raises(UserError, match="floor"):
        scale(b0, A, B, G, DOWNSCALE_FLOOR - 0.5, allow_downscale=True)


def test_lite_keeps_stem_head_and_first_last_repeats(b0):
    s = scale(b0, A, B, G, 3, lite=True)
    assert s.stem_channels == 32 and s.head_channels == 1280
    n = len(b0.blocks)
    assert s.repeats(0) == b0.blocks[0].repeats and s.repeats(n - 1) == b0.blocks[-1].repeats
    assert s.repeats(3) == math.ceil(A ** 3 * b0.blocks[3].repeats)
    plain = scale(b0, A, B, G, 3)
    assert plain.stem_channels > 32 and plain.head_channels > 1280


def test_single_dimension_rules_move_one_dimension(small):
    for dim, coeffs in SINGLE_DIMENSION.items():
        assert Coefficients(*coeffs).cost_ratio == pytest.approx(2.0)
        s = scale(small, *coeffs, 2)
        assert (s.depth != small.depth) == (dim == "depth")
        assert (s.width != small.width) == (dim == "width")
        assert (s.resolution != small.resolution) == (dim == "resolution")


# -- latency-aware phi solving ---------------------------------------------------------------------------
def synthetic_latency(specs):
    """A monotone stand-in for a device: 1 ms per 2 MMACs plus a fixed 0.5 ms overhead."""
    return [0.5 + count_macs(s) / 2e6 for s in specs]


def best_below(make, target, lo=0.0, hi=6.0, step=0.004):
    best = 0.0
    for rounding in ("nearest", "floor", "ceil"):
        phi = lo
        while phi <= hi:
            ms = synthetic_latency([make(phi, rounding)])[0]
            if ms <= target:
                best = max(best, ms)
            phi += step
    return best


def test_solve_phi_meets_target_from_below_closely(small):
    make = compound_scaler(small, Coefficients(A, B, G))
    base_ms = synthetic_latency([small])[0]
    for factor in (1.7, 3.1, 6.0):
        target = base_ms * factor
        sol = solve_phi(make, synthetic_latency, target)
        assert sol.latency_ms <= target
        assert sol.phi > 0
        # as close as an exhaustive sweep of phi and roundings (bisection may miss a plateau < tol wide)
        assert sol.latency_ms >= 0.98 * best_below(make, target)
        assert sol.spec == make(sol.phi, sol.rounding)


def test_neighbouring_roundings_never_do_worse(small):
    make = compound_scaler(small, Coefficients(A, B, G))
    target = synthetic_latency([small])[0] * 2.5
    nearest = solve_phi(make, synthetic_latency, target, roundings=("nearest",))
    all_modes = solve_phi(make, synthetic_latency, target)
    assert nearest.latency_ms <= all_modes.latency_ms <= target


def test_target_below_base_is_an_error_unless_downscaling(small):
    make = compound_scaler(small, Coefficients(A, B, G))
    base_ms = synthetic_latency([small])[0]
    with pytest.raises(UserError, match="below the base model.*allow-downscale"):
        solve_phi(make, synthetic_latency, base_ms * 0.7)
    down = compound_scaler(small, Coefficients(A, B, G), allow_downscale=True)
    sol = solve_phi(down, synthetic_latency, base_ms * 0.7, min_phi=-2.0)
    assert sol.phi < 0 and sol.latency_ms <= base_ms * 0.7


def test_target_beyond_max_phi_returns_the_largest_model(small):
    make = compound_scaler(small, Coefficients(A, B, G))
    sol = solve_phi(make, synthetic_latency, 1e9, max_phi=2.0)
    assert sol.phi == 2.0


def test_family_is_named_sorted_and_shares_timings(small):
    calls = []

    def counting(specs):
        calls.extend(specs)
        return synthetic_latency(specs)

    make = compound_scaler(small, Coefficients(A, B, G))
    base_ms = synthetic_latency([small])[0]
    family = solve_family(make, counting, [base_ms * 4, base_ms * 1.5, base_ms * 2.5], name="fam")
    assert [m.spec.name for m in family] == ["fam-d0", "fam-d1", "fam-d2"]
    assert [m.target_ms for m in family] == sorted(m.target_ms for m in family)
    assert [m.phi for m in family] == sorted(m.phi for m in family)
    keys = [s.replace(name="") for s in calls]
    assert len(keys) == len(set(keys))  # each distinct network timed once


def test_cached_latency_times_each_network_once(small):
    lat = CachedLatency(synthetic_latency)
    a = small.replace(name="x")
    assert lat([a, small, a]) == [lat.one(small)] * 3
    assert lat.calls == 1


def test_solve_rejects_bad_targets(small):
    make = compound_scaler(small, Coefficients(A, B, G))
    for bad in (0.0, -3.0, float("inf")):
        with pytest.raises(UserError):
            solve_phi(make, synthetic_latency, bad)


def test_parse_targets():
    assert parse_targets("20, 35.5,50") == [20.0, 35.5, 50.0]
    for bad in ("", "a,b", "10,-2", "0"):
        with pytest.raises(UserError):
            parse_targets(bad)


@pytest.mark.parametrize("rounding", ["ceil", "nearest"])
def test_depth_scales_per_stage_for_specs_written_one_string_per_layer(rounding):
    """MobileNetV3 and the layer-wise spaces write one string per layer; depth is scaled per stage (timm's
    `_scale_stage_depth`), so each stage grows to round(depth x its layers), not by a layer per string."""
    from mnas import spaces
    from mnas.spec import round_repeats

    rng = __import__("numpy").random.default_rng(0)
    found = spaces.get("ofa-mbv3").to_spec(spaces.get("ofa-mbv3").sample_random(rng))
    for spec in (zoo.get("mobilenetv3-large"), zoo.get("mobilenetv3-small"), found):
        assert spec.stages is not None
        for depth in (1.1, 1.2, 1.5):
            scaled = scale(spec, depth, 1.0, 1.0, 1.0, repeats_rounding=rounding)
            per_block = [scaled.repeats(i) for i in range(len(spec.blocks))]
            start = 0
            for size in spec.stages:
                stage = [b.repeats for b in spec.blocks[start:start + size]]
                assert sum(per_block[start:start + size]) == round_repeats(sum(stage), depth, rounding)
                start += size
        ratio = count_macs(scale(spec, 1.1, 1.0, 1.0, 1.0, repeats_rounding=rounding)) / count_macs(spec)
        assert (1.0 <= ratio <= 1.15) if rounding == "nearest" else (1.1 <= ratio < 1.45), (spec.name, ratio)
    # before stages, depth 1.1 doubled every MobileNetV3 layer: 217M -> 396M MACs (1.83x)
    unstaged = zoo.get("mobilenetv3-large").replace(stages=None)
    assert count_macs(scale(unstaged, 1.1, 1.0, 1.0, 1.0)) / count_macs(unstaged) > 1.8


def test_stages_round_trip_through_arch_files_and_old_files_still_load(tmp_path):
    from mnas.archfile import load_arch_file, save_arch_file

    spec = zoo.get("mobilenetv3-large")
    back = load_arch_file(save_arch_file(spec, tmp_path / "v3.json"))
    assert back == spec and back.stages == (1, 2, 3, 4, 2, 3)
    old = tmp_path / "old.json"
    old.write_text('{"name": "old", "blocks": ["r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i16_o24"]}')
    assert load_arch_file(old).stages is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "bad", "blocks": ["r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i16_o24"], "stages": [3]}')
    with pytest.raises(UserError, match="stages must be positive counts of block strings adding up to 2"):
        load_arch_file(bad)
