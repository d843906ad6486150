"""Digest grammar and hashing helpers (pure).

Only digests tofu3 can check are accepted: sha256 (64 lowercase hex) and sha512 (128).
A digest is validated before it goes into a URL, a path or a shell.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import NewType

from tofu3.errors import InvalidDigest

Digest = NewType("Digest", str)

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha512):([0-9a-f]+)")


def parse_digest(value: object) -> Digest:
    """Return ``value`` as a Digest, or raise InvalidDigest saying what is wrong."""
    if not isinstance(value, str):
        raise InvalidDigest(f"digest must be a string, not {type(value).__name__}")
    shown = value[:80] + ("..." if len(value) > 80 else "")
    match = _DIGEST_RE.fullmatch(value)
    if match is None:
        algorithm = value.split(":", 1)[0] if ":" in value else ""
        if algorithm.lower() in _ALGORITHMS and algorithm not in _ALGORITHMS:
            raise InvalidDigest(f"invalid digest {shown!r}: algorithm must be lowercase")
        if algorithm in _ALGORITHMS:
            raise InvalidDigest(
                f"invalid digest {shown!r}: {algorithm} needs {_ALGORITHMS[algorithm]} "
                "lowercase hex digits"
            )
        if ":" not in value:
            raise InvalidDigest(f"invalid digest {shown!r}: expected ALGORITHM:HEX")
        raise InvalidDigest(
            f"invalid digest {shown!r}: unsupported algorithm (only sha256 and sha512)"
        )
    algorithm, hex_part = match.groups()
    if len(hex_part) != _ALGORITHMS[algorithm]:
        raise InvalidDigest(
            f"invalid digest {shown!r}: {algorithm} needs {_ALGORITHMS[algorithm]} hex digits, "
            f"got {len(hex_part)}"
        )
    return Digest(value)


def is_digest(value: object) -> bool:
    """True when ``value`` is a valid digest."""
    try:
        parse_digest(value)
    except InvalidDigest:
        return False
    return True


def algorithm_of(digest: Digest) -> str:
    """The algorithm part of a digest."""
    return digest.split(":", 1)[0]


def hex_of(digest: Digest) -> str:
    """The hex part of a digest."""
    return digest.split(":", 1)[1]


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``data``, computed here from exactly these bytes."""
    if algorithm not in _ALGORITHMS:
        raise InvalidDigest(f"unsupported algorithm {algorithm!r}")
    return Digest(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")


def short(digest: str, length: int = 12) -> str:
    """A digest shortened for tables: ``sha256:1b7e2f76c905``."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:length]}" if hex_part else digest[:length]


def ssh_fingerprint(key_blob: bytes) -> str:
    """OpenSSH's fingerprint of a public key blob: ``SHA256:`` + unpadded base64, as
    ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
