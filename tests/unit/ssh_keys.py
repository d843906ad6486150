"""SSH key pairs for signing tests, made with cryptography and written as ssh-keygen would
(private key 0600 in OpenSSH format, public key in KEY.pub)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tofu3.signing.keys import PrivateCryptoKey

KEY_KINDS = ("ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa")


def new_private_key(kind: str) -> PrivateCryptoKey:
    """A fresh private key of ``kind``."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    curve = {
        "ecdsa-p256": ec.SECP256R1(),
        "ecdsa-p384": ec.SECP384R1(),
        "ecdsa-p521": ec.SECP521R1(),
    }
    return ec.generate_private_key(curve[kind])


def write_key_pair(
    directory: Path, kind: str, *, passphrase: bytes | None = None, name: str | None = None
) -> Path:
    """Write a new key pair of ``kind``; return the private key's path (KEY.pub beside it)."""
    private = new_private_key(kind)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path = directory / (name or f"id_{kind}")
    data = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.with_name(path.name + ".pub").write_bytes(public + b" test@tofu3\n")
    return path


def public_line(private_path: Path) -> str:
    """``TYPE BASE64`` of the key pair at ``private_path``."""
    fields = private_path.with_name(private_path.name + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def ssh_keygen_verify(
    allowed: Path, identity: str, namespace: str, signature: Path, message: bytes
) -> subprocess.CompletedProcess[bytes]:
    """The real ``ssh-keygen -Y verify`` of ``message`` against ``signature`` for ``identity``
    in ``namespace``, with ``allowed`` as the allowed-signers file; never raises on failure."""
    return subprocess.run(
        [
            *("ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", identity),
            *("-n", namespace, "-s", str(signature)),
        ],
        input=message,
        capture_output=True,
        check=False,
        timeout=30,
    )
