"""Platform filters for --platform: ``os/arch[/variant]`` or a Homebrew bottle tag (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tofu3.errors import ConfigurationError, PlatformNotFound
from tofu3.oci.manifest import Descriptor, Index
from tofu3.oci.media_types import INDEX_TYPES

_PART_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_BOTTLE_TAG_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class PlatformFilter:
    """One --platform value."""

    text: str
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    bottle_tag: str | None = None

    def matches(self, descriptor: Descriptor) -> bool:
        """True when the index entry is the platform this filter names."""
        if self.bottle_tag is not None:
            return descriptor.bottle_tag == self.bottle_tag
        platform = descriptor.platform
        if platform is None:
            return False
        if (platform.os, platform.architecture) != (self.os, self.architecture):
            return False
        return self.variant is None or platform.variant == self.variant


def parse_platform_filter(text: str) -> PlatformFilter:
    """Parse ``linux/arm64/v8``, ``darwin/amd64`` or ``arm64_sonoma``."""
    if "/" in text:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(_PART_RE.fullmatch(p) for p in parts):
            raise ConfigurationError(
                f"invalid --platform {text[:80]!r}: expected os/arch[/variant] "
                "(e.g. linux/arm64/v8) or a bottle tag (e.g. arm64_sonoma)"
            )
        return PlatformFilter(
            text=text,
            os=parts[0],
            architecture=parts[1],
            variant=parts[2] if len(parts) == 3 else None,
        )
    if not _BOTTLE_TAG_RE.fullmatch(text):
        raise ConfigurationError(
            f"invalid --platform {text[:80]!r}: expected os/arch[/variant] "
            "(e.g. linux/amd64) or a bottle tag (e.g. arm64_sonoma)"
        )
    return PlatformFilter(text=text, bottle_tag=text)


def describe(descriptor: Descriptor) -> str:
    """How an index entry is shown: ``darwin/arm64 (arm64_sonoma)``, ``attestation``."""
    if descriptor.is_attestation:
        return "attestation"
    label = descriptor.platform.label() if descriptor.platform else "no platform"
    tag = descriptor.bottle_tag
    return f"{label} ({tag})" if tag else label


def entry_labels(index: Index, chosen: Sequence[Descriptor]) -> list[str]:
    """A label for each chosen entry, unique within the index, so every entry is its own
    artifact: an attestation names the platform it attests, and labels that would repeat
    get the entry's position."""
    by_digest = {d.digest: d for d in index.manifests}
    labels: list[str] = []
    for descriptor in chosen:
        label = describe(descriptor)
        if descriptor.is_attestation:
            target = by_digest.get(descriptor.annotations.get("vnd.docker.reference.digest", ""))  # type: ignore[call-overload]
            if target is not None and not target.is_attestation:
                label = f"attestation for {describe(target)}"
        labels.append(label)
    positions = {id(d): i for i, d in enumerate(index.manifests)}
    return [
        f"{label} #{positions.get(id(descriptor), n)}" if labels.count(label) > 1 else label
        for n, (label, descriptor) in enumerate(zip(labels, chosen, strict=True))
    ]


def select(index: Index, filters: Sequence[PlatformFilter]) -> list[Descriptor]:
    """The index entries to verify: all of them without filters (attestations included, they
    are part of what was published); with filters, the matching platforms, never an
    attestation, and every nested index (it has no platform of its own: the filters apply
    inside it). A filter that matches nothing, where there is no nested index to look in, is
    an error listing what the index has."""
    if not filters:
        return list(index.manifests)
    nested = [d for d in index.manifests if d.media_type in INDEX_TYPES]
    chosen: list[Descriptor] = []
    for platform_filter in filters:
        matched = [
            d for d in index.manifests if not d.is_attestation and platform_filter.matches(d)
        ]
        if not matched and not nested:
            available = ", ".join(describe(d) for d in index.manifests if not d.is_attestation)
            raise PlatformNotFound(
                f"--platform {platform_filter.text!r} matches nothing in the index "
                f"(available: {available or 'none'})"
            )
        chosen.extend(d for d in matched if d not in chosen)
    chosen.extend(d for d in nested if d not in chosen)
    return chosen
