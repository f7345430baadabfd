"""A whole architecture as pure data: global params + block args -> concrete layers.

The flow is one way (as in timm's EfficientNet builder):

    block strings --decode--> BlockArgs --ModelSpec.layers()--> Layer (one per repeat, channels final)

Every consumer (the Keras builder, analytic costs, latency op keys, the fast TFLite writer) reads the
same `Layer` list, so they cannot disagree about channel counts, strides or feature-map sizes.
Scaling (width, depth) happens here, once, with the authors' `round_filters` / `round_repeats`.
Pure Python: no TF import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol, Sequence, runtime_checkable

from mnas.blocks import ACTIVATIONS, BlockArgs, decode_all, encode_all
from mnas.errors import UserError

SE_STYLES = ("efficientnet", "mobilenetv3")
MIN_RESOLUTION = 32
# How depth * repeats becomes a layer count: "ceil" is the authors' rule (EfficientNet B1..B7 use it);
# "nearest" (never below 1) follows the cost law MACs ~ (alpha beta^2 gamma^2)^phi more closely at small phi.
REPEATS_ROUNDINGS = ("ceil", "nearest")
DEFAULT_REPEATS_ROUNDING = "ceil"


def round_filters(filters: float, width: float, divisor: int = 8, min_depth: int | None = None) -> int:
    """EfficientNet's rule: scale by `width`, round to a multiple of `divisor`, never drop >10%."""
    if width == 1.0 and float(filters).is_integer():
        return int(filters)
    min_depth = min_depth or divisor
    scaled = filters * width
    new = max(min_depth, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float, rounding: str = DEFAULT_REPEATS_ROUNDING) -> int:
    """EfficientNet's rule: ceil(depth * repeats); or "nearest": max(1, floor(depth * repeats + 0.5)).

    ceil adds a layer to a stage as soon as depth > 1 (B0's 1-4 repeats per stage make that +12-20% layers at
    small phi); nearest rounds half up, so the layer count tracks depth * repeats within half a layer.
    """
    if rounding == "ceil":
        return int(math.ceil(depth * repeats))
    if rounding == "nearest":
        return max(1, int(math.floor(depth * repeats + 0.5)))
    raise UserError(f"repeats rounding {rounding!r} not in {REPEATS_ROUNDINGS}")


def scale_stage_repeats(repeats: Sequence[int], depth: float, rounding: str = DEFAULT_REPEATS_ROUNDING) -> list[int]:
    """timm's `_scale_stage_depth`: round the stage's total repeats x depth once, then share it out over the
    stage's block strings in proportion, from the last one back (the first is the least likely to grow). A stage
    written one string per layer (MobileNetV3) then grows by ~depth, not by a layer per string."""
    total = sum(repeats)
    scaled = round_repeats(total, depth, rounding)
    out = []
    for r in reversed(repeats):
        share = max(1, round(r / total * scaled))
        out.append(share)
        total, scaled = total - r, scaled - share
    return out[::-1]


def stages_by_width(blocks: Sequence[BlockArgs]) -> tuple[int, ...]:
    """Stage sizes of a block list written one string per layer: a stage is a run of strings with the same
    output width (timm's MobileNetV3 stages)."""
    sizes: list[int] = []
    for i, block in enumerate(blocks):
        if i and block.out_filters == blocks[i - 1].out_filters:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return tuple(sizes)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet's rule (used for the MobileNetV3 SE squeeze width)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def conv_out_size(size: int, stride: int) -> int:
    """'same' padding: ceil(size / stride) == (size - 1) // stride + 1 (OFA's formula)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class Layer:
    """One concrete layer of a built network, with every channel count final.

    kind: stem (kxk conv s2) | ir (MBConv) | ds (depthwise-separable) | cn (regular conv) |
          head (1x1 conv + BN + act) | final (1x1 conv with bias after pooling, MobileNetV3) |
          pool (global average pool) | classifier (dense with bias).
    """

    kind: str
    in_channels: int
    out_channels: int
    in_size: int
    stride: int = 1
    kernel_sizes: tuple[int, ...] = (1,)
    expanded: int = 0  # channels after the expand conv (== in_channels when there is none)
    se_channels: int = 0  # SE squeeze width, 0 = no SE
    se_style: str = "efficientnet"
    skip: str = "none"  # effective: none | id | pool
    activation: str = "relu"
    expand_groups: int = 1
    project_groups: int = 1
    keep_expand: bool = False  # ir: an expand 1x1 conv even at expansion 1 (FBNet)
    shuffle: bool = False  # channel shuffle over the expand groups after the expand conv (FBNet)
    block_index: int = -1  # stage index in the spec; -1 for stem/head
    repeat_index: int = 0

    @property
    def out_size(self) -> int:
        return conv_out_size(self.in_size, self.stride)

    @property
    def has_expand(self) -> bool:
        return self.kind == "ir" and (self.expanded != self.in_channels or self.keep_expand)

    @property
    def kernel_size(self) -> int:
        return max(self.kernel_sizes)


@dataclass(frozen=True)
class ModelSpec:
    """Global params + block args: everything needed to build, cost, key or export a network."""

    name: str
    blocks: tuple[BlockArgs, ...]
    stem_filters: int = 32
    stem_stride: int = 2  # 1 for CIFAR-sized inputs (FBNet in HW-NAS-Bench)
    head_filters: int = 1280
    final_filters: int = 0  # MobileNetV3's 1x1 conv after pooling (bias, no BN); 0 = none
    num_classes: int = 1000
    resolution: int = 224
    width: float = 1.0
    depth: float = 1.0
    dropout: float = 0.2
    activation: str = "relu"  # default for blocks that name none
    stem_activation: str | None = None  # None = `activation`
    head_activation: str | None = None
    se_style: str = "efficientnet"
    scale_stem: bool = True
    scale_head: bool = True
    fix_first_last_repeats: bool = False  # EfficientNet-Lite keeps these repeats unscaled
    repeats_rounding: str = DEFAULT_REPEATS_ROUNDING  # ceil (the authors') | nearest: see round_repeats
    stages: tuple[int, ...] | None = None  # block strings per stage (depth scales per stage); None: one per string
    divisor: int = 8
    in_channels: int = 3
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.resolution < MIN_RESOLUTION:
            raise UserError(f"resolution must be >= {MIN_RESOLUTION}, got {self.resolution}")
        if self.width <= 0 or self.depth <= 0:
            raise UserError(f"width and depth multipliers must be > 0, got {self.width}, {self.depth}")
        if not self.blocks:
            raise UserError("an architecture needs at least one block")
        for act in (self.activation, self.stem_activation, self.head_activation):
            if act is not None and act not in ACTIVATIONS:
                raise UserError(f"activation {act!r} not in {ACTIVATIONS}")
        if self.se_style not in SE_STYLES:
            raise UserError(f"se_style {self.se_style!r} not in {SE_STYLES}")
        if self.num_classes < 1:
            raise UserError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.stem_stride not in (1, 2):
            raise UserError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.repeats_rounding not in REPEATS_ROUNDINGS:
            raise UserError(f"repeats_rounding {self.repeats_rounding!r} not in {REPEATS_ROUNDINGS}")
        if self.stages is not None:
            stages = tuple(self.stages)
            if not all(isinstance(n, int) and n >= 1 for n in stages) or sum(stages) != len(self.blocks):
                raise UserError(f"stages must be positive counts of block strings adding up to {len(self.blocks)}, "
                                f"got {list(stages)}")
            object.__setattr__(self, "stages", stages)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_strings(cls, name: str, block_strings: list[str], **params: object) -> "ModelSpec":
        return cls(name=name, blocks=decode_all(block_strings), **params)  # type: ignore[arg-type]

    def block_strings(self) -> list[str]:
        return encode_all(self.blocks)

    def replace(self, **changes: object) -> "ModelSpec":
        return replace(self, **changes)

    def global_params(self) -> dict:
        """Every field but name and blocks, as plain JSON-able values.

        `repeats_rounding` is written only when it is not the authors' ceil, `stem_stride` only when it is not 2,
        and `stages` only when given: arch
        files, run-store cache keys and export keys hash these params, and every one made before the fields
        existed must stay valid.
        """
        out = {}
        for name in self.__dataclass_fields__:
            if name not in ("name", "blocks", "extra"):
                out[name] = getattr(self, name)
        if out["repeats_rounding"] == DEFAULT_REPEATS_ROUNDING:
            del out["repeats_rounding"]
        if out["stem_stride"] == 2:
            del out["stem_stride"]
        if out["stages"] is None:
            del out["stages"]
        else:
            out["stages"] = list(out["stages"])
        return out

    # -- scaling ----------------------------------------------------------------------------
    def filters(self, f: float) -> int:
        return round_filters(f, self.width, self.divisor)

    def repeats(self, block_index: int) -> int:
        if self.stages is not None:
            return self._stage_repeats[block_index]
        r = self.blocks[block_index].repeats
        if self.fix_first_last_repeats and block_index in (0, len(self.blocks) - 1):
            return r
        return round_repeats(r, self.depth, self.repeats_rounding)

    @cached_property
    def _stage_repeats(self) -> list[int]:
        """Layers per block string with depth scaled per stage; computed once per spec (layers() asks per block)."""
        out: list[int] = []
        start = 0
        for si, size in enumerate(self.stages or ()):
            repeats = [b.repeats for b in self.blocks[start:start + size]]
            fixed = self.fix_first_last_repeats and si in (0, len(self.stages) - 1)
            out += repeats if fixed or self.depth == 1.0 else scale_stage_repeats(repeats, self.depth,
                                                                                  self.repeats_rounding)
            start += size
        return out

    @property
    def stem_channels(self) -> int:
        return self.filters(self.stem_filters) if self.scale_stem else self.stem_filters

    @property
    def head_channels(self) -> int:
        if self.head_filters <= 0:
            return 0
        return self.filters(self.head_filters) if self.scale_head else self.head_filters

    # -- the concrete layer list ----------------------------------------------------------------
    def layers(self) -> list[Layer]:
        """Stem, one Layer per block repeat, head, pool, optional final conv, classifier."""
        size = self.resolution
        stem_act = self.stem_activation or self.activation
        out: list[Layer] = [Layer("stem", self.in_channels, self.stem_channels, size, stride=self.stem_stride,
                                  kernel_sizes=(3,), activation=stem_act)]
        size, channels = out[0].out_size, self.stem_channels
        for bi, block in enumerate(self.blocks):
            for ri in range(self.repeats(bi)):
                layer = self.block_layer(block, bi, ri, channels, size)
                out.append(layer)
                size, channels = layer.out_size, layer.out_channels
        head_act = self.head_activation or self.activation
        if self.head_channels:
            out.append(Layer("head", channels, self.head_channels, size, activation=head_act))
            channels = self.head_channels
        out.append(Layer("pool", channels, channels, size))
        if self.final_filters:
            out.append(Layer("final", channels, self.final_filters, 1, activation=head_act))
            channels = self.final_filters
        out.append(Layer("classifier", channels, self.num_classes, 1))
        return out

    def block_layer(self, block: BlockArgs, bi: int, ri: int, channels: int, size: int) -> Layer:
        """Repeat `ri` of block `bi` entered with `channels` at `size`: the one per-layer rule (spaces use it too)."""
        first = ri == 0
        in_filters = self.filters(block.in_filters) if first else self.filters(block.out_filters)
        out_ch = self.filters(block.out_filters)
        stride = block.stride if first else 1
        expanded = channels
        if block.block_type == "ir":
            if block.expand_size is not None:
                expanded = self.filters(block.expand_size)
            elif block.expand_ratio != 1:
                expanded = int(in_filters * block.expand_ratio)
        se = 0
        if block.se_ratio:
            if self.se_style == "mobilenetv3":
                se = make_divisible(expanded * block.se_ratio, self.divisor)
            else:
                se = max(1, int(in_filters * block.se_ratio))
        skip = "none"
        if block.skip == "id" and stride == 1 and channels == out_ch:
            skip = "id"
        elif block.skip == "pool":
            skip = "id" if (stride == 1 and channels == out_ch) else "pool"
        return Layer(block.block_type, channels, out_ch, size, stride=stride,
                     kernel_sizes=block.kernel_sizes, expanded=expanded, se_channels=se,
                     se_style=self.se_style, skip=skip, activation=block.activation or self.activation,
                     expand_groups=block.expand_groups, project_groups=block.project_groups,
                     keep_expand=block.keep_expand, shuffle=block.shuffle, block_index=bi, repeat_index=ri)


def split_channels(total: int, groups: int) -> list[int]:
    """MixNet's rule for splitting channels over kernel or conv groups: the first takes the remainder."""
    split = [total // groups] * groups
    split[0] += total - sum(split)
    return split


@runtime_checkable
class SpaceLike(Protocol):
    """What the edges (latency tables, predictors) need of a search space, without importing the search side
    (`mnas.spaces.Space` satisfies it): option counts, sample -> spec, random samples, every distinct layer."""

    name: str

    @property
    def num_options(self) -> tuple[int, ...]: ...

    def to_spec(self, sample: Sequence[int], *, resolution: int = 224, num_classes: int = 1000) -> ModelSpec: ...

    def sample_random(self, rng: Any) -> tuple[int, ...]: ...

    def distinct_layers(self, resolution: int, num_classes: int = 1000) -> list[Layer]: ...
