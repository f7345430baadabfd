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
