"""The TAG_MOVED rule (pure): like SSH's known_hosts, a tag is trusted to keep naming what it
named when it was last accepted.

Applied after the verdict. When the reference was resolved by tag, every vantage agreed on
its digest, and that digest differs from the one accepted last time for the same tag, the
run gets a TAG_MOVED finding with both digests and dates, and is rejected, unless the user
passed --accept-tag-move (then the finding is a warning and the new digest becomes the one
remembered, provided the verdict is otherwise accepted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tofu3.digest import Digest
from tofu3.verdict import Finding, Severity, Verdict, VerdictKind

TAG_MOVED = "TAG_MOVED"


@dataclass(frozen=True)
class PreviousAcceptance:
    """The last accepted verification of the same repository and tag."""

    digest: Digest
    verified_at: str  # ISO 8601, UTC, "Z"
    reference: str


@dataclass(frozen=True)
class TagHistory:
    """What the ledger knew about the tag when a verification ran, and what the user allowed."""

    previous: PreviousAcceptance | None
    accept_tag_move: bool = False


def tag_moved(verdict: Verdict, history: TagHistory) -> bool:
    """True when the tag now names another digest than the one accepted before."""
    previous = history.previous
    return (
        previous is not None
        and verdict.reference.digest is None  # pinned by digest: the tag was not used
        and verdict.root_digest is not None  # no agreed digest: other findings say why
        and verdict.root_digest != previous.digest
    )


def apply_tag_history(verdict: Verdict, history: TagHistory, now: str) -> Verdict:
    """``verdict`` with the TAG_MOVED rule applied; ``now`` is when this run saw the tag."""
    if not tag_moved(verdict, history) or history.previous is None:
        return verdict
    previous = history.previous
    reference = verdict.reference
    said = (
        f"tag {reference.effective_tag} of {reference.name} moved: it was accepted as "
        f"{previous.digest} at {previous.verified_at}, and at {now} it names "
        f"{verdict.root_digest}"
    )
    if history.accept_tag_move:
        finding = Finding(
            Severity.WARNING,
            TAG_MOVED,
            f"{said}; accepted with --accept-tag-move",
            digest=previous.digest,
            key="root",
        )
        return replace(verdict, findings=(*verdict.findings, finding))
    finding = Finding(
        Severity.CRITICAL,
        TAG_MOVED,
        f"{said}; if the publisher moved it on purpose, check the new content and run again "
        "with --accept-tag-move",
        digest=previous.digest,
        key="root",
    )
    return replace(verdict, kind=VerdictKind.REJECTED, findings=(*verdict.findings, finding))


def remembers(verdict: Verdict) -> bool:
    """Whether this verdict becomes the digest the tag is expected to keep naming."""
    return (
        verdict.kind is VerdictKind.ACCEPTED
        and verdict.reference.digest is None
        and verdict.root_digest is not None
    )
