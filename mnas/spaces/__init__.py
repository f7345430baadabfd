"""Search spaces by name: `get(name) -> Space`, `names()`.

    mnasnet      MnasNet's factorized hierarchical space (7 blocks over MobileNetV2)
    mixnet       mnasnet + MixConv kernel groups
    mobilenetv3  per-layer choices over the MobileNetV3-Large skeleton, skippable layers
    ofa-mbv3     OFA's MobileNetV3 space (w1.2), the one the published Note10 latency tables cover

See `mnas.spaces.base` for the data model and docs/search_spaces.md for sizes. Pure Python: no TF.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from mnas.errors import UnknownNameError
from mnas.spaces.base import Choice, Sample, Space, Stage, position_free
from mnas.spaces.layerwise import mobilenetv3_space, ofa_mbv3_space
from mnas.spaces.mnasnet import mixnet_space, mnasnet_space

_BUILDERS: dict[str, Callable[[], Space]] = {
    "mnasnet": mnasnet_space,
    "mixnet": mixnet_space,
    "mobilenetv3": mobilenetv3_space,
    "ofa-mbv3": ofa_mbv3_space,
}


def names() -> list[str]:
    return list(_BUILDERS)


@lru_cache(maxsize=None)
def _build(name: str) -> Space:
    return _BUILDERS[name]()


def get(name: str) -> Space:
    """The space called `name` (one shared instance per name: its exact enumerations are cached)."""
    key = str(name).lower()
    if key not in _BUILDERS:
        raise UnknownNameError("search space", str(name), names())
    return _build(key)


__all__ = ["Choice", "Sample", "Space", "Stage", "get", "names", "position_free"]
