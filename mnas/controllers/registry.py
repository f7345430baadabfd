"""Controllers by name: `create(name, space, seed, **kwargs)`."""

from __future__ import annotations

import inspect

from mnas.controllers.base import Controller
from mnas.controllers.evolution import RegularizedEvolution
from mnas.controllers.ppo import PPO
from mnas.controllers.random_search import RandomSearch
from mnas.controllers.reinforce import Reinforce
from mnas.errors import UserError
from mnas.registry import Registry
from mnas.spaces import Space

CONTROLLERS: Registry[type[Controller]] = Registry("controller", {
    "ppo": PPO, "reinforce": Reinforce, "evolution": RegularizedEvolution, "random": RandomSearch})


def names() -> list[str]:
    return CONTROLLERS.names()


def options(name: str) -> dict[str, object]:
    """The keyword options of controller `name` and their defaults."""
    cls = _class(name)
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "space", "seed")}


def _class(name: str) -> type[Controller]:
    return CONTROLLERS.get(name)


def create(name: str, space: Space, seed: int = 0, **kwargs: object) -> Controller:
    cls = _class(name)
    unknown = sorted(set(kwargs) - set(options(name)))
    if unknown:
        raise UserError(f"controller {name!r} has no option {unknown[0]!r}; options: {', '.join(options(name))}")
    try:
        return cls(space, seed, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"controller {name!r}: {err}") from None
