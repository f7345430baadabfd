"""Device ids -> devices, and the list of devices this machine can reach.

Ids: `host` (LiteRT on this CPU), `HOST:PORT` (ADB over TCP: Wi-Fi ADB or the emulated phone), anything
else a USB serial. Listing asks a running `adb` server (127.0.0.1:5037) through its host protocol
(`host:devices-l`, a 4-hex-digit length prefix, plain socket): no `adb` binary is run.
"""

from __future__ import annotations

import re
import socket

from devices.base import Device
from mnas.errors import UserError

ADB_SERVER = ("127.0.0.1", 5037)
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_SERIAL = re.compile(r"^[A-Za-z0-9._:\-]+$")


def is_tcp_address(device_id: str) -> bool:
    match = _ADDRESS.match(device_id)
    return bool(match) and 0 < int(match.group("port")) < 65536


HOST_IDS = {"host": "wall", "host-cpu": "thread-cpu"}


def open_device(device_id: str, **android_options) -> Device:
    """`host`, `host-cpu`, `HOST:PORT` or a USB serial -> a device (not yet connected: the first call connects).

    `host-cpu` is the host timed by thread CPU time (robust to other load on a shared machine; 1 thread only).
    """
    device_id = (device_id or "").strip()
    if device_id in HOST_IDS:
        from devices.host import HostDevice

        return HostDevice(clock=HOST_IDS[device_id])
    if not device_id or not _SERIAL.match(device_id):
        raise UserError(f"unknown device {device_id!r}: use `host`, `host-cpu`, HOST:PORT (ADB over TCP) or a USB "
                        "serial "
                        "(see `mnas devices`)")
    if ":" in device_id and not is_tcp_address(device_id):
        raise UserError(f"unknown device {device_id!r}: HOST:PORT needs a port between 1 and 65535")
    from devices.android import AndroidDevice

    return AndroidDevice(device_id, **android_options)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("adb server closed the connection")
        data += chunk
    return data


def adb_server_request(service: str, address: tuple[str, int] = ADB_SERVER, timeout_s: float = 2.0) -> str | None:
    """One host-protocol request to the adb server; None when no server answers."""
    payload = service.encode()
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            sock.sendall(b"%04x" % len(payload) + payload)
            status = _recv_exactly(sock, 4)
            length = int(_recv_exactly(sock, 4), 16)
            body = _recv_exactly(sock, length).decode(errors="replace")
    except (OSError, ValueError):
        return None
    if status != b"OKAY":
        return None
    return body


def parse_devices_l(text: str) -> list[dict]:
    """`host:devices-l` lines: `SERIAL  STATE key:value ...` -> dicts."""
    devices = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        entry = {"id": parts[0], "state": parts[1], "source": "adb-server"}
        for part in parts[2:]:
            key, sep, value = part.partition(":")
            if sep:
                entry[key] = value
        entry["transport"] = "tcp" if is_tcp_address(parts[0]) else "usb"
        devices.append(entry)
    return devices


def _describe(device: Device) -> dict:
    fp = device.fingerprint()
    return {"kind": fp.kind, "model": fp.model, "soc": fp.soc, "abi": fp.abi, "android": fp.android_version,
            "key": fp.key, "binary_sha256": fp.binary_sha256}


def list_devices(connect: list[str] | None = None, *, adb_server: tuple[str, int] = ADB_SERVER) -> list[dict]:
    """The host, devices of a running adb server, and each `--connect HOST:PORT` (fingerprinted, or its error)."""
    from devices.host import HostDevice

    found: list[dict] = [{"id": "host", "state": "device", "source": "local", **_describe(HostDevice())}]
    listing = adb_server_request("host:devices-l", adb_server)
    if listing is not None:
        found.extend(parse_devices_l(listing))
    for address in connect or []:
        if not is_tcp_address(address):
            raise UserError(f"--connect needs HOST:PORT, got {address!r}")
        entry = {"id": address, "source": "connect", "transport": "tcp"}
        device = open_device(address)
        try:
            entry.update({"state": "device", **_describe(device)})
        except UserError as err:
            entry.update({"state": "unauthorized" if "unauthorized" in str(err) else "offline", "error": str(err)})
        finally:
            device.close()
        found.append(entry)
    return found
