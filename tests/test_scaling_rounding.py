"""Repeats rounding (ceil, the authors' rule | nearest): the cost law, the zoo unchanged, round trips."""

from __future__ import annotations

import csv
import json
import math

import pytest

from mnas import zoo
from mnas.archfile import load_arch_file, save_arch_file, spec_from_dict
from mnas.cli import main
from mnas.costs import count_macs
from mnas.errors import UserError
from mnas.runstore import spec_from_dict as store_from_dict, spec_key, spec_to_dict as store_to_dict
from mnas.scaling import EFFICIENTNET_COEFFICIENTS, Coefficients, expected_macs, scale
from mnas.spec import round_repeats

A, B, G = EFFICIENTNET_COEFFICIENTS


@pytest.fixture(scope="module")
def b0():
    return zoo.get("efficientnet-b0")


def law_ratios(b0, rounding: str) -> list[float]:
    c, base = Coefficients(A, B, G), count_macs(b0)
    return [count_macs(scale(b0, A, B, G, phi, repeats_rounding=rounding)) / expected_macs(base, c, phi)
            for phi in range(1, 8)]


def test_round_repeats_rules():
    assert [round_repeats(r, 1.2) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]  # ceil: +1 layer per stage at once
    assert [round_repeats(r, 1.2, "nearest") for r in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert round_repeats(2, 1.25, "nearest") == 3  # half rounds up
    assert round_repeats(1, 0.3, "nearest") == 1  # never below one layer
    with pytest.raises(UserError, match="repeats rounding"):
        round_repeats(2, 1.2, "up")


def test_cost_law_within_15pct_for_phi_1_to_7_with_nearest(b0):
    ratios = law_ratios(b0, "nearest")
    assert all(abs(r - 1) <= 0.15 for r in ratios), ratios


def test_ceil_stays_the_authors_rule_and_misses_the_law_at_small_phi(b0):
    ratios = law_ratios(b0, "ceil")
    assert [count_macs(scale(b0, A, B, G, phi)) for phi in range(1, 8)] == \
        [count_macs(scale(b0, A, B, G, phi, repeats_rounding="ceil")) for phi in range(1, 8)]
    assert all(r > 1.15 for r in ratios[:4]) and all(abs(r - 1) <= 0.15 for r in ratios[4:])


def test_zoo_is_unchanged_ceil(b0):
    for k in range(1, 8):
        spec = zoo.get(f"efficientnet-b{k}")
        assert spec.repeats_rounding == "ceil"
        assert [spec.repeats(i) for i in range(len(spec.blocks))] == \
            [math.ceil(spec.depth * b.repeats) for b in spec.blocks]
        assert "repeats_rounding" not in spec.global_params()  # keys hashed before the field existed stay valid
    assert count_macs(zoo.get("efficientnet-b4")) == count_macs(b0.replace(width=1.4, depth=1.8, resolution=380))


def test_phi_zero_is_the_same_network_with_either_rounding(b0):
    assert scale(b0, A, B, G, 0, repeats_rounding="nearest").layers() == b0.layers()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_arch_file_round_trip(b0, tmp_path, suffix):
    nearest = scale(b0, A, B, G, 2, repeats_rounding="nearest", name="b0-n2")
    loaded = load_arch_file(save_arch_file(nearest, tmp_path / f"n{suffix}"))
    assert loaded == nearest and loaded.repeats_rounding == "nearest"
    ceil = scale(b0, A, B, G, 2, name="b0-c2")
    assert load_arch_file(save_arch_file(ceil, tmp_path / f"c{suffix}")) == ceil
    assert count_macs(loaded) != count_macs(ceil)


def test_old_files_load_as_ceil_and_bad_values_are_refused(b0):
    old = {"name": "old", "blocks": b0.block_strings(), "depth": 1.44}  # written before the field existed
    assert spec_from_dict(old).repeats_rounding == "ceil"
    with pytest.raises(UserError, match="repeats_rounding"):
        spec_from_dict({**old, "repeats_rounding": "round"})
    with pytest.raises(UserError, match="repeats_rounding"):
        spec_from_dict({**old, "repeats_rounding": None})


def test_run_store_round_trip_and_distinct_keys(b0):
    nearest = scale(b0, A, B, G, 2, repeats_rounding="nearest")
    assert store_from_dict(store_to_dict(nearest)) == nearest
    assert spec_key(nearest) != spec_key(nearest.replace(repeats_rounding="ceil"))


def test_cli_records_the_rounding(capsys, tmp_path):
    rc = main(["scale", "--arch", "efficientnet-b0", "--phi", "1", "--repeats-rounding", "nearest", "--no-export",
               "--out", str(tmp_path), "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    payload = json.loads(out)
    assert payload["repeats_rounding"] == "nearest"
    (model,) = payload["models"]
    assert model["repeats_rounding"] == "nearest"
    assert model["macs"] == count_macs(scale(zoo.get("efficientnet-b0"), A, B, G, 1, repeats_rounding="nearest"))
    assert load_arch_file(model["arch_file"]).repeats_rounding == "nearest"
    assert json.loads((tmp_path / "family.json").read_text())["repeats_rounding"] == "nearest"
    (row,) = csv.DictReader(open(tmp_path / "family.csv"))
    assert row["repeats_rounding"] == "nearest"


def test_cli_rejects_an_unknown_rounding(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["scale", "--arch", "efficientnet-b0", "--phi", "1", "--repeats-rounding", "up", "--out", str(tmp_path)])
    assert exc.value.code == 2
