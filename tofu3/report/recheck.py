"""Re-check a report: does its verdict follow from the observations recorded in it?

The report is parsed back into VantageRuns and Observations, tofu3.verdict.decide runs on
them, the TAG_MOVED rule is applied with the tag history the report recorded, and the report
is rendered again. Every field the report has must come out the same: the verdict, the
findings, the agreed digests, the pinned reference. A report edited by hand (say, "rejected"
changed to "accepted", or one vantage's digest changed to match the others) fails here even
when its signature is good, that is, when the signer signed something untrue.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tofu3.digest import Digest
from tofu3.errors import IntegrityError, ReportInconsistent, Tofu3Error
from tofu3.ledger.policy import PreviousAcceptance, TagHistory, apply_tag_history
from tofu3.observation import ArtifactKind, Expected, Failure, FailureKind, Observation, VantageRun
from tofu3.reference import Reference
from tofu3.release.url import parse_target
from tofu3.report.document import Signoff, build_document, parse_timestamp
from tofu3.report.schema import validate
from tofu3.verdict import Verdict, decide

# Fields that describe the run rather than follow from the observations.
_AS_RECORDED = ("tool",)


def _integrity_codes() -> set[str]:
    codes: set[str] = set()
    pending: list[type[IntegrityError]] = [IntegrityError]
    while pending:
        cls = pending.pop()
        codes.add(str(cls.code))
        pending.extend(cls.__subclasses__())
    return codes


def _failure_kind(entry: dict[str, Any]) -> FailureKind:
    if entry.get("error_kind"):
        return FailureKind(entry["error_kind"])
    # Reports written before error_kind existed: the code says which side it is on.
    code = entry.get("error_code") or ""
    if code in _integrity_codes():
        return FailureKind.INTEGRITY
    if code == "CONFIGURATION_ERROR":
        return FailureKind.CONFIGURATION
    return FailureKind.TRANSPORT


def _reference(document: dict[str, Any]) -> Reference:
    reference = parse_target(document["reference"])
    pinned = document["resolved"].get("pinned_digest")
    if reference.digest is None and pinned is not None:
        # A release file pinned with --sha256 rather than in the URL.
        reference = replace(reference, digest=Digest(pinned))
    return reference


def _runs(document: dict[str, Any]) -> list[VantageRun]:
    names = [entry["name"] for entry in document["vantages"]]
    if len(set(names)) != len(names):
        raise ReportInconsistent("the report names a vantage twice")
    observed: dict[str, list[Observation]] = {name: [] for name in names}
    for artifact in document["artifacts"]:
        if not isinstance(artifact.get("key"), str):
            raise ReportInconsistent("an artifact without a key cannot be checked")
        kind = ArtifactKind(artifact["kind"])
        for name, seen in artifact["observations"].items():
            if name not in observed:
                raise ReportInconsistent(f"an observation by {name!r}, which is no vantage")
            observed[name].append(
                Observation(
                    key=artifact["key"],
                    kind=kind,
                    platform=artifact["platform"],
                    expected=Expected(seen.get("expected_digest"), seen.get("expected_size"), None),
                    digest=Digest(seen["digest"]),
                    size=seen["size"],
                    media_type=artifact["media_type"],
                    status=seen.get("status", 0),
                    remote_ip=seen.get("remote_ip", ""),
                    url=seen.get("url", ""),
                    annotations=dict(artifact.get("annotations", {})),
                    # Recorded only by tofu3 versions that count redirects.
                    **({"redirects": seen["redirects"]} if "redirects" in seen else {}),
                )
            )
    runs = []
    for entry in document["vantages"]:
        failure = None
        if not entry["ok"]:
            failure = Failure(
                kind=_failure_kind(entry),
                code=entry.get("error_code") or "VANTAGE_FAILED",
                message=entry["error"] or "",
                key=entry.get("error_artifact"),
            )
        runs.append(
            VantageRun(
                name=entry["name"],
                host=entry["host"],
                curl_version=entry["curl_version"],
                hash_tool=entry.get("hash_tool", ""),
                host_key_fingerprint=entry.get("host_key_fingerprint", ""),
                # The verifier keeps each vantage's observations sorted by key.
                observations=tuple(sorted(observed[entry["name"]], key=lambda o: o.key)),
                failure=failure,
                duration=entry.get("duration_seconds", 0.0),
            )
        )
    return runs


def _tag_history(document: dict[str, Any]) -> TagHistory | None:
    recorded = document.get("tag_history")
    if recorded is None:
        return None
    previous = recorded["previous_accepted"]
    return TagHistory(
        previous=None
        if previous is None
        else PreviousAcceptance(
            digest=Digest(previous["digest"]),
            verified_at=previous["verified_at"],
            reference=previous["reference"],
        ),
        accept_tag_move=recorded["accept_tag_move"],
    )


def _signoff(document: dict[str, Any]) -> Signoff | None:
    recorded = document.get("signoff")
    if recorded is None:
        return None
    return Signoff(
        recorded["identity"], recorded["public_key"], recorded["fingerprint"], recorded["namespace"]
    )


def verdict_of(document: dict[str, Any]) -> Verdict:
    """The verdict the report's own observations give (with its recorded tag history)."""
    problems = validate(document)
    if problems:
        raise ReportInconsistent(f"not a tofu3.report/v1 report: {problems[0]}")
    try:
        reference = _reference(document)
        verdict = decide(reference, _runs(document))
        history = _tag_history(document)
        if history is not None:
            verdict = apply_tag_history(verdict, history, document["generated_at"])
    except ReportInconsistent:
        raise
    except (Tofu3Error, ValueError, KeyError, TypeError) as exc:
        raise ReportInconsistent(f"the report cannot be read back: {exc}") from None
    return verdict


def recheck(document: object) -> list[str]:
    """Raise ReportInconsistent unless every field of the report follows from its
    observations. Returns the fields this tofu3 does not know and so could not check."""
    if not isinstance(document, dict):
        raise ReportInconsistent("a report is a JSON object")
    verdict = verdict_of(document)
    try:
        generated_at = parse_timestamp(document["generated_at"])
    except (KeyError, ValueError):
        raise ReportInconsistent("the report has no valid generated_at") from None
    again = build_document(
        verdict,
        generated_at=generated_at,
        tag_history=_tag_history(document),
        signoff=_signoff(document),
    )
    if document["verdict"] != again["verdict"]:
        raise ReportInconsistent(
            f"the report says {document['verdict']!r}, but its own observations give "
            f"{again['verdict']!r}"
        )
    unknown: list[str] = []
    for key, value in document.items():
        if key in _AS_RECORDED:
            continue
        if key not in again:
            unknown.append(key)
            continue
        _same(value, again[key], key, unknown)
    return unknown


def _same(recorded: object, recomputed: object, path: str, unknown: list[str]) -> None:
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        for key, value in recorded.items():
            if key not in recomputed:
                unknown.append(f"{path}.{key}")
            else:
                _same(value, recomputed[key], f"{path}.{key}", unknown)
        return
    if isinstance(recorded, list) and isinstance(recomputed, list):
        if len(recorded) != len(recomputed):
            raise ReportInconsistent(
                f"{path}: the report has {len(recorded)} entries, its observations give "
                f"{len(recomputed)}"
            )
        for index, (a, b) in enumerate(zip(recorded, recomputed, strict=True)):
            _same(a, b, f"{path}[{index}]", unknown)
        return
    if recorded != recomputed or isinstance(recorded, bool) != isinstance(recomputed, bool):
        raise ReportInconsistent(
            f"{path}: the report says {_shown(recorded)}, its observations give "
            f"{_shown(recomputed)}"
        )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
