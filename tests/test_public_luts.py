"""Published phone tables: OFA Note10 figures reproduced exactly, uncovered nets refused, ProxylessNAS
keys translated without changing a sum."""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml

from latency.opkeys import op_keys
from latency.predictor import MissingOpError, Predictor
from latency.public_luts import default_luts_dir, import_yaml, translate_proxyless_key
from latency.store import TableStore
from mnas.errors import UserError
from mnas.ofa_config import load_ofa_net_config
from mnas.spec import ModelSpec

LUTS = default_luts_dir()  # the repository's data/public_luts (or $MNAS_PUBLIC_LUTS)
NOTE10 = "published:Samsung_Galaxy_Note10:ofa-note10"
# OFA's own table code (sum of the 224 table's means) gives these for the nets with a 24-channel stem.
OFA_FIGURES = {"note10_lat-30ms": 29.97, "note10_lat-41ms": 40.25, "note10_lat-50ms": 50.34}


def test_published_tables_are_present():
    for folder in ("ofa_note10", "ofa_note10_specialized_nets", "proxylessnas"):
        assert (LUTS / folder).is_dir(), f"published tables not at {LUTS / folder} (shipped in data/public_luts)"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("luts") / "published.db"
    with TableStore.open(path, create=True) as store:
        for f in sorted((LUTS / "ofa_note10").glob("*_lookup_table.yaml")):
            import_yaml(f, store)
        import_yaml(LUTS / "proxylessnas" / "mobile_trim.yaml", store)
    return path


def _nets():
    return sorted((LUTS / "ofa_note10_specialized_nets").iterdir())


def test_import_keeps_one_fingerprint_per_resolution(table):
    with TableStore.open(table) as store:
        counts = store.counts()
    assert {k: v for k, v in counts.items() if k.startswith(NOTE10)} == {
        f"{NOTE10}@{r}": 96 for r in (160, 176, 192, 208, 224)}


def test_ofa_specialised_nets_at_224(table):
    predictor = Predictor.load(table, fingerprint_key=NOTE10, resolution=224)
    lut = yaml.safe_load((LUTS / "ofa_note10" / "224_lookup_table.yaml").read_text())
    exact, refused = 0, 0
    for folder in _nets():
        spec = load_ofa_net_config(folder / "net.config", resolution=224)
        stem = json.loads((folder / "net.config").read_text())["first_conv"]["out_channels"]
        tag = re.match(r"note10_lat-\d+ms", folder.name).group(0)
        if tag in OFA_FIGURES:
            assert abs(predictor.predict(spec) - OFA_FIGURES[tag]) < 0.01
            exact += 1
        elif stem != 24:
            first_missing = next(k for k in op_keys(spec) if k not in lut)
            with pytest.raises(MissingOpError) as err:
                predictor.predict(spec)
            assert err.value.key == first_missing and first_missing in str(err.value)
            refused += 1
    assert (exact, refused) == (3, 4)


def test_ofa_nets_at_their_own_resolution(table):
    # run.config sizes: 160..224 are covered by a table; 220 and 260 are not: a clear refusal.
    for folder in _nets():
        spec = load_ofa_net_config(folder / "net.config")
        if spec.resolution in (160, 176, 192, 208, 224):
            predictor = Predictor.load(table, fingerprint_key=NOTE10, resolution=spec.resolution)
            stem = spec.stem_channels
            if stem == 24:
                assert predictor.predict(spec) > 0
            else:
                with pytest.raises(MissingOpError, match=f"Conv-input:{spec.resolution}x{spec.resolution}x3"):
                    predictor.predict(spec)
        else:
            with pytest.raises(UserError, match=f"covers resolutions 160, 176, 192, 208, 224, not {spec.resolution}"):
                Predictor.load(table, fingerprint_key=NOTE10, resolution=spec.resolution)


def test_proxyless_translation_preserves_the_sum(table):
    # A ProxylessNAS-mobile-like net: the sum over our keys equals the sum over the published keys.
    lut = yaml.safe_load((LUTS / "proxylessnas" / "mobile_trim.yaml").read_text())
    strings = ["r1_k3_s11_e1_i32_o16_noskip", "r1_k5_s22_e3_i16_o24", "r1_k3_s11_e6_i24_o24",
               "r1_k7_s22_e6_i24_o40", "r1_k3_s11_e3_i40_o40", "r1_k5_s22_e6_i40_o80", "r1_k5_s11_e3_i80_o80",
               "r1_k3_s11_e6_i80_o96", "r1_k7_s11_e3_i96_o96", "r1_k5_s22_e6_i96_o192", "r1_k7_s11_e6_i192_o192",
               "r1_k3_s11_e6_i192_o320_noskip"]
    spec = ModelSpec.from_strings("proxyless-like", strings, stem_filters=32, head_filters=1280, activation="relu6")
    published = ["Conv-input:224x224x3-output:112x112x32"]
    size, cin = 112, 32
    for s in strings:
        k, stride, e, o = (int(re.search(p, s).group(1)) for p in (r"_k(\d)", r"_s(\d)", r"_e(\d)", r"_o(\d+)"))
        out = (size - 1) // stride + 1
        skip = int(stride == 1 and cin == o and "noskip" not in s)
        published.append(f"expanded_conv-input:{size}x{size}x{cin}-output:{out}x{out}x{o}-expand:{e}-kernel:{k}"
                         f"-stride:{stride}-idskip:{skip}")
        size, cin = out, o
    published += ["Conv_1-input:7x7x320-output:7x7x1280", "Logits-input:7x7x1280-output:1000"]
    expected = sum(lut[k]["mean"] for k in published)
    predictor = Predictor.load(table, fingerprint_key="published:ProxylessNAS_mobile_(Pixel-class):proxyless-mobile")
    assert math.isclose(predictor.predict(spec), expected, rel_tol=1e-12)


def test_translate_proxyless_keys():
    theirs = "expanded_conv-input:56x56x24-output:28x28x40-expand:3-kernel:5-stride:2-idskip:0"
    ours = "expanded_conv-input:56x56x24-output:28x28x40-expand:72-kernel:5-stride:2-idskip:0-se:0-hs:0-act:relu6"
    assert translate_proxyless_key(theirs) == [(ours, 1.0)]
    with pytest.raises(UserError, match="unrecognised"):
        translate_proxyless_key("Mystery-input:1x1x1")


def test_bad_yaml_is_a_user_error(tmp_path):
    with TableStore.open(tmp_path / "t.db", create=True) as store:
        for text, message in [("[1, 2", "cannot read"), ("- a\n- b\n", "not a latency lookup table"),
                              ("k:\n  count: 1\n", "not a latency lookup table"),
                              ("k:\n  mean: 1\n  count: 2\n", "neither 'std'")]:
            bad = tmp_path / "bad.yaml"
            bad.write_text(text)
            with pytest.raises(UserError, match=message):
                import_yaml(bad, store)
