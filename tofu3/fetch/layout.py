"""The OCI image layout ``tofu3 fetch`` writes for an image (image-spec ``image-layout.md``):

    DIR/oci-layout                  {"imageLayoutVersion":"1.0.0"}
    DIR/index.json                  the layout's own index: what the layout holds
    DIR/blobs/sha256/<hex>          every manifest, index, config and layer, exactly as served

index.json lists the verified reference itself (annotated with its tag as
``org.opencontainers.image.ref.name``), so ``skopeo copy oci:DIR ...`` takes it as it is. When
``--platform`` chose part of an index, the index's bytes are kept as a blob but index.json
lists the chosen manifests instead (the index names manifests the layout does not hold): one
chosen manifest gets the tag as its name; several get a name each, so ``oci:DIR:NAME`` can
pick one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tofu3.digest import Digest, algorithm_of, hex_of
from tofu3.oci.manifest import ANNOTATION_REF_NAME, Descriptor, Platform
from tofu3.oci.media_types import OCI_INDEX

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}\n'
# The image-spec's grammar for org.opencontainers.image.ref.name.
_REF_NAME_RE = re.compile(
    r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*"
)


@dataclass(frozen=True)
class LayoutEntry:
    """One entry of the layout's index.json."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    ref_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as index.json holds it."""
        entry: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            platform = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                platform["variant"] = self.platform.variant
            if self.platform.os_version:
                platform["os.version"] = self.platform.os_version
            entry["platform"] = platform
        if self.ref_name is not None:
            entry["annotations"] = {ANNOTATION_REF_NAME: self.ref_name}
        return entry


def root_entry(media_type: str, digest: Digest, size: int, tag: str | None) -> LayoutEntry:
    """index.json's entry for the whole verified reference."""
    return LayoutEntry(media_type, digest, size, None, tag)


def chosen_entries(chosen: Sequence[Descriptor], tag: str | None) -> list[LayoutEntry]:
    """index.json's entries for the manifests --platform chose from an index. One gets the
    tag as its name; several are named by their own ref.name annotation when it is usable
    and unique, else ``TAG-os-arch[-variant]``."""
    if len(chosen) == 1:
        (only,) = chosen
        return [LayoutEntry(only.media_type, only.digest, only.size, only.platform, tag)]
    names: list[str] = []
    for descriptor in chosen:
        own = descriptor.annotations.get(ANNOTATION_REF_NAME)
        if own is None or not _REF_NAME_RE.fullmatch(own):
            parts = [tag] if tag else []
            if descriptor.platform is not None:
                platform = descriptor.platform
                parts += [platform.os, platform.architecture]
                parts += [platform.variant] if platform.variant else []
            own = "-".join(parts) or "image"
        names.append(own)
    unique = [
        name if names.count(name) == 1 else f"{name}-{position}"
        for position, name in enumerate(names)
    ]
    return [
        LayoutEntry(d.media_type, d.digest, d.size, d.platform, name)
        for d, name in zip(chosen, unique, strict=True)
    ]


def index_json(entries: Sequence[LayoutEntry]) -> bytes:
    """The layout's index.json."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry.to_json() for entry in entries],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def blob_path(layout: Path, digest: Digest) -> Path:
    """``blobs/ALGORITHM/HEX`` under ``layout`` (the digest passed the grammar already)."""
    return layout / "blobs" / algorithm_of(digest) / hex_of(digest)


def write_layout_files(layout: Path, entries: Sequence[LayoutEntry]) -> None:
    """oci-layout and index.json; written last, when every blob is in place."""
    (layout / OCI_LAYOUT_FILE).write_bytes(OCI_LAYOUT)
    (layout / INDEX_FILE).write_bytes(index_json(entries))
