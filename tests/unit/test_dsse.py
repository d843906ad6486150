"""DSSE envelopes: the PAE and the signature of the DSSE specification's own test vector
(secure-systems-lab/dsse, protocol.md), and envelopes tofu3 signs with every key type."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.ssh_keys import KEY_KINDS, write_key_pair
from tofu3.errors import SignatureError
from tofu3.signing.dsse import Envelope, pae, read_envelopes, sign_envelope, verify_envelope
from tofu3.signing.keys import PublicKey
from tofu3.signing.loader import load_signer

# protocol.md, "Test Vectors".
VECTOR_TYPE = "http://example.com/HelloWorld"
VECTOR_BODY = b"hello world"
VECTOR_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
VECTOR_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
VECTOR_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
VECTOR_ENVELOPE = {
    "payload": "aGVsbG8gd29ybGQ=",
    "payloadType": "http://example.com/HelloWorld",
    "signatures": [
        {
            "sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAH"
            "TVeCUjW2JIZA=="
        }
    ],
}


def _vector_key() -> PublicKey:
    numbers = ec.EllipticCurvePublicNumbers(VECTOR_X, VECTOR_Y, ec.SECP256R1())
    line = numbers.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return PublicKey.from_openssh(line.decode())


def test_pae_matches_the_dsse_test_vector() -> None:
    assert pae(VECTOR_TYPE, VECTOR_BODY) == VECTOR_PAE


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_the_dsse_test_vector_envelope_verifies_with_its_key() -> None:
    envelope = Envelope.from_json(VECTOR_ENVELOPE)

    assert envelope.payload == VECTOR_BODY
    assert verify_envelope(envelope, [_vector_key()]).key_type == "ecdsa-sha2-nistp256"


def test_the_dsse_test_vector_fails_once_its_payload_or_type_changes() -> None:
    key = _vector_key()
    changed_body = dict(VECTOR_ENVELOPE, payload=base64.b64encode(b"hello World").decode())
    changed_type = dict(VECTOR_ENVELOPE, payloadType="http://example.com/HelloWorld2")

    for document in (changed_body, changed_type):
        with pytest.raises(SignatureError):
            verify_envelope(Envelope.from_json(document), [key])


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_tofu3_envelopes_verify_with_the_signing_key_only(tmp_path: Path, kind: str) -> None:
    signer = load_signer(str(write_key_pair(tmp_path, kind, name="signer")))
    stranger = load_signer(str(write_key_pair(tmp_path, "ed25519", name="stranger")))
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1"}).encode()

    envelope = sign_envelope("application/vnd.in-toto+json", payload, signer)
    again = read_envelopes(json.dumps(envelope.to_json()).encode() + b"\n")[0]

    assert envelope.signatures[0][0] == signer.public_key.fingerprint
    assert verify_envelope(again, [stranger.public_key, signer.public_key]) == signer.public_key
    with pytest.raises(SignatureError):
        verify_envelope(again, [stranger.public_key])


def test_url_safe_base64_is_accepted_as_dsse_requires() -> None:
    document = json.loads(json.dumps(VECTOR_ENVELOPE))
    standard = document["signatures"][0]["sig"]
    document["signatures"][0]["sig"] = standard.replace("+", "-").replace("/", "_").rstrip("=")

    assert verify_envelope(Envelope.from_json(document), [_vector_key()])


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"payloadType": "x", "payload": "aGk="},
        {"payloadType": "x", "payload": "aGk=", "signatures": []},
        {"payloadType": "x", "payload": "%%%", "signatures": [{"sig": "aGk="}]},
        {"payloadType": 1, "payload": "aGk=", "signatures": [{"sig": "aGk="}]},
    ],
    ids=["not-an-object", "no-signatures", "empty-signatures", "bad-base64", "bad-type"],
)
def test_malformed_envelopes_are_signature_errors(document: object) -> None:
    with pytest.raises(SignatureError):
        Envelope.from_json(document)
