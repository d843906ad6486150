"""The attestation (``--attestation FILE``): an in-toto Statement v1 whose predicate is a SLSA
Verification Summary Attestation, in a DSSE envelope signed with the sign-off key.

- ``subject``: every digest the verification concerned (the reference itself and each
  artifact under it), named ``REPOSITORY`` for the reference and ``REPOSITORY#KEY`` for the
  others;
- ``verificationResult``: PASSED when the verdict is accepted, FAILED otherwise;
- ``verifiedLevels``: ``TOFU3_<N>OF<N>`` (N vantages finished and agreed) when PASSED, else
  ``FAILED``, as the VSA spec says;
- per-vantage results, the findings, the tofu3 verdict and the JSON report's digest in
  extension fields named by URIs (in-toto's rule for extensions).

The file is JSON Lines: one envelope per reference, the ``.intoto.jsonl`` convention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tofu3 import __version__

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
VERIFIER_ID = "https://tofu3.dev/verifier/v1"
POLICY_URI = "https://tofu3.dev/policy/3tofu/v1"
EXTENSION = "https://tofu3.dev/vsa"
VANTAGES_FIELD = f"{EXTENSION}/vantages/v1"
FINDINGS_FIELD = f"{EXTENSION}/findings/v1"
VERDICT_FIELD = f"{EXTENSION}/verdict/v1"
REPORT_FIELD = f"{EXTENSION}/report/v1"


class NothingToAttest(ValueError):
    """No vantage observed any digest: an in-toto Statement needs at least one subject."""


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, _, hex_part = digest.partition(":")
    return {algorithm: hex_part}


def _subjects(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    resolved = document["resolved"]
    base = resolved.get("url") or f"{resolved['registry']}/{resolved['repository']}"
    subjects: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for artifact in document["artifacts"]:
        key = artifact.get("key", "root")
        name = base if key == "root" else f"{base}#{key}"
        digests = (
            [artifact["digest"]]
            if artifact["digest"]
            else sorted({o["digest"] for o in artifact["observations"].values()})
        )
        for digest in digests:
            if (name, digest) not in seen:
                seen.add((name, digest))
                subjects.append({"name": name, "digest": _digest_set(digest)})
    return subjects


def _resource_uri(document: Mapping[str, Any]) -> str:
    resolved = document["resolved"]
    if resolved.get("url"):
        return str(resolved["url"])
    uri = f"oci://{resolved['registry']}/{resolved['repository']}"
    if resolved.get("tag"):
        uri += f":{resolved['tag']}"
    if resolved.get("pinned_digest"):
        uri += f"@{resolved['pinned_digest']}"
    return uri


def statement(
    document: Mapping[str, Any], *, report: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The in-toto Statement for one report document. ``report`` is (file name, sha256) of
    the JSON report it summarises, when one was written."""
    subjects = _subjects(document)
    if not subjects:
        raise NothingToAttest(f"no vantage observed anything of {document['reference']}")
    passed = document["verdict"] == "accepted"
    count = len(document["vantages"])
    root = next((a for a in document["artifacts"] if a.get("key") == "root"), None)
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"tofu3": __version__}},
        "timeVerified": document["generated_at"],
        "resourceUri": _resource_uri(document),
        "policy": {"uri": POLICY_URI},
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": [f"TOFU3_{count}OF{count}"] if passed else ["FAILED"],
        "slsaVersion": "1.0",
        VERDICT_FIELD: document["verdict"],
        VANTAGES_FIELD: [
            {
                "name": v["name"],
                "host": v["host"],
                "ok": v["ok"],
                "curl_version": v["curl_version"],
                "host_key_fingerprint": v.get("host_key_fingerprint", ""),
                "remote_ips": v.get("remote_ips", []),
                "reference_digest": None
                if root is None
                else root["observations"].get(v["name"], {}).get("digest"),
                "error_code": v.get("error_code"),
            }
            for v in document["vantages"]
        ],
        FINDINGS_FIELD: [
            {
                "severity": f["severity"],
                "code": f["code"],
                "vantage": f["vantage"],
                "artifact": f.get("artifact"),
            }
            for f in document["findings"]
        ],
    }
    if report is not None:
        name, sha256 = report
        predicate[REPORT_FIELD] = {"name": name, "digest": {"sha256": sha256}}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": predicate,
    }


def serialize(statement_: Mapping[str, Any]) -> bytes:
    """The Statement's bytes as they go into the envelope's payload."""
    return json.dumps(statement_, separators=(",", ":"), sort_keys=True).encode()
