"""A search space as declarative data: stages of tagged choices; a sample is one option index per choice.

    Space = global ModelSpec params (stem, head, activation, se_style...) + a tuple of stages
    Stage = a tuple of `Choice(tag, options)` + how those values (and the width that enters the stage)
            become BlockArgs
    sample = tuple[int, ...] (one index per choice, in `Space.choices` order) --to_spec--> ModelSpec

Everything that must be exact (the number of distinct architectures, every distinct layer for the latency
tables, the cheapest architecture) is computed stage by stage, never by sampling: a stage's layers depend
only on its own choices and on the width of the stage before it, so a dynamic programme over "width leaving
the stage" is exact. Two architectures are the same when their position-free layer sequences are equal
(see `position_free`): e.g. an identity skip on a stride-2 layer is no skip, so `noskip` and `id` collide.
Pure Python: no TF.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Iterable, Iterator, Sequence

import numpy as np

from mnas.blocks import BlockArgs
from mnas.costs import layer_cost
from mnas.errors import UserError
from mnas.spec import Layer, ModelSpec, conv_out_size

Sample = tuple[int, ...]


@dataclass(frozen=True)
class Choice:
    """One decision of the controller: `tag` names it (`b3/kernel`), `options` are the values it picks from."""

    tag: str
    options: tuple

    def __post_init__(self) -> None:
        if len(self.options) < 1:
            raise ValueError(f"choice {self.tag!r} has no options")


def position_free(layer: Layer) -> Layer:
    """The layer with where-it-sits fields cleared: two layers equal here compute the same thing."""
    return replace(layer, block_index=-1, repeat_index=0)


class Stage:
    """One stage of a space: its choices and how their values become blocks.

    Subclasses implement `blocks`, `out_filters`, and the three exact enumerations below. `values` is the
    tuple of chosen option *values* (not indices) in `self.choices` order.
    """

    choices: tuple[Choice, ...]
    stride: int  # the stage's first layer stride (every space here has fixed strides)

    def blocks(self, values: tuple, in_filters: int) -> list[BlockArgs]:
        raise NotImplementedError

    def out_filters(self, values: tuple) -> int:
        raise NotImplementedError

    def out_widths(self) -> dict[int, tuple]:
        """Every width the stage can emit -> one values tuple that emits it."""
        raise NotImplementedError

    def layer_sequences(self, in_filters: int, ctx: "LayerContext") -> dict[int, int]:
        """out width -> number of distinct position-free layer sequences the stage can produce."""
        raise NotImplementedError

    def distinct_layers(self, in_filters: int, ctx: "LayerContext") -> set[Layer]:
        raise NotImplementedError

    def cheapest(self, in_filters: int, ctx: "LayerContext") -> dict[int, tuple[int, tuple]]:
        """out width -> (MACs, values) of the stage's lowest-MAC configuration emitting that width."""
        raise NotImplementedError


@dataclass(frozen=True)
class LayerContext:
    """What turns a block into concrete layers at one stage: the spec's global params, input size, index."""

    template: ModelSpec
    in_size: int
    stage_index: int

    def layers(self, block: BlockArgs, in_channels: int, repeat_indices: Iterable[int],
               in_size: int | None = None) -> list[Layer]:
        # Reuses ModelSpec's own per-repeat rule so spaces and built specs cannot disagree. A stage's input
        # size is fixed (strides are fixed), so a layer is a function of (block, input width, repeat).
        out, channels = [], in_channels
        size = self.in_size if in_size is None else in_size
        for ri in repeat_indices:
            layer = self.template.block_layer(block, self.stage_index, ri, channels, size)
            out.append(position_free(layer))
            channels, size = layer.out_channels, layer.out_size
        return out

    def macs(self, layers: Iterable[Layer]) -> int:
        return sum(layer_cost(layer).macs for layer in layers)


class Space:
    """A named search space: `choices`, `to_spec(sample)`, and exact size / layer / cheapest enumerations."""

    def __init__(self, name: str, stages: Sequence[Stage], params: dict, description: str = "") -> None:
        self.name = name
        self.stages = tuple(stages)
        self.params = dict(params)  # ModelSpec global params (stem_filters, head_filters, activation...)
        self.description = description
        self.choices: tuple[Choice, ...] = tuple(c for stage in self.stages for c in stage.choices)
        bounds, start = [], 0
        for stage in self.stages:
            bounds.append((start, start + len(stage.choices)))
            start += len(stage.choices)
        self._bounds = tuple(bounds)
        self.num_options = tuple(len(c.options) for c in self.choices)

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {len(self.choices)} choices, 10^{self.log10_size:.1f} architectures)"

    # -- samples ------------------------------------------------------------------------------
    def validate(self, sample: object) -> Sample:
        """`sample` as a tuple of ints, or UserError naming what is wrong with it."""
        if isinstance(sample, (str, bytes)) or not isinstance(sample, (Sequence, np.ndarray)):
            raise UserError(f"a {self.name} sample must be a sequence of option indices, got {type(sample).__name__}")
        if len(sample) != len(self.choices):
            raise UserError(f"a {self.name} sample needs {len(self.choices)} option indices, got {len(sample)}")
        out = []
        for choice, index in zip(self.choices, sample):
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                raise UserError(f"{self.name} choice {choice.tag!r}: index {index!r} is not an integer")
            if not 0 <= int(index) < len(choice.options):
                raise UserError(f"{self.name} choice {choice.tag!r}: index {int(index)} out of range "
                                f"0..{len(choice.options) - 1}")
            out.append(int(index))
        return tuple(out)

    def sample_random(self, rng: np.random.Generator) -> Sample:
        return tuple(int(rng.integers(n)) for n in self.num_options)

    def encode_sample(self, sample: Sequence[int]) -> str:
        """Storage form: indices joined by '.', e.g. '3.1.0.2'."""
        return ".".join(str(i) for i in self.validate(sample))

    def decode_sample(self, text: str) -> Sample:
        try:
            indices = tuple(int(t) for t in str(text).strip().split("."))
        except ValueError:
            raise UserError(f"malformed {self.name} sample {text!r}: expected integers joined by '.'") from None
        return self.validate(indices)

    def values(self, sample: Sequence[int]) -> dict[str, object]:
        """tag -> chosen option value: the readable form of a sample."""
        sample = self.validate(sample)
        return {c.tag: c.options[i] for c, i in zip(self.choices, sample)}

    def _stage_values(self, sample: Sample) -> Iterator[tuple[Stage, tuple]]:
        for stage, (lo, hi) in zip(self.stages, self._bounds):
            yield stage, tuple(c.options[i] for c, i in zip(stage.choices, sample[lo:hi]))

    def _sample_of(self, stage_values: Sequence[tuple]) -> Sample:
        out: list[int] = []
        for stage, values in zip(self.stages, stage_values):
            out += [c.options.index(v) for c, v in zip(stage.choices, values)]
        return tuple(out)

    # -- spec ---------------------------------------------------------------------------------
    def to_spec(self, sample: Sequence[int], *, resolution: int = 224, num_classes: int = 1000) -> ModelSpec:
        """The architecture of `sample` (pure: same sample, same spec)."""
        sample = self.validate(sample)
        blocks: list[BlockArgs] = []
        sizes: list[int] = []
        width = int(self.params.get("stem_filters", 32))
        for stage, values in self._stage_values(sample):
            stage_blocks = stage.blocks(values, width)
            blocks += stage_blocks
            sizes += [len(stage_blocks)] if stage_blocks else []
            width = stage.out_filters(values)
        encoded = ".".join(map(str, sample))
        digest = hashlib.sha1(f"{self.name}:{encoded}".encode()).hexdigest()[:10]
        # a space that writes a stage as several strings (one per layer) says so, so depth scales per stage
        stages = tuple(sizes) if any(n > 1 for n in sizes) else None
        return ModelSpec(name=f"{self.name}-{digest}", blocks=tuple(blocks), resolution=resolution,
                         num_classes=num_classes, stages=stages, extra={"space": self.name, "sample": encoded},
                         **self.params)

    # -- exact enumerations -------------------------------------------------------------------
    def _template(self, resolution: int = 224, num_classes: int = 1000) -> ModelSpec:
        placeholder = BlockArgs(1, (3,), 1, 1.0, 8, 8)
        return ModelSpec(name=f"{self.name}-template", blocks=(placeholder,), resolution=resolution,
                         num_classes=num_classes, **self.params)

    def _contexts(self, resolution: int) -> list[LayerContext]:
        template = self._template(resolution)
        size = conv_out_size(resolution, int(self.params.get("stem_stride", 2)))  # after the stem
        out = []
        for i, stage in enumerate(self.stages):
            out.append(LayerContext(template, size, i))
            size = conv_out_size(size, stage.stride)
        return out

    def _reachable_widths(self) -> list[set[int]]:
        """Widths that can enter each stage (index i) and leave the last one (index len(stages))."""
        widths = [{int(self.params.get("stem_filters", 32))}]
        for stage in self.stages:
            widths.append(set(stage.out_widths()))
        return widths

    @cached_property
    def num_architectures(self) -> int:
        """The exact number of distinct architectures (distinct position-free layer sequences)."""
        # When each stage's first layer changes the width or the stride, it cannot pass for an extra
        # layer of the stage before (stage 0 follows the fixed stem), so distinct per-stage sequences
        # concatenate to distinct networks and a DP over widths counts exactly. Refuse to give a wrong
        # count for a space where that fails.
        reachable = self._reachable_widths()
        for i, stage in enumerate(self.stages):
            if i > 0 and stage.stride == 1 and reachable[i] & reachable[i + 1]:
                raise ValueError(f"{self.name}: stage {i} may keep its input width at stride 1; "
                                 "the per-stage count would not be exact")
        counts = {int(self.params.get("stem_filters", 32)): 1}
        for ctx, stage in zip(self._contexts(224), self.stages):
            new: dict[int, int] = {}
            for w_in, n_in in counts.items():
                for w_out, n in stage.layer_sequences(w_in, ctx).items():
                    new[w_out] = new.get(w_out, 0) + n_in * n
            counts = new
        return sum(counts.values())

    @cached_property
    def log10_size(self) -> float:
        return math.log10(self.num_architectures)

    @property
    def log10_product(self) -> float:
        """log10 of the raw number of samples (product of option counts), collisions included."""
        return float(sum(math.log10(n) for n in self.num_options))

    def distinct_layers(self, resolution: int, num_classes: int = 1000) -> list[Layer]:
        """Every distinct concrete layer (position-free) that any architecture of the space can contain."""
        return list(_distinct_layers(self, int(resolution), int(num_classes)))

    def smallest_sample(self, *, resolution: int = 224) -> Sample:
        """The sample with the fewest MACs (exact DP over stages; the head's cost depends on the last width)."""
        return _smallest(self, int(resolution))

    def smallest_spec(self, *, resolution: int = 224, num_classes: int = 1000) -> ModelSpec:
        return self.to_spec(self.smallest_sample(resolution=resolution), resolution=resolution,
                            num_classes=num_classes)

    def _tail_layers(self, last_width: int, resolution: int, num_classes: int) -> tuple[list[Layer], list[Layer]]:
        """(stem, head..classifier) layers of an architecture whose last stage emits `last_width`."""
        stage_values = [next(iter(stage.out_widths().values())) for stage in self.stages]
        stage_values[-1] = self.stages[-1].out_widths()[last_width]
        layers = self.to_spec(self._sample_of(stage_values), resolution=resolution, num_classes=num_classes).layers()
        stem = [position_free(layer) for layer in layers if layer.kind == "stem"]
        tail = [position_free(layer) for layer in layers if layer.kind in ("head", "pool", "final", "classifier")]
        return stem, tail


@lru_cache(maxsize=32)
def _distinct_layers(space: Space, resolution: int, num_classes: int) -> tuple[Layer, ...]:
    found: dict[Layer, None] = {}  # insertion-ordered set
    reachable = space._reachable_widths()
    for ctx, stage, widths in zip(space._contexts(resolution), space.stages, reachable):
        for w_in in sorted(widths):
            for layer in sorted(stage.distinct_layers(w_in, ctx), key=repr):
                found.setdefault(layer, None)
    stems: list[Layer] = []
    tails: list[Layer] = []
    for w_last in sorted(reachable[-1]):
        stem, tail = space._tail_layers(w_last, resolution, num_classes)
        stems += stem
        tails += tail
    ordered = dict.fromkeys(stems)
    ordered.update(found)
    ordered.update(dict.fromkeys(tails))
    return tuple(ordered)


@lru_cache(maxsize=32)
def _smallest(space: Space, resolution: int) -> Sample:
    stem_width = int(space.params.get("stem_filters", 32))
    best: dict[int, tuple[int, list[tuple]]] = {stem_width: (0, [])}  # width -> (MACs so far, stage values)
    for ctx, stage in zip(space._contexts(resolution), space.stages):
        new: dict[int, tuple[int, list[tuple]]] = {}
        for w_in, (macs_in, path) in best.items():
            for w_out, (macs, values) in stage.cheapest(w_in, ctx).items():
                total = macs_in + macs
                if w_out not in new or total < new[w_out][0]:
                    new[w_out] = (total, path + [values])
        best = new
    ctx = space._contexts(resolution)[0]

    def with_tail(item: tuple[int, tuple[int, list[tuple]]]) -> int:
        w_last, (macs, _) = item
        return macs + ctx.macs(space._tail_layers(w_last, resolution, 1000)[1])

    _, (_, path) = min(best.items(), key=with_tail)
    return space._sample_of(path)
