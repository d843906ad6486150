"""The report document tofu3 writes: json_report's dict plus the fields added for sign-off
and the ledger (all additive to ``tofu3.report/v1``):

- ``vantages[].error_kind`` and ``vantages[].error_artifact``: the rest of a failure, so the
  verdict can be recomputed from the report alone (``tofu3 report verify``);
- ``artifacts[].annotations``: the descriptor's annotations (a bottle's
  ``sh.brew.bottle.digest``, a layer's ``org.opencontainers.image.title``);
- ``tag_history``: what the ledger remembered of the tag, and whether a move was accepted;
- ``signoff``: who signs the report off, so the signature covers that claim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tofu3.ledger.policy import TagHistory, tag_moved
from tofu3.report.json_report import report_dict
from tofu3.verdict import Verdict


@dataclass(frozen=True)
class Signoff:
    """Who signs the report off."""

    identity: str | None
    public_key: str  # "TYPE BASE64", as in an allowed_signers line
    fingerprint: str
    namespace: str


def timestamp(when: datetime) -> str:
    """ISO 8601 in UTC to the second with a ``Z``, as ``generated_at`` is written."""
    utc = when.astimezone(timezone.utc)
    return utc.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """The inverse of ``timestamp``; raise ValueError for anything else."""
    if not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text[:40]!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)


def build_document(
    verdict: Verdict,
    *,
    generated_at: datetime,
    tag_history: TagHistory | None = None,
    signoff: Signoff | None = None,
) -> dict[str, Any]:
    """The whole report for one reference."""
    document = report_dict(verdict, generated_at=generated_at)
    for entry, run in zip(document["vantages"], verdict.runs, strict=True):
        failure = run.failure
        entry["error_kind"] = None if failure is None else failure.kind.value
        entry["error_artifact"] = None if failure is None else failure.key
    for entry, artifact in zip(document["artifacts"], verdict.artifacts, strict=True):
        first = next(iter(artifact.observations.values()))
        entry["annotations"] = dict(first.annotations)
    if tag_history is not None:
        previous = tag_history.previous
        document["tag_history"] = {
            "previous_accepted": None
            if previous is None
            else {
                "digest": previous.digest,
                "verified_at": previous.verified_at,
                "reference": previous.reference,
            },
            "accept_tag_move": tag_history.accept_tag_move,
            "tag_moved": tag_moved(verdict, tag_history),
        }
    if signoff is not None:
        document["signoff"] = {
            "identity": signoff.identity,
            "public_key": signoff.public_key,
            "fingerprint": signoff.fingerprint,
            "namespace": signoff.namespace,
        }
    return document


def render_document(document: Any) -> str:
    """A report (one object, or an array of them) as the text tofu3 writes."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
