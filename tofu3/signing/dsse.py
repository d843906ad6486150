"""DSSE envelopes (secure-systems-lab/dsse, protocol v1) signed with SSH keys.

    SIGNATURE = Sign(PAE(UTF8(PAYLOAD_TYPE), SERIALIZED_BODY))
    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

Sign() is the key's SSH signature algorithm over the PAE bytes (Ed25519; ECDSA with the
curve's hash, DER-encoded; RSA PKCS#1 v1.5 with SHA-512), and ``keyid`` is the key's
``SHA256:`` fingerprint: a hint to pick the key, never trusted by itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tofu3.errors import SignatureError
from tofu3.signing.keys import PublicKey, Signer, raw_signature, verify_raw

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024


def pae(payload_type: str, body: bytes) -> bytes:
    """The Pre-Authentication Encoding that DSSE signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload, its type, and signatures over both."""

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)

    def to_json(self) -> dict[str, Any]:
        """The recommended JSON form."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": keyid, "sig": base64.b64encode(sig).decode()}
                for keyid, sig in self.signatures
            ],
        }

    @classmethod
    def from_json(cls, document: object) -> Envelope:
        """Parse the JSON form; raise SignatureError if it is not a DSSE envelope."""
        if not isinstance(document, dict):
            raise SignatureError("a DSSE envelope is a JSON object")
        payload_type = document.get("payloadType")
        payload = document.get("payload")
        signatures = document.get("signatures")
        if not isinstance(payload_type, str) or not isinstance(payload, str):
            raise SignatureError("a DSSE envelope needs payloadType and payload strings")
        if not isinstance(signatures, list) or not signatures:
            raise SignatureError("a DSSE envelope needs at least one signature")
        parsed: list[tuple[str, bytes]] = []
        for item in signatures:
            if not isinstance(item, dict) or not isinstance(item.get("sig"), str):
                raise SignatureError("a DSSE signature needs a sig string")
            keyid = item.get("keyid", "")
            parsed.append((keyid if isinstance(keyid, str) else "", _b64(item["sig"])))
        return cls(payload_type, _b64(payload), tuple(parsed))


def _b64(text: str) -> bytes:
    # DSSE: verifiers MUST accept standard and URL-safe base64.
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("invalid base64 in a DSSE envelope") from None


def sign_envelope(payload_type: str, payload: bytes, signer: Signer) -> Envelope:
    """An envelope over ``payload`` signed by ``signer`` (checked before it is returned)."""
    message = pae(payload_type, payload)
    signature = raw_signature(signer.sign(message))
    public = signer.public_key
    verify_raw(public, message, signature)
    return Envelope(payload_type, payload, ((public.fingerprint, signature),))


def verify_envelope(envelope: Envelope, keys: Sequence[PublicKey]) -> PublicKey:
    """The first of ``keys`` that made a good signature over the envelope; raise
    SignatureError when none did."""
    message = pae(envelope.payload_type, envelope.payload)
    for _keyid, signature in envelope.signatures:
        for key in keys:
            try:
                verify_raw(key, message, signature)
            except SignatureError:
                continue
            return key
    raise SignatureError("no signature in the envelope verifies with an allowed key")


def read_envelopes(data: bytes) -> list[Envelope]:
    """The envelopes of a JSON Lines file (one envelope per line, as .intoto.jsonl)."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise SignatureError("the attestation file is too large")
    envelopes = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise SignatureError("an attestation line is not JSON") from None
        envelopes.append(Envelope.from_json(document))
    if not envelopes:
        raise SignatureError("the attestation file holds no envelope")
    return envelopes
