"""Spaces searched layer by layer over a fixed MobileNetV3 skeleton: `mobilenetv3` and OFA's `ofa-mbv3`.

Every layer of a stage picks its own options; the stage's first layer is always there (it takes the
stride and the width change), later layers are optional, either one "skip" choice each (`mobilenetv3`,
TuNAS-like) or one "depth" choice per stage (`ofa-mbv3`: keep the first d layers, OFA's elastic depth).
Optional layers of a stage all have the same input and output width, so a stage with first-layer options
F and later-layer options R keeps m layers in |R|^m distinct ways, whichever m positions were kept:
distinct stages = |F| * sum over allowed m of |R|^m (skipped layers' own choices do not count).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

from mnas.blocks import BlockArgs
from mnas.spaces.base import Choice, LayerContext, Space, Stage
from mnas.spec import Layer, conv_out_size

KEEP, SKIP = "keep", "skip"


@dataclass(frozen=True, eq=False)
class LayerwiseStage(Stage):
    """A stage of `n_layers` single-layer blocks, each with its own `layer_options`."""

    index: int
    out_channels: int
    stride: int
    n_layers: int
    layer_options: tuple[tuple[str, tuple], ...]  # (name, options) for each per-layer choice
    fixed: tuple[tuple[str, object], ...] = ()  # per-layer settings that are not searched (name, value)
    depth_options: tuple[int, ...] | None = None  # None: one keep/skip choice per optional layer

    def __post_init__(self) -> None:
        if self.depth_options is not None and not all(1 <= d <= self.n_layers for d in self.depth_options):
            raise ValueError(f"depth options {self.depth_options} outside 1..{self.n_layers}")

    @cached_property
    def choices(self) -> tuple[Choice, ...]:  # type: ignore[override]
        out = []
        if self.depth_options is not None:
            out.append(Choice(f"s{self.index}/depth", self.depth_options))
        for j in range(self.n_layers):
            if self.depth_options is None and j > 0:
                out.append(Choice(f"s{self.index}.l{j}/skip", (KEEP, SKIP)))
            out += [Choice(f"s{self.index}.l{j}/{name}", options) for name, options in self.layer_options]
        return tuple(out)

    # -- values -> layers -----------------------------------------------------------------------
    def _layer_configs(self, values: tuple) -> list[dict]:
        """The kept layers' settings, in order."""
        values = list(values)
        depth = values.pop(0) if self.depth_options is not None else None
        per = len(self.layer_options)
        kept = []
        for j in range(self.n_layers):
            skip = values.pop(0) if (depth is None and j > 0) else None
            config = dict(zip((name for name, _ in self.layer_options), values[:per]))
            del values[:per]
            present = j < depth if depth is not None else skip != SKIP
            if present:
                kept.append(config)
        return kept

    def _block(self, config: dict, in_filters: int, first: bool) -> BlockArgs:
        settings = {"expand": 6, "kernel": 3}  # for reduced spaces that do not search these
        settings.update(dict(self.fixed))
        settings.update(config)
        return BlockArgs(repeats=1, kernel_sizes=(int(settings["kernel"]),), stride=self.stride if first else 1,
                         expand_ratio=float(settings["expand"]), in_filters=int(in_filters),
                         out_filters=self.out_channels, se_ratio=0.25 if settings.get("se") else None,
                         activation=settings.get("act"))

    def blocks(self, values: tuple, in_filters: int) -> list[BlockArgs]:
        out = []
        for j, config in enumerate(self._layer_configs(values)):
            out.append(self._block(config, in_filters if j == 0 else self.out_channels, j == 0))
        return out

    def out_filters(self, values: tuple) -> int:
        return self.out_channels

    def out_widths(self) -> dict[int, tuple]:
        return {self.out_channels: tuple(c.options[0] for c in self.choices)}

    # -- exact enumerations ---------------------------------------------------------------------
    @property
    def kept_counts(self) -> tuple[int, ...]:
        """How many optional (non-first) layers can be kept."""
        if self.depth_options is not None:
            return tuple(sorted({d - 1 for d in self.depth_options}))
        return tuple(range(self.n_layers))

    def _configs(self) -> list[dict]:
        names = [name for name, _ in self.layer_options]
        return [dict(zip(names, combo)) for combo in itertools.product(*(o for _, o in self.layer_options))]

    def _layer_sets(self, in_filters: int, ctx: LayerContext) -> tuple[dict[Layer, dict], dict[Layer, dict]]:
        """Distinct first and optional layers -> one config producing each."""
        first: dict[Layer, dict] = {}
        rest: dict[Layer, dict] = {}
        for config in self._configs():
            first.setdefault(ctx.layers(self._block(config, in_filters, True), in_filters, (0,))[0], config)
            if self.n_layers > 1:
                block = self._block(config, self.out_channels, False)
                after_first = conv_out_size(ctx.in_size, self.stride)
                rest.setdefault(ctx.layers(block, self.out_channels, (1,), after_first)[0], config)
        return first, rest

    def layer_sequences(self, in_filters: int, ctx: LayerContext) -> dict[int, int]:
        first, rest = self._layer_sets(in_filters, ctx)
        return {self.out_channels: len(first) * sum(len(rest) ** m for m in self.kept_counts)}

    def distinct_layers(self, in_filters: int, ctx: LayerContext) -> set[Layer]:
        first, rest = self._layer_sets(in_filters, ctx)
        return set(first) | (set(rest) if max(self.kept_counts) > 0 else set())

    def cheapest(self, in_filters: int, ctx: LayerContext) -> dict[int, tuple[int, tuple]]:
        first, rest = self._layer_sets(in_filters, ctx)
        f_layer = min(first, key=lambda layer: ctx.macs([layer]))
        kept = min(self.kept_counts)
        r_layer = min(rest, key=lambda layer: ctx.macs([layer])) if rest else None
        macs = ctx.macs([f_layer]) + (kept * ctx.macs([r_layer]) if r_layer is not None else 0)
        return {self.out_channels: (macs, self._values(first[f_layer], rest.get(r_layer), kept))}

    def _values(self, first: dict, rest: dict | None, kept: int) -> tuple:
        """The values tuple keeping the first layer and `kept` optional layers set to `rest`."""
        default = {name: options[0] for name, options in self.layer_options}
        out: list = []
        if self.depth_options is not None:
            out.append(kept + 1)
        for j in range(self.n_layers):
            present = j == 0 or j <= kept
            if self.depth_options is None and j > 0:
                out.append(KEEP if present else SKIP)
            config = first if j == 0 else (rest if present and rest is not None else default)
            out += [config[name] for name, _ in self.layer_options]
        return tuple(out)


# MobileNetV3-Large's skeleton: (out, layers, stride); stage activation / SE are searched per layer.
MOBILENETV3_SKELETON = ((16, 1, 1), (24, 2, 2), (40, 3, 2), (80, 4, 2), (112, 2, 1), (160, 3, 2))
MOBILENETV3_LAYER_OPTIONS = (("expand", (3, 6)), ("kernel", (3, 5, 7)), ("se", (0, 1)), ("act", ("relu", "hswish")))
MOBILENETV3_PARAMS = dict(stem_filters=16, head_filters=960, final_filters=1280, activation="relu",
                          stem_activation="hswish", head_activation="hswish", se_style="mobilenetv3",
                          dropout=0.2)


def mobilenetv3_space(name: str = "mobilenetv3", skeleton=MOBILENETV3_SKELETON,
                      layer_options=MOBILENETV3_LAYER_OPTIONS) -> Space:
    stages = [LayerwiseStage(i, out, stride, n, tuple(layer_options))
              for i, (out, n, stride) in enumerate(skeleton)]
    return Space(name, stages, MOBILENETV3_PARAMS,
                 "MobileNetV3-Large skeleton; per layer expansion {3,6}, kernel {3,5,7}, SE, relu/h-swish; "
                 "every non-first layer of a stage skippable")


# OFA's MobileNetV3 supernet at width 1.2 (the one the Note10 tables were measured on): stem 24 h-swish,
# a fixed first block 24 -> 24 (3x3 depthwise, no expansion, ReLU), five elastic stages, head 1152, mix 1536.
# (out, stride, activation, SE) per stage, as in MobileNetV3-Large's stages at width 1.2.
OFA_STAGES = ((32, 2, "relu", 0), (48, 2, "relu", 1), (96, 2, "hswish", 0), (136, 1, "hswish", 1),
              (192, 2, "hswish", 1))
OFA_LAYER_OPTIONS = (("kernel", (3, 5, 7)), ("expand", (3, 4, 6)))
OFA_DEPTHS = (2, 3, 4)
OFA_PARAMS = dict(stem_filters=24, head_filters=1152, final_filters=1536, activation="relu",
                  stem_activation="hswish", head_activation="hswish", se_style="mobilenetv3", dropout=0.1)


@dataclass(frozen=True, eq=False)
class FixedStage(Stage):
    """A stage without choices (OFA's first block)."""

    block: BlockArgs

    @property
    def stride(self) -> int:  # type: ignore[override]
        return self.block.stride

    choices = ()  # type: ignore[assignment]

    def blocks(self, values: tuple, in_filters: int) -> list[BlockArgs]:
        return [self.block.replace(in_filters=int(in_filters))]

    def out_filters(self, values: tuple) -> int:
        return self.block.out_filters

    def out_widths(self) -> dict[int, tuple]:
        return {self.block.out_filters: ()}

    def _layers(self, in_filters: int, ctx: LayerContext) -> list[Layer]:
        block = self.blocks((), in_filters)[0]
        return ctx.layers(block, in_filters, range(block.repeats))

    def layer_sequences(self, in_filters: int, ctx: LayerContext) -> dict[int, int]:
        return {self.block.out_filters: 1}

    def distinct_layers(self, in_filters: int, ctx: LayerContext) -> set[Layer]:
        return set(self._layers(in_filters, ctx))

    def cheapest(self, in_filters: int, ctx: LayerContext) -> dict[int, tuple[int, tuple]]:
        return {self.block.out_filters: (ctx.macs(self._layers(in_filters, ctx)), ())}


def ofa_mbv3_space(name: str = "ofa-mbv3", stages=OFA_STAGES, depths=OFA_DEPTHS,
                   layer_options=OFA_LAYER_OPTIONS) -> Space:
    first = FixedStage(BlockArgs(repeats=1, kernel_sizes=(3,), stride=1, expand_ratio=1.0, in_filters=24,
                                 out_filters=24, activation="relu"))
    elastic = [LayerwiseStage(i + 1, out, stride, max(depths), tuple(layer_options),
                              fixed=(("act", act), ("se", se)), depth_options=tuple(depths))
               for i, (out, stride, act, se) in enumerate(stages)]
    return Space(name, [first] + elastic, OFA_PARAMS,
                 "OFA MobileNetV3 (w1.2, the Note10 tables' space): 5 stages, depth {2,3,4}, per layer "
                 "kernel {3,5,7} and expansion {3,4,6}; SE and h-swish fixed per stage as MobileNetV3-Large")
