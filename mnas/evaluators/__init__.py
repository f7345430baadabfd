"""Accuracy evaluators: `Evaluator.evaluate(specs) -> [EvalResult]`, one registry for the CLI.

`standalone` trains each child alone on the proxy data (MnasNet style). A weight-sharing supernet evaluator
plugs in by registering its factory here (`register("supernet", "module:Class")`); factories are called with
keyword arguments (data, epochs, batch_size, proxy_resolution, seed, cache, space, ...) and take what they use.
"""

from __future__ import annotations

import importlib
from typing import Any

from mnas.errors import UnknownNameError
from mnas.evaluators.base import EvalResult, Evaluator

__all__ = ["EvalResult", "Evaluator", "create", "names", "register"]

# name -> "module:attribute"; imported on use so listing names never imports TF.
_FACTORIES: dict[str, str] = {"standalone": "mnas.evaluators.standalone:StandaloneEvaluator",
                              "supernet": "mnas.supernet.evaluator:SupernetEvaluator"}


def register(name: str, target: str) -> None:
    _FACTORIES[name] = target


def names() -> list[str]:
    return sorted(_FACTORIES)


def check_name(name: str) -> None:
    if name not in _FACTORIES:
        raise UnknownNameError("evaluator", name, names())


def create(name: str, **kwargs: Any) -> Evaluator:
    check_name(name)
    module, attr = _FACTORIES[name].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


# set by `mnas search` itself, not by --evaluator-opt
_RESERVED = {"self", "data", "epochs", "batch_size", "proxy_resolution", "seed", "cache", "learning_rate", "space",
             "state_dir"}


def option_names(name: str) -> list[str]:
    """The constructor options of evaluator `name` a user may set (`--evaluator-opt KEY=VALUE`)."""
    import inspect

    check_name(name)
    module, attr = _FACTORIES[name].split(":")
    params = inspect.signature(getattr(importlib.import_module(module), attr).__init__).parameters
    return sorted(k for k, p in params.items()
                  if k not in _RESERVED and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
