"""Where work runs: `local` (this process) or `ray` (a Ray cluster). See `mnas.executors.base` and docs/ray.md.

Nothing here imports Ray at import time; only `get_executor("ray")` does.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from mnas.executors.base import EXECUTORS, DeviceLost, Executor, device_resource, get_executor

__all__ = ["EXECUTORS", "DeviceLost", "Executor", "ExecutorChoice", "add_executor_arguments", "device_resource",
           "executor_choice", "executor_from_args", "get_executor"]


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """`--executor local|ray [--ray-address ADDR]` for any command that fans out work."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local (default: in this process) or ray (a Ray cluster; a local one without "
                             "--ray-address)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="existing Ray cluster: HOST:PORT of its head, ray://HOST:PORT or auto")


@dataclass(frozen=True)
class ExecutorChoice:
    """Where a job's work runs: `local`, or `ray` (the cluster at `ray_address`; None starts a local one)."""

    name: str = "local"
    ray_address: str | None = None

    def open(self, device_ids: tuple[str, ...] | list[str] = ()) -> Executor:
        """`device_ids`: phones attached to this machine (declared as resources when a local Ray cluster is
        started; an existing cluster's nodes declare their own)."""
        return get_executor(self.name, self.ray_address,
                            **({"device_ids": list(device_ids)} if self.name == "ray" else {}))


def executor_choice(args: argparse.Namespace) -> ExecutorChoice:
    """The choice `add_executor_arguments`' flags make (local when a parser has none)."""
    return ExecutorChoice(getattr(args, "executor", "local") or "local", getattr(args, "ray_address", None))


def executor_from_args(args: argparse.Namespace, device_ids: tuple[str, ...] | list[str] = ()) -> Executor:
    """The executor the flags ask for (see `ExecutorChoice.open`)."""
    return executor_choice(args).open(device_ids)
