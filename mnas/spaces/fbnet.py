"""The FBNet space at CIFAR input (HW-NAS-Bench's FBNet for CIFAR): the network of the real-device data in
data/real_devices (Pixel 3, Raspberry Pi 4, Samsung A50; see its README).

A sample is the 22 op indices of the data, in its order (`7.8.1...`): one choice per searchable layer, options

    0 k3_e1   1 k3_e1_g2   2 k3_e3   3 k3_e6   4 k5_e1   5 k5_e1_g2   6 k5_e3   7 k5_e6   8 skip

- kK_eE[_g2]: 1x1 conv C_in -> C_in*E (groups g) + BN + ReLU, channel shuffle when g = 2, depthwise KxK (the
  layer's stride) + BN + ReLU, 1x1 conv -> C_out (groups g) + BN, residual add when C_in == C_out and stride 1.
  At E = 1 the first 1x1 conv stays (MBConv drops it): block string flag `keepexpand`.
- skip: no layer when C_in == C_out and stride 1; else a 1x1 conv with the layer's stride + BN + ReLU (a `cn`
  block with kernel 1).
- Stem 3x3 conv, 16 channels, stride 1; stages of [1, 4, 4, 4, 4, 4, 1] layers, channels [16, 24, 32, 64, 112,
  184, 352], first-layer strides [1, 1, 2, 2, 1, 2, 1]; head 1x1 conv 352 -> 1504 + BN + ReLU, global average
  pool, fully connected to 100 classes. Default input 32 x 32.

Every layer's input width and size are fixed by its position, so a network is the sum of what each choice adds
(`FBNetSpace.layers_by_choice`): the latency tables and the few-shot fits (latency.fewshot) use that.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

from mnas.blocks import BlockArgs
from mnas.spaces.base import Choice, LayerContext, Sample, Space, Stage, position_free
from mnas.spec import Layer, ModelSpec, conv_out_size

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
_OP_ARGS = {"k3_e1": (3, 1, 1), "k3_e1_g2": (3, 1, 2), "k3_e3": (3, 3, 1), "k3_e6": (3, 6, 1),
            "k5_e1": (5, 1, 1), "k5_e1_g2": (5, 1, 2), "k5_e3": (5, 3, 1), "k5_e6": (5, 6, 1)}  # kernel, E, groups
# (channels, layers, first-layer stride) per stage
FBNET_STAGES = ((16, 1, 1), (24, 4, 1), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1))
FBNET_PARAMS = dict(stem_filters=16, stem_stride=1, head_filters=1504, scale_head=False, activation="relu",
                    dropout=0.2)
CIFAR_RESOLUTION = 32
CIFAR_CLASSES = 100


def fbnet_block(op: str, in_filters: int, out_filters: int, stride: int) -> BlockArgs | None:
    """One FBNet layer as block args; None for an identity skip (no layer)."""
    if op == "skip":
        if stride == 1 and in_filters == out_filters:
            return None
        return BlockArgs(1, (1,), stride, 1.0, in_filters, out_filters, block_type="cn", skip="none")
    kernel, expand, groups = _OP_ARGS[op]
    return BlockArgs(1, (kernel,), stride, float(expand), in_filters, out_filters, expand_groups=groups,
                     project_groups=groups, keep_expand=expand == 1, shuffle=groups > 1)


@dataclass(frozen=True, eq=False)
class FBNetStage(Stage):
    """One stage: a choice per layer; only the first layer takes the stride and the width change."""

    index: int
    out_channels: int
    n_layers: int
    stride: int

    @cached_property
    def choices(self) -> tuple[Choice, ...]:  # type: ignore[override]
        return tuple(Choice(f"s{self.index}/l{j}", OPS) for j in range(self.n_layers))

    def block(self, op: str, in_filters: int, j: int) -> BlockArgs | None:
        first = j == 0
        return fbnet_block(op, in_filters if first else self.out_channels, self.out_channels,
                           self.stride if first else 1)

    def blocks(self, values: tuple, in_filters: int) -> list[BlockArgs]:
        found = (self.block(op, in_filters, j) for j, op in enumerate(values))
        return [b for b in found if b is not None]

    def out_filters(self, values: tuple) -> int:
        return self.out_channels

    def out_widths(self) -> dict[int, tuple]:
        return {self.out_channels: tuple(c.options[0] for c in self.choices)}

    def option_layers(self, in_filters: int, ctx: LayerContext, j: int) -> list[tuple[Layer, ...]]:
        """Per option of layer j: the (position-free) layers it adds, () for an identity skip."""
        size = ctx.in_size if j == 0 else conv_out_size(ctx.in_size, self.stride)
        channels = in_filters if j == 0 else self.out_channels
        out = []
        for op in OPS:
            block = self.block(op, in_filters, j)
            out.append(() if block is None else tuple(ctx.layers(block, channels, (0,), size)))
        return out

    def layer_sequences(self, in_filters: int, ctx: LayerContext) -> dict[int, int]:
        first = set(self.option_layers(in_filters, ctx, 0))
        rest = [set(self.option_layers(in_filters, ctx, j)) for j in range(1, self.n_layers)]
        tails = {sum(combo, ()) for combo in itertools.product(*rest)}  # identity skips collapse
        return {self.out_channels: len(first) * len(tails)}

    def distinct_layers(self, in_filters: int, ctx: LayerContext) -> set[Layer]:
        return {layer for j in range(self.n_layers) for option in self.option_layers(in_filters, ctx, j)
                for layer in option}

    def cheapest(self, in_filters: int, ctx: LayerContext) -> dict[int, tuple[int, tuple]]:
        options = [self.option_layers(in_filters, ctx, j) for j in range(self.n_layers)]
        picks = tuple(min(range(len(OPS)), key=lambda o, j=j: ctx.macs(options[j][o])) for j in range(self.n_layers))
        macs = sum(ctx.macs(options[j][o]) for j, o in enumerate(picks))
        return {self.out_channels: (macs, tuple(OPS[o] for o in picks))}


class FBNetSpace(Space):
    """The FBNet space; CIFAR defaults (32 x 32 input, 100 classes) wherever a resolution or class count is
    not given."""

    default_resolution = CIFAR_RESOLUTION

    def to_spec(self, sample: Sequence[int], *, resolution: int | None = None,
                num_classes: int | None = None) -> ModelSpec:
        return super().to_spec(sample, resolution=resolution or CIFAR_RESOLUTION,
                               num_classes=num_classes or CIFAR_CLASSES)

    def distinct_layers(self, resolution: int | None = None, num_classes: int | None = None) -> list[Layer]:
        return super().distinct_layers(resolution or CIFAR_RESOLUTION, num_classes or CIFAR_CLASSES)

    def smallest_sample(self, *, resolution: int | None = None) -> Sample:
        return super().smallest_sample(resolution=resolution or CIFAR_RESOLUTION)

    def smallest_spec(self, *, resolution: int | None = None, num_classes: int | None = None) -> ModelSpec:
        return super().smallest_spec(resolution=resolution or CIFAR_RESOLUTION,
                                     num_classes=num_classes or CIFAR_CLASSES)

    def layers_by_choice(self, resolution: int | None = None, num_classes: int | None = None
                         ) -> tuple[tuple[Layer, ...], list[list[tuple[Layer, ...]]]]:
        """(the layers every network has, per choice the layers each option adds): a network is their sum."""
        resolution = resolution or CIFAR_RESOLUTION
        per_choice: list[list[tuple[Layer, ...]]] = []
        width = int(self.params["stem_filters"])
        for ctx, stage in zip(self._contexts(resolution), self.stages):
            per_choice += [stage.option_layers(width, ctx, j) for j in range(stage.n_layers)]  # type: ignore[attr-defined]
            width = stage.out_filters(())
        every = self.to_spec([OPS.index("skip")] * len(self.choices), resolution=resolution,
                             num_classes=num_classes).layers()
        fixed = tuple(position_free(layer) for layer in every if layer.kind in ("stem", "head", "pool", "classifier"))
        return fixed, per_choice


def fbnet_space(name: str = "fbnet", stages=FBNET_STAGES) -> Space:
    return FBNetSpace(name, [FBNetStage(i, c, n, s) for i, (c, n, s) in enumerate(stages)], FBNET_PARAMS,
                      "FBNet at CIFAR input (HW-NAS-Bench): 22 layers in 7 stages, per layer one of 9 ops "
                      "(k3/k5, expansion 1/3/6, grouped 1x1 + channel shuffle, skip); 32x32, 100 classes")
