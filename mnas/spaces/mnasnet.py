"""MnasNet's factorized hierarchical space (CVPR'19, fig. 4) and MixNet's kernel-group extension of it.

One block per stage of the MobileNetV2 skeleton; each block picks its conv op, kernel, SE ratio, skip op,
width (0.75 / 1.0 / 1.25 x base, rounded to a multiple of 8) and layer count (base -1 / 0 / +1, at least 1);
all layers of a block are identical, only the first takes the stride and the width change.

Where rounding makes two multipliers give the same width (0.75 x 16 -> 16, 0.75 x 24 -> 24) or the layer
delta hits the minimum (1 - 1 -> 1), the duplicate option is dropped, so every option of a choice is a
different value. Other collisions (an identity skip on a stride-2 layer is no skip) stay in the choices and
are removed in the exact count (`Space.num_architectures`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

from mnas.blocks import BlockArgs
from mnas.spaces.base import Choice, LayerContext, Space, Stage
from mnas.spec import Layer, make_divisible

# MobileNetV2's skeleton: (filters, layers, stride) per block.
MOBILENETV2_SKELETON = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
CONV_OPS = ("conv", "dsconv", "mbconv3", "mbconv6")
_OP_ARGS = {"conv": ("cn", 1.0), "dsconv": ("ds", 1.0), "mbconv3": ("ir", 3.0), "mbconv6": ("ir", 6.0)}
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIP_OPS = ("none", "id", "pool")  # MnasNet: no skip, identity residual, pooling
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
KERNEL_GROUPS = ((3,), (3, 5), (3, 5, 7), (3, 5, 7, 9))  # MixNet's MixConv choices


def _unique(values: list) -> tuple:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, eq=False)
class BlockStage(Stage):
    """One MnasNet block: all its layers share one (op, kernel, se, skip, filters, layers) choice."""

    index: int
    base_filters: int
    base_layers: int
    stride: int
    ops: tuple[str, ...] = CONV_OPS
    kernels: tuple = KERNELS  # ints (MnasNet) or tuples of ints (MixNet kernel groups)
    se_ratios: tuple[float, ...] = SE_RATIOS
    skips: tuple[str, ...] = SKIP_OPS
    filter_multipliers: tuple[float, ...] = FILTER_MULTIPLIERS
    layer_deltas: tuple[int, ...] = LAYER_DELTAS

    @cached_property
    def choices(self) -> tuple[Choice, ...]:  # type: ignore[override]
        b = f"b{self.index}"
        widths = _unique([make_divisible(self.base_filters * m, 8) for m in self.filter_multipliers])
        layers = _unique([max(1, self.base_layers + d) for d in self.layer_deltas])
        kernel_tag = "kernels" if isinstance(self.kernels[0], tuple) else "kernel"
        return (Choice(f"{b}/op", self.ops), Choice(f"{b}/{kernel_tag}", self.kernels),
                Choice(f"{b}/se", self.se_ratios), Choice(f"{b}/skip", self.skips),
                Choice(f"{b}/filters", widths), Choice(f"{b}/layers", layers))

    def blocks(self, values: tuple, in_filters: int) -> list[BlockArgs]:
        op, kernel, se, skip, filters, layers = values
        block_type, expand = _OP_ARGS[op]
        kernels = tuple(kernel) if isinstance(kernel, tuple) else (int(kernel),)
        if block_type == "cn":
            kernels = (max(kernels),)  # a regular conv has one kernel: a group choice means its largest
        return [BlockArgs(repeats=int(layers), kernel_sizes=kernels, stride=self.stride, expand_ratio=expand,
                          in_filters=int(in_filters), out_filters=int(filters), block_type=block_type,
                          se_ratio=float(se) or None, skip=skip)]

    def out_filters(self, values: tuple) -> int:
        return int(values[4])

    def out_widths(self) -> dict[int, tuple]:
        first = tuple(c.options[0] for c in self.choices)
        return {int(w): first[:4] + (w,) + first[5:] for w in self.choices[4].options}

    def _configs(self, in_filters: int, ctx: LayerContext):
        """(values, first layer, repeat layer) for every combination of the stage's options."""
        layer_choice = self.choices[5].options
        for values in itertools.product(*(c.options for c in self.choices[:5])):
            block = self.blocks(values + (1,), in_filters)[0].replace(repeats=2)
            first, rest = ctx.layers(block, in_filters, (0, 1))
            for layers in layer_choice:
                yield values + (layers,), first, rest

    def layer_sequences(self, in_filters: int, ctx: LayerContext) -> dict[int, int]:
        seen: dict[int, set[tuple[Layer, ...]]] = {}
        for values, first, rest in self._configs(in_filters, ctx):
            seen.setdefault(int(values[4]), set()).add((first,) + (rest,) * (int(values[5]) - 1))
        return {w: len(s) for w, s in seen.items()}

    def distinct_layers(self, in_filters: int, ctx: LayerContext) -> set[Layer]:
        found: set[Layer] = set()
        for values, first, rest in self._configs(in_filters, ctx):
            found.add(first)
            if values[5] > 1:
                found.add(rest)
        return found

    def cheapest(self, in_filters: int, ctx: LayerContext) -> dict[int, tuple[int, tuple]]:
        best: dict[int, tuple[int, tuple]] = {}
        for values, first, rest in self._configs(in_filters, ctx):
            macs = ctx.macs([first]) + (int(values[5]) - 1) * ctx.macs([rest])
            w = int(values[4])
            if w not in best or macs < best[w][0]:
                best[w] = (macs, values)
        return best


MNASNET_PARAMS = dict(stem_filters=32, head_filters=1280, scale_head=False, activation="relu", dropout=0.2)


def mnasnet_space(name: str = "mnasnet", skeleton=MOBILENETV2_SKELETON, **stage_options) -> Space:
    """MnasNet's space; `stage_options` overrides the per-block option sets (tests use tiny spaces)."""
    stages = [BlockStage(i, f, n, s, **stage_options) for i, (f, n, s) in enumerate(skeleton)]
    return Space(name, stages, MNASNET_PARAMS,
                 "MnasNet factorized hierarchical space: 7 blocks over MobileNetV2; per block conv op, kernel, "
                 "SE, skip op, filters x{0.75,1,1.25}, layers {-1,0,+1}")


def mixnet_space(name: str = "mixnet", skeleton=MOBILENETV2_SKELETON, **stage_options) -> Space:
    """MnasNet's space with MixConv kernel groups in place of the single depthwise kernel."""
    stage_options.setdefault("kernels", KERNEL_GROUPS)
    stages = [BlockStage(i, f, n, s, **stage_options) for i, (f, n, s) in enumerate(skeleton)]
    return Space(name, stages, MNASNET_PARAMS,
                 "MnasNet's space with MixNet kernel groups {3},{3,5},{3,5,7},{3,5,7,9} per block "
                 "(a regular conv takes the group's largest kernel)")
