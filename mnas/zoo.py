"""The reference architectures (block strings from the authors' code and papers) as ModelSpecs."""

from __future__ import annotations

from typing import Callable

from mnas.blocks import decode_all
from mnas.registry import Registry
from mnas.spec import ModelSpec, stages_by_width

MNASNET_A1 = ["r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", "r3_k5_s22_e3_i24_o40_se0.25",
              "r4_k3_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o112_se0.25", "r3_k5_s22_e6_i112_o160_se0.25",
              "r1_k3_s11_e6_i160_o320"]
MNASNET_B1 = ["r1_k3_s11_e1_i32_o16_noskip", "r3_k3_s22_e3_i16_o24", "r3_k5_s22_e3_i24_o40",
              "r3_k5_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o96", "r4_k5_s22_e6_i96_o192",
              "r1_k3_s11_e6_i192_o320_noskip"]
MNASNET_SMALL = ["r1_k3_s11_e1_i16_o8", "r1_k3_s22_e3_i8_o16", "r2_k3_s22_e6_i16_o16",
                 "r4_k5_s22_e6_i16_o32_se0.25", "r3_k3_s11_e6_i32_o32_se0.25", "r3_k5_s22_e6_i32_o88_se0.25",
                 "r1_k3_s11_e6_i88_o144"]
# MobileNetV2 (t, c, n, s) rows as block strings; the first has no expand conv (e1), as in Keras.
MOBILENETV2 = ["r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i16_o24", "r3_k3_s22_e6_i24_o32", "r4_k3_s22_e6_i32_o64",
               "r3_k3_s11_e6_i64_o96", "r3_k3_s22_e6_i96_o160", "r1_k3_s11_e6_i160_o320"]

# MobileNetV3 rows: (expansion size, out, kernel, stride, SE, activation), from the paper's tables.
_V3_LARGE = [(16, 16, 3, 1, 0, "re"), (64, 24, 3, 2, 0, "re"), (72, 24, 3, 1, 0, "re"), (72, 40, 5, 2, 1, "re"),
             (120, 40, 5, 1, 1, "re"), (120, 40, 5, 1, 1, "re"), (240, 80, 3, 2, 0, "hs"), (200, 80, 3, 1, 0, "hs"),
             (184, 80, 3, 1, 0, "hs"), (184, 80, 3, 1, 0, "hs"), (480, 112, 3, 1, 1, "hs"),
             (672, 112, 3, 1, 1, "hs"), (672, 160, 5, 2, 1, "hs"), (960, 160, 5, 1, 1, "hs"),
             (960, 160, 5, 1, 1, "hs")]
_V3_SMALL = [(16, 16, 3, 2, 1, "re"), (72, 24, 3, 2, 0, "re"), (88, 24, 3, 1, 0, "re"), (96, 40, 5, 2, 1, "hs"),
             (240, 40, 5, 1, 1, "hs"), (240, 40, 5, 1, 1, "hs"), (120, 48, 5, 1, 1, "hs"), (144, 48, 5, 1, 1, "hs"),
             (288, 96, 5, 2, 1, "hs"), (576, 96, 5, 1, 1, "hs"), (576, 96, 5, 1, 1, "hs")]


def v3_rows_to_strings(rows: list[tuple[int, int, int, int, int, str]], stem: int = 16) -> list[str]:
    """MobileNetV3 table rows -> block strings with explicit expansion sizes (`x`)."""
    strings, cin = [], stem
    for exp, out, k, s, se, act in rows:
        e = "e1" if exp == cin else f"e{exp // cin if exp % cin == 0 else 1}_x{exp}"
        se_tok = "_se0.25" if se else ""
        strings.append(f"r1_k{k}_s{s}{s}_{e}_i{cin}_o{out}{se_tok}_{act}")
        cin = out
    return strings


MIXNET_S = ["r1_k3_a1_p1_s11_e1_i16_o16", "r1_k3_a1.1_p1.1_s22_e6_i16_o24", "r1_k3_a1.1_p1.1_s11_e3_i24_o24",
            "r1_k3.5.7_a1_p1_s22_e6_i24_o40_se0.5_sw", "r3_k3.5_a1.1_p1.1_s11_e6_i40_o40_se0.5_sw",
            "r1_k3.5.7_a1_p1.1_s22_e6_i40_o80_se0.25_sw", "r2_k3.5_a1_p1.1_s11_e6_i80_o80_se0.25_sw",
            "r1_k3.5.7_a1.1_p1.1_s11_e6_i80_o120_se0.5_sw", "r2_k3.5.7.9_a1.1_p1.1_s11_e3_i120_o120_se0.5_sw",
            "r1_k3.5.7.9.11_a1_p1_s22_e6_i120_o200_se0.5_sw", "r2_k3.5.7.9_a1_p1.1_s11_e6_i200_o200_se0.5_sw"]
MIXNET_M = ["r1_k3_a1_p1_s11_e1_i24_o24", "r1_k3.5.7_a1.1_p1.1_s22_e6_i24_o32", "r1_k3_a1.1_p1.1_s11_e3_i32_o32",
            "r1_k3.5.7.9_a1_p1_s22_e6_i32_o40_se0.5_sw", "r3_k3.5_a1.1_p1.1_s11_e6_i40_o40_se0.5_sw",
            "r1_k3.5.7_a1_p1_s22_e6_i40_o80_se0.25_sw", "r3_k3.5.7.9_a1.1_p1.1_s11_e6_i80_o80_se0.25_sw",
            "r1_k3_a1_p1_s11_e6_i80_o120_se0.5_sw", "r3_k3.5.7.9_a1.1_p1.1_s11_e3_i120_o120_se0.5_sw",
            "r1_k3.5.7.9_a1_p1_s22_e6_i120_o200_se0.5_sw", "r3_k3.5.7.9_a1_p1.1_s11_e6_i200_o200_se0.5_sw"]

EFFICIENTNET_B0 = ["r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25", "r2_k5_s22_e6_i24_o40_se0.25",
                   "r3_k3_s22_e6_i40_o80_se0.25", "r3_k5_s11_e6_i80_o112_se0.25", "r4_k5_s22_e6_i112_o192_se0.25",
                   "r1_k3_s11_e6_i192_o320_se0.25"]
EFFICIENTNET_PARAMS = {  # (width, depth, resolution, dropout)
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}
EFFICIENTNET_LITE_PARAMS = {
    "lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2), "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3), "lite4": (1.4, 1.8, 300, 0.3),
}


def _efficientnet(variant: str) -> ModelSpec:
    w, d, r, p = EFFICIENTNET_PARAMS[variant]
    return ModelSpec.from_strings(f"efficientnet-{variant}", EFFICIENTNET_B0, width=w, depth=d, resolution=r,
                                  dropout=p, activation="swish")


def _efficientnet_lite(variant: str) -> ModelSpec:
    # Lite: no SE, ReLU6, stem/head and first/last block repeats kept fixed under scaling.
    w, d, r, p = EFFICIENTNET_LITE_PARAMS[variant]
    strings = [s.replace("_se0.25", "") for s in EFFICIENTNET_B0]
    return ModelSpec.from_strings(f"efficientnet-{variant}", strings, width=w, depth=d, resolution=r, dropout=p,
                                  activation="relu6", scale_stem=False, scale_head=False,
                                  fix_first_last_repeats=True)


def _mobilenetv2() -> ModelSpec:
    # Keras' MobileNetV2: ReLU6 throughout, no dropout; the 1280 head stays fixed under width < 1 (the paper's rule).
    return ModelSpec.from_strings("mobilenetv2-1.0", MOBILENETV2, activation="relu6", dropout=0.0,
                                  scale_head=False)


def _mobilenetv3(name: str, rows: list, head: int, final: int) -> ModelSpec:
    strings = v3_rows_to_strings(rows)
    # one string per layer; stages (runs of equal width, as timm's arch_def) make depth scaling per stage
    return ModelSpec.from_strings(name, strings, stages=stages_by_width(decode_all(strings)), stem_filters=16,
                                  head_filters=head, final_filters=final, activation="relu", stem_activation="hswish",
                                  head_activation="hswish", se_style="mobilenetv3", dropout=0.2)


MODELS: Registry[Callable[[], ModelSpec]] = Registry("model", {
    "mnasnet-a1": lambda: ModelSpec.from_strings("mnasnet-a1", MNASNET_A1, scale_head=False),
    "mnasnet-b1": lambda: ModelSpec.from_strings("mnasnet-b1", MNASNET_B1, scale_head=False),
    "mnasnet-small": lambda: ModelSpec.from_strings("mnasnet-small", MNASNET_SMALL, stem_filters=8,
                                                    scale_head=False, dropout=0.0),
    "mobilenetv2-1.0": _mobilenetv2,
    "mobilenetv3-large": lambda: _mobilenetv3("mobilenetv3-large", _V3_LARGE, 960, 1280),
    "mobilenetv3-small": lambda: _mobilenetv3("mobilenetv3-small", _V3_SMALL, 576, 1024),
    "mixnet-s": lambda: ModelSpec.from_strings("mixnet-s", MIXNET_S, stem_filters=16, head_filters=1536,
                                               scale_head=False),
    "mixnet-m": lambda: ModelSpec.from_strings("mixnet-m", MIXNET_M, stem_filters=24, head_filters=1536,
                                               scale_head=False, dropout=0.25),
    "mixnet-l": lambda: ModelSpec.from_strings("mixnet-l", MIXNET_M, stem_filters=24, head_filters=1536,
                                               scale_head=False, dropout=0.25, width=1.3),
})
for _v in EFFICIENTNET_PARAMS:
    MODELS.register(f"efficientnet-{_v}", lambda v=_v: _efficientnet(v))
for _v in EFFICIENTNET_LITE_PARAMS:
    MODELS.register(f"efficientnet-{_v}", lambda v=_v: _efficientnet_lite(v))

# Published figures (params M, MACs M) from ../shared/reference/models.md (MobileNetV2: its paper's Table 4),
# for the README table and tests.
PUBLISHED: dict[str, tuple[float, float]] = {
    "mnasnet-a1": (3.9, 312), "mnasnet-b1": (4.4, 315), "mnasnet-small": (2.0, 68),
    "mobilenetv2-1.0": (3.4, 300), "mobilenetv3-large": (5.4, 219), "mobilenetv3-small": (2.5, 56),
    "mixnet-s": (4.1, 256), "mixnet-m": (5.0, 360), "mixnet-l": (7.3, 565),
    "efficientnet-b0": (5.3, 390), "efficientnet-b1": (7.8, 700), "efficientnet-b2": (9.2, 1000),
    "efficientnet-b3": (12, 1800), "efficientnet-b4": (19, 4200), "efficientnet-b5": (30, 9900),
    "efficientnet-b6": (43, 19000), "efficientnet-b7": (66, 37000),
    "efficientnet-lite0": (4.7, 407), "efficientnet-lite1": (5.4, 631), "efficientnet-lite2": (6.1, 899),
    "efficientnet-lite3": (8.2, 1440), "efficientnet-lite4": (13.0, 2640),
}


def names() -> list[str]:
    return MODELS.names()


def get(name: str, **overrides: object) -> ModelSpec:
    """A zoo model by name, with optional global-param overrides (num_classes, resolution, width...)."""
    spec = MODELS.get(name)()
    return spec.replace(**overrides) if overrides else spec
