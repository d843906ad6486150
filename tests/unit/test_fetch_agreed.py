"""Which ledger entry ``tofu3 fetch --max-age`` may rely on, and what it then holds the
coordinator's bytes against (tofu3.fetch.agreed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tofu3.digest import Digest
from tofu3.errors import ConfigurationError
from tofu3.fetch.agreed import from_entry, matches, parse_max_age, recent_acceptance
from tofu3.ledger.store import Entry
from tofu3.reference import parse_reference
from tofu3.release.url import parse_release_url

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
ROOT = Digest(f"sha256:{'a' * 64}")
OTHER = Digest(f"sha256:{'b' * 64}")
LAYER = Digest(f"sha256:{'c' * 64}")
WGET = parse_reference("ghcr.io/homebrew/core/wget:1.24.5")


def entry(
    *,
    minutes_ago: float = 10,
    verdict: str = "accepted",
    digest: Digest | None = ROOT,
    tag: str | None = "1.24.5",
    by_tag: bool = True,
    repository: str = "ghcr.io/homebrew/core/wget",
    id: int = 1,
) -> Entry:
    when = NOW - timedelta(minutes=minutes_ago)
    return Entry(
        verified_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        reference=f"{repository}:{tag}",
        repository=repository,
        tag=tag,
        by_tag=by_tag,
        pinned_digest=None,
        digest=digest,
        verdict=verdict,
        tag_move_accepted=False,
        vantages=(("ams", "h:22", True),),
        vantage_digests={"ams": ROOT},
        artifacts={"root": digest, "darwin/arm64 (arm64_sonoma)/layer[0]": LAYER},
        findings=(),
        report_sha256="0" * 64,
        tofu3_version="0.1.0",
        id=id,
    )


def recent(entries: list[Entry], max_age: timedelta = timedelta(hours=1)) -> Entry | None:
    return recent_acceptance(entries, WGET, now=NOW, max_age=max_age)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), (" 7d ", 604800)]
)
def test_max_age_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_max_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "10", "1w", "-1h", "1.5h", "367d", "forever"])
def test_other_max_ages_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--max-age"):
        parse_max_age(text)


def test_the_latest_accepted_entry_within_max_age_is_chosen() -> None:
    older, newer = entry(minutes_ago=50, id=1), entry(minutes_ago=5, id=2)

    assert recent([older, newer]) == newer
    assert recent([newer, older]) == newer


def test_nothing_older_than_max_age_or_from_the_future_is_relied_on() -> None:
    assert recent([entry(minutes_ago=61)]) is None
    assert recent([entry(minutes_ago=-5)]) is None
    assert recent([entry(minutes_ago=59)]) is not None


def test_only_accepted_entries_count() -> None:
    assert recent([entry(verdict="rejected"), entry(verdict="inconclusive")]) is None


def test_a_tag_is_matched_only_by_entries_that_resolved_that_tag() -> None:
    assert not matches(entry(tag="1.24.4"), WGET)
    assert not matches(entry(by_tag=False), WGET)
    assert not matches(entry(repository="ghcr.io/homebrew/core/curl"), WGET)
    assert matches(entry(), WGET)


def test_a_digest_reference_is_matched_by_its_digest_whatever_the_tag() -> None:
    pinned = parse_reference(f"ghcr.io/homebrew/core/wget@{ROOT}")

    assert matches(entry(tag=None, by_tag=False), pinned)
    assert matches(entry(), pinned)
    assert not matches(entry(digest=OTHER), pinned)


def test_a_url_is_matched_by_the_url_and_its_pin() -> None:
    url = "https://example.org/tool-1.2.tar.gz"
    recorded = entry(repository=url, tag=None, by_tag=False)

    assert matches(recorded, parse_release_url(url))
    assert matches(recorded, parse_release_url(url, ROOT.removeprefix("sha256:")))
    assert not matches(recorded, parse_release_url(url, OTHER.removeprefix("sha256:")))
    assert not matches(recorded, parse_release_url("https://example.org/tool-1.3.tar.gz"))


def test_an_entry_gives_its_digests_without_sizes() -> None:
    agreed = from_entry(WGET, entry(id=7))

    assert agreed.root == ROOT
    assert agreed.digests == {ROOT: None, LAYER: None}
    assert "ledger entry 7" in agreed.source


def test_an_entry_without_an_agreed_digest_gives_nothing() -> None:
    with pytest.raises(ConfigurationError):
        from_entry(WGET, replace(entry(), digest=None))
