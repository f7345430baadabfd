"""The `sync:` service, v1 (AOSP `adb/SYNC.TXT`): STAT, LIST, SEND, RECV, QUIT.

Requests are an 8-byte header (4-byte id, u32 length) plus `length` bytes of path. SEND's path is
"path,mode"; the file arrives as DATA chunks (each <= 64 KiB) and ends with DONE(mtime). It is written
to a temporary file in the target directory and renamed into place only on DONE, so a push cut off
midway never leaves a half-written file under the final name. Symlinks are refused.
"""

from __future__ import annotations

import os
import stat as stat_mod
import struct
from typing import Callable

from devices.emulator.sandbox_fs import FsError, SandboxFS

SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024
Reader = Callable[[int], bytes]  # read exactly n bytes from the stream; raises EOFError when closed
Writer = Callable[[bytes], None]


def _msg(ident: bytes, *values: int) -> bytes:
    return ident + struct.pack(f"<{len(values)}I", *values)


def _fail(reason: str) -> bytes:
    data = reason.encode()
    return _msg(b"FAIL", len(data)) + data


class _Fatal(Exception):
    """A malformed request: answered with FAIL, then the service ends (as adbd's does)."""


def serve(read: Reader, write: Writer, fs: SandboxFS) -> None:
    """Handle requests until QUIT or the stream closes."""
    try:
        _serve(read, write, fs)
    except EOFError:
        return
    except _Fatal as err:
        write(_fail(str(err)))


def _serve(read: Reader, write: Writer, fs: SandboxFS) -> None:
    while True:
        header = read(8)
        ident, length = header[:4], struct.unpack("<I", header[4:])[0]
        if ident == b"QUIT":
            return
        if ident not in (b"STAT", b"LIST", b"SEND", b"RECV") or length > MAX_PATH:
            raise _Fatal(f"unknown or malformed sync request {ident!r}")
        path = read(length).decode("utf-8", errors="replace")
        if ident == b"STAT":
            write(_stat(fs, path))
        elif ident == b"LIST":
            write(_list(fs, path))
        elif ident == b"RECV":
            _recv(fs, path, write)
        else:
            write(_send(fs, path, read))


def _stat(fs: SandboxFS, path: str) -> bytes:
    try:
        mode, size, mtime = fs.stat(fs.resolve(path))
    except FsError:
        return _msg(b"STAT", 0, 0, 0)  # v1 STAT reports a missing file as all zeros
    return _msg(b"STAT", mode, size & 0xFFFFFFFF, mtime)


def _list(fs: SandboxFS, path: str) -> bytes:
    out = bytearray()
    try:
        node = fs.resolve(path)
        names = [".", ".."] + fs.listdir(node) if fs.is_dir(node) else []
    except FsError:
        names = []
    for name in names:
        try:
            child = fs.resolve(os.path.join(node.path, name)) if name not in (".", "..") else node
            mode, size, mtime = fs.stat(child)
        except FsError:
            continue
        raw = name.encode()
        out += _msg(b"DENT", mode, size & 0xFFFFFFFF, mtime, len(raw)) + raw
    return bytes(out + _msg(b"DONE", 0, 0, 0, 0))


def _recv(fs: SandboxFS, path: str, write: Writer) -> None:
    try:
        node = fs.resolve(path)
        if fs.is_dir(node):
            raise FsError("Is a directory")
        data = fs.read(node)
    except FsError as err:
        write(_fail(f"remote object '{path}' does not exist or is not readable: {err}"))
        return
    except OSError as err:
        write(_fail(f"cannot read '{path}': {err.strerror}"))
        return
    out = bytearray()
    for start in range(0, len(data), SYNC_DATA_MAX):
        chunk = data[start:start + SYNC_DATA_MAX]
        out += _msg(b"DATA", len(chunk)) + chunk
    write(bytes(out + _msg(b"DONE", 0)))


def _send(fs: SandboxFS, spec: str, read: Reader) -> bytes:
    path, _, mode_text = spec.rpartition(",")
    error = None
    try:
        mode = int(mode_text) if path else 0
        if not path:
            path, mode = spec, stat_mod.S_IFREG | 0o644
    except ValueError:
        path, mode, error = spec, 0, f"bad mode in SEND request '{spec}'"
    target = tmp = None
    fd = -1
    if error is None:
        try:
            if stat_mod.S_ISLNK(mode):
                raise FsError("symlinks are not supported by the emulated phone")
            _, target = fs.writable_path(path)
            if target.is_dir():
                raise FsError("Is a directory")
            # fixed_push_mkdir: create missing parent directories inside the sandbox.
            fs.writable_path(os.path.dirname(fs.normalize(path)))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.mnas-partial")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        except FsError as err:
            error = f"couldn't create file: {err}"
        except OSError as err:
            error = f"couldn't create file: {err.strerror}"
    try:
        while True:
            header = read(8)
            ident, value = header[:4], struct.unpack("<I", header[4:])[0]
            if ident == b"DATA":
                if value > SYNC_DATA_MAX:
                    raise _Fatal(f"DATA chunk of {value} bytes exceeds {SYNC_DATA_MAX}")
                chunk = read(value)
                if fd >= 0:
                    os.write(fd, chunk)
            elif ident == b"DONE":
                if error is not None:
                    return _fail(error)
                os.close(fd)
                fd = -1
                os.chmod(tmp, stat_mod.S_IMODE(mode) or 0o644)
                os.utime(tmp, (value, value))
                os.replace(tmp, target)
                tmp = None
                return _msg(b"OKAY", 0)
            else:
                raise _Fatal(f"unexpected {ident!r} during SEND")
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)  # an interrupted push leaves nothing behind
