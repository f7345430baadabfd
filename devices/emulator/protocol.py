"""ADB wire format (AOSP `adb/protocol.txt`): 24-byte little-endian headers plus an optional payload.

header = (command, arg0, arg1, data_length, data_check, magic), magic = command ^ 0xffffffff.
`data_check` is the byte sum of the payload; peers at version >= 0x01000001 neither send nor check it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

HEADER = struct.Struct("<6I")
VERSION_SKIP_CHECKSUM = 0x01000001  # first version whose peers do not check data_check
DEVICE_VERSION = 0x01000001
DEVICE_MAX_PAYLOAD = 1024 * 1024  # adbd's MAX_PAYLOAD; the session uses min(this, the client's)
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20


def _wire(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


A_CNXN, A_AUTH, A_OPEN, A_OKAY = _wire(b"CNXN"), _wire(b"AUTH"), _wire(b"OPEN"), _wire(b"OKAY")
A_CLSE, A_WRTE, A_SYNC, A_STLS = _wire(b"CLSE"), _wire(b"WRTE"), _wire(b"SYNC"), _wire(b"STLS")
KNOWN_COMMANDS = {A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_SYNC, A_STLS}


class ProtocolError(Exception):
    """The peer sent something that is not an ADB message; the connection is closed."""


@dataclass(frozen=True)
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return struct.pack("<I", self.command).decode("ascii", errors="replace")


def checksum(data: bytes) -> int:
    if len(data) < 4096:
        return sum(data) & 0xFFFFFFFF
    # sum() over 1 MiB of bytes costs ~25 ms in Python; numpy's is ~100x faster.
    return int(np.frombuffer(data, dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF


def pack(msg: Message, *, with_checksum: bool = True) -> bytes:
    check = checksum(msg.data) if with_checksum else 0
    header = HEADER.pack(msg.command, msg.arg0 & 0xFFFFFFFF, msg.arg1 & 0xFFFFFFFF, len(msg.data), check,
                         msg.command ^ 0xFFFFFFFF)
    return header + msg.data


def unpack_header(raw: bytes) -> tuple[int, int, int, int, int]:
    """(command, arg0, arg1, length, check) after validating the magic and the command."""
    command, arg0, arg1, length, check, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic in ADB header: {raw[:24].hex()}")
    if command not in KNOWN_COMMANDS:
        raise ProtocolError(f"unknown ADB command 0x{command:08x}")
    return command, arg0, arg1, length, check
