"""known_hosts, read as OpenSSH reads it: which host keys are trusted for a name.

paramiko's HostKeys matches names literally (and hashed ``|1|`` names); OpenSSH also reads
wildcard patterns (``*.example.org``), negations (``!bastion.example.org``) and ``@revoked``
lines. This reader does all four, so a name is trusted here exactly when ssh would trust it,
and a revoked key is never trusted. ``@cert-authority`` lines are skipped: tofu3 does not
check host certificates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import paramiko

from tofu3.digest import ssh_fingerprint
from tofu3.errors import ConfigurationError


def known_host_keys(files: Sequence[Path], name: str) -> list[paramiko.PKey]:
    """The keys ``files`` trust for ``name`` (``host`` or ``[host]:port``), without revoked
    ones. Missing files are skipped, as ssh skips them."""
    trusted: list[paramiko.PKey] = []
    revoked: list[paramiko.PKey] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigurationError(f"cannot read known_hosts file {path}: {exc}") from None
        for marker, names, key in _entries(text.splitlines()):
            if not names_match(names, name):
                continue
            if marker == "@revoked":
                revoked.append(key)
            elif marker == "":
                trusted.append(key)
    return [key for key in trusted if key not in revoked]


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint: ``SHA256:base64-without-padding``."""
    return ssh_fingerprint(key.asbytes())


class RecordingRejectPolicy(paramiko.RejectPolicy):
    """RejectPolicy that remembers the key it refused, so the user can be told how to trust
    it. Never adds a key."""

    def __init__(self) -> None:
        self.offered: paramiko.PKey | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        self.offered = key
        super().missing_host_key(client, hostname, key)


def key_line(key: paramiko.PKey) -> str:
    """``TYPE BASE64``, as an inventory ``host_key`` or a known_hosts line holds it."""
    return f"{key.get_name()} {key.get_base64()}"


def names_match(patterns: Iterable[str], name: str) -> bool:
    """Whether a known_hosts host field (split at commas) covers ``name``: a hashed entry
    or a pattern matches and no negated pattern does (OpenSSH's match_hostname)."""
    lowered = name.lower()
    matched = False
    for pattern in patterns:
        if pattern.startswith("|1|"):
            matched = matched or _hashed_match(pattern, name)
        elif pattern.startswith("!"):
            if _glob_match(pattern[1:].lower(), lowered):
                return False
        elif _glob_match(pattern.lower(), lowered):
            matched = True
    return matched


def _entries(lines: Iterable[str]) -> Iterable[tuple[str, list[str], paramiko.PKey]]:
    """(marker, host patterns, key) of every usable line; broken lines are skipped, as ssh
    skips them."""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.lstrip()
            if marker not in ("@revoked", "@cert-authority"):
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
            continue
        if entry is None or entry.key is None or entry.hostnames is None:
            continue
        yield marker, list(entry.hostnames), entry.key


def _hashed_match(pattern: str, name: str) -> bool:
    # |1|base64(salt)|base64(HMAC-SHA1(salt, name))
    parts = pattern.split("|")
    if len(parts) != 4:
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        expected = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    actual = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)


def _glob_match(pattern: str, name: str) -> bool:
    # OpenSSH patterns know only * and ?; fnmatch would also read [...] as a class.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None
