"""``tofu3 fetch``: bring an artifact the vantages agreed on onto the coordinator, keeping it
only if every byte matches what they agreed on.

The checks, in order:

(1) Only what the vantages agreed on is fetched: an accepted verdict, or an accepted
    ledger entry (tofu3.fetch.agreed).
(2) Everything is fetched by digest, starting from the root digest the vantages agreed on,
    and the tree is re-derived from those bytes with the same platform selection.
(3) Every digest the coordinator is about to fetch must be one the vantages agreed on, with
    the same size (where the agreement records sizes; otherwise the descriptor's, which the
    digest-checked bytes above it gave).
(4) Every byte is hashed as it arrives; a response longer than agreed is cut off, one that
    hashes otherwise is deleted (FetchedBytesMismatch).
(5) Output is written under a temporary name beside the target and renamed into place only
    when (4) held for all of it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tofu3.atomic import atomic_directory, atomic_file
from tofu3.digest import Digest
from tofu3.errors import (
    ConfigurationError,
    FetchFailed,
    MalformedManifest,
    UnverifiedArtifact,
)
from tofu3.fetch.agreed import Agreed
from tofu3.fetch.bottle import bottle_file_name, bottle_layer, single_bottle
from tofu3.fetch.http import CoordinatorHttp, HttpOptions
from tofu3.fetch.layout import (
    LayoutEntry,
    blob_path,
    chosen_entries,
    root_entry,
    write_layout_files,
)
from tofu3.fetch.registry import CoordinatorRegistry, stream_checked
from tofu3.oci.manifest import Descriptor, ImageManifest, Index, Manifest, parse_manifest
from tofu3.oci.platform import PlatformFilter, select
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference

_HTTP_OK = 200


class FetchedKind(str, enum.Enum):
    """What ``tofu3 fetch`` wrote."""

    LAYOUT = "oci-layout"
    BOTTLE = "bottle"
    FILE = "file"


@dataclass(frozen=True)
class Fetched:
    """Where the checked artifact now is."""

    kind: FetchedKind
    path: Path
    digest: Digest  # the root digest, the bottle's layer digest, or the file's digest
    size: int  # bytes written
    blobs: int  # files under blobs/ for a layout; 1 otherwise


def check_output(output: Path) -> None:
    """Fail early (before any verification) on an output that can never be written."""
    parent = output.parent if not output.is_dir() else output
    if not parent.is_dir():
        raise ConfigurationError(f"cannot write {output}: {parent} is not a directory")


def fetch_agreed(
    agreed: Agreed,
    output: Path,
    *,
    platforms: Sequence[PlatformFilter] = (),
    http: HttpOptions | None = None,
) -> Fetched:
    """Download what ``agreed`` names to ``output`` and keep it only if it matches."""
    http = http or HttpOptions()
    with CoordinatorHttp(http) as client:
        if isinstance(agreed.reference, ReleaseReference):
            return _fetch_file(client, agreed.reference, agreed, output)
        return _ImageFetch(client, agreed, platforms, http).run(output)


def _agreed_size(agreed: Agreed, digest: Digest, size: int | None, what: str) -> int | None:
    """(3) The size to hold ``digest`` to: the agreed one, else the descriptor's."""
    if digest not in agreed.digests:
        raise UnverifiedArtifact(
            f"{what} ({digest}) was not covered by {agreed.source}; fetch with the same "
            "--platform as that verification, or without --max-age to verify afresh"
        )
    known = agreed.digests[digest]
    if known is not None and size is not None and known != size:
        raise MalformedManifest(
            f"{what}: its descriptor says {size} bytes, the vantages agreed on {known}"
        )
    return known if known is not None else size


def file_target(output: Path, name: str) -> Path:
    """A file output: inside ``output`` when it is a directory, else ``output`` itself."""
    return output / name if output.is_dir() else output


def _fetch_file(
    client: CoordinatorHttp, reference: ReleaseReference, agreed: Agreed, output: Path
) -> Fetched:
    what = f"file {reference.url_path}"
    digest = agreed.root
    size = _agreed_size(agreed, digest, None, what)
    target = file_target(output, reference.file_name)
    read_timeout = float(client.limits.blob_stall_seconds)
    with client.get(reference.url, read_timeout=read_timeout, what=what) as response:
        if response.status_code != _HTTP_OK:
            raise FetchFailed(f"{what}: HTTP {response.status_code}")
        with atomic_file(target) as sink:
            written = stream_checked(response, digest, size, sink, what=what)
    return Fetched(FetchedKind.FILE, target, digest, written, 1)


class _ImageFetch:
    """One image's fetch: the tree from the agreed root digest, then a bottle or a layout."""

    def __init__(
        self,
        client: CoordinatorHttp,
        agreed: Agreed,
        platforms: Sequence[PlatformFilter],
        http: HttpOptions,
    ) -> None:
        self.reference: Reference = agreed.reference
        self.agreed = agreed
        self.platforms = platforms
        self.limits = http.limits
        self.registry = CoordinatorRegistry(client, agreed.reference, http.limits, http.credentials)
        self.manifests: dict[Digest, bytes] = {}
        self.blobs: dict[Digest, int] = {}

    def run(self, output: Path) -> Fetched:
        # (2)
        root_digest = self.agreed.root
        root = self._manifest(root_digest, None, "the reference's manifest")
        chosen = select(root, self.platforms) if isinstance(root, Index) else []
        bottle = single_bottle(chosen) if self.platforms else None
        if bottle is not None:
            return self._bottle(bottle, output)
        self._collect(root, 1)
        entries: list[LayoutEntry]
        if isinstance(root, Index) and self.platforms:
            entries = chosen_entries(chosen, self.reference.tag)
        else:
            size = len(self.manifests[root_digest])
            entries = [root_entry(root.media_type, root_digest, size, self.reference.tag)]
        return self._write_layout(root_digest, entries, output)

    def _manifest(self, digest: Digest, size: int | None, what: str) -> Manifest:
        size = _agreed_size(self.agreed, digest, size, what)
        body, content_type = self.registry.manifest(digest, size, what=what)
        self.manifests[digest] = body
        return parse_manifest(body, content_type, self.limits)

    def _collect(self, manifest: Manifest, depth: int) -> None:
        """Every manifest and blob under ``manifest`` that verification covered."""
        if isinstance(manifest, ImageManifest):
            for blob in manifest.blobs():
                _agreed_size(self.agreed, blob.digest, blob.size, f"blob {blob.digest}")
                self.blobs[blob.digest] = blob.size
            return
        if depth > self.limits.max_index_depth:
            raise MalformedManifest("indexes nested deeper than tofu3 follows")
        for child in select(manifest, self.platforms):
            parsed = self._manifest(child.digest, child.size, f"manifest {child.digest}")
            self._collect(parsed, depth + 1)

    def _bottle(self, entry: Descriptor, output: Path) -> Fetched:
        what = f"bottle {entry.bottle_tag}"
        manifest = self._manifest(entry.digest, entry.size, f"manifest of the {what}")
        if not isinstance(manifest, ImageManifest):
            raise MalformedManifest(f"{what}: the index entry is not an image manifest")
        layer = bottle_layer(manifest, entry)
        _agreed_size(self.agreed, layer.digest, layer.size, what)
        target = file_target(output, bottle_file_name(self.reference, entry))
        with atomic_file(target) as sink:
            self.registry.blob(layer.digest, layer.size, sink, what=what)
        return Fetched(FetchedKind.BOTTLE, target, layer.digest, layer.size, 1)

    def _write_layout(
        self, root_digest: Digest, entries: Sequence[LayoutEntry], output: Path
    ) -> Fetched:
        if output.exists() and not (output.is_dir() and not any(output.iterdir())):
            raise ConfigurationError(
                f"cannot write an OCI layout to {output}: it exists and is not an empty directory"
            )
        written = 0
        with atomic_directory(output) as layout:
            for digest, body in self.manifests.items():
                path = blob_path(layout, digest)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                written += len(body)
            for digest, size in self.blobs.items():
                path = blob_path(layout, digest)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as sink:
                    self.registry.blob(digest, size, sink, what=f"blob {digest}")
                written += size
            write_layout_files(layout, entries)
        count = len(self.manifests) + len(self.blobs)
        return Fetched(FetchedKind.LAYOUT, output, root_digest, written, count)
