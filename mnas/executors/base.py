"""Where work runs: in this process (`local`) or on a Ray cluster (`ray`), behind one small protocol.

    executor = get_executor("ray", address="10.0.0.5:6379")     # or get_executor("local")
    for item, result in executor.map_unordered(fn, items, num_cpus=1): ...   # parallel children
    workers = executor.start_device_workers(["10.0.0.7:5555"], {})         # one per phone (the farm)
    pending = executor.call(workers[id], "profile", job)                     # -> a handle to wait on
    done = executor.wait_any([pending, ...]); value = executor.result(done[0])

Two kinds of work: stateless tasks (`map_unordered`: Ray tasks with CPU/GPU requests) and one long-lived worker
per phone (`start_device_workers`: a Ray actor pinned by the custom resource `device:<id>` to the node the
phone is plugged into; in `local`, a thread). The phone farm (`mnas.executors.farm`) is written once against
this protocol, so local and Ray runs share every line of scheduling logic.

Ray is imported only by `RayExecutor` (the `ray` choice): `local` runs never import it.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import socket
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from mnas.errors import UserError

EXECUTORS = ("local", "ray")
DEVICE_RESOURCE_PREFIX = "device:"
CONNECT_TIMEOUT_S = 3.0
_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


class DeviceLost(Exception):
    """A device worker is gone (its phone disconnected, or its actor process died)."""


def device_resource(device_id: str) -> str:
    """The Ray custom resource a node declares for a phone plugged into it (`ray start --resources`)."""
    return f"{DEVICE_RESOURCE_PREFIX}{device_id}"


class Executor(Protocol):
    name: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any], *, num_cpus: float = 1.0,
                      num_gpus: float = 0.0) -> Iterator[tuple[Any, Any]]: ...

    def start_device_workers(self, device_ids: Sequence[str], device_options: dict) -> dict[str, Any]: ...

    def call(self, worker: Any, method: str, *args: Any) -> Any: ...

    def wait_any(self, pending: Sequence[Any]) -> list[Any]: ...

    def result(self, pending: Any) -> Any: ...

    def stop_device_workers(self, workers: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def get_executor(name: str = "local", address: str | None = None, **ray_options: Any) -> Executor:
    """`local` or `ray` (`address`: an existing cluster `HOST:PORT`, `ray://HOST:PORT` or `auto`; None starts a
    local one). `ray_options` (num_cpus, device_ids: phones attached to this machine) apply to a local cluster."""
    if name == "local":
        if address:
            raise UserError("--ray-address needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, **ray_options)
    raise UserError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")


# -- local -------------------------------------------------------------------------------------------
class LocalExecutor:
    """Everything in this process: tasks run one by one, each device worker is a thread."""

    name = "local"

    def __init__(self) -> None:
        self._pools: list[cf.ThreadPoolExecutor] = []

    def map_unordered(self, fn, items, *, num_cpus=1.0, num_gpus=0.0):
        for item in items:
            yield item, fn(item)

    def start_device_workers(self, device_ids, device_options):
        from mnas.executors.farm import DeviceWorker

        workers = {}
        for device_id in device_ids:
            pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"device-{device_id}")
            self._pools.append(pool)
            workers[device_id] = (pool, DeviceWorker(device_id, device_options))
        return workers

    def call(self, worker, method, *args):
        pool, target = worker
        return pool.submit(getattr(target, method), *args)

    def wait_any(self, pending):
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, pending):
        return pending.result()

    def stop_device_workers(self, workers):
        for pool, target in workers.values():
            pool.submit(target.close)
            pool.shutdown(wait=True)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False)


# -- ray ---------------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs the ray package: .venv/bin/pip install 'ray==2.60.0'") from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, with one line, when nothing listens at a Ray address (ray.init would wait minutes)."""
    if address == "auto":
        return
    match = _ADDRESS.match(address)
    if not match or not 0 < int(match.group("port")) < 65536:
        raise UserError(f"--ray-address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    host = match.group("host").strip("[]")
    try:
        with socket.create_connection((host, int(match.group("port"))), timeout=timeout_s):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise UserError(f"Ray cluster at {address} is unreachable ({reason} after at most {timeout_s:g} s): "
                        "is `ray start --head` running there and the port open?") from None


def _apply(fn, item):
    """Runs inside a Ray task: `fn` travels once through the object store, not with every task."""
    return fn(item)


class RayExecutor:
    """Ray tasks for children, one Ray actor per phone (pinned by the `device:<id>` resource)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 device_ids: Sequence[str] = (), connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        ray = self._ray = _import_ray()
        self.address = address
        self._owns_cluster = False
        if address:
            check_reachable(address, connect_timeout_s)
        if ray.is_initialized():
            return  # a driver that started Ray itself (tests, notebooks): use its cluster as it is
        if address:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except Exception as err:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError here
                raise UserError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}") from None
        else:
            # A one-machine cluster: the phones given are attached here, so this node carries their resources.
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     resources={device_resource(d): 1 for d in device_ids})
        self._owns_cluster = True

    # -- tasks ---------------------------------------------------------------------------------------
    def map_unordered(self, fn, items, *, num_cpus=1.0, num_gpus=0.0):
        ray = self._ray
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_apply)
        fn_ref = ray.put(fn)
        pending = {remote.remote(fn_ref, item): item for item in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                yield item, self._get(ref)

    def _get(self, ref):
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, UserError):
                raise UserError(str(err.cause)) from None
            raise

    # -- device workers --------------------------------------------------------------------------------
    def start_device_workers(self, device_ids, device_options):
        ray = self._ray
        from mnas.executors.farm import DeviceWorker

        available = ray.cluster_resources()
        missing = [d for d in device_ids if device_resource(d) not in available]
        if missing:
            raise UserError(f"device {missing[0]} is on no node of the Ray cluster: start the node it is plugged "
                            f"into with `ray start --resources '{{\"{device_resource(missing[0])}\": 1}}'`")
        actor_class = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(DeviceWorker)
        return {d: actor_class.options(resources={device_resource(d): 1}, name=None).remote(d, device_options)
                for d in device_ids}

    def call(self, worker, method, *args):
        return getattr(worker, method).remote(*args)

    def wait_any(self, pending):
        done, _ = self._ray.wait(list(pending), num_returns=1)
        return done

    def result(self, pending):
        ray = self._ray
        try:
            return self._get(pending)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as err:
            raise DeviceLost(f"device worker died: {str(err).splitlines()[0]}") from None

    def stop_device_workers(self, workers):
        for actor in workers.values():
            self._ray.kill(actor)

    def close(self) -> None:
        if self._owns_cluster and self._ray.is_initialized():
            self._ray.shutdown()
