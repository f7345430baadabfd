"""A phone farm: many phones (on one host or many), one work queue per device fingerprint.

    farm = Farm(["10.0.0.7:5555", "10.0.0.8:5555"], get_executor("ray", address=...))
    for result in farm.profile_many([Job("op-1", Path("op1.tflite")), ...]):   # as each one finishes
        store.put(result.key, result.profile ...)                              # only the driver writes
    farm.close()

Each phone gets one `DeviceWorker` (a Ray actor on the node the phone is plugged into, or a thread with the
local executor) that opens it with `devices.registry.open_device` *there*: ADB connections never cross
hosts; jobs carry model bytes, not paths. Phones are grouped by `Fingerprint.key`: a job may run on any phone
of its fingerprint, because those give the same numbers. `profile_many` keeps every phone of the group busy
(dispatch to a free phone, wait for the first to finish, repeat). A phone that drops out (its connection is
gone, or its actor died) leaves the rotation and its in-flight job goes back to the front of the queue, so
every job is done exactly once, whatever phones are lost, while one phone of the group remains.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from devices.base import Fingerprint, Profile, ProfileOptions
from mnas.errors import UserError
from mnas.executors.base import DeviceLost, Executor


@dataclass(frozen=True)
class Job:
    """One model to time. `model` is a path on the driver (read when dispatched) or the file's bytes."""

    key: str
    model: Path | bytes

    def model_bytes(self) -> bytes:
        return self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()


@dataclass(frozen=True)
class Outcome:
    """What a device worker answers: a profile, or why not. `lost` = the device is gone (re-queue the job)."""

    key: str
    profile: Profile | None = None
    lost: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class JobResult:
    key: str
    device_id: str
    profile: Profile
    seconds: float


class DeviceWorker:
    """Owns one device where it is attached (a Ray actor's process, or a thread). Never raises on a job:
    it answers an `Outcome`, telling a lost device (re-queue elsewhere) from a bad job (report it)."""

    def __init__(self, device_id: str, device_options: dict | None = None) -> None:
        from devices.registry import open_device

        self.device_id = device_id
        self.device = open_device(device_id, **(device_options or {}))

    def where(self) -> dict:
        """Where this worker runs: its host and process (a Ray actor's own process on the phone's node)."""
        return {"id": self.device_id, "host": socket.gethostname(), "pid": os.getpid()}

    def fingerprint(self) -> Fingerprint | str:
        """The fingerprint, or the one-line reason the device cannot be reached."""
        try:
            return self.device.fingerprint()
        except UserError as err:
            return str(err)

    def profile(self, key: str, model: bytes, options: ProfileOptions) -> Outcome:
        start = time.perf_counter()
        # A file per job, gone after it: Ray ends a farm's actors with ray.kill, so a directory kept for the
        # worker's life would outlive every farm (one per phone per farm, never removed).
        fd, name = tempfile.mkstemp(prefix="mnas-farm-", suffix=".tflite")
        path = Path(name)
        with os.fdopen(fd, "wb") as file:
            file.write(model)
        try:
            profile = self.device.profile(path, options)
        except Exception as err:  # noqa: BLE001 - classified below; the worker must survive to say which
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if self._reachable():
                return Outcome(key, error=message, seconds=time.perf_counter() - start)
            return Outcome(key, lost=message, seconds=time.perf_counter() - start)
        finally:
            path.unlink(missing_ok=True)
        return Outcome(key, profile=profile, seconds=time.perf_counter() - start)

    def _reachable(self) -> bool:
        """After a failure: does the device still answer? (no: it dropped out; yes: the job itself failed)."""
        shell = getattr(self.device, "shell", None)
        if shell is None:
            return True  # the host CPU does not disconnect
        try:
            shell(["true"], what="health check")
            return True
        except Exception:  # noqa: BLE001 - any failure to answer means the device is gone
            return False

    def close(self) -> None:
        self.device.close()


class Farm:
    """Device workers for `device_ids`, fingerprinted and grouped by `Fingerprint.key`."""

    def __init__(self, device_ids: Sequence[str], executor: Executor, device_options: dict | None = None) -> None:
        ids = [d.strip() for d in device_ids]
        if not ids:
            raise UserError("a farm needs at least one device id")
        if len(set(ids)) != len(ids):
            raise UserError(f"a device is given twice: {', '.join(ids)}")
        self.executor = executor
        self.workers = executor.start_device_workers(ids, device_options or {})
        self.fingerprints: dict[str, Fingerprint] = {}
        self.lost: dict[str, str] = {}  # device id -> why it left the rotation
        self.requeued = 0
        try:
            self._fingerprint_all(ids)
        except BaseException:
            self.close()
            raise

    def _fingerprint_all(self, ids: Sequence[str]) -> None:
        pending = {self.executor.call(self.workers[d], "fingerprint"): d for d in ids}
        while pending:
            for done in self.executor.wait_any(list(pending)):
                device_id = pending.pop(done)
                try:
                    answer = self.executor.result(done)
                except DeviceLost as err:
                    answer = str(err)
                if isinstance(answer, str):
                    raise UserError(f"farm device {device_id}: {answer}")
                self.fingerprints[device_id] = answer

    @property
    def groups(self) -> dict[str, list[str]]:
        """fingerprint key -> device ids still in rotation (in the order given)."""
        out: dict[str, list[str]] = {}
        for device_id, fp in self.fingerprints.items():
            out.setdefault(fp.key, [])
            if device_id not in self.lost:
                out[fp.key].append(device_id)
        return out

    def fingerprint_key(self) -> str:
        """The single fingerprint of the farm; a table is for one fingerprint, so mixed farms are refused."""
        keys = sorted({fp.key for fp in self.fingerprints.values()})
        if len(keys) > 1:
            detail = "; ".join(f"{k}: {', '.join(d for d, fp in self.fingerprints.items() if fp.key == k)}"
                               for k in keys)
            raise UserError(f"the farm mixes {len(keys)} device fingerprints and a table is for one ({detail}); "
                            "give only devices of one kind")
        return keys[0]

    def fingerprint(self, key: str | None = None) -> Fingerprint:
        key = key or self.fingerprint_key()
        for fp in self.fingerprints.values():
            if fp.key == key:
                return fp
        raise UserError(f"no device of the farm has fingerprint {key}; it has {', '.join(sorted(self.groups))}")

    def describe(self) -> list[dict]:
        return [{"id": d, "fingerprint_key": fp.key, "kind": fp.kind, "model": fp.model,
                 "state": "lost" if d in self.lost else "ready", **({"error": self.lost[d]} if d in self.lost else {})}
                for d, fp in self.fingerprints.items()]

    def profile_many(self, jobs: Iterable[Job], fingerprint_key: str | None = None,
                     options: ProfileOptions = ProfileOptions()) -> Iterator[JobResult]:
        """Run every job once on some device of `fingerprint_key` (default: the farm's single fingerprint);
        yield results as they finish, in completion order."""
        key = fingerprint_key or self.fingerprint_key()
        self.fingerprint(key)  # an unknown key fails here
        queue: deque[Job] = deque(jobs)
        keys = [job.key for job in queue]
        if len(set(keys)) != len(keys):
            raise UserError("profile_many: job keys must be unique")
        free = deque(self.groups[key])
        in_flight: dict[object, tuple[str, Job]] = {}
        while queue or in_flight:
            while queue and free:
                device_id, job = free.popleft(), queue.popleft()
                handle = self.executor.call(self.workers[device_id], "profile", job.key, job.model_bytes(), options)
                in_flight[handle] = (device_id, job)
            if not in_flight:
                why = "; ".join(f"{d}: {w}" for d, w in self.lost.items())
                raise UserError(f"every device of {key} dropped out ({why}); {len(queue)} job(s) not done "
                                "(results already returned are kept)")
            for handle in self.executor.wait_any(list(in_flight)):
                device_id, job = in_flight.pop(handle)
                try:
                    outcome: Outcome = self.executor.result(handle)
                except DeviceLost as err:
                    outcome = Outcome(job.key, lost=str(err))
                if outcome.lost is not None:
                    self.lost[device_id] = outcome.lost
                    self.requeued += 1
                    queue.appendleft(job)  # first in line for the next free device
                    continue
                if outcome.error is not None:
                    raise UserError(f"job {job.key} failed on {device_id}: {outcome.error}")
                free.append(device_id)
                yield JobResult(job.key, device_id, outcome.profile, outcome.seconds)

    def close(self) -> None:
        if self.workers:
            self.executor.stop_device_workers(self.workers)
            self.workers = {}

    def __enter__(self) -> "Farm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FarmDevice:
    """The farm seen as one `devices.base.Device` of one fingerprint: each `profile` goes to a free phone.

    Lets code written for one device (table calibration, `table validate`, `DeviceLatency` in a search) use
    a farm unchanged, with fail-over to the next phone when one drops out."""

    def __init__(self, farm: Farm, fingerprint_key: str | None = None) -> None:
        self.farm = farm
        self.key = fingerprint_key or farm.fingerprint_key()
        self.id = f"farm:{self.key}"
        self._count = 0

    def fingerprint(self) -> Fingerprint:
        return self.farm.fingerprint(self.key)

    def profile(self, model_path: Path, options: ProfileOptions = ProfileOptions()) -> Profile:
        self._count += 1
        job = Job(f"{self._count}:{Path(model_path).name}", Path(model_path).read_bytes())
        (result,) = list(self.farm.profile_many([job], self.key, options))
        return result.profile

    def close(self) -> None:
        pass  # the farm owns the devices
