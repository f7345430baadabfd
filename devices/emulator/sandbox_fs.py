"""The phone's filesystem as the emulator shows it: virtual read-only /proc and /sys files, plus
writable roots (/data/local/tmp, /sdcard) mapped into a private host directory.

Every device path goes through `resolve`: it is normalised as an absolute POSIX path (so `..` can never
climb above "/"), mapped to the virtual files or to a writable root, and a host path is accepted only if
its real path (symlinks followed) stays inside that root. Nothing outside the sandbox directory is
reachable, whatever the client sends.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path

WRITABLE_ROOTS = ("/data/local/tmp", "/sdcard")


class FsError(Exception):
    """A device-side file error; `str()` is the message a phone's toybox would print (after `path: `)."""


@dataclass(frozen=True)
class Node:
    path: str  # normalised device path
    kind: str  # "virtual-file" | "virtual-dir" | "host"
    host: Path | None = None
    content: bytes = b""


class SandboxFS:
    def __init__(self, sandbox: Path, virtual_files: dict[str, str]) -> None:
        self.sandbox = Path(sandbox).resolve()
        self.roots: dict[str, Path] = {}
        for root in WRITABLE_ROOTS:
            host = self.sandbox / root.lstrip("/")
            host.mkdir(parents=True, exist_ok=True)
            self.roots[root] = host.resolve()
        self.files = {p: c.encode() for p, c in virtual_files.items()}
        self.dirs: set[str] = {"/"}
        for p in list(self.files) + list(WRITABLE_ROOTS):
            parent = posixpath.dirname(p)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)
        for root in WRITABLE_ROOTS:
            self.dirs.discard(root)  # these are host directories now

    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        if "\0" in path:
            raise FsError("Invalid argument")
        joined = posixpath.join(cwd, path) if not path.startswith("/") else path
        norm = posixpath.normpath(joined)
        if norm.startswith("//"):
            norm = "/" + norm.lstrip("/")
        return norm

    def _root_of(self, path: str) -> tuple[str, Path] | None:
        for root, host in self.roots.items():
            if path == root or path.startswith(root + "/"):
                return root, host
        return None

    def _host_path(self, path: str) -> Path:
        root, host_root = self._root_of(path)  # type: ignore[misc]
        rel = path[len(root):].lstrip("/")
        candidate = host_root / rel if rel else host_root
        real = Path(os.path.realpath(candidate))
        if real != host_root and host_root not in real.parents:
            raise FsError("Permission denied")  # a symlink (or anything) leading out of the sandbox
        return candidate

    def resolve(self, path: str, cwd: str = "/") -> Node:
        """The node at `path`; FsError("No such file or directory") if absent."""
        norm = self.normalize(path, cwd)
        if norm in self.files:
            return Node(norm, "virtual-file", content=self.files[norm])
        if norm in self.dirs:
            return Node(norm, "virtual-dir")
        if self._root_of(norm):
            host = self._host_path(norm)
            if os.path.lexists(host):
                return Node(norm, "host", host=host)
        raise FsError("No such file or directory")

    def writable_path(self, path: str, cwd: str = "/") -> tuple[str, Path]:
        """Host path for creating/overwriting `path`; only under a writable root, never through a symlink."""
        norm = self.normalize(path, cwd)
        if not self._root_of(norm):
            if norm in self.files or norm in self.dirs:
                raise FsError("Read-only file system")
            raise FsError("Permission denied")
        host = self._host_path(norm)
        if host.is_symlink():
            raise FsError("Permission denied")
        return norm, host

    def entry_path(self, path: str, cwd: str = "/") -> tuple[str, Path]:
        """Host path of a directory entry itself, its last component not followed (for `rm` of a symlink).

        The parent directory must resolve inside the root; the entry may be a symlink pointing anywhere,
        since unlinking it never touches its target.
        """
        norm = self.normalize(path, cwd)
        found = self._root_of(norm)
        if not found:
            if norm in self.files or norm in self.dirs:
                raise FsError("Read-only file system")
            raise FsError("Permission denied")
        root, _ = found
        if norm == root:
            raise FsError("Permission denied")
        parent = self._host_path(posixpath.dirname(norm))
        return norm, parent / posixpath.basename(norm)

    def is_dir(self, node: Node) -> bool:
        return node.kind == "virtual-dir" or (node.kind == "host" and node.host.is_dir()
                                              and not node.host.is_symlink())

    def listdir(self, node: Node) -> list[str]:
        if node.kind == "virtual-file":
            raise FsError("Not a directory")
        names: set[str] = set()
        if node.kind == "virtual-dir":
            prefix = node.path.rstrip("/") + "/"
            for p in list(self.files) + list(self.dirs) + list(WRITABLE_ROOTS):
                if p.startswith(prefix) and p != node.path:
                    names.add(p[len(prefix):].split("/", 1)[0])
        else:
            if not node.host.is_dir():
                raise FsError("Not a directory")
            names.update(os.listdir(node.host))
        return sorted(names)

    def read(self, node: Node) -> bytes:
        if node.kind == "virtual-file":
            return node.content
        if self.is_dir(node) or node.kind == "virtual-dir":
            raise FsError("Is a directory")
        fd = os.open(node.host, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def stat(self, node: Node) -> tuple[int, int, int]:
        """(mode, size, mtime) as sync STAT reports them (lstat semantics)."""
        if node.kind == "virtual-file":
            return stat_mod.S_IFREG | 0o444, len(node.content), 0
        if node.kind == "virtual-dir":
            return stat_mod.S_IFDIR | 0o755, 4096, 0
        st = os.lstat(node.host)
        return st.st_mode, st.st_size, int(st.st_mtime)

    def glob(self, pattern: str, cwd: str = "/") -> list[str]:
        """Shell-style expansion of `*`, `?`, `[...]` per path component; sorted matches, [] when none."""
        absolute = pattern.startswith("/")
        parts = [p for p in (pattern if absolute else posixpath.join(cwd, pattern)).split("/") if p]
        matches = ["/"]
        for part in parts:
            nxt = []
            for base in matches:
                if any(ch in part for ch in "*?["):
                    try:
                        names = self.listdir(self.resolve(base))
                    except FsError:
                        continue
                    nxt += [posixpath.join(base, n) for n in names
                            if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
                else:
                    nxt.append(posixpath.join(base, part))
            matches = nxt
        out = []
        for m in matches:
            try:
                self.resolve(m)
                out.append(m if absolute else posixpath.relpath(m, cwd))
            except FsError:
                pass
        return sorted(out)
