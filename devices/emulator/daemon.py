"""The emulated phone's adbd: a threaded TCP server on 127.0.0.1 speaking the ADB transport protocol.

One thread accepts; one thread per connection reads messages; one thread per open stream runs its
service (`shell:`/`exec:` through the sandboxed shell, `sync:` through the sync service). Device-to-client
WRTEs wait for the client's OKAY before the next one (adb flow control); client WRTEs are acknowledged
with OKAY once queued.

Fault knobs (see docs/emulator.md): `drop_after_bytes` closes a connection once that many bytes have
crossed it (both directions counted), `drop_connections` limits the drop to the first N connections,
`slow_bps` caps each direction of every connection at that many bytes per second, `reject_auth` refuses
every key the way a phone whose user taps "Deny" does.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devices.emulator import protocol as p
from devices.emulator import shell as shell_mod
from devices.emulator import sync_service
from devices.emulator.auth import AdbPublicKey, parse_adb_public_key, verify_token_signature
from devices.emulator.phone_profile import PhoneProfile
from devices.emulator.sandbox_fs import SandboxFS
from mnas.errors import UserError

log = logging.getLogger("mnas.emulator")

# What the device advertises: only what is implemented (no shell_v2, stat_v2, ls_v2, sendrecv_v2).
FEATURES = ["fixed_push_mkdir"]
LOOPBACK = "127.0.0.1"
ACK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FaultKnobs:
    drop_after_bytes: int | None = None
    drop_connections: int | None = None  # None: every connection is dropped at the threshold
    slow_bps: int | None = None
    reject_auth: bool = False

    def __post_init__(self) -> None:
        for name in ("drop_after_bytes", "drop_connections", "slow_bps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {value}")


class ConnectionDropped(Exception):
    pass


class _Pacer:
    """Caps one direction of a link at `bps` bytes per second."""

    def __init__(self, bps: int | None) -> None:
        self.bps = bps
        self.next_free = time.monotonic()

    def account(self, nbytes: int) -> None:
        if not self.bps:
            return
        now = time.monotonic()
        self.next_free = max(self.next_free, now) + nbytes / self.bps
        delay = self.next_free - now
        if delay > 0:
            time.sleep(delay)


class _Link:
    """The socket plus the fault knobs: byte budget (drop) and pacing (slow link)."""

    def __init__(self, sock: socket.socket, budget: int | None, bps: int | None) -> None:
        self.sock = sock
        self.budget = budget
        self.send_pacer, self.recv_pacer = _Pacer(bps), _Pacer(bps)
        self.lock = threading.Lock()
        self.closed = False

    def _spend(self, nbytes: int) -> int:
        if self.budget is None:
            return nbytes
        allowed = min(nbytes, self.budget)
        self.budget -= allowed
        return allowed

    def drop(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def send(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                raise ConnectionDropped("connection closed")
            allowed = self._spend(len(data))
            view = memoryview(data)[:allowed]
            step = max(1024, (self.send_pacer.bps or 0) // 20) if self.send_pacer.bps else len(view) or 1
            try:
                for start in range(0, len(view), step):
                    chunk = view[start:start + step]
                    self.sock.sendall(chunk)
                    self.send_pacer.account(len(chunk))
            except OSError as err:
                self.drop()
                raise ConnectionDropped(str(err)) from None
            if allowed < len(data):
                self.drop()
                raise ConnectionDropped("fault knob: drop_after_bytes reached while sending")

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            want = n - len(buf)
            if self.budget is not None:
                if self.budget == 0:
                    self.drop()
                    raise ConnectionDropped("fault knob: drop_after_bytes reached while receiving")
                want = min(want, self.budget)
            try:
                chunk = self.sock.recv(min(want, 256 * 1024))
            except OSError as err:
                self.drop()
                raise ConnectionDropped(str(err)) from None
            if not chunk:
                raise ConnectionDropped("client closed the connection")
            self._spend(len(chunk))
            self.recv_pacer.account(len(chunk))
            buf += chunk
        return bytes(buf)


class _Stream:
    def __init__(self, conn: "_Connection", local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.pending = bytearray()
        self.acked = threading.Event()
        self.closed = False

    # client -> service
    def read_exact(self, n: int) -> bytes:
        while len(self.pending) < n:
            item = self.inbox.get()
            if item is None:
                self.inbox.put(None)
                raise EOFError
            self.pending += item
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    # service -> client, one WRTE in flight at a time
    def write(self, data: bytes) -> None:
        step = self.conn.max_payload
        for start in range(0, len(data), step):
            if self.closed:
                raise EOFError
            self.acked.clear()
            self.conn.send(p.Message(p.A_WRTE, self.local_id, self.remote_id, data[start:start + step]))
            if not self.acked.wait(ACK_TIMEOUT_S) or self.closed:
                raise EOFError  # no OKAY in time, or the client closed the stream meanwhile

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.forget(self.local_id)
            try:
                self.conn.send(p.Message(p.A_CLSE, self.local_id, self.remote_id))
            except ConnectionDropped:
                pass

    def remote_closed(self) -> None:
        self.closed = True
        self.inbox.put(None)
        self.acked.set()


class _Connection:
    def __init__(self, phone: "EmulatedPhone", sock: socket.socket, index: int) -> None:
        knobs = phone.knobs
        dropping = knobs.drop_after_bytes is not None and (
            knobs.drop_connections is None or index < knobs.drop_connections)
        self.phone = phone
        self.link = _Link(sock, knobs.drop_after_bytes if dropping else None, knobs.slow_bps)
        self.peer_version = p.DEVICE_VERSION
        self.max_payload = 4096
        self.authenticated = False
        self.token = b""
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.lock = threading.Lock()

    def send(self, msg: p.Message) -> None:
        self.link.send(p.pack(msg, with_checksum=self.peer_version < p.VERSION_SKIP_CHECKSUM))

    def forget(self, local_id: int) -> None:
        with self.lock:
            self.streams.pop(local_id, None)

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, check = p.unpack_header(self.link.recv_exact(p.HEADER.size))
                if length > p.DEVICE_MAX_PAYLOAD:
                    raise p.ProtocolError(f"payload of {length} bytes exceeds {p.DEVICE_MAX_PAYLOAD}")
                data = self.link.recv_exact(length) if length else b""
                if self.peer_version < p.VERSION_SKIP_CHECKSUM and length and p.checksum(data) != check:
                    raise p.ProtocolError("bad data checksum")
                self.handle(p.Message(command, arg0, arg1, data))
        except (ConnectionDropped, p.ProtocolError) as err:
            log.debug("connection ended: %s", err)
        finally:
            self.link.drop()
            with self.lock:
                streams = list(self.streams.values())
                self.streams.clear()
            for stream in streams:
                stream.remote_closed()

    # --- messages ----------------------------------------------------------------------------------

    def handle(self, msg: p.Message) -> None:
        if msg.command == p.A_CNXN:
            self.peer_version = min(msg.arg0, p.DEVICE_VERSION)
            self.max_payload = min(msg.arg1 or 4096, p.DEVICE_MAX_PAYLOAD)
            if self.authenticated or not self.phone.require_auth:
                self.connected()
            else:
                self.send_token()
        elif msg.command == p.A_AUTH:
            self.handle_auth(msg)
        elif not self.authenticated:
            return  # adbd ignores everything but CNXN/AUTH before the handshake
        elif msg.command == p.A_OPEN:
            self.handle_open(msg)
        elif msg.command == p.A_WRTE:
            stream = self.streams.get(msg.arg1)
            if stream is None or stream.closed:
                return
            stream.inbox.put(msg.data)
            self.send(p.Message(p.A_OKAY, stream.local_id, stream.remote_id))
        elif msg.command == p.A_OKAY:
            stream = self.streams.get(msg.arg1)
            if stream is not None:
                stream.acked.set()
        elif msg.command == p.A_CLSE:
            with self.lock:
                stream = self.streams.pop(msg.arg1, None)
            if stream is not None:
                stream.remote_closed()
                # adbd answers a client's CLSE with its own (adb-shell waits for it).
                self.send(p.Message(p.A_CLSE, stream.local_id, stream.remote_id))

    def connected(self) -> None:
        self.authenticated = True
        banner = self.phone.profile.banner(FEATURES)
        self.send(p.Message(p.A_CNXN, self.peer_version, self.max_payload, banner))

    def send_token(self) -> None:
        self.token = secrets.token_bytes(p.TOKEN_SIZE)
        self.send(p.Message(p.A_AUTH, p.AUTH_TOKEN, 0, self.token))

    def handle_auth(self, msg: p.Message) -> None:
        if self.authenticated or not self.token:
            return
        if msg.arg0 == p.AUTH_SIGNATURE:
            if not self.phone.knobs.reject_auth and any(
                    verify_token_signature(key, self.token, msg.data) for key in self.phone.trusted_keys()):
                self.connected()
            else:
                self.send_token()  # unknown key: ask again; the client then offers its public key
        elif msg.arg0 == p.AUTH_RSAPUBLICKEY:
            try:
                key = parse_adb_public_key(msg.data)
            except ValueError as err:
                log.info("rejected malformed public key: %s", err)
                return
            if self.phone.accept_new_key(key, msg.data):
                self.connected()
            # else: like a phone whose user tapped "Deny": no answer, the client stays unauthorized

    def handle_open(self, msg: p.Message) -> None:
        service = msg.data.rstrip(b"\0").decode("utf-8", errors="replace")
        target = None
        if service.startswith(("shell:", "exec:")):
            target = self.run_shell
            argument = service.split(":", 1)[1]
        elif service == "sync:":
            target, argument = self.run_sync, ""
        if target is None or msg.arg0 == 0:
            self.send(p.Message(p.A_CLSE, 0, msg.arg0))  # unknown service: refused
            return
        with self.lock:
            local_id = self.next_id
            self.next_id += 1
            stream = _Stream(self, local_id, msg.arg0)
            self.streams[local_id] = stream
        self.send(p.Message(p.A_OKAY, local_id, msg.arg0))
        threading.Thread(target=self._service, args=(target, stream, argument), daemon=True,
                         name=f"adbd-{service.split(':')[0]}-{local_id}").start()

    def _service(self, target, stream: _Stream, argument: str) -> None:
        try:
            target(stream, argument)
        except (EOFError, ConnectionDropped):
            pass
        except Exception:  # a bug in a service must not kill the daemon
            log.exception("service failed")
        finally:
            stream.close()

    # --- services ----------------------------------------------------------------------------------

    def run_shell(self, stream: _Stream, command: str) -> None:
        buffer = bytearray()

        def write(data: bytes) -> None:
            buffer.extend(data)
            if len(buffer) >= self.max_payload:
                stream.write(bytes(buffer))
                buffer.clear()

        sh = shell_mod.Shell(self.phone.fs, self.phone.profile)
        if command.strip():
            sh.run_line(command, write)
        else:
            write(b"mnas emulated phone: interactive shell is not supported; pass a command\n")
        if buffer:
            stream.write(bytes(buffer))

    def run_sync(self, stream: _Stream, _argument: str) -> None:
        sync_service.serve(stream.read_exact, stream.write, self.phone.fs)


class EmulatedPhone:
    """An emulated Android phone reachable over ADB at 127.0.0.1:`port`.

        with EmulatedPhone(port=0) as phone:
            AdbDeviceTcp("127.0.0.1", phone.port) ...

    `sandbox` is the private host directory that holds the phone's writable files (a temporary one,
    removed on close, when not given). `allowed_keys` (adbkey.pub texts) turns on the allow-list: only
    those keys are accepted; otherwise any key offered by a client is accepted, as if the user always
    tapped "Allow", unless `knobs.reject_auth` is set.
    """

    def __init__(self, port: int = 0, *, profile: PhoneProfile | None = None, sandbox: str | Path | None = None,
                 knobs: FaultKnobs = FaultKnobs(), require_auth: bool = True,
                 allowed_keys: list[str] | None = None) -> None:
        self.requested_port = port
        self.profile = profile or PhoneProfile()
        self.knobs = knobs
        self.require_auth = require_auth
        self._own_sandbox = sandbox is None
        self.sandbox = Path(sandbox) if sandbox else Path(tempfile.mkdtemp(prefix="mnas-phone-"))
        self.sandbox.mkdir(parents=True, exist_ok=True)
        self.fs = SandboxFS(self.sandbox, self.profile.virtual_files())
        self.allow_list = [parse_adb_public_key(k) for k in allowed_keys] if allowed_keys is not None else None
        self._keys_file = self.sandbox / ".adbd" / "adb_keys"  # outside every device-visible root
        self._keys: list[AdbPublicKey] = self._load_keys()
        self._keys_lock = threading.Lock()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[_Connection] = []
        self._stopping = threading.Event()
        self.port = 0

    # --- keys --------------------------------------------------------------------------------------

    def _load_keys(self) -> list[AdbPublicKey]:
        keys = []
        if self._keys_file.exists():
            for line in self._keys_file.read_text().splitlines():
                try:
                    keys.append(parse_adb_public_key(line))
                except ValueError:
                    continue
        return keys

    def trusted_keys(self) -> list[AdbPublicKey]:
        with self._keys_lock:
            keys = list(self._keys)
        if self.allow_list is not None:
            moduli = {k.modulus for k in self.allow_list}
            keys = [k for k in keys if k.modulus in moduli] + list(self.allow_list)
        return keys

    def accept_new_key(self, key: AdbPublicKey, raw: bytes) -> bool:
        if self.knobs.reject_auth:
            return False
        if self.allow_list is not None and key.modulus not in {k.modulus for k in self.allow_list}:
            return False
        with self._keys_lock:
            if key.modulus not in {k.modulus for k in self._keys}:
                self._keys.append(key)
                self._keys_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self._keys_file, "a") as f:
                    f.write(raw.rstrip(b"\0").decode("ascii", errors="replace").strip() + "\n")
        return True

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "EmulatedPhone":
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((LOOPBACK, self.requested_port))
        except OSError as err:
            server.close()
            raise UserError(f"cannot listen on {LOOPBACK}:{self.requested_port}: {err.strerror}") from None
        server.listen(16)
        self._server = server
        self.port = server.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"adbd-accept-{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    @property
    def serial(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _accept_loop(self) -> None:
        index = 0
        while not self._stopping.is_set():
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, index)
            index += 1
            self._connections = [c for c in self._connections if not c.link.closed] + [conn]
            threading.Thread(target=conn.serve, name=f"adbd-conn-{index}", daemon=True).start()

    def serve_forever(self) -> None:
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.close()

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            try:
                # Wake the thread blocked in accept(): on Linux, close() alone leaves the listening socket
                # accepting (the blocked syscall holds it open), so a "stopped" phone kept answering.
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self._server.close()
            except OSError:
                pass
        for conn in self._connections:
            conn.link.drop()
        if self._own_sandbox:
            shutil.rmtree(self.sandbox, ignore_errors=True)

    def __enter__(self) -> "EmulatedPhone":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
