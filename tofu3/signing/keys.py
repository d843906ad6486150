"""SSH public keys, signers and the signature algorithms tofu3 accepts.

Accepted: ssh-ed25519; ecdsa-sha2-nistp256/384/521; ssh-rsa keys of at least 2048 bits signing
with rsa-sha2-512 (verification also accepts rsa-sha2-256, as ssh-keygen does; never the
SHA-1 ``ssh-rsa`` signature). FIDO (sk-) keys and certificates are refused.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from tofu3.digest import ssh_fingerprint
from tofu3.errors import SignatureError, SigningKeyError
from tofu3.signing import wire

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
RSA_SHA512 = "rsa-sha2-512"
RSA_SHA256 = "rsa-sha2-256"
MIN_RSA_BITS = 2048
_ECDSA_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
    "ecdsa-sha2-nistp521": hashes.SHA512,
}
KEY_TYPES = frozenset({ED25519, RSA, *_ECDSA_HASHES})

PublicCryptoKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateCryptoKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class PublicKey:
    """An SSH public key: its wire blob, its type, and the cryptography key behind it."""

    key_type: str
    blob: bytes
    crypto: PublicCryptoKey

    @classmethod
    def from_blob(cls, blob: bytes) -> PublicKey:
        """Parse an SSH public key blob; raise SignatureError if it is not a usable key."""
        key_type = wire.Reader(blob, "the public key").text()
        if key_type not in KEY_TYPES:
            raise SignatureError(f"unsupported key type {key_type[:64]!r}")
        line = f"{key_type} {base64.b64encode(blob).decode()}".encode()
        try:
            crypto = serialization.load_ssh_public_key(line)
        except (ValueError, UnsupportedAlgorithm):
            raise SignatureError(f"malformed {key_type} public key") from None
        if not isinstance(crypto, PublicCryptoKey):
            raise SignatureError(f"unsupported key type {key_type!r}")
        # Only the canonical encoding is accepted, so two blobs of one key cannot differ.
        canonical = crypto.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        if canonical.split()[1] != line.split()[1]:
            raise SignatureError(f"{key_type} public key is not canonically encoded")
        if isinstance(crypto, rsa.RSAPublicKey) and crypto.key_size < MIN_RSA_BITS:
            raise SignatureError(f"RSA key of {crypto.key_size} bits (at least {MIN_RSA_BITS})")
        return cls(key_type, blob, crypto)

    @classmethod
    def from_openssh(cls, text: str) -> PublicKey:
        """Parse ``TYPE BASE64 [COMMENT]`` (a .pub file's line)."""
        fields = text.split()
        if len(fields) < 2:
            raise SignatureError("expected an OpenSSH public key: TYPE BASE64 [COMMENT]")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except ValueError:
            raise SignatureError("the public key is not valid base64") from None
        key = cls.from_blob(blob)
        if key.key_type != fields[0]:
            raise SignatureError(f"key type {fields[0]!r} does not match the key's own")
        return key

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
        return ssh_fingerprint(self.blob)

    @property
    def label(self) -> str:
        """``ED25519``, ``ECDSA`` or ``RSA``."""
        return {ED25519: "ED25519", RSA: "RSA"}.get(self.key_type, "ECDSA")

    def openssh(self) -> str:
        """``TYPE BASE64``, as in a .pub file or an allowed_signers line."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode()}"


class Signer(Protocol):
    """Something that holds a private key and makes SSH signatures with it."""

    @property
    def public_key(self) -> PublicKey:
        """The public half."""

    def sign(self, data: bytes) -> bytes:
        """An SSH signature blob (``string algorithm, string signature``) over ``data``."""

    def close(self) -> None:
        """Let go of the key (or of the agent connection)."""


def _hash_for(key: PublicKey) -> hashes.HashAlgorithm:
    return _ECDSA_HASHES[key.key_type]()


def verify_signature(key: PublicKey, data: bytes, signature_blob: bytes) -> None:
    """Check an SSH signature blob over ``data`` with ``key``; raise SignatureError if bad."""
    reader = wire.Reader(signature_blob, "the signature")
    algorithm = reader.text()
    signature = reader.string()
    reader.end()
    crypto = key.crypto
    try:
        if isinstance(crypto, ed25519.Ed25519PublicKey) and algorithm == ED25519:
            crypto.verify(signature, data)
        elif isinstance(crypto, ec.EllipticCurvePublicKey) and algorithm == key.key_type:
            numbers = wire.Reader(signature, "the ECDSA signature")
            r, s = numbers.mpint(), numbers.mpint()
            numbers.end()
            crypto.verify(encode_dss_signature(r, s), data, ec.ECDSA(_hash_for(key)))
        elif isinstance(crypto, rsa.RSAPublicKey) and algorithm in (RSA_SHA512, RSA_SHA256):
            digest = hashes.SHA512() if algorithm == RSA_SHA512 else hashes.SHA256()
            crypto.verify(signature, data, padding.PKCS1v15(), digest)
        else:
            raise SignatureError(
                f"a {key.key_type} key cannot make a {algorithm[:64]!r} signature here"
            )
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None


def raw_signature(signature_blob: bytes) -> bytes:
    """The signature inside an SSH signature blob, as DSSE carries it: Ed25519's 64 bytes,
    ECDSA's DER, RSA's PKCS#1 v1.5 bytes."""
    reader = wire.Reader(signature_blob, "the signature")
    algorithm = reader.text()
    signature = reader.string()
    reader.end()
    if algorithm in _ECDSA_HASHES:
        numbers = wire.Reader(signature, "the ECDSA signature")
        r, s = numbers.mpint(), numbers.mpint()
        numbers.end()
        return encode_dss_signature(r, s)
    return signature


def verify_raw(key: PublicKey, data: bytes, signature: bytes) -> None:
    """Check a raw signature (see raw_signature) over ``data``. ECDSA may also be given as
    the fixed-size concatenation of r and s (as in DSSE's own test vector)."""
    crypto = key.crypto
    try:
        if isinstance(crypto, ed25519.Ed25519PublicKey):
            crypto.verify(signature, data)
        elif isinstance(crypto, ec.EllipticCurvePublicKey):
            crypto.verify(_ecdsa_der(crypto, signature), data, ec.ECDSA(_hash_for(key)))
        else:
            crypto.verify(signature, data, padding.PKCS1v15(), hashes.SHA512())
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None


def _ecdsa_der(crypto: ec.EllipticCurvePublicKey, signature: bytes) -> bytes:
    size = (crypto.curve.key_size + 7) // 8
    try:
        decode_dss_signature(signature)
        return signature
    except ValueError:
        if len(signature) != 2 * size:
            raise SignatureError("the ECDSA signature is neither DER nor r||s") from None
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        return encode_dss_signature(r, s)


class FileSigner:
    """A private key loaded from a file; signs in this process."""

    def __init__(self, private: PrivateCryptoKey) -> None:
        self._private = private
        line = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        try:
            self._public = PublicKey.from_openssh(line.decode())
        except SignatureError as exc:
            raise SigningKeyError(f"cannot sign with this key: {exc}") from None

    @property
    def public_key(self) -> PublicKey:
        """The public half."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """An SSH signature blob over ``data``."""
        private = self._private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return wire.string(ED25519) + wire.string(private.sign(data))
        if isinstance(private, ec.EllipticCurvePrivateKey):
            der = private.sign(data, ec.ECDSA(_hash_for(self._public)))
            r, s = decode_dss_signature(der)
            return wire.string(self._public.key_type) + wire.string(wire.mpint(r) + wire.mpint(s))
        signature = private.sign(data, padding.PKCS1v15(), hashes.SHA512())
        return wire.string(RSA_SHA512) + wire.string(signature)

    def close(self) -> None:
        """Nothing to release: the key is garbage once unreferenced."""


def private_key_from_bytes(
    data: bytes, passphrase: Callable[[], bytes] | None, what: str
) -> FileSigner:
    """Load an OpenSSH (or PEM) private key; ``passphrase`` is asked only if it is encrypted."""
    load = (
        serialization.load_ssh_private_key
        if b"BEGIN OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    try:
        private = load(data, None)
    except TypeError:
        # cryptography says "encrypted, and no password given" with a TypeError.
        if passphrase is None:
            raise SigningKeyError(f"{what} is encrypted and no passphrase is available") from None
        try:
            private = load(data, passphrase())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SigningKeyError(f"cannot load {what}: wrong passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"cannot load {what}: {exc}") from None
    if not isinstance(private, PrivateCryptoKey):
        raise SigningKeyError(f"{what}: only ed25519, ecdsa and rsa keys can sign")
    return FileSigner(private)
