"""Training hyperparameters as search choices: one sample = an architecture and how to train it (AutoHAS).

    grid = load_grid("DEFAULT")                    # or a JSON/YAML file: {"learning_rate": [1e-3, 4e-3], ...}
    space = HparamSpace(spaces.get("mnasnet"), grid)
    sample = space.sample_random(rng)              # architecture indices + one index per hyperparameter
    arch, hp = space.split(sample)                 # base-space sample, {"learning_rate": 0.004, ...}
    spec = space.to_spec(sample)                   # the architecture; spec.extra["hparams"] = hp

Every controller works on an `HparamSpace` unchanged: it only sees `choices` / `num_options` (the base space's
choices followed by one categorical choice per hyperparameter, continuous ones discretised as in AutoHAS).
The latency side never sees the hyperparameters (they do not change the network): `to_spec` returns the base
space's spec, with the hyperparameters riding in `spec.extra` (not part of its key), where the trainers read
them (`spec_hparams`).

Hyperparameters (`HPARAMS`), with the stand-alone proxy recipe's values as defaults:
    learning_rate     Adam's step size (> 0)
    weight_decay      L2 penalty wd/2 * sum ||w||^2 over kernels (rank >= 2 weights: not biases, not BN) (>= 0)
    label_smoothing   cross-entropy against (1 - s) one-hot + s / classes (0 <= s < 1)
    dropout           dropout rate before the classifier (0 <= p < 1; the stand-alone default is the spec's own)
    augment           random translation of each training image by up to N pixels, zero-filled (int >= 0)
Pure numpy: no TF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mnas.errors import UserError
from mnas.spaces.base import Choice, Sample, Space
from mnas.spec import ModelSpec

TAG_PREFIX = "hp/"


@dataclass(frozen=True)
class Hparam:
    """One training hyperparameter: its kind (float or int), valid range and the proxy recipe's default."""

    name: str
    kind: type
    default: float | int | None
    low: float
    high: float | None  # exclusive upper bound; None: unbounded
    low_open: bool = False  # True: low itself is not allowed (a learning rate of 0)

    def check(self, value: object, where: str) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.kind is int and not isinstance(value, int)):
            raise UserError(f"{where}: {self.name} values must be {self.kind.__name__}s, got {value!r}")
        if not math.isfinite(value) or value < self.low or (self.low_open and value == self.low) or \
                (self.high is not None and value >= self.high):
            bound = f"{'>' if self.low_open else '>='} {self.low:g}" + \
                    (f" and < {self.high:g}" if self.high is not None else "")
            raise UserError(f"{where}: {self.name} must be {bound}, got {value!r}")
        return self.kind(value)


HPARAMS: dict[str, Hparam] = {h.name: h for h in (
    Hparam("learning_rate", float, 2e-3, 0.0, None, low_open=True),
    Hparam("weight_decay", float, 0.0, 0.0, None),
    Hparam("label_smoothing", float, 0.0, 0.0, 1.0),
    Hparam("dropout", float, None, 0.0, 1.0),  # None: the spec's own rate (0.2 for every space and zoo model)
    Hparam("augment", int, 0, 0, None),
)}
# Around the stand-alone recipe (Adam 2e-3, no regularisation, dropout 0.2): 5 x 4 x 3 x 3 x 4 = 720 settings.
DEFAULT_GRID: dict[str, tuple] = {
    "learning_rate": (5e-4, 1e-3, 2e-3, 4e-3, 8e-3),
    "weight_decay": (0.0, 1e-5, 1e-4, 1e-3),
    "label_smoothing": (0.0, 0.1, 0.2),
    "dropout": (0.0, 0.2, 0.4),
    "augment": (0, 1, 2, 4),
}
SPEC_DROPOUT = 0.2  # ModelSpec's default dropout: what "the spec's own rate" is for every space and zoo model


def defaults(learning_rate: float | None = None) -> dict:
    """The proxy recipe's hyperparameters (dropout: the spec default), `learning_rate` overriding its 2e-3."""
    out = {name: h.default for name, h in HPARAMS.items()}
    out["dropout"] = SPEC_DROPOUT
    if learning_rate is not None:
        out["learning_rate"] = float(learning_rate)
    return out


def check_hparams(values: dict, where: str = "hyperparameters") -> dict:
    """`values` validated (known names, right types and ranges); UserError names the first problem."""
    if not isinstance(values, dict):
        raise UserError(f"{where}: expected a mapping of hyperparameter names, got {type(values).__name__}")
    out = {}
    for name, value in values.items():
        if name not in HPARAMS:
            raise UserError(f"{where}: unknown hyperparameter {name!r}; known: {', '.join(HPARAMS)}")
        out[name] = HPARAMS[name].check(value, where)
    return out


# -- the grid -----------------------------------------------------------------------------------------
def check_grid(data: object, source: str) -> dict[str, tuple]:
    """A parsed grid document validated: name -> non-empty list of distinct valid values."""
    if not isinstance(data, dict) or not data:
        raise UserError(f"{source}: expected a mapping of hyperparameter name -> list of values, e.g. "
                        '{"learning_rate": [0.001, 0.004]}')
    grid = {}
    for name, values in data.items():
        if name not in HPARAMS:
            raise UserError(f"{source}: unknown hyperparameter {name!r}; known: {', '.join(HPARAMS)}")
        if not isinstance(values, list):
            raise UserError(f"{source}: {name} must be a list of values, got {values!r}")
        if not values:
            raise UserError(f"{source}: {name} has an empty list of values (give at least one)")
        checked = tuple(HPARAMS[name].check(v, source) for v in values)
        if len(set(checked)) != len(checked):
            raise UserError(f"{source}: {name} lists a value twice: {list(values)}")
        grid[name] = checked
    return grid


def load_grid(text: str | Path | None) -> dict[str, tuple]:
    """`DEFAULT` (or None) -> DEFAULT_GRID; else a JSON/YAML file of name -> list of values, validated."""
    if text is None or str(text).upper() == "DEFAULT":
        return dict(DEFAULT_GRID)
    path = Path(text)
    if not path.is_file():
        raise UserError(f"--hparams: {str(path)!r} is neither DEFAULT nor a file")
    from mnas.archfile import _parse  # JSON for .json, else YAML; one UserError line for a malformed file

    return check_grid(_parse(path), str(path))


# -- the joint space ----------------------------------------------------------------------------------
class HparamSpace:
    """A base `Space` whose samples also pick one value per hyperparameter of `grid` (appended choices).

    Everything a search uses works as on a `Space` (choices, validate, sample_random, encode/decode, values,
    to_spec, smallest_sample); the rest (exact enumerations, stages, params) is the base space's."""

    def __init__(self, base: Space, grid: dict[str, Sequence]) -> None:
        self.base = base
        self.grid = check_grid({k: list(v) for k, v in grid.items()}, "hyperparameter grid")
        self.name = f"{base.name}+hparams"
        self.hparam_choices = tuple(Choice(TAG_PREFIX + k, v) for k, v in self.grid.items())
        self.choices: tuple[Choice, ...] = base.choices + self.hparam_choices
        self.num_options = tuple(len(c.options) for c in self.choices)
        self._arch_len = len(base.choices)
        self.description = f"{base.name} x training hyperparameters ({', '.join(self.grid)})"

    def __getattr__(self, attr: str):
        if attr == "base":  # not set yet (e.g. unpickling): never recurse
            raise AttributeError(attr)
        return getattr(self.base, attr)

    def __repr__(self) -> str:
        return f"HparamSpace({self.base.name!r}, {list(self.grid)})"

    # -- samples: a Space's own helpers, which need only name, choices and num_options ------------------------
    validate = Space.validate
    sample_random = Space.sample_random
    encode_sample = Space.encode_sample
    decode_sample = Space.decode_sample
    values = Space.values

    def split(self, sample: Sequence[int]) -> tuple[Sample, dict]:
        """(base-space sample, {hyperparameter: value}) of a joint sample."""
        sample = self.validate(sample)
        hp = {c.tag[len(TAG_PREFIX):]: c.options[i] for c, i in zip(self.hparam_choices, sample[self._arch_len:])}
        return sample[:self._arch_len], hp

    def join(self, arch: Sequence[int], hparams: dict) -> Sample:
        """The joint sample of a base sample and one grid value per hyperparameter (UserError if off the grid)."""
        tail = []
        for name, options in self.grid.items():
            if hparams.get(name) not in options:
                raise UserError(f"{name}={hparams.get(name)!r} is not on the grid {list(options)}")
            tail.append(options.index(hparams[name]))
        return self.validate(tuple(arch) + tuple(tail))

    def default_indices(self) -> tuple[int, ...]:
        """Per hyperparameter, the index of the recipe's default if the grid has it, else the first value."""
        base = defaults()
        return tuple(opts.index(base[k]) if base[k] in opts else 0 for k, opts in self.grid.items())

    def smallest_sample(self, *, resolution: int = 224) -> Sample:
        return self.base.smallest_sample(resolution=resolution) + self.default_indices()

    # -- spec -----------------------------------------------------------------------------------------
    def to_spec(self, sample: Sequence[int], *, resolution: int = 224, num_classes: int = 1000) -> ModelSpec:
        """The base space's spec (same name, same key: latency is the architecture's), hyperparameters in
        `extra["hparams"]`."""
        arch, hp = self.split(sample)
        spec = self.base.to_spec(arch, resolution=resolution, num_classes=num_classes)
        return spec.replace(extra={**spec.extra, "hparams": hp})


def spec_hparams(spec: ModelSpec) -> dict:
    """The hyperparameters a spec carries (`HparamSpace.to_spec`), validated; {} when it carries none."""
    extra = getattr(spec, "extra", None) or {}
    return check_hparams(extra.get("hparams") or {}, f"spec {spec.name!r}")


def search_space(space: Space, hparams: str | None, evaluator: str) -> Space | HparamSpace:
    """What `mnas search` searches: `space` alone, or joined with the `--hparams` grid (`autohas` always has
    one; `standalone` trains each child with its sampled hyperparameters; `supernet` cannot use them)."""
    if evaluator.lower() == "autohas" or (hparams is not None and evaluator.lower() == "standalone"):
        return HparamSpace(space, load_grid(hparams))
    if hparams is not None:
        raise UserError(f"--hparams needs --evaluator autohas (or standalone); evaluator {evaluator!r} trains "
                        "every child with one recipe")
    return space


# -- augmentation -------------------------------------------------------------------------------------
def shift_images(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each NHWC image translated by (dy, dx) uniform in [-max_shift, max_shift], the uncovered border zero
    (the proxy data is standardised, so zero is the mean pixel). max_shift 0: `x` itself, no draws."""
    if max_shift <= 0:
        return x
    n, h, w = x.shape[:3]
    s = int(max_shift)
    padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2))
    return np.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])

