"""The ADB RSA key this machine authenticates with.

Reuse the key the `adb` client made (`~/.android/adbkey`, so a phone that already trusts this computer
trusts us too); otherwise create one with `adb_shell.auth.keygen` on first use. The private key is
written into a file created with mode 0600 (never world-readable, not even for an instant), the public
key (`adbkey.pub`, the form the phone shows in its RSA prompt) beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mnas.errors import UserError

ENV_KEY = "MNAS_ADB_KEY"  # override the key path (tests, CI)


def default_key_path() -> Path:
    override = os.environ.get(ENV_KEY)
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("ANDROID_USER_HOME", Path.home() / ".android")).expanduser() / "adbkey"


def _create_private(path: Path) -> None:
    # O_EXCL + mode 0600: the file exists with private permissions before a single key byte is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def ensure_key(path: Path | None = None) -> Path:
    """Path of a usable private key (its `.pub` beside it), creating the pair when absent."""
    from adb_shell.auth.keygen import keygen, write_public_keyfile

    key = Path(path) if path is not None else default_key_path()
    pub = Path(f"{key}.pub")
    try:
        if key.exists():
            if not pub.exists():
                write_public_keyfile(str(key), str(pub))
            return key
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_private(key)
        try:
            keygen(str(key))  # opens the existing 0600 file with 'wb': permissions are kept
        except BaseException:
            key.unlink(missing_ok=True)
            raise
        os.chmod(key, 0o600)
        return key
    except OSError as err:
        raise UserError(f"cannot create the ADB key {key}: {err.strerror or err}") from None


def load_signer(path: Path | None = None):
    """An adb-shell signer for the key at `path` (created if needed)."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    key = ensure_key(path)
    try:
        return PythonRSASigner.FromRSAKeyPath(str(key))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the ADB key {key}: {err}") from None
