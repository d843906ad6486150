"""``tofu3 fetch``'s own download (tofu3/fetch/fetcher.py): the vantages' registry protocol
(RegistrySession) over the coordinator's HTTPS client, against a small registry behind
httpx.MockTransport that answers as ghcr.io does (401 Bearer challenge, a token, manifests by
digest, blobs redirected to a CDN that refuses any Authorization header, as S3 does). What
came back is kept only if it is exactly what the vantages agreed on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tofu3.digest import Digest, digest_bytes, hex_of
from tofu3.errors import (
    DigestMismatch,
    FetchedBytesMismatch,
    FetchFailed,
    HttpError,
    UnverifiedArtifact,
)
from tofu3.fetch.agreed import Agreed
from tofu3.fetch.fetcher import FetchedKind, fetch_agreed
from tofu3.oci.media_types import OCI_INDEX, OCI_MANIFEST
from tofu3.reference import parse_reference
from tofu3.release.url import parse_release_url

TOKEN = "t0ken"
REPOSITORY = "team/tool"
CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes " * 500
FILE_URL = "https://files.test/releases/tool-1.2.tar.gz"
TARBALL = b"tarball " * 700


def _descriptor(media_type: str, body: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_bytes(body), "size": len(body), **extra}


MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", LAYER)],
    }
).encode()
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            _descriptor(OCI_MANIFEST, MANIFEST, platform={"os": "linux", "architecture": "amd64"})
        ],
    }
).encode()


class _Body(httpx.SyncByteStream):
    """A body that arrives in chunks, as from a socket, counting what was taken of it."""

    def __init__(self, data: bytes, taken: list[int]) -> None:
        self._data = data
        self._taken = taken

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), 100):
            self._taken[0] += len(self._data[start : start + 100])
            yield self._data[start : start + 100]


@dataclass
class Registry:
    """registry.test (and its CDN, cdn.test), honest unless told to serve other bytes."""

    manifests: dict[Digest, tuple[bytes, str]] = field(
        default_factory=lambda: {
            digest_bytes(INDEX): (INDEX, OCI_INDEX),
            digest_bytes(MANIFEST): (MANIFEST, OCI_MANIFEST),
        }
    )
    blobs: dict[Digest, bytes] = field(
        default_factory=lambda: {digest_bytes(CONFIG): CONFIG, digest_bytes(LAYER): LAYER}
    )
    files: dict[str, bytes] = field(default_factory=lambda: {FILE_URL: TARBALL})
    seen: list[httpx.Request] = field(default_factory=list)
    taken: list[int] = field(default_factory=lambda: [0])

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        host, path = request.url.host, request.url.path
        if host == "files.test":
            body = self.files.get(str(request.url.copy_with(query=None)))
            return self._ok(body) if body is not None else httpx.Response(404)
        if host == "cdn.test":
            if "authorization" in request.headers:
                return httpx.Response(403)  # as S3: a token that followed the redirect
            body = self.blobs.get(Digest(f"sha256:{path.rpartition('/')[2]}"))
            return self._ok(body) if body is not None else httpx.Response(404)
        if path == "/v2/":
            challenge = 'Bearer realm="https://registry.test/token",service="registry.test"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if path == "/token":
            return httpx.Response(200, json={"token": TOKEN})
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401)
        kind, _, reference = path.removeprefix(f"/v2/{REPOSITORY}/").partition("/")
        if kind == "manifests" and Digest(reference) in self.manifests:
            body, media_type = self.manifests[Digest(reference)]
            return self._ok(body, {"Content-Type": media_type})
        if kind == "blobs" and Digest(reference) in self.blobs:
            location = f"https://cdn.test/blobs/{hex_of(Digest(reference))}?sig=s3cret"
            return httpx.Response(307, headers={"Location": location})
        return httpx.Response(404)

    def _ok(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(200, stream=_Body(body, self.taken), headers=headers)

    @property
    def network(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.answer)


def _agreed(registry: Registry, *, sizes: bool = True) -> Agreed:
    digests: dict[Digest, int | None] = {
        digest: len(body) if sizes else None
        for digest, body in [
            *((d, b) for d, (b, _) in registry.manifests.items()),
            *registry.blobs.items(),
        ]
    }
    reference = parse_reference(f"registry.test/{REPOSITORY}:1.0")
    return Agreed(reference, digest_bytes(INDEX), digests, "this verification")


def _fetch(registry: Registry, output: Path, agreed: Agreed | None = None) -> object:
    agreed = agreed or _agreed(Registry())
    return fetch_agreed(agreed, output, network=registry.network)


def test_an_image_is_written_as_a_layout_of_exactly_the_agreed_bytes(tmp_path: Path) -> None:
    registry = Registry()
    output = tmp_path / "tool"

    fetched = fetch_agreed(_agreed(registry), output, network=registry.network, jobs=2)

    assert fetched.kind is FetchedKind.LAYOUT
    assert (fetched.blobs, fetched.digest) == (4, digest_bytes(INDEX))
    for body in (INDEX, MANIFEST, CONFIG, LAYER):
        assert (output / "blobs" / "sha256" / hex_of(digest_bytes(body))).read_bytes() == body
    assert fetched.size == sum(len(b) for b in (INDEX, MANIFEST, CONFIG, LAYER))
    hosts = [(r.url.host, r.url.path) for r in registry.seen]
    assert hosts[:2] == [("registry.test", "/v2/"), ("registry.test", "/token")]
    manifest_requests = [r for r in registry.seen if "/manifests/" in r.url.path]
    assert all(
        "application/vnd.oci.image.index.v1+json" in r.headers["Accept"] for r in manifest_requests
    )
    assert [p.name for p in tmp_path.iterdir()] == ["tool"]


def test_a_ledger_entry_without_sizes_is_enough(tmp_path: Path) -> None:
    registry = Registry()

    fetched = fetch_agreed(
        _agreed(registry, sizes=False), tmp_path / "tool", network=registry.network
    )

    assert fetched.blobs == 4


@pytest.mark.parametrize(
    ("served", "message"),
    [
        (LAYER[:-1] + b"X", f"{len(LAYER)} bytes hashing to"),  # same length, other bytes
        (LAYER[:-100], f"{len(LAYER) - 100} bytes hashing to"),  # cut short
        (LAYER * 20, f"more than the {len(LAYER)} bytes agreed on"),  # longer than agreed
    ],
)
def test_a_layer_that_differs_from_what_was_agreed_is_never_kept(
    tmp_path: Path, served: bytes, message: str
) -> None:
    registry = Registry()
    registry.blobs[digest_bytes(LAYER)] = served

    with pytest.raises(FetchedBytesMismatch, match=f"blob {digest_bytes(LAYER)}") as caught:
        _fetch(registry, tmp_path / "tool")

    assert message in str(caught.value)
    assert "not the bytes the vantages agreed on" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    assert registry.taken[0] < len(LAYER) * 2 + len(INDEX) + len(MANIFEST) + len(CONFIG)


def test_a_manifest_that_hashes_otherwise_is_never_kept(tmp_path: Path) -> None:
    registry = Registry()
    registry.manifests[digest_bytes(MANIFEST)] = (
        MANIFEST.replace(b"tar+gzip", b"tar+zstd"),
        OCI_MANIFEST,
    )

    with pytest.raises(DigestMismatch, match=f"manifest {digest_bytes(MANIFEST)}"):
        _fetch(registry, tmp_path / "tool")

    assert list(tmp_path.iterdir()) == []


def test_a_manifest_longer_than_agreed_is_cut_off(tmp_path: Path) -> None:
    registry = Registry()
    registry.manifests[digest_bytes(MANIFEST)] = (MANIFEST + b" " * 10_000, OCI_MANIFEST)

    with pytest.raises(FetchedBytesMismatch, match=f"more than the {len(MANIFEST)} bytes"):
        _fetch(registry, tmp_path / "tool")

    assert list(tmp_path.iterdir()) == []


def test_a_blob_the_verification_did_not_cover_is_not_fetched(tmp_path: Path) -> None:
    registry = Registry()
    agreed = _agreed(registry)
    digests = {d: s for d, s in agreed.digests.items() if d != digest_bytes(LAYER)}
    partial = Agreed(agreed.reference, agreed.root, digests, agreed.source)

    with pytest.raises(UnverifiedArtifact, match="was not covered by this verification"):
        _fetch(registry, tmp_path / "tool", partial)

    assert not any("/blobs/" in r.url.path for r in registry.seen)


def test_a_blob_the_registry_no_longer_has_is_a_transport_failure(tmp_path: Path) -> None:
    registry = Registry()
    agreed = _agreed(registry)
    del registry.blobs[digest_bytes(CONFIG)]

    with pytest.raises(HttpError, match="HTTP 404"):
        _fetch(registry, tmp_path / "tool", agreed)

    assert list(tmp_path.iterdir()) == []


def _file_agreed(body: bytes = TARBALL) -> Agreed:
    reference = parse_release_url(FILE_URL)
    return Agreed(
        reference, digest_bytes(body), {digest_bytes(body): len(body)}, "this verification"
    )


def test_a_release_file_is_kept_when_it_is_the_agreed_bytes(tmp_path: Path) -> None:
    registry = Registry()

    fetched = fetch_agreed(_file_agreed(), tmp_path, network=registry.network)

    assert fetched.kind is FetchedKind.FILE
    assert (tmp_path / "tool-1.2.tar.gz").read_bytes() == TARBALL
    assert (fetched.size, fetched.digest) == (len(TARBALL), digest_bytes(TARBALL))


@pytest.mark.parametrize(
    "served", [TARBALL[:-1] + b"!", TARBALL[:10], TARBALL + b"and a backdoor " * 100]
)
def test_a_release_file_that_differs_is_never_kept(tmp_path: Path, served: bytes) -> None:
    registry = Registry(files={FILE_URL: served})

    with pytest.raises(FetchedBytesMismatch, match=r"file /releases/tool-1\.2\.tar\.gz"):
        fetch_agreed(_file_agreed(), tmp_path, network=registry.network)

    assert list(tmp_path.iterdir()) == []


def test_a_release_file_that_is_gone_is_not_fetched(tmp_path: Path) -> None:
    registry = Registry(files={})

    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch_agreed(_file_agreed(), tmp_path, network=registry.network)

    assert list(tmp_path.iterdir()) == []
