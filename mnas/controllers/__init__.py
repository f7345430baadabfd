"""Search controllers: `create(name, space, seed, **kwargs)` with name in ppo | reinforce | evolution | random.

Every controller has `ask(n) -> list[sample]`, `tell(samples, rewards)`, `state_dict()` (JSON-able) and
`load_state_dict(state)`. Pure numpy (no TF).
"""

from mnas.controllers.base import Controller
from mnas.controllers.registry import create, names, options

__all__ = ["Controller", "create", "names", "options"]
