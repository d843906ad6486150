"""OpenSSH's SSHSIG signatures (PROTOCOL.sshsig): what ``ssh-keygen -Y sign`` writes and
``ssh-keygen -Y verify`` checks.

A signature covers the SHA-512 of the message, the namespace and the signature format, so a
report signature can be checked with nothing but OpenSSH:

    ssh-keygen -Y verify -f allowed_signers -I ID -n tofu3-report@tofu3.dev \\
        -s report.json.sig < report.json
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tofu3.errors import SignatureError
from tofu3.signing import wire
from tofu3.signing.keys import PublicKey, Signer, verify_signature

# The namespace of tofu3 report signatures. ssh-keygen namespaces are free-form; a
# domain-qualified name cannot collide with "file", "email" or "git" signatures.
REPORT_NAMESPACE = "tofu3-report@tofu3.dev"
MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
DEFAULT_HASH = "sha512"  # ssh-keygen's default


@dataclass(frozen=True)
class SshSignature:
    """A parsed SSHSIG blob."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes  # the SSH signature blob


def _signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    digest = HASH_ALGORITHMS[hash_algorithm](message).digest()
    return (
        MAGIC
        + wire.string(namespace)
        + wire.string(b"")
        + wire.string(hash_algorithm)
        + wire.string(digest)
    )


def sign(message: bytes, signer: Signer, namespace: str = REPORT_NAMESPACE) -> bytes:
    """The armored SSHSIG signature of ``message`` (checked here before it is returned)."""
    if not namespace:
        raise ValueError("the namespace must not be empty")
    public = signer.public_key
    signature = signer.sign(_signed_data(namespace, DEFAULT_HASH, message))
    blob = (
        MAGIC
        + wire.uint32(VERSION)
        + wire.string(public.blob)
        + wire.string(namespace)
        + wire.string(b"")
        + wire.string(DEFAULT_HASH)
        + wire.string(signature)
    )
    armored = wire.armor(blob)
    verify(message, armored, namespace)
    return armored


def parse(armored: bytes) -> SshSignature:
    """Parse an armored SSHSIG signature; raise SignatureError if it is malformed."""
    reader = wire.Reader(wire.dearmor(armored), "the SSH signature")
    if reader.raw(len(MAGIC)) != MAGIC:
        raise SignatureError("not an SSH signature (no SSHSIG preamble)")
    version = reader.uint32()
    if version != VERSION:
        raise SignatureError(f"unsupported SSH signature version {version}")
    public = PublicKey.from_blob(reader.string())
    namespace = reader.text()
    reader.string()  # reserved: ignored, as PROTOCOL.sshsig says
    hash_algorithm = reader.text()
    signature = reader.string()
    reader.end()
    if hash_algorithm not in HASH_ALGORITHMS:
        raise SignatureError(f"unsupported hash algorithm {hash_algorithm[:32]!r}")
    return SshSignature(public, namespace, hash_algorithm, signature)


def verify(message: bytes, armored: bytes, namespace: str = REPORT_NAMESPACE) -> PublicKey:
    """Check that ``armored`` is a good signature of ``message`` in ``namespace``; return the
    key that made it. Whether that key may sign is for the allowed signers to say."""
    parsed = parse(armored)
    if parsed.namespace != namespace:
        raise SignatureError(
            f"the signature is for namespace {parsed.namespace[:64]!r}, not {namespace!r}"
        )
    verify_signature(
        parsed.public_key,
        _signed_data(parsed.namespace, parsed.hash_algorithm, message),
        parsed.signature,
    )
    return parsed.public_key
