"""ADB RSA authentication, device side.

The client signs the device's 20-byte TOKEN with RSA PKCS#1 v1.5 as if the token were a SHA-1 digest
(adbd verifies with `RSA_verify(NID_sha1, token, ...)`), and sends its public key in Android's
`RSAPublicKey` struct (base64, then " user@host"): len (words), n0inv, n[len] and rr[len] little-endian,
exponent.
"""

from __future__ import annotations

import base64
import hmac
import struct
from dataclasses import dataclass

# DER DigestInfo prefix of a SHA-1 digest (RFC 8017 section 9.2).
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


@dataclass(frozen=True)
class AdbPublicKey:
    modulus: int
    exponent: int
    comment: str = ""

    @property
    def size_bytes(self) -> int:
        return (self.modulus.bit_length() + 7) // 8


def parse_adb_public_key(text: bytes | str) -> AdbPublicKey:
    """Parse the `adbkey.pub` / RSAPUBLICKEY payload format; ValueError when malformed."""
    if isinstance(text, bytes):
        text = text.rstrip(b"\0").decode("ascii", errors="replace")
    parts = text.strip().split(None, 1)
    if not parts:
        raise ValueError("empty public key")
    try:
        blob = base64.b64decode(parts[0], validate=True)
    except ValueError as err:
        raise ValueError(f"public key is not base64: {err}") from None
    if len(blob) < 8:
        raise ValueError("public key too short")
    words, _n0inv = struct.unpack_from("<II", blob, 0)
    size = 4 * words
    if words == 0 or len(blob) != 8 + 2 * size + 4:
        raise ValueError(f"public key has {len(blob)} bytes, expected {8 + 2 * size + 4} for {words} words")
    modulus = int.from_bytes(blob[8:8 + size], "little")
    exponent = struct.unpack_from("<I", blob, 8 + 2 * size)[0]
    return AdbPublicKey(modulus=modulus, exponent=exponent, comment=parts[1] if len(parts) > 1 else "")


def verify_token_signature(key: AdbPublicKey, token: bytes, signature: bytes) -> bool:
    """True when `signature` is the PKCS#1 v1.5 SHA-1 signature of `token` (taken as the digest)."""
    k = key.size_bytes
    if len(signature) != k:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.modulus:
        return False
    encoded = pow(value, key.exponent, key.modulus).to_bytes(k, "big")
    digest_info = SHA1_DIGEST_INFO + token
    padding = k - 3 - len(digest_info)
    if padding < 8:
        return False
    expected = b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)
