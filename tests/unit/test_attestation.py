"""The attestation: an in-toto Statement v1 with a SLSA Verification Summary predicate
(verifier.id, timeVerified, resourceUri, policy.uri, verificationResult, verifiedLevels),
the verified digests as subjects, per-vantage results in URI-named extension fields, in a
DSSE envelope whose signature verifies with the sign-off key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.bottle_verdicts import (
    BOTTLE,
    EVIL,
    INDEX,
    WHEN,
    honest,
    nothing_seen,
    one_vantage_served_another_layer,
)
from tests.unit.ssh_keys import write_key_pair
from tofu3.digest import hex_of
from tofu3.errors import SignatureError
from tofu3.report.attestation import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    VANTAGES_FIELD,
    VSA_PREDICATE_TYPE,
    NothingToAttest,
    serialize,
    statement,
)
from tofu3.report.document import build_document
from tofu3.signing.dsse import read_envelopes, sign_envelope, verify_envelope
from tofu3.signing.loader import load_signer
from tofu3.verdict import Verdict


def _statement(verdict: Verdict) -> dict[str, Any]:
    document = json.loads(json.dumps(build_document(verdict, generated_at=WHEN)))
    return statement(document, report=("report.json", "ab" * 32))


def test_an_accepted_verification_is_a_passed_vsa_at_tofu3_3of3() -> None:
    made = _statement(honest())
    predicate = made["predicate"]

    assert made["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert made["predicateType"] == VSA_PREDICATE_TYPE
    assert predicate["verifier"]["id"].startswith("https://")
    assert predicate["timeVerified"] == "2026-11-27T03:00:23Z"
    assert predicate["resourceUri"] == "oci://ghcr.io/homebrew/core/wget:1.24.5"
    assert predicate["policy"]["uri"].startswith("https://")
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["TOFU3_3OF3"]
    assert {"name": "ghcr.io/homebrew/core/wget", "digest": {"sha256": hex_of(INDEX)}} in made[
        "subject"
    ]
    assert {"sha256": hex_of(BOTTLE)} in [s["digest"] for s in made["subject"]]
    vantages = predicate[VANTAGES_FIELD]
    assert VANTAGES_FIELD.startswith("https://")
    assert [(v["name"], v["ok"], v["reference_digest"]) for v in vantages] == [
        ("ams", True, INDEX),
        ("sfo", True, INDEX),
        ("sgp", True, INDEX),
    ]
    extensions = [k for k in predicate if ":" in k]
    assert extensions and all(k.startswith("https://") for k in extensions)


def test_a_rejected_verification_is_a_failed_vsa_naming_the_findings() -> None:
    made = _statement(one_vantage_served_another_layer())
    predicate = made["predicate"]

    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]
    findings = predicate["https://tofu3.dev/vsa/findings/v1"]
    assert ("critical", "DIGEST_MISMATCH", "sgp") in [
        (f["severity"], f["code"], f["vantage"]) for f in findings
    ]
    assert {"sha256": hex_of(EVIL)} not in [s["digest"] for s in made["subject"]]


def test_nothing_observed_is_nothing_to_attest() -> None:
    document = json.loads(json.dumps(build_document(nothing_seen(), generated_at=WHEN)))

    with pytest.raises(NothingToAttest):
        statement(document)


def test_the_signed_envelope_verifies_and_carries_the_statement(tmp_path: Path) -> None:
    signer = load_signer(str(write_key_pair(tmp_path, "ed25519")))
    payload = serialize(_statement(honest()))

    line = json.dumps(sign_envelope(PAYLOAD_TYPE, payload, signer).to_json())
    envelope = read_envelopes(line.encode())[0]

    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert verify_envelope(envelope, [signer.public_key]) == signer.public_key
    assert json.loads(envelope.payload)["predicate"]["verificationResult"] == "PASSED"
    document = json.loads(line)
    forged = json.loads(base64.b64decode(document["payload"]))
    forged["predicate"]["verificationResult"] = "PASSED"
    forged["predicate"]["verifiedLevels"] = ["TOFU3_4OF3"]
    document["payload"] = base64.b64encode(serialize(forged)).decode()
    with pytest.raises(SignatureError):
        verify_envelope(read_envelopes(json.dumps(document).encode())[0], [signer.public_key])
