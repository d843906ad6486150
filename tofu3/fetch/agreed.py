"""What ``tofu3 fetch`` holds the coordinator's bytes against: the digests the vantages agreed
on, from a fresh verdict or from an accepted ledger entry younger than ``--max-age`` (pure).

A verdict knows every artifact's size; a ledger entry records digests only, so sizes then come
from the descriptors in the (digest-checked) manifests above them, and the root manifest is
held to the manifest cap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tofu3.digest import Digest, is_digest
from tofu3.errors import ConfigurationError
from tofu3.ledger.store import Entry
from tofu3.reference import Reference
from tofu3.verdict import Verdict, VerdictKind

_DURATION_RE = re.compile(r"(\d{1,6})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_AGE_LIMIT = timedelta(days=366)


@dataclass(frozen=True)
class Agreed:
    """The reference, the root digest the vantages agreed on, and every digest they agreed
    on with its size where known."""

    reference: Reference
    root: Digest
    digests: Mapping[Digest, int | None]
    source: str  # for people: where the agreement comes from


def parse_max_age(text: str) -> timedelta:
    """``--max-age``: a whole number and a unit, ``90s``, ``30m``, ``12h`` or ``7d``."""
    match = _DURATION_RE.fullmatch(text.strip())
    age = timedelta(seconds=int(match[1]) * _UNIT[match[2]]) if match else timedelta(0)
    if not timedelta(0) < age <= MAX_AGE_LIMIT:
        raise ConfigurationError(
            f"invalid --max-age {text[:40]!r}: expected a duration such as 90s, 30m, 12h or 7d "
            "(at most 366d)"
        )
    return age


def from_verdict(verdict: Verdict) -> Agreed:
    """What an accepted verdict agreed on."""
    if verdict.kind is not VerdictKind.ACCEPTED or verdict.root_digest is None:
        raise ConfigurationError(
            f"{verdict.reference.original} was not accepted ({verdict.kind.value}): "
            "nothing is fetched"
        )
    digests: dict[Digest, int | None] = {
        artifact.digest: artifact.size
        for artifact in verdict.artifacts
        if artifact.agreed and artifact.digest is not None
    }
    return Agreed(verdict.reference, verdict.root_digest, digests, "this verification")


def matches(entry: Entry, reference: Reference) -> bool:
    """Whether ``entry`` recorded a verification of what ``reference`` names: the same
    repository (or URL), and the same pinned digest, or the same tag resolved by tag."""
    if entry.repository != reference.name or entry.digest is None:
        return False
    if reference.digest is not None:
        return entry.digest == reference.digest
    tag = reference.effective_tag
    if tag is None:  # a release file: its URL is all there is
        return True
    return entry.by_tag and entry.tag == tag


def recent_acceptance(
    entries: Sequence[Entry], reference: Reference, *, now: datetime, max_age: timedelta
) -> Entry | None:
    """The latest accepted entry for ``reference`` verified no longer than ``max_age`` before
    ``now`` (entries from the future, a clock gone wrong, are not trusted either)."""
    found: list[tuple[datetime, Entry]] = []
    for entry in entries:
        if entry.verdict != VerdictKind.ACCEPTED.value or not matches(entry, reference):
            continue
        try:
            when = datetime.fromisoformat(entry.verified_at.replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is not None and timedelta(0) <= now - when <= max_age:
            found.append((when, entry))
    return max(found, key=lambda pair: pair[0])[1] if found else None


def from_entry(reference: Reference, entry: Entry) -> Agreed:
    """What an accepted ledger entry agreed on (digests only)."""
    if entry.digest is None:
        raise ConfigurationError("the ledger entry has no agreed digest")
    digests: dict[Digest, int | None] = {
        Digest(digest): None
        for digest in entry.artifacts.values()
        if digest is not None and is_digest(digest)
    }
    digests[entry.digest] = None
    where = f"the accepted verification of {entry.verified_at} (ledger entry {entry.id})"
    return Agreed(reference, entry.digest, digests, where)
