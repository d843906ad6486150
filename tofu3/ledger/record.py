"""What the ledger records of a verdict, and how a run consults and updates it."""

from __future__ import annotations

from tofu3 import __version__
from tofu3.ledger.policy import TagHistory, tag_moved
from tofu3.ledger.store import Entry, Ledger
from tofu3.reference import Reference
from tofu3.verdict import Verdict, VerdictKind


def tag_of(reference: Reference) -> str | None:
    """The tag the reference was resolved by, or None (pinned by digest, or a release file)."""
    if reference.digest is not None:
        return None
    return reference.effective_tag


def history_for(
    ledger: Ledger, reference: Reference, *, accept_tag_move: bool
) -> TagHistory | None:
    """What the ledger remembers of the reference's tag; None when no tag was resolved."""
    tag = tag_of(reference)
    if tag is None:
        return None
    return TagHistory(ledger.last_accepted(reference.name, tag), accept_tag_move)


def entry_for(
    verdict: Verdict,
    *,
    verified_at: str,
    report_sha256: str,
    history: TagHistory | None,
) -> Entry:
    """The ledger entry of a (final) verdict."""
    reference = verdict.reference
    roots = {
        run.name: obs.digest
        for run in verdict.runs
        for obs in run.observations
        if obs.key == "root"
    }
    accepted_move = (
        history is not None
        and history.accept_tag_move
        and tag_moved(verdict, history)
        and verdict.kind is VerdictKind.ACCEPTED
    )
    return Entry(
        verified_at=verified_at,
        reference=reference.original,
        repository=reference.name,
        tag=reference.effective_tag,
        by_tag=tag_of(reference) is not None,
        pinned_digest=reference.digest,
        digest=verdict.root_digest,
        verdict=verdict.kind.value,
        tag_move_accepted=accepted_move,
        vantages=tuple((run.name, run.host, run.completed) for run in verdict.runs),
        vantage_digests=roots,
        artifacts={artifact.key: artifact.digest for artifact in verdict.artifacts},
        findings=tuple(finding.code for finding in verdict.findings),
        report_sha256=report_sha256,
        tofu3_version=__version__,
    )
