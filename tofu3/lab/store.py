"""What the lab registry serves: blobs, manifests and tags, addressed by digest (pure).

A manifest is serialised once, and its digest is computed from exactly those bytes; the
registry serves the same bytes. Nothing here does I/O.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from tofu3.digest import Digest, digest_bytes, is_digest

# Media types only the lab's content uses (the manifest types live in tofu3.oci.media_types).
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"


class StoredManifest(NamedTuple):
    """A manifest's media type (its Content-Type) and its exact bytes."""

    media_type: str
    body: bytes


@dataclass(frozen=True)
class Store:
    """A registry's content: everything is reachable from ``tags``, and every digest is
    the digest of the bytes it names. ``repositories`` says which repositories may serve a
    digest; ``layers`` are the blob digests that are layers (not configs)."""

    blobs: Mapping[Digest, bytes]
    manifests: Mapping[Digest, StoredManifest]
    tags: Mapping[tuple[str, str], Digest]
    repositories: Mapping[Digest, frozenset[str]]
    layers: frozenset[Digest]

    def resolve(self, repository: str, reference: str) -> Digest | None:
        """The digest of the manifest ``reference`` (a tag or a digest) names, if served."""
        if is_digest(reference):
            digest = Digest(reference)
            known = digest in self.manifests and self.serves(repository, digest)
            return digest if known else None
        return self.tags.get((repository, reference))

    def serves(self, repository: str, digest: Digest) -> bool:
        """Whether ``digest`` belongs to ``repository`` (a registry scopes content by it)."""
        return repository in self.repositories.get(digest, frozenset())

    def blob(self, repository: str, digest: Digest) -> bytes | None:
        """The blob ``digest`` in ``repository``, or None."""
        return self.blobs.get(digest) if self.serves(repository, digest) else None


class StoreBuilder:
    """Collects content for a Store, computing every digest from the bytes it is given."""

    def __init__(self) -> None:
        self._blobs: dict[Digest, bytes] = {}
        self._manifests: dict[Digest, StoredManifest] = {}
        self._tags: dict[tuple[str, str], Digest] = {}
        self._repositories: dict[Digest, set[str]] = {}
        self._layers: set[Digest] = set()

    def add_blob(self, repository: str, data: bytes, *, layer: bool) -> Digest:
        """Add a blob; returns its digest."""
        digest = digest_bytes(data)
        self._blobs[digest] = data
        self._repositories.setdefault(digest, set()).add(repository)
        if layer:
            self._layers.add(digest)
        return digest

    def add_manifest(self, repository: str, media_type: str, body: bytes) -> Digest:
        """Add a serialised manifest; returns the digest of exactly ``body``."""
        digest = digest_bytes(body)
        self._manifests[digest] = StoredManifest(media_type, body)
        self._repositories.setdefault(digest, set()).add(repository)
        return digest

    def add_tag(self, repository: str, tag: str, digest: Digest) -> None:
        """Point ``repository:tag`` at the manifest ``digest``."""
        if digest not in self._manifests:
            raise ValueError(f"tag {repository}:{tag} points at unknown manifest {digest}")
        self._tags[(repository, tag)] = digest

    def build(self) -> Store:
        """The collected content, frozen."""
        return Store(
            blobs=MappingProxyType(dict(self._blobs)),
            manifests=MappingProxyType(dict(self._manifests)),
            tags=MappingProxyType(dict(self._tags)),
            repositories=MappingProxyType(
                {digest: frozenset(repos) for digest, repos in self._repositories.items()}
            ),
            layers=frozenset(self._layers),
        )


def descriptor(media_type: str, digest: Digest, size: int) -> dict[str, Any]:
    """An OCI descriptor, keys in the order registries write them."""
    return {"mediaType": media_type, "digest": digest, "size": size}


def oci_json(document: Mapping[str, Any]) -> bytes:
    """Serialise as Homebrew does (Ruby's JSON.pretty_generate: two-space indent)."""
    return json.dumps(document, indent=2).encode()


def docker_json(document: Mapping[str, Any]) -> bytes:
    """Serialise as Docker's distribution does (Go's MarshalIndent with three spaces)."""
    return json.dumps(document, indent=3).encode()


def compact_json(document: Mapping[str, Any]) -> bytes:
    """Serialise without whitespace, as image configs and tabs are written."""
    return json.dumps(document, separators=(",", ":")).encode()


def pseudo_random(seed: str, size: int) -> bytes:
    """``size`` deterministic bytes that look random (and so do not compress)."""
    return hashlib.shake_256(seed.encode()).digest(size)


class TarMember(NamedTuple):
    """A regular file to put in a tarball."""

    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Tarball:
    """A deterministic tar.gz and the digest of its uncompressed tar (an image's diff_id)."""

    gzipped: bytes
    diff_id: Digest


def tarball(members: Sequence[TarMember], mtime: int) -> Tarball:
    """A tar.gz holding ``members`` (and their parent directories), byte-for-byte stable.

    Owner, times and gzip header are fixed (gzip mtime 0), so the same input always gives
    the same digest.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        written: set[str] = set()
        for member in members:
            parts = member.path.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in written:
                    written.add(directory)
                    archive.addfile(_tar_info(directory, tarfile.DIRTYPE, 0, 0o755, mtime))
            info = _tar_info(member.path, tarfile.REGTYPE, len(member.data), member.mode, mtime)
            archive.addfile(info, io.BytesIO(member.data))
    tar = raw.getvalue()
    return Tarball(gzip.compress(tar, compresslevel=9, mtime=0), digest_bytes(tar))


def _tar_info(name: str, kind: bytes, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = mtime
    return info
