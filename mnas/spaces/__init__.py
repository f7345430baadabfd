"""Search spaces by name: `get(name) -> Space`, `names()`.

    mnasnet      MnasNet's factorized hierarchical space (7 blocks over MobileNetV2)
    mixnet       mnasnet + MixConv kernel groups
    mobilenetv3  per-layer choices over the MobileNetV3-Large skeleton, skippable layers
    ofa-mbv3     OFA's MobileNetV3 space (w1.2), the one the published Note10 latency tables cover
    fbnet        FBNet at CIFAR input (HW-NAS-Bench), the network of the real-phone data in data/real_devices

See `mnas.spaces.base` for the data model and docs/search_spaces.md for sizes. Pure Python: no TF.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from mnas.registry import Registry
from mnas.spaces.base import Choice, Sample, Space, Stage, position_free
from mnas.spaces.fbnet import fbnet_space
from mnas.spaces.layerwise import mobilenetv3_space, ofa_mbv3_space
from mnas.spaces.mnasnet import mixnet_space, mnasnet_space

SPACES: Registry[Callable[[], Space]] = Registry("search space", {
    "mnasnet": mnasnet_space,
    "mixnet": mixnet_space,
    "mobilenetv3": mobilenetv3_space,
    "ofa-mbv3": ofa_mbv3_space,
    "fbnet": fbnet_space,
})


def names() -> list[str]:
    return SPACES.names()


@lru_cache(maxsize=None)
def _build(key: str) -> Space:
    return SPACES.get(key)()


def get(name: str) -> Space:
    """The space called `name` (one shared instance per name: its exact enumerations are cached)."""
    return _build(SPACES.key(name))


__all__ = ["Choice", "Sample", "Space", "Stage", "get", "names", "position_free"]
