"""Re-checking a report: its verdict must follow from the observations recorded in it. A
report edited to say something its evidence does not (a rejection turned into an
acceptance, one vantage's digest changed to match the others, a finding removed, a tag move
hidden) is refused even before any signature is looked at."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.bottle_verdicts import (
    EVIL,
    INDEX,
    MOVED_INDEX,
    WGET,
    WHEN,
    honest,
    one_vantage_served_another_layer,
    one_vantage_unreachable,
)
from tofu3.errors import ReportInconsistent
from tofu3.ledger.policy import PreviousAcceptance, TagHistory, apply_tag_history
from tofu3.report.document import build_document, timestamp
from tofu3.report.recheck import recheck, verdict_of
from tofu3.verdict import Verdict, VerdictKind

MOVED = TagHistory(PreviousAcceptance(INDEX, "2026-10-01T09:15:00Z", WGET))


def _document(verdict: Verdict, history: TagHistory | None = None) -> dict[str, Any]:
    if history is not None:
        verdict = apply_tag_history(verdict, history, timestamp(WHEN))
    document = build_document(verdict, generated_at=WHEN, tag_history=history)
    parsed: dict[str, Any] = json.loads(json.dumps(document))
    return parsed


@pytest.mark.parametrize(
    "verdict",
    [honest(), one_vantage_served_another_layer(), one_vantage_unreachable()],
    ids=["accepted", "rejected", "inconclusive"],
)
def test_an_untouched_report_passes_the_recheck(verdict: Verdict) -> None:
    document = _document(verdict)

    assert recheck(document) == []
    assert verdict_of(document).kind is verdict.kind


def test_a_rejection_edited_into_an_acceptance_is_refused() -> None:
    document = _document(one_vantage_served_another_layer())
    document["verdict"] = "accepted"
    document["exit_code"] = 0
    document["findings"] = []

    with pytest.raises(ReportInconsistent, match=r"says 'accepted'.*give 'rejected'"):
        recheck(document)


def test_a_vantage_digest_edited_to_match_the_others_is_refused() -> None:
    document = _document(one_vantage_served_another_layer())
    layer = next(a for a in document["artifacts"] if a["kind"] == "layer")
    assert layer["observations"]["sgp"]["digest"] == EVIL
    layer["observations"]["sgp"]["digest"] = layer["digest"]

    with pytest.raises(ReportInconsistent):
        recheck(document)


def test_a_removed_finding_is_refused() -> None:
    document = _document(one_vantage_served_another_layer())
    document["findings"].pop()

    with pytest.raises(ReportInconsistent, match="findings"):
        recheck(document)


def test_an_accepted_report_whose_agreed_digest_was_changed_is_refused() -> None:
    document = _document(honest())
    document["resolved"]["digest"] = MOVED_INDEX
    document["pinned_reference"] = f"ghcr.io/homebrew/core/wget@{MOVED_INDEX}"

    with pytest.raises(ReportInconsistent, match=r"resolved\.digest"):
        recheck(document)


def test_a_tag_move_is_rechecked_with_the_history_the_report_recorded() -> None:
    document = _document(honest(root=MOVED_INDEX), MOVED)
    assert document["verdict"] == "rejected"
    assert document["tag_history"]["tag_moved"] is True

    assert verdict_of(document).kind is VerdictKind.REJECTED
    assert recheck(document) == []

    hidden = json.loads(json.dumps(document))
    hidden["verdict"], hidden["exit_code"] = "accepted", 0
    hidden["pinned_reference"] = f"ghcr.io/homebrew/core/wget@{MOVED_INDEX}"
    hidden["findings"] = []
    with pytest.raises(ReportInconsistent):
        recheck(hidden)


def test_fields_this_tofu3_does_not_know_are_reported_not_trusted() -> None:
    document = _document(honest())
    document["from_the_future"] = {"x": 1}
    document["vantages"][0]["new_fact"] = "y"

    assert sorted(recheck(document)) == ["from_the_future", "vantages[0].new_fact"]


@pytest.mark.parametrize(
    "document",
    [[], {"schema": "tofu3.report/v1"}, {"schema": "something/else"}],
    ids=["array", "incomplete", "other-schema"],
)
def test_something_that_is_not_a_report_is_refused(document: object) -> None:
    with pytest.raises(ReportInconsistent):
        recheck(document)
