"""Accuracy evaluators: `Evaluator.evaluate(specs) -> [EvalResult]`, one registry for the CLI.

`standalone` trains each child alone on the proxy data (MnasNet style). A weight-sharing supernet evaluator
plugs in by registering its factory here (`register("supernet", "module:Class")`); factories are called with
keyword arguments: the search's common context (data, epochs, batch_size, proxy_resolution, seed, cache,
space, ...), passed where the factory takes it, and the user's options, which the factory must accept.
"""

from __future__ import annotations

from typing import Any

from mnas.errors import UserError
from mnas.evaluators.base import EvalResult, Evaluator
from mnas.registry import Registry

__all__ = ["EvalResult", "Evaluator", "create", "names", "register"]

# name -> "module:attribute"; imported on use so listing names never imports TF.
EVALUATORS: Registry[Any] = Registry("evaluator", {"standalone": "mnas.evaluators.standalone:StandaloneEvaluator",
                                                   "supernet": "mnas.supernet.evaluator:SupernetEvaluator",
                                                   "autohas": "mnas.evaluators.autohas:AutoHASEvaluator"})


def register(name: str, target: str) -> None:
    EVALUATORS.register(name, target)


def names() -> list[str]:
    return sorted(EVALUATORS.names())


def check_name(name: str) -> None:
    EVALUATORS.key(name)


def create(name: str, **kwargs: Any) -> Evaluator:
    """Evaluator `name`. The search's common context (_RESERVED: data, epochs, cache, space, ...) is passed where
    the factory takes it; any other keyword is an option the factory must accept, else one UserError line."""
    check_name(name)
    factory = _factory(name)
    params = _parameters(factory)
    unknown = sorted(k for k in kwargs if k not in _RESERVED and k not in params)
    if unknown:
        raise UserError(f"evaluator {name!r} has no option {unknown[0]!r}; its options: "
                        f"{', '.join(option_names(name)) or 'none'}")
    return factory(**{k: v for k, v in kwargs.items() if k in params})


def _factory(name: str) -> Any:
    return EVALUATORS.get(name)


def _parameters(factory: Any) -> set[str]:
    import inspect

    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    return {k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


# set by `mnas search` itself, not by --evaluator-opt
_RESERVED = {"self", "data", "epochs", "batch_size", "proxy_resolution", "seed", "cache", "learning_rate", "space",
             "state_dir"}


def option_names(name: str) -> list[str]:
    """The constructor options of evaluator `name` a user may set (`--evaluator-opt KEY=VALUE`)."""
    check_name(name)
    return sorted(k for k in _parameters(_factory(name)) if k not in _RESERVED)
