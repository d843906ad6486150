"""The TAG_MOVED rule, a pure function applied after the verdict: a tag that names other
content than when it was last accepted is rejected, like a changed SSH host key, unless the
user accepts the move."""

from __future__ import annotations

from tests.unit.bottle_verdicts import (
    INDEX,
    MOVED_INDEX,
    WGET,
    honest,
    one_vantage_served_another_layer,
    one_vantage_unreachable,
)
from tofu3.ledger.policy import (
    TAG_MOVED,
    PreviousAcceptance,
    TagHistory,
    apply_tag_history,
    remembers,
    tag_moved,
)
from tofu3.verdict import Severity, VerdictKind

NOW = "2026-11-27T03:00:23Z"
BEFORE = PreviousAcceptance(INDEX, "2026-10-01T09:15:00Z", WGET)


def test_a_tag_seen_for_the_first_time_is_judged_by_the_verdict_alone() -> None:
    verdict = honest()

    assert apply_tag_history(verdict, TagHistory(None), NOW) == verdict


def test_a_tag_that_still_names_the_accepted_digest_is_unchanged() -> None:
    verdict = honest()

    assert apply_tag_history(verdict, TagHistory(BEFORE), NOW) == verdict
    assert not tag_moved(verdict, TagHistory(BEFORE))


def test_a_tag_that_moved_is_rejected_with_both_digests_and_dates() -> None:
    verdict = honest(root=MOVED_INDEX)
    assert verdict.kind is VerdictKind.ACCEPTED

    moved = apply_tag_history(verdict, TagHistory(BEFORE), NOW)

    assert moved.kind is VerdictKind.REJECTED
    assert moved.pinned_reference is None
    finding = moved.findings[-1]
    assert finding.code == TAG_MOVED
    assert finding.severity is Severity.CRITICAL
    assert finding.digest == INDEX
    for fact in (INDEX, MOVED_INDEX, BEFORE.verified_at, NOW, "--accept-tag-move"):
        assert fact in finding.message
    assert not remembers(moved)


def test_accept_tag_move_accepts_with_a_warning_and_remembers_the_new_digest() -> None:
    verdict = honest(root=MOVED_INDEX)

    moved = apply_tag_history(verdict, TagHistory(BEFORE, accept_tag_move=True), NOW)

    assert moved.kind is VerdictKind.ACCEPTED
    assert [(f.code, f.severity) for f in moved.findings] == [(TAG_MOVED, Severity.WARNING)]
    assert MOVED_INDEX in moved.findings[0].message
    assert remembers(moved)


def test_a_reference_pinned_by_digest_never_moves() -> None:
    verdict = honest(reference=f"ghcr.io/homebrew/core/wget:1.24.5@{MOVED_INDEX}", root=MOVED_INDEX)

    assert not tag_moved(verdict, TagHistory(BEFORE))
    assert apply_tag_history(verdict, TagHistory(BEFORE), NOW).kind is VerdictKind.ACCEPTED


def test_vantages_that_disagree_on_the_tag_are_left_to_the_verdict() -> None:
    verdict = one_vantage_served_another_layer()

    assert apply_tag_history(verdict, TagHistory(BEFORE), NOW) == verdict


def test_an_inconclusive_run_that_saw_the_tag_move_is_rejected() -> None:
    verdict = one_vantage_unreachable()
    assert verdict.kind is VerdictKind.INCONCLUSIVE
    earlier = PreviousAcceptance(MOVED_INDEX, "2026-10-01T09:15:00Z", WGET)

    moved = apply_tag_history(verdict, TagHistory(earlier), NOW)

    assert moved.kind is VerdictKind.REJECTED
    assert moved.findings[-1].code == TAG_MOVED
    accepted_anyway = apply_tag_history(verdict, TagHistory(earlier, True), NOW)
    assert accepted_anyway.kind is VerdictKind.INCONCLUSIVE
    assert not remembers(accepted_anyway)
