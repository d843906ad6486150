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
    hashes otherwise is deleted (FetchedBytesMismatch); a manifest that hashes otherwise is
    refused by the protocol itself (DigestMismatch).
(5) Output is written under a temporary name beside the target and renamed into place only
    when (4) held for all of it.

The registry conversation is the vantages' own: tofu3.protocol.RegistrySession (challenge,
token, credentials, Accept list, digest checks, schema 1 refused), here over the coordinator's
HTTPS client (tofu3.remote.https, which keeps curl's redirect rules, the caps and, told the
agreed sizes and where to keep each blob, cuts off what is longer than agreed). This module
only says what was agreed and compares what came back with it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tofu3.atomic import atomic_directory, atomic_file
from tofu3.credentials import RegistryCredentials
from tofu3.digest import Digest, algorithm_of
from tofu3.errors import (
    ConfigurationError,
    FetchedBytesMismatch,
    FetchFailed,
    MalformedManifest,
    UnverifiedArtifact,
)
from tofu3.fetch.agreed import Agreed
from tofu3.fetch.bottle import bottle_file_name, bottle_layer, single_bottle
from tofu3.fetch.layout import (
    LayoutEntry,
    blob_path,
    chosen_entries,
    root_entry,
    write_layout_files,
)
from tofu3.limits import Limits
from tofu3.oci.manifest import Descriptor, ImageManifest, Index, Manifest, parse_manifest
from tofu3.oci.platform import PlatformFilter, select
from tofu3.protocol import RegistrySession
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference
from tofu3.remote.https import Expected, HttpOptions, HttpsTransport, Overlong
from tofu3.remote.port import BlobRequest, Request

if TYPE_CHECKING:
    import httpx

_HTTP_OK = 200
DEFAULT_JOBS = 4

Into = Callable[[], AbstractContextManager[BinaryIO]]
"""Opens where one blob's bytes go, when its download starts."""


def _already_open(handle: BinaryIO) -> Into:
    return lambda: nullcontext(handle)


def _new_file(path: Path) -> Into:
    return lambda: path.open("wb")


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
    credentials: RegistryCredentials | None = None,
    jobs: int = DEFAULT_JOBS,
    network: httpx.BaseTransport | None = None,
) -> Fetched:
    """Download what ``agreed`` names to ``output`` and keep it only if it matches, at most
    ``jobs`` transfers at once; ``credentials`` as the vantages used them. ``network`` (an
    httpx transport) replaces the network in tests."""
    http = http or HttpOptions()
    held = _Held()
    with HttpsTransport(http, expect=held.expected, network=network) as transport:
        if isinstance(agreed.reference, ReleaseReference):
            return _fetch_file(transport, held, agreed.reference, agreed, output)
        session = RegistrySession(transport, agreed.reference, http.limits, credentials=credentials)
        return _ImageFetch(
            session, held, agreed, platforms=platforms, limits=http.limits, jobs=jobs
        ).run(output)


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


class _Held:
    """(4) What each response is held to, by the name it is asked for under (its ``what``):
    the transport reads the size and the destination from here (``expected``), and what came
    back is compared with the agreed digest and size here (``check``)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[Digest, Expected]] = {}

    def hold(self, what: str, digest: Digest, size: int | None, into: Into | None = None) -> None:
        """Before ``what`` is asked for: it must be ``digest``, ``size`` bytes (if known)."""
        self._held[what] = (digest, Expected(size=size, into=into))

    def expected(self, what: str) -> Expected | None:
        """For HttpsTransport: what is known of ``what``."""
        held = self._held.get(what)
        return held[1] if held is not None else None

    def check(self, what: str, received: Digest, size: int) -> None:
        """Raise FetchedBytesMismatch unless ``what`` came back as agreed."""
        digest, expected = self._held[what]
        if received != digest or (expected.size is not None and size != expected.size):
            raise _mismatch(what, digest, f"{size} bytes hashing to {received}")

    def cut_off(self, exc: Overlong) -> FetchedBytesMismatch:
        """The error for a response the transport cut off for being longer than agreed."""
        digest, _ = self._held[exc.what]
        return _mismatch(exc.what, digest, f"more than the {exc.size} bytes agreed on")


def _mismatch(what: str, digest: Digest, got: str) -> FetchedBytesMismatch:
    return FetchedBytesMismatch(
        f"{what}: the coordinator received {got}, not the bytes the vantages agreed on "
        f"({digest}); nothing was kept"
    )


def _fetch_file(
    transport: HttpsTransport,
    held: _Held,
    reference: ReleaseReference,
    agreed: Agreed,
    output: Path,
) -> Fetched:
    what = f"file {reference.url_path}"
    digest = agreed.root
    size = _agreed_size(agreed, digest, None, what)
    target = file_target(output, reference.file_name)
    request = BlobRequest(Request(reference.url, follow_redirects=True), algorithm_of(digest), what)
    with atomic_file(target) as sink:
        held.hold(what, digest, size, _already_open(sink))
        try:
            (download,) = transport.download([request], jobs=1)
        except Overlong as exc:
            raise held.cut_off(exc) from None
        if download.connection.status != _HTTP_OK:
            raise FetchFailed(f"{what}: HTTP {download.connection.status}")
        held.check(what, download.digest, download.connection.size)
    return Fetched(FetchedKind.FILE, target, digest, download.connection.size, 1)


class _ImageFetch:
    """One image's fetch: the tree from the agreed root digest, then a bottle or a layout."""

    def __init__(
        self,
        session: RegistrySession,
        held: _Held,
        agreed: Agreed,
        *,
        platforms: Sequence[PlatformFilter],
        limits: Limits,
        jobs: int,
    ) -> None:
        self.reference: Reference = agreed.reference
        self.session = session
        self.held = held
        self.agreed = agreed
        self.platforms = platforms
        self.limits = limits
        self.jobs = jobs
        self.manifests: dict[Digest, bytes] = {}
        self.blobs: dict[Digest, int] = {}

    def run(self, output: Path) -> Fetched:
        # (2)
        root_digest = self.agreed.root
        (root,) = self._manifests([(root_digest, None, "the reference's manifest")])
        chosen = select(root, self.platforms) if isinstance(root, Index) else []
        bottle = single_bottle(chosen) if self.platforms else None
        if bottle is not None:
            return self._bottle(bottle, output)
        self._collect(root)
        entries: list[LayoutEntry]
        if isinstance(root, Index) and self.platforms:
            entries = chosen_entries(chosen, self.reference.tag)
        else:
            size = len(self.manifests[root_digest])
            entries = [root_entry(root.media_type, root_digest, size, self.reference.tag)]
        return self._write_layout(root_digest, entries, output)

    def _manifests(self, wanted: Sequence[tuple[Digest, int | None, str]]) -> list[Manifest]:
        """One level of the tree: every ``(digest, descriptor size, what)``, by digest, held
        to the agreed digest and size; parsed."""
        if not wanted:
            return []
        for digest, size, what in wanted:
            self.held.hold(what, digest, _agreed_size(self.agreed, digest, size, what))
        try:
            if len(wanted) == 1:
                ((digest, _, what),) = wanted
                fetched = [self.session.manifest(digest, what=what, expected=digest)]
            else:
                items = [(digest, what) for digest, _, what in wanted]
                fetched = self.session.manifests(items, jobs=self.jobs)
        except Overlong as exc:
            raise self.held.cut_off(exc) from None
        parsed: list[Manifest] = []
        for manifest, (digest, _, what) in zip(fetched, wanted, strict=True):
            self.held.check(what, manifest.digest, len(manifest.body))
            self.manifests[digest] = manifest.body
            parsed.append(parse_manifest(manifest.body, manifest.content_type, self.limits))
        return parsed

    def _collect(self, root: Manifest) -> None:
        """Every manifest and blob under ``root`` that verification covered, a level of the
        tree at a time."""
        level = [root]
        depth = 1
        while level:
            children: dict[Digest, tuple[Digest, int | None, str]] = {}
            for manifest in level:
                if isinstance(manifest, ImageManifest):
                    for blob in manifest.blobs():
                        _agreed_size(self.agreed, blob.digest, blob.size, f"blob {blob.digest}")
                        self.blobs[blob.digest] = blob.size
                    continue
                if depth > self.limits.max_index_depth:
                    raise MalformedManifest("indexes nested deeper than tofu3 follows")
                for child in select(manifest, self.platforms):
                    what = f"manifest {child.digest}"
                    _agreed_size(self.agreed, child.digest, child.size, what)
                    children.setdefault(child.digest, (child.digest, child.size, what))
            level = self._manifests(list(children.values()))
            depth += 1

    def _blobs(self, wanted: Sequence[tuple[Digest, int, str, Into]]) -> None:
        """Every ``(digest, size, what, into)`` in one exchange, each streamed into its
        destination and held to the agreed digest and size."""
        for digest, size, what, into in wanted:
            self.held.hold(what, digest, size, into)
        try:
            downloads = self.session.blobs(
                [(digest, what) for digest, _, what, _ in wanted], jobs=self.jobs
            )
        except Overlong as exc:
            raise self.held.cut_off(exc) from None
        for download, (_, _, what, _) in zip(downloads, wanted, strict=True):
            self.held.check(what, download.digest, download.connection.size)

    def _bottle(self, entry: Descriptor, output: Path) -> Fetched:
        what = f"bottle {entry.bottle_tag}"
        (manifest,) = self._manifests([(entry.digest, entry.size, f"manifest of the {what}")])
        if not isinstance(manifest, ImageManifest):
            raise MalformedManifest(f"{what}: the index entry is not an image manifest")
        layer = bottle_layer(manifest, entry)
        _agreed_size(self.agreed, layer.digest, layer.size, what)
        target = file_target(output, bottle_file_name(self.reference, entry))
        with atomic_file(target) as sink:
            self._blobs([(layer.digest, layer.size, what, _already_open(sink))])
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
            for digest in [*self.manifests, *self.blobs]:
                blob_path(layout, digest).parent.mkdir(parents=True, exist_ok=True)
            for digest, body in self.manifests.items():
                blob_path(layout, digest).write_bytes(body)
                written += len(body)
            self._blobs(
                [
                    (digest, size, f"blob {digest}", _new_file(blob_path(layout, digest)))
                    for digest, size in self.blobs.items()
                ]
            )
            written += sum(self.blobs.values())
            write_layout_files(layout, entries)
        count = len(self.manifests) + len(self.blobs)
        return Fetched(FetchedKind.LAYOUT, output, root_digest, written, count)
