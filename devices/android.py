"""Android phones over ADB with `adb-shell` (no `adb` binary): Wi-Fi/TCP (`HOST:PORT`) or USB (serial).

What runs on the phone is TFLite's `benchmark_model`, pushed once by `setup()` to
`/data/local/tmp/mnas/benchmark_model` (its sha256 recorded beside it, in `benchmark_model.sha256`).
`profile()` pushes the model as `/data/local/tmp/mnas/<sha256[:16]>.tflite`, runs rounds of

    taskset MASK /data/local/tmp/mnas/benchmark_model --graph=... --num_threads=T --warmup_runs=W
        --num_runs=N --min_secs=0 --warmup_min_secs=0

pinned to the fastest cores (`big_core_mask`), until the median is stable (`devices.stats`), then removes
the model. `--min_secs=0` makes a round exactly N runs (the tool's default keeps running for 1 s).
Op profiling, when asked, is one more run with `--enable_op_profiling=true`, kept out of the timed rounds.

Every device-side command is an argv list joined with `shlex.quote` on each argument (`shell_command`):
no file name or flag value can start a second command. Connection drops (mid-push, mid-run) are retried
`retries` times with exponential back-off on a fresh connection; a round is only kept when its output
parsed completely, so a half-finished profile is never returned.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import socket
import stat as stat_mode
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from devices import benchmark_output, stats
from devices.base import Fingerprint, Profile, ProfileOptions
from mnas.errors import UserError

REMOTE_DIR = "/data/local/tmp/mnas"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
REMOTE_BINARY_SHA = f"{REMOTE_BINARY}.sha256"
CPU_ROOT = "/sys/devices/system/cpu"
THERMAL_ROOT = "/sys/class/thermal"
GETPROP_KEYS = ("ro.product.model", "ro.product.manufacturer", "ro.board.platform", "ro.soc.model",
                "ro.soc.manufacturer", "ro.hardware", "ro.product.cpu.abi", "ro.build.version.release",
                "ro.build.version.sdk", "ro.build.fingerprint", "ro.serialno", "ro.mnas.emulated")

T = TypeVar("T")


def shell_command(argv: Sequence[str | int | float]) -> str:
    """One device shell command line; every argument quoted, so each reaches the program as one literal."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def parse_cpu_list(text: str) -> list[int]:
    """`0-3,6` (sysfs cpu lists, e.g. /sys/devices/system/cpu/possible) -> [0, 1, 2, 3, 6]."""
    cores: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"not a cpu list: {text!r}")
        cores.extend(range(int(lo), int(hi or lo) + 1))
    return cores


def big_core_mask(max_khz: Sequence[int], threads: int = 1) -> str | None:
    """`taskset` hex mask of the fastest cores: the cluster with the highest cpuinfo_max_freq, plus the next
    fastest clusters while there are fewer cores than threads. None when frequencies are unknown."""
    known = [(core, khz) for core, khz in enumerate(max_khz) if khz > 0]
    if not known:
        return None
    chosen: list[int] = []
    for khz in sorted({k for _, k in known}, reverse=True):
        chosen.extend(core for core, k in known if k == khz)
        if len(chosen) >= max(1, threads):
            break
    return format(sum(1 << core for core in chosen), "x")


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` with no argument prints `[key]: [value]` lines."""
    return dict(re.findall(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", text, flags=re.MULTILINE))


def parse_dumpsys_battery(text: str) -> dict:
    """`dumpsys battery`: level, status, temperature (tenths of a degree), health; {} when absent."""
    values = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(\S.*?)\s*$", text, flags=re.MULTILINE))
    out: dict = {}
    if values.get("level", "").isdigit():
        out["level"] = int(values["level"])
    if values.get("temperature", "").lstrip("-").isdigit():
        out["temp_c"] = int(values["temperature"]) / 10.0
    for key in ("status", "health", "AC powered", "USB powered"):
        if key in values:
            out[key.lower().replace(" ", "_")] = values[key]
    return out


def _transient_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as adb_errors

    return (OSError, adb_errors.AdbTimeoutError, adb_errors.TcpTimeoutException, adb_errors.InvalidCommandError,
            adb_errors.InvalidChecksumError, adb_errors.InvalidResponseError, adb_errors.AdbConnectionError)


def _first_line(err: BaseException | None) -> str:
    text = str(err).strip() if err is not None else ""
    return text.splitlines()[0] if text else type(err).__name__


class ConnectionLost(Exception):
    """A connection that dropped mid-operation (or an incomplete result); retried by `_with_retries`."""


class _Unauthorized(UserError):
    pass


class _NotFound(UserError):
    pass


def _make_tcp_transport(host: str, port: int):
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        """adb-shell's TCP transport spins on a closed socket until its read timeout, and its `send` may
        write only part of a packet on a non-blocking socket: fail fast on EOF, write every byte, no Nagle."""

        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            # adb-shell writes a packet's header and payload in two sends: without TCP_NODELAY, Nagle's
            # algorithm holds the payload until the header's delayed ACK (~40 ms per command).
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(f"{host}:{port} closed the connection")
            return data

        def bulk_write(self, data, transport_timeout_s):
            view, sent = memoryview(data), 0
            while sent < len(view):
                sent += super().bulk_write(view[sent:], transport_timeout_s)
            return sent

    return EofAwareTcpTransport(host, port)


@dataclass(frozen=True)
class RemoteFile:
    mode: int
    size: int

    @property
    def exists(self) -> bool:
        return self.mode != 0

    @property
    def executable(self) -> bool:
        return stat_mode.S_ISREG(self.mode) and bool(self.mode & 0o111)


class AndroidDevice:
    """A phone (or the emulated phone) reached over ADB. `id` is `HOST:PORT` (TCP) or a USB serial."""

    def __init__(self, id: str, *, key_path: Path | None = None, retries: int = 3, backoff_s: float = 0.5,
                 timeout_s: float = 30.0, run_timeout_s: float = 600.0, auth_timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.id = id
        self.key_path = key_path
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.run_timeout_s = run_timeout_s
        self.auth_timeout_s = auth_timeout_s  # how long the user has to tap "Allow" on a first connection
        self._sleep = sleep
        self._adb = None
        self.push_seconds = 0.0  # time spent in model pushes (for the overhead benchmark)
        self.push_bytes = 0
        self.retried = 0  # operations retried after a dropped connection
        self.retry_log: list[str] = []  # "what: error" per retry, for reports and tests
        self.run_outputs: list[benchmark_output.BenchmarkOutput] = []  # every complete benchmark run, parsed
        host, sep, port = id.rpartition(":")
        self._tcp = bool(sep) and port.isdigit()
        self._host, self._port = (host or "127.0.0.1", int(port)) if self._tcp else ("", 0)

    # --- connection -------------------------------------------------------------------------------

    @cached_property
    def _signer(self):
        from devices.adb_keys import load_signer

        return load_signer(self.key_path)

    def _new_adb(self):
        from adb_shell import exceptions as adb_errors
        from adb_shell.adb_device import AdbDevice, AdbDeviceUsb

        if self._tcp:
            return AdbDevice(_make_tcp_transport(self._host, self._port), default_transport_timeout_s=self.timeout_s)
        try:  # AdbDeviceUsb imports libusb1 lazily and says so when it is missing
            return AdbDeviceUsb(serial=self.id, default_transport_timeout_s=self.timeout_s)
        except adb_errors.InvalidTransportError:
            raise UserError(f"device {self.id}: USB needs adb-shell's USB extra (pip install 'adb-shell[usb]'); "
                            "or use Wi-Fi ADB with HOST:PORT") from None
        except adb_errors.UsbDeviceNotFoundError:
            raise _NotFound(f"device {self.id} not found: no USB device with that serial (is it plugged in, "
                            "USB debugging on, and no adb server holding it? run `adb kill-server`)") from None
        except Exception as err:  # noqa: BLE001 - libusb errors (access denied, busy) have no common base here
            raise UserError(f"device {self.id}: cannot open the USB device: {err}") from None

    def connect(self):
        """The live adb-shell connection, opened (and authenticated) on first use."""
        if self._adb is not None and self._adb.available:
            return self._adb
        self._drop()
        from adb_shell import exceptions as adb_errors

        adb = self._new_adb()
        prompted = []
        try:
            adb.connect(rsa_keys=[self._signer], transport_timeout_s=self.timeout_s,
                        auth_timeout_s=self.auth_timeout_s,
                        read_timeout_s=self.timeout_s, auth_callback=lambda _device: prompted.append(True))
        except ConnectionRefusedError:
            adb.close()
            raise _NotFound(f"device {self.id} not found: connection refused "
                            "(is `adb tcpip` enabled and the address right?)") from None
        except adb_errors.DeviceAuthError:
            adb.close()
            raise self._unauthorized() from None
        except _transient_errors() as err:
            adb.close()
            if prompted:  # our key was offered and not accepted in time
                raise self._unauthorized() from None
            if isinstance(err, OSError) and not isinstance(err, (ConnectionResetError, BrokenPipeError)):
                raise _NotFound(f"device {self.id} not found: {err.strerror or err}") from None
            raise ConnectionLost(f"connecting: {err}") from None
        if not adb.available:
            adb.close()
            raise self._unauthorized()
        self._adb = adb
        return adb

    def _unauthorized(self) -> UserError:
        return _Unauthorized(f"device {self.id} is unauthorized: accept the RSA prompt on the phone "
                             f"(\"Allow USB debugging?\", key {self._signer_key_path()}.pub) and retry")

    def _signer_key_path(self) -> str:
        from devices.adb_keys import default_key_path

        return str(self.key_path or default_key_path())

    def _drop(self) -> None:
        if self._adb is not None:
            try:
                self._adb.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail in many ways
                pass
        self._adb = None

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "AndroidDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _with_retries(self, what: str, action: Callable[[object], T]) -> T:
        """Run `action(adb)`; on a dropped connection reconnect and retry with back-off (bounded)."""
        transient = _transient_errors() + (ConnectionLost,)
        last: BaseException | None = None
        for attempt in range(self.retries):
            try:
                return action(self.connect())
            except _Unauthorized:
                raise
            except transient as err:
                last = err
                self._drop()
                if attempt + 1 < self.retries:
                    self.retried += 1
                    self.retry_log.append(f"{what}: {_first_line(err)}")
                    self._sleep(self.backoff_s * 2 ** attempt)
            except _NotFound as err:
                if attempt == 0:
                    raise
                last = err  # the device went away while we retried
                if attempt + 1 < self.retries:
                    self._sleep(self.backoff_s * 2 ** attempt)
            except UserError:
                raise
            except Exception as err:
                if type(err).__module__.startswith("adb_shell"):  # PushFailedError, DevicePathInvalidError, ...
                    raise UserError(f"device {self.id}: {what} failed: {_first_line(err)}") from None
                raise
        raise UserError(f"device {self.id}: connection lost during {what}, gave up after {self.retries} tries "
                        f"({_first_line(last)})")

    # --- primitives -------------------------------------------------------------------------------

    def shell(self, argv: Sequence[str | int | float], *, timeout_s: float | None = None, what: str = "") -> str:
        """Run one command (argv, each argument quoted) in the device shell; its output (stdout+stderr)."""
        command = shell_command(argv)
        limit = timeout_s or self.timeout_s
        return self._with_retries(what or str(argv[0]), lambda adb: adb.shell(
            command, transport_timeout_s=limit, read_timeout_s=limit, timeout_s=None))

    def stat(self, remote: str) -> RemoteFile:
        mode, size, _ = self._with_retries(f"stat {remote}", lambda adb: adb.stat(
            remote, transport_timeout_s=self.timeout_s, read_timeout_s=self.timeout_s))
        return RemoteFile(mode=int(mode), size=int(size))

    def push(self, local: Path | bytes, remote: str, mode: int = 0o644) -> None:
        """Push a file (or bytes); verified by size afterwards, retried whole on a drop."""
        size = len(local) if isinstance(local, bytes) else Path(local).stat().st_size

        def action(adb) -> None:
            source = io.BytesIO(local) if isinstance(local, bytes) else str(local)
            adb.push(source, remote, st_mode=stat_mode.S_IFREG | mode, transport_timeout_s=self.timeout_s,
                     read_timeout_s=self.run_timeout_s)
            written = adb.stat(remote, transport_timeout_s=self.timeout_s, read_timeout_s=self.timeout_s)
            if int(written[1]) != size:
                raise ConnectionLost(f"{remote} holds {written[1]} of {size} bytes")

        start = time.perf_counter()
        self._with_retries(f"push of {remote}", action)
        self.push_seconds += time.perf_counter() - start
        self.push_bytes += size

    def pull_bytes(self, remote: str) -> bytes:
        def action(adb) -> bytes:
            buffer = io.BytesIO()
            adb.pull(remote, buffer, transport_timeout_s=self.timeout_s, read_timeout_s=self.timeout_s)
            return buffer.getvalue()

        return self._with_retries(f"pull of {remote}", action)

    def read_file(self, path: str) -> str | None:
        """`cat PATH` on the device; None when it cannot be read."""
        out = self.shell(["cat", path], what=f"cat {path}").strip()
        if not out or out.startswith("cat:") or "No such file" in out or "Permission denied" in out:
            return None
        return out

    # --- setup ------------------------------------------------------------------------------------

    def setup(self, benchmark_binary: Path) -> dict:
        """Push `benchmark_model`, make it executable, check it runs, record its sha256 on the device."""
        local = Path(benchmark_binary)
        if not local.is_file():
            raise UserError(f"benchmark binary not found: {local}")
        content = local.read_bytes()
        if not content:
            raise UserError(f"benchmark binary is empty: {local}")
        digest = hashlib.sha256(content).hexdigest()
        self.shell(["mkdir", "-p", REMOTE_DIR], what="mkdir")
        self.shell(["rm", "-f", REMOTE_BINARY_SHA], what="rm")  # never leave an old build's hash behind
        self.push(content, REMOTE_BINARY, mode=0o755)
        self.shell(["chmod", "755", REMOTE_BINARY], what="chmod")
        remote = self.stat(REMOTE_BINARY)
        if not remote.executable:
            raise UserError(f"device {self.id}: {REMOTE_BINARY} is not executable after chmod "
                            f"(mode {oct(remote.mode)}); is /data/local/tmp mounted noexec?")
        check = self.shell([REMOTE_BINARY, "--help"], what="benchmark_model --help")
        if not re.search(r"graph|num_runs|STARTING", check):
            first = check.strip().splitlines()[0] if check.strip() else "no output"
            raise UserError(f"device {self.id}: the pushed benchmark binary does not run there ({first[:160]}); "
                            "is it built for this ABI (android_arm64)?")
        self.push(f"{digest}  benchmark_model  {len(content)}\n".encode(), REMOTE_BINARY_SHA)
        return {"device": self.id, "binary": REMOTE_BINARY, "sha256": digest, "bytes": len(content)}

    def _require_binary(self) -> RemoteFile:
        remote = self.stat(REMOTE_BINARY)
        hint = f"run `mnas devices setup --device {self.id} --benchmark-binary PATH`"
        if not remote.exists:
            raise UserError(f"device {self.id}: benchmark_model is missing ({REMOTE_BINARY}); {hint}")
        if not remote.executable:
            raise UserError(f"device {self.id}: {REMOTE_BINARY} is not executable (mode {oct(remote.mode)}); {hint}")
        return remote

    def binary_sha256(self) -> str:
        """The sha256 that `setup` recorded (`<sha>  benchmark_model  <size>`); recomputed from a pull when the
        record is missing or its size no longer matches the binary (replaced by hand)."""
        binary = self.stat(REMOTE_BINARY)
        if not binary.exists:
            return ""
        if self.stat(REMOTE_BINARY_SHA).exists:
            fields = self.pull_bytes(REMOTE_BINARY_SHA).decode(errors="replace").split()
            if (len(fields) == 3 and re.fullmatch(r"[0-9a-f]{64}", fields[0]) and fields[2].isdigit()
                    and int(fields[2]) == binary.size):
                return fields[0]
        return hashlib.sha256(self.pull_bytes(REMOTE_BINARY)).hexdigest()

    # --- fingerprint ------------------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        props = parse_getprop(self.shell(["getprop"], what="getprop"))
        if not props:  # a getprop without the list form: ask key by key
            for key in GETPROP_KEYS:
                value = self.shell(["getprop", key], what=f"getprop {key}").strip()
                if value:
                    props[key] = value
        return props

    def cpu_max_khz(self) -> tuple[int, ...]:
        possible = self.read_file(f"{CPU_ROOT}/possible")
        try:
            cores = parse_cpu_list(possible) if possible else []
        except ValueError:
            cores = []
        freqs = []
        for core in cores:
            value = self.read_file(f"{CPU_ROOT}/cpu{core}/cpufreq/cpuinfo_max_freq")
            freqs.append(int(value) if value and value.isdigit() else 0)
        return tuple(freqs)

    def thermal_zone_names(self) -> list[str]:
        listing = self.shell(["ls", THERMAL_ROOT], what="ls thermal").split()
        return sorted((n for n in listing if re.fullmatch(r"thermal_zone\d+", n)), key=lambda n: int(n[12:]))

    def temperatures(self, zones: Sequence[str] | None = None) -> dict[str, float]:
        from devices.host import to_celsius

        temps: dict[str, float] = {}
        for zone in zones if zones is not None else self.thermal_zone_names():
            raw = self.read_file(f"{THERMAL_ROOT}/{zone}/temp")
            celsius = to_celsius(raw) if raw else None
            if celsius is not None:
                name = self.read_file(f"{THERMAL_ROOT}/{zone}/type") or zone
                temps[name if name not in temps else f"{name}/{zone}"] = celsius
        return temps

    def battery(self) -> dict:
        out = self.shell(["dumpsys", "battery"], what="dumpsys battery")
        return parse_dumpsys_battery(out) if "level" in out else {}

    def fingerprint(self) -> Fingerprint:
        props = self.properties()
        emulated = props.get("ro.mnas.emulated", "").strip() == "1"
        freqs = self.cpu_max_khz()
        governor = self.read_file(f"{CPU_ROOT}/cpu0/cpufreq/scaling_governor") or ""
        soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "")
        return Fingerprint(
            kind="emulated" if emulated else "android",
            model=props.get("ro.product.model", "unknown"),
            soc=soc, abi=props.get("ro.product.cpu.abi", ""),
            android_version=props.get("ro.build.version.release", ""),
            cpu_max_khz=freqs, governor=governor, temperatures_c=self.temperatures(), battery=self.battery(),
            binary_sha256=self.binary_sha256(),
            extra={k: props[k] for k in ("ro.product.manufacturer", "ro.board.platform", "ro.soc.manufacturer",
                                         "ro.build.version.sdk", "ro.build.fingerprint", "ro.serialno") if k in props}
            | {"transport": "tcp" if self._tcp else "usb", "id": self.id},
        )

    # --- profiling --------------------------------------------------------------------------------

    def benchmark_argv(self, remote_model: str, options: ProfileOptions, mask: str | None, *,
                       op_profile: bool = False) -> list[str]:
        argv = ["taskset", mask] if mask else []
        argv += [REMOTE_BINARY, f"--graph={remote_model}", f"--num_threads={options.threads}",
                 f"--warmup_runs={options.warmup_runs}", f"--num_runs={options.runs}", "--min_secs=0",
                 "--warmup_min_secs=0"]
        if op_profile:
            argv.append("--enable_op_profiling=true")
        return argv

    def _run_benchmark(self, argv: list[str], options: ProfileOptions, *, op_profile: bool):
        """One complete benchmark_model run; a truncated output counts as a dropped connection (retried)."""
        command = shell_command(argv)

        def action(adb):
            text = adb.shell(command, transport_timeout_s=self.run_timeout_s, read_timeout_s=self.run_timeout_s,
                             timeout_s=None)
            try:
                result = benchmark_output.parse(text)
            except benchmark_output.BenchmarkOutputError:
                if "STARTING" in text and not re.search(r"ERROR|fail", text, re.IGNORECASE):
                    raise ConnectionLost("benchmark output ended before its timings") from None
                raise
            if result.runs.count < options.runs or result.inference_avg_us is None:
                raise ConnectionLost(f"benchmark output incomplete ({result.runs.count} of {options.runs} runs)")
            if op_profile and not result.ops:
                raise ConnectionLost("op-profiling table missing from the benchmark output")
            return result

        try:
            result = self._with_retries("benchmark run", action)
        except benchmark_output.BenchmarkOutputError as err:
            raise UserError(f"device {self.id}: {err}") from None
        self.run_outputs.append(result)
        return result

    def profile(self, model_path: Path, options: ProfileOptions = ProfileOptions()) -> Profile:
        from devices.litert_runner import read_model_bytes

        content = read_model_bytes(model_path)  # missing / not a .tflite: UserError before touching the phone
        self._require_binary()
        fingerprint = self.fingerprint()
        mask = big_core_mask(fingerprint.cpu_max_khz, options.threads)
        zones = self.thermal_zone_names()
        remote_model = f"{REMOTE_DIR}/{hashlib.sha256(content).hexdigest()[:16]}.tflite"

        def max_temp() -> float | None:
            temps = self.temperatures(zones)
            return max(temps.values()) if temps else None

        before_round = stats.CooldownGuard(max_temp, options.cooldown_temp_c, options.cooldown_max_s)

        def run_round(index: int) -> stats.Round:
            out = self._run_benchmark(self.benchmark_argv(remote_model, options, mask), options, op_profile=False)
            runs = out.runs
            ms = 1000.0
            p5 = runs.p5_us / ms if runs.p5_us is not None else float("nan")
            p95 = runs.p95_us / ms if runs.p95_us is not None else float("nan")
            return stats.Round(count=runs.count, median=out.median_us / ms, mean=runs.avg_us / ms,
                               std=runs.std_us / ms, p5=p5, p95=p95)

        self.shell(["mkdir", "-p", REMOTE_DIR], what="mkdir")
        self.push(content, remote_model)
        try:
            rounds = stats.measure_rounds(run_round, max_rounds=options.max_rounds,
                                          target_rel_ci=options.target_rel_ci, before_round=before_round)
            ops = None
            if options.op_profile:
                out = self._run_benchmark(self.benchmark_argv(remote_model, options, mask, op_profile=True),
                                          options, op_profile=True)
                ops = tuple(out.ops or ())
        finally:
            self._cleanup(remote_model)
        summary = stats.summarize(rounds, target_rel_ci=options.target_rel_ci, max_rounds=options.max_rounds)
        fields = stats.to_profile_fields(summary, options.target_rel_ci)
        fields["noise"]["taskset_mask"] = mask or ""
        before_round.add_to(fields)
        return Profile(fingerprint=fingerprint, ops=ops, **fields)

    def _cleanup(self, remote: str) -> None:
        try:
            self.shell(["rm", "-f", remote], what="cleanup")
        except UserError:
            pass  # the phone went away: nothing left to clean that we can reach
