"""The emulated phone's `sh`: a small, sandboxed command set over `SandboxFS`.

The command line is tokenised by a quote-aware tokenizer (single/double quotes, backslashes, `;`, `&&`,
`||`, redirections to /dev/null or a sandbox file, `2>&1`). Only `$?` is expanded; command substitution
(`$(...)`, backticks), other expansions, pipes and background jobs are refused with an error. Every
command is implemented here in Python; nothing is ever handed to a host shell, and the only "program" it
can start is the emulated `benchmark_model` (which runs LiteRT in-process).
"""

from __future__ import annotations

import hashlib
import posixpath
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from devices.emulator import benchmark_tool
from devices.emulator.phone_profile import PhoneProfile
from devices.emulator.sandbox_fs import FsError, Node, SandboxFS

SH = "/system/bin/sh"
OPERATORS = (";", "&&", "||", "|", "&")
REDIRECTS = (">", ">>", "<", "2>", "2>>", "2>&1", ">&2")
Write = Callable[[bytes], None]
STATUS_MARK = "\0"  # stands for `$?` inside a word until the command runs


class ShellSyntaxError(Exception):
    pass


@dataclass
class Word:
    text: str = ""
    pattern: str = ""  # glob pattern: quoted glob characters are escaped as [c]
    globbing: bool = False
    quoted: bool = False


def tokenize(line: str) -> list[Word | str]:
    """Words and operator strings. Raises ShellSyntaxError for what the emulated shell refuses."""
    if "\0" in line:
        raise ShellSyntaxError("NUL byte in command line")
    tokens: list[Word | str] = []
    word: Word | None = None
    i, n = 0, len(line)

    def add(ch: str, quoted: bool) -> None:
        nonlocal word
        word = word or Word()
        word.text += ch
        if quoted:
            word.quoted = True
        if ch in "*?[" and not quoted:
            word.globbing = True
            word.pattern += ch
        else:
            word.pattern += f"[{ch}]" if ch in "*?[]" else ch

    def end_word() -> None:
        nonlocal word
        if word is not None:
            tokens.append(word)
            word = None

    def dollar(j: int) -> int:
        """Handle `$` at line[j]; returns the index after it."""
        nxt = line[j + 1] if j + 1 < n else ""
        if nxt == "?":
            add(STATUS_MARK, True)  # replaced by the status when the command runs, not when parsed
            return j + 2
        if nxt == "(":
            raise ShellSyntaxError("command substitution $(...) is not supported by the emulated shell")
        if nxt == "{" or nxt.isalnum() or nxt in "_$!#@*-":
            raise ShellSyntaxError("only $? is expanded by the emulated shell")
        add("$", True)
        return j + 1

    while i < n:
        ch = line[i]
        if ch == "`":
            raise ShellSyntaxError("command substitution `...` is not supported by the emulated shell")
        if ch in " \t\n":
            end_word()
            i += 1
        elif ch == "#" and word is None:
            break
        elif ch == "\\":
            if i + 1 < n:
                add(line[i + 1], True)
            i += 2
        elif ch == "'":
            close = line.find("'", i + 1)
            if close < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word = word or Word()
            word.quoted = True
            for c in line[i + 1:close]:
                add(c, True)
            i = close + 1
        elif ch == '"':
            word = word or Word()
            word.quoted = True
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "`":
                    raise ShellSyntaxError("command substitution `...` is not supported by the emulated shell")
                if c == "$":
                    i = dollar(i)
                    continue
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`\n':
                    add(line[i + 1], True)
                    i += 2
                    continue
                add(c, True)
                i += 1
        elif ch == "$":
            i = dollar(i)
        elif ch in "()":
            raise ShellSyntaxError(f"syntax error: '{ch}' unexpected (subshells are not supported)")
        elif ch in ";&|<>":
            if ch == ">" and word is not None and word.text == "2" and not word.quoted:
                word = None
                op = "2>"
                i += 1
                if line.startswith(">", i):
                    op, i = "2>>", i + 1
                elif line.startswith("&1", i):
                    op, i = "2>&1", i + 2
                tokens.append(op)
                continue
            end_word()
            for op in ("&&", "||", ">>", ">&2", ";", "&", "|", ">", "<"):
                if line.startswith(op, i):
                    tokens.append(op)
                    i += len(op)
                    break
        else:
            add(ch, False)
            i += 1
    end_word()
    return tokens


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word | None]] = field(default_factory=list)


def parse(tokens: list[Word | str]) -> list[tuple[str, Command]]:
    """[(connector before the command, command)]; the first connector is ";"."""
    out: list[tuple[str, Command]] = []
    connector, cmd = ";", Command()
    it = iter(range(len(tokens)))
    for i in it:
        tok = tokens[i]
        if isinstance(tok, Word):
            cmd.words.append(tok)
        elif tok in ("|", "&"):
            raise ShellSyntaxError("pipes and background jobs are not supported by the emulated shell")
        elif tok in (";", "&&", "||"):
            if not cmd.words:
                if tok == ";" and not cmd.redirects:
                    continue
                raise ShellSyntaxError(f"syntax error: '{tok}' unexpected")
            out.append((connector, cmd))
            connector, cmd = tok, Command()
        elif tok in ("2>&1", ">&2"):
            cmd.redirects.append((tok, None))
        else:
            target = tokens[i + 1] if i + 1 < len(tokens) else None
            if not isinstance(target, Word):
                raise ShellSyntaxError(f"syntax error: missing file after '{tok}'")
            next(it)
            cmd.redirects.append((tok, target))
    if cmd.words or cmd.redirects:
        out.append((connector, cmd))
    elif connector in ("&&", "||"):
        raise ShellSyntaxError(f"syntax error: '{connector}' at end of line")
    return out


class Shell:
    """One shell session (one `shell:` stream); `cwd` persists across `cd` within it."""

    def __init__(self, fs: SandboxFS, profile: PhoneProfile) -> None:
        self.fs = fs
        self.profile = profile
        self.cwd = "/"
        self.status = 0
        self.props = profile.properties()
        self.affinity_mask: int | None = None

    # --- driver ------------------------------------------------------------------------------------

    def run_line(self, line: str, write: Write) -> int:
        try:
            commands = parse(tokenize(line))
        except ShellSyntaxError as err:
            write(f"{SH}: {err}\n".encode())
            self.status = 2
            return self.status
        for connector, cmd in commands:
            if (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0):
                continue
            self.status = self._run_command(cmd, write)
        return self.status

    def _run_command(self, cmd: Command, write: Write) -> int:
        out = err = write
        sink: list[bytes] = []
        target_path: tuple[Path, bool] | None = None
        for op, target in cmd.redirects:
            if op == "2>&1":
                err = out
                continue
            if op == ">&2":
                out = err
                continue
            name = self._expand([target])[0]
            if op == "<":
                continue  # stdin is not used by any emulated command
            if name == "/dev/null":
                if op.startswith("2"):
                    err = lambda data: None  # noqa: E731
                else:
                    out = lambda data: None  # noqa: E731
                continue
            try:
                _, host = self.fs.writable_path(name, self.cwd)
            except FsError as e:
                write(f"{SH}: can't create {name}: {e}\n".encode())
                return 1
            if op.startswith("2"):
                err = sink.append
            else:
                out = sink.append
            target_path = (host, op.endswith(">>"))
        argv = self._expand(cmd.words)
        status = self._dispatch(argv, out, err) if argv else 0
        if target_path is not None:
            host, append = target_path
            with open(host, "ab" if append else "wb") as f:
                f.write(b"".join(sink))
        return status

    def _expand(self, words: list[Word]) -> list[str]:
        argv: list[str] = []
        status = str(self.status)
        for w in words:
            text, pattern = w.text.replace(STATUS_MARK, status), w.pattern.replace(STATUS_MARK, status)
            if w.globbing:
                matches = self.fs.glob(pattern, self.cwd)
                argv.extend(matches if matches else [text])
            else:
                argv.append(text)
        return argv

    def _dispatch(self, argv: list[str], out: Write, err: Write) -> int:
        name, args = argv[0], argv[1:]
        builtin = getattr(self, f"cmd_{name.replace('[', 'test_bracket')}", None) if name.isidentifier() \
            or name == "[" else None
        if builtin is not None:
            try:
                return builtin(args, out, err)
            except FsError as e:
                err(f"{name}: {e}\n".encode())
                return 1
        if "/" in name:
            return self._exec_path(name, args, out, err)
        err(f"{SH}: {name}: inaccessible or not found\n".encode())
        return 127

    # --- programs ----------------------------------------------------------------------------------

    def _exec_path(self, path: str, args: list[str], out: Write, err: Write) -> int:
        try:
            node = self.fs.resolve(path, self.cwd)
        except FsError:
            err(f"{SH}: {path}: inaccessible or not found\n".encode())
            return 127
        if self.fs.is_dir(node):
            err(f"{SH}: {path}: can't execute: Is a directory\n".encode())
            return 126
        mode = self.fs.stat(node)[0]
        if node.kind != "host" or not mode & 0o111 or not stat_mod.S_ISREG(mode):
            err(f"{SH}: {path}: can't execute: Permission denied\n".encode())
            return 126
        if not posixpath.basename(node.path).startswith("benchmark_model"):
            err(f"{SH}: {path}: the emulated phone only runs benchmark_model binaries\n".encode())
            return 126
        return self._benchmark(args, out)

    def _benchmark(self, args: list[str], out: Write) -> int:
        def resolve_graph(device_path: str) -> Path:
            try:
                node = self.fs.resolve(device_path, self.cwd)
            except FsError as e:
                raise OSError(str(e)) from None
            if node.kind != "host" or self.fs.is_dir(node):
                raise OSError("not a regular file")
            return node.host

        cores = bin(self.affinity_mask).count("1") if self.affinity_mask else self.profile.cores
        return benchmark_tool.run(args, resolve_graph, lambda text: out(text.encode()), cores=cores)

    # --- builtins (toybox-like messages) ----------------------------------------------------------

    def cmd_true(self, args, out, err) -> int:
        return 0

    def cmd_false(self, args, out, err) -> int:
        return 1

    def cmd_echo(self, args, out, err) -> int:
        newline = True
        if args and args[0] == "-n":
            newline, args = False, args[1:]
        out((" ".join(args) + ("\n" if newline else "")).encode())
        return 0

    def cmd_pwd(self, args, out, err) -> int:
        out(f"{self.cwd}\n".encode())
        return 0

    def cmd_cd(self, args, out, err) -> int:
        target = args[0] if args else "/"
        node = self.fs.resolve(target, self.cwd)
        if not self.fs.is_dir(node):
            raise FsError("Not a directory")
        self.cwd = node.path
        return 0

    def cmd_id(self, args, out, err) -> int:
        out(b"uid=2000(shell) gid=2000(shell) groups=2000(shell) context=u:r:shell:s0\n")
        return 0

    def cmd_whoami(self, args, out, err) -> int:
        out(b"shell\n")
        return 0

    def cmd_uname(self, args, out, err) -> int:
        if "-a" in args:
            out(b"Linux localhost 5.10.0-mnas-emulated #1 SMP PREEMPT aarch64 Toybox\n")
        elif "-m" in args:
            out(b"aarch64\n")
        else:
            out(b"Linux\n")
        return 0

    def cmd_nproc(self, args, out, err) -> int:
        out(f"{self.profile.cores}\n".encode())
        return 0

    def cmd_sleep(self, args, out, err) -> int:
        try:
            time.sleep(min(float(args[0]), 60.0) if args else 0)
        except ValueError:
            err(f"sleep: invalid number '{args[0]}'\n".encode())
            return 1
        return 0

    def cmd_getprop(self, args, out, err) -> int:
        if not args:
            out("".join(f"[{k}]: [{v}]\n" for k, v in self.props.items()).encode())
        else:
            out(f"{self.props.get(args[0], args[1] if len(args) > 1 else '')}\n".encode())
        return 0

    def cmd_cat(self, args, out, err) -> int:
        status = 0
        for path in args:
            try:
                out(self.fs.read(self.fs.resolve(path, self.cwd)))
            except FsError as e:
                err(f"cat: {path}: {e}\n".encode())
                status = 1
        return status

    def _hash(self, algo: str, args, out, err) -> int:
        status = 0
        for path in args:
            try:
                digest = hashlib.new(algo, self.fs.read(self.fs.resolve(path, self.cwd))).hexdigest()
                out(f"{digest}  {path}\n".encode())
            except FsError as e:
                err(f"{algo}sum: {path}: {e}\n".encode())
                status = 1
        return status

    def cmd_sha256sum(self, args, out, err) -> int:
        return self._hash("sha256", args, out, err)

    def cmd_sha1sum(self, args, out, err) -> int:
        return self._hash("sha1", args, out, err)

    def cmd_md5sum(self, args, out, err) -> int:
        return self._hash("md5", args, out, err)

    def cmd_ls(self, args, out, err) -> int:
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        paths = [a for a in args if not a.startswith("-") or a == "-"] or ["."]
        status = 0
        for path in paths:
            try:
                node = self.fs.resolve(path, self.cwd)
            except FsError as e:
                err(f"ls: {path}: {e}\n".encode())
                status = 1
                continue
            if self.fs.is_dir(node) and "d" not in flags:
                names = [n for n in self.fs.listdir(node) if "a" in flags or not n.startswith(".")]
                if len(paths) > 1:
                    out(f"{path}:\n".encode())
                for n in names:
                    try:
                        child = self.fs.resolve(posixpath.join(node.path, n))
                    except FsError:
                        # e.g. a symlink leading out of the sandbox: listed by name, never followed
                        out(f"{'l?????????  ? ?     ?        ?                ' if 'l' in flags else ''}{n}\n".encode())
                        continue
                    out(self._ls_line(child, n, "l" in flags))
            else:
                out(self._ls_line(node, path, "l" in flags))
        return status

    def _ls_line(self, node: Node, shown: str, long: bool) -> bytes:
        if not long:
            return f"{shown}\n".encode()
        mode, size, mtime = self.fs.stat(node)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
        owner = "shell" if node.kind == "host" else "root"
        return f"{stat_mod.filemode(mode)} 1 {owner} {owner} {size:>8} {when} {shown}\n".encode()

    def cmd_mkdir(self, args, out, err) -> int:
        parents = any(a in ("-p", "--parents") for a in args)
        status = 0
        for path in (a for a in args if not a.startswith("-")):
            try:
                _, host = self.fs.writable_path(path, self.cwd)
                host.mkdir(parents=parents, exist_ok=parents)
            except FileExistsError:
                err(f"mkdir: '{path}': File exists\n".encode())
                status = 1
            except FileNotFoundError:
                err(f"mkdir: '{path}': No such file or directory\n".encode())
                status = 1
            except FsError as e:
                if parents and str(e) == "Read-only file system":
                    continue  # an existing virtual directory: mkdir -p succeeds
                err(f"mkdir: '{path}': {e}\n".encode())
                status = 1
        return status

    def cmd_touch(self, args, out, err) -> int:
        status = 0
        for path in (a for a in args if not a.startswith("-")):
            try:
                _, host = self.fs.writable_path(path, self.cwd)
                host.touch()
            except FsError as e:
                err(f"touch: '{path}': {e}\n".encode())
                status = 1
            except OSError as e:
                err(f"touch: '{path}': {e.strerror}\n".encode())
                status = 1
        return status

    def cmd_rm(self, args, out, err) -> int:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        force, recursive = "f" in flags, "r" in flags or "R" in flags
        status = 0
        for path in (a for a in args if not a.startswith("-")):
            try:
                norm, host = self.fs.entry_path(path, self.cwd)
                if not host.exists() and not host.is_symlink():
                    raise FileNotFoundError
                if host.is_dir() and not host.is_symlink():
                    if not recursive:
                        err(f"rm: {path}: is a directory\n".encode())
                        status = 1
                        continue
                    _rmtree_inside(host)
                else:
                    host.unlink()
            except FileNotFoundError:
                if not force:
                    err(f"rm: {path}: No such file or directory\n".encode())
                    status = 1
            except FsError as e:
                if not (force and str(e) == "No such file or directory"):
                    err(f"rm: {path}: {e}\n".encode())
                    status = 1
        return status

    def cmd_chmod(self, args, out, err) -> int:
        args = [a for a in args if a not in ("-R",)]
        if len(args) < 2:
            err(b"chmod: Need 2 arguments\n")
            return 1
        spec, paths = args[0], args[1:]
        status = 0
        for path in paths:
            try:
                _, host = self.fs.writable_path(path, self.cwd)
                if not host.exists():
                    raise FsError("No such file or directory")
                host.chmod(_chmod_mode(spec, host.stat().st_mode & 0o7777))
            except ValueError:
                err(f"chmod: bad mode '{spec}'\n".encode())
                return 1
            except FsError as e:
                err(f"chmod: {path}: {e}\n".encode())
                status = 1
        return status

    def cmd_taskset(self, args, out, err) -> int:
        if args and args[0] == "-p":
            err(b"taskset: -p is not supported by the emulated shell\n")
            return 1
        if len(args) < 2:
            err(b"usage: taskset [-ap] [mask] [PID | cmd [args...]]\n")
            return 1
        try:
            mask = int(args[0], 16)
        except ValueError:
            err(f"taskset: bad mask '{args[0]}'\n".encode())
            return 1
        if mask == 0 or mask >> self.profile.cores:
            err(b"taskset: sched_setaffinity: Invalid argument\n")
            return 1
        previous, self.affinity_mask = self.affinity_mask, mask
        try:
            return self._dispatch(args[1:], out, err)
        finally:
            self.affinity_mask = previous

    def cmd_test(self, args, out, err) -> int:
        return _test(self, args)

    def cmd_test_bracket(self, args, out, err) -> int:
        if not args or args[-1] != "]":
            err(b"[: missing ]\n")
            return 2
        return _test(self, args[:-1])


def _test(shell: Shell, args: list[str]) -> int:
    if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-x", "-s", "-r"):
        try:
            node = shell.fs.resolve(args[1], shell.cwd)
        except FsError:
            return 1
        mode, size, _ = shell.fs.stat(node)
        ok = {"-e": True, "-r": True, "-f": stat_mod.S_ISREG(mode), "-d": stat_mod.S_ISDIR(mode),
              "-x": bool(mode & 0o111) and node.kind == "host", "-s": size > 0}[args[0]]
        return 0 if ok else 1
    if len(args) == 3 and args[1] in ("=", "!="):
        return 0 if (args[0] == args[2]) == (args[1] == "=") else 1
    if len(args) == 1:
        return 0 if args[0] else 1
    return 2


def _chmod_mode(spec: str, current: int) -> int:
    if spec and all(c in "01234567" for c in spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        who = ""
        while clause and clause[0] in "ugoa":
            who, clause = who + clause[0], clause[1:]
        if not clause or clause[0] not in "+-=" or any(c not in "rwx" for c in clause[1:]):
            raise ValueError(spec)
        op, perms = clause[0], clause[1:]
        bits = sum({"r": 4, "w": 2, "x": 1}[c] for c in perms)
        mask = 0
        for w in (who or "a"):
            for shift in {"u": [6], "g": [3], "o": [0], "a": [6, 3, 0]}[w]:
                mask |= 7 << shift
        value = sum(bits << s for s in (6, 3, 0)) & mask
        mode = mode | value if op == "+" else mode & ~value if op == "-" else (mode & ~mask) | value
    return mode


def _rmtree_inside(path: Path) -> None:
    """Remove a sandbox directory tree without following symlinks (they are unlinked, not entered)."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            _rmtree_inside(child)
        else:
            child.unlink()
    path.rmdir()
