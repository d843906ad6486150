"""The report schema ``tofu3.report/v1``: every report tofu3 produces validates against it
(strictly: no field the schema does not declare), docs/report.schema.json is the same schema,
and the validator catches what it must."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.bottle_verdicts import (
    INDEX,
    WGET,
    WHEN,
    honest,
    nothing_seen,
    one_vantage_served_another_layer,
    one_vantage_unreachable,
)
from tofu3.ledger.policy import PreviousAcceptance, TagHistory, apply_tag_history
from tofu3.report.document import Signoff, build_document
from tofu3.report.schema import REPORT_SCHEMA, validate
from tofu3.verdict import Verdict

ROOT = Path(__file__).resolve().parents[2]
SIGNOFF = Signoff("alice@example.org", "ssh-ed25519 AAAA", "SHA256:" + "B" * 43, "ns@tofu3.dev")


def _documents() -> list[dict[str, Any]]:
    history = TagHistory(PreviousAcceptance(INDEX, "2026-10-01T09:15:00Z", WGET))
    verdicts: list[tuple[Verdict, TagHistory | None]] = [
        (honest(), None),
        (one_vantage_served_another_layer(), history),
        (one_vantage_unreachable(), None),
        (nothing_seen(), TagHistory(None)),
        (apply_tag_history(honest(), history, "2026-11-27T03:00:23Z"), history),
    ]
    return [
        build_document(v, generated_at=WHEN, tag_history=h, signoff=SIGNOFF) for v, h in verdicts
    ]


@pytest.mark.parametrize("index", range(5))
def test_every_report_tofu3_writes_validates_strictly(index: int) -> None:
    document = json.loads(json.dumps(_documents()[index]))

    assert validate(document, strict=True) == []


def test_docs_report_schema_json_is_the_schema_the_code_checks() -> None:
    written = json.loads((ROOT / "docs" / "report.schema.json").read_text())

    assert written == REPORT_SCHEMA


def test_the_validator_catches_missing_fields_wrong_types_and_bad_values() -> None:
    document = json.loads(json.dumps(_documents()[1]))
    del document["findings"]
    document["verdict"] = "probably fine"
    document["vantages"][0]["ok"] = "yes"
    document["artifacts"][0]["size"] = True
    document["artifacts"][0]["observations"]["ams"]["digest"] = "md5:abc"

    problems = validate(document)

    assert "$: missing 'findings'" in problems
    assert any(p.startswith("$.verdict: must be one of") for p in problems)
    assert "$.vantages[0].ok: must be boolean" in problems
    assert "$.artifacts[0].size: must be integer or null" in problems
    assert any(
        p.startswith("$.artifacts[0].observations.ams.digest: does not match") for p in problems
    )


def test_unknown_fields_pass_unless_strict() -> None:
    document = json.loads(json.dumps(_documents()[0]))
    document["added_in_a_later_release"] = 1

    assert validate(document) == []
    assert validate(document, strict=True) == ["$.added_in_a_later_release: not in the schema"]
