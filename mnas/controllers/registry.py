"""Controllers by name: `create(name, space, seed, **kwargs)`."""

from __future__ import annotations

import inspect

from mnas.controllers.base import Controller
from mnas.controllers.evolution import RegularizedEvolution
from mnas.controllers.ppo import PPO
from mnas.controllers.random_search import RandomSearch
from mnas.controllers.reinforce import Reinforce
from mnas.errors import UnknownNameError, UserError
from mnas.spaces import Space

CONTROLLERS: dict[str, type[Controller]] = {"ppo": PPO, "reinforce": Reinforce, "evolution": RegularizedEvolution,
                                            "random": RandomSearch}


def names() -> list[str]:
    return list(CONTROLLERS)


def options(name: str) -> dict[str, object]:
    """The keyword options of controller `name` and their defaults."""
    cls = _class(name)
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "space", "seed")}


def _class(name: str) -> type[Controller]:
    key = str(name).lower()
    if key not in CONTROLLERS:
        raise UnknownNameError("controller", str(name), names())
    return CONTROLLERS[key]


def create(name: str, space: Space, seed: int = 0, **kwargs: object) -> Controller:
    cls = _class(name)
    unknown = sorted(set(kwargs) - set(options(name)))
    if unknown:
        raise UserError(f"controller {name!r} has no option {unknown[0]!r}; options: {', '.join(options(name))}")
    try:
        return cls(space, seed, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"controller {name!r}: {err}") from None
