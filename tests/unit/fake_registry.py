"""An in-memory registry behind tofu3's port (tofu3/remote/port.py): the fast stand-in for a
vantage in unit tests of the walk, as python-tuf's RepositorySimulator stands in for a
repository. It serves a lab Store (tofu3/lab/store.py) the way ghcr.io does: ``GET /v2/`` ->
401 Bearer challenge, a token from a separate realm, manifests with their Content-Type and
Docker-Content-Digest, blobs by digest. A test makes it lie by replacing a response
per vantage: with the lab's own lies (``tamper``, tofu3/lab/lies.py: the same pure functions
the lab registry tells them with), or with any other (``lie``).

No shell, no curl, no sockets: the shell and curl layer has its own end-to-end tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlsplit

from tofu3.digest import Digest, is_digest, parse_digest
from tofu3.errors import ResponseTooLarge
from tofu3.inventory import Vantage
from tofu3.lab.content import build_alt_store
from tofu3.lab.lies import big_token_response, build_deep_store, layer_answer, manifest_answer
from tofu3.lab.store import Store
from tofu3.lab.tamper import TamperMode
from tofu3.remote.port import (
    BlobDownload,
    BlobRequest,
    Chained,
    Connection,
    FetchRequest,
    Request,
    Response,
    token_only,
)
from tofu3.remote.probe import VantageFacts
from tofu3.verify import Connected

REGISTRY = "registry.test"
REALM = "https://auth.test/token"
TOKEN = "fake-pull-token"


@dataclass(frozen=True)
class Served:
    """What the fake answers to one request."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Lie = Callable[[Request, Served], Served]


def _honest(request: Request, served: Served) -> Served:
    del request
    return served


@dataclass
class FakeVantage:
    """One vantage's view of the fake registry: a VantagePort."""

    name: str
    store: Store
    tamper: TamperMode | None = None
    lie: Lie = _honest
    requests: list[Request] = field(default_factory=list)
    closed: bool = False

    @property
    def vantage(self) -> str:
        return self.name

    @property
    def facts(self) -> VantageFacts:
        return VantageFacts("8.5.0", "sha256sum", "Linux x86_64", "/tmp/tofu3-fake")

    @property
    def host_key_fingerprint(self) -> str:
        return f"SHA256:fake-{self.name}"

    def close(self) -> None:
        self.closed = True

    def fetch_after_token(self, token: FetchRequest, then: FetchRequest) -> Chained:
        """The token only: this transport does not chain."""
        del then
        return token_only(self, token)

    def fetch(self, items: Sequence[FetchRequest], *, jobs: int) -> list[Response]:
        del jobs
        responses = []
        for item in items:
            served = self._serve(item.request)
            if len(served.body) > item.cap:
                raise ResponseTooLarge(
                    f"vantage {self.name!r}: {item.what} is over its {item.cap}-byte cap"
                )
            responses.append(Response(self._connection(item.request, served), served.body))
        return responses

    def download(
        self,
        items: Sequence[BlobRequest],
        *,
        jobs: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[BlobDownload]:
        del jobs
        downloads = []
        for item in items:
            served = self._serve(item.request)
            hexdigest = hashlib.new(item.algorithm, served.body).hexdigest()
            digest = parse_digest(f"{item.algorithm}:{hexdigest}")
            downloads.append(BlobDownload(self._connection(item.request, served), digest))
        if on_progress is not None:
            on_progress(sum(d.connection.size for d in downloads))
        return downloads

    def _connection(self, request: Request, served: Served) -> Connection:
        return Connection(
            status=served.status,
            remote_ip="198.18.0.1",
            url_effective=request.url.split("?", 1)[0],
            redirects=0,
            size=len(served.body),
            content_type=served.headers.get("content-type"),
            headers={k.lower(): (v,) for k, v in served.headers.items()},
        )

    def _serve(self, request: Request) -> Served:
        self.requests.append(request)
        return self.lie(request, self._honest(request))

    def _honest(self, request: Request) -> Served:
        parts = urlsplit(request.url)
        if parts.netloc == "auth.test":
            if self.tamper is TamperMode.BIG_TOKEN:
                return Served(200, big_token_response(TOKEN))
            scope = parse_qs(parts.query).get("scope", [""])[0]
            return Served(200, json.dumps({"token": TOKEN, "scope": scope}).encode())
        if parts.path == "/v2/":
            challenge = f'Bearer realm="{REALM}",service="{REGISTRY}"'
            return Served(401, b"{}", {"www-authenticate": challenge})
        if ("Authorization", f"Bearer {TOKEN}") not in request.headers:
            return Served(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        path = parts.path.removeprefix("/v2/")
        if "/manifests/" in path:
            repository, _, reference = path.rpartition("/manifests/")
            store = (
                self._store_for_tags() if not is_digest(reference) else self._store_for_children()
            )
            digest = store.resolve(repository, reference)
            if digest is None:
                return Served(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            tag_digest = self.store.tags.get((repository, "1.24.5"))
            answer = manifest_answer(
                self.tamper,
                store.manifests[digest],
                digest=digest,
                reference=reference,
                repository=repository,
                tag_target=self.store.manifests[tag_digest] if tag_digest else None,
            )
            headers = {"content-type": answer.content_type}
            if answer.docker_content_digest is not None:
                headers["docker-content-digest"] = answer.docker_content_digest
            return Served(200, answer.body, headers)
        if "/blobs/" in path:
            repository, _, reference = path.rpartition("/blobs/")
            store = self._store_for_children()
            blob = store.blob(repository, Digest(reference)) if is_digest(reference) else None
            if blob is None:
                return Served(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            if Digest(reference) in store.layers:
                blob = layer_answer(self.tamper, blob)
            return Served(200, blob, {"content-type": "application/octet-stream"})
        return Served(404)

    def _store_for_tags(self) -> Store:
        if self.tamper is TamperMode.TAG:
            return build_alt_store()
        if self.tamper is TamperMode.DEEP_INDEX:
            return _deep(self.store)
        return self.store

    def _store_for_children(self) -> Store:
        # Children of another tree, or of the chain, are served too: they are content.
        if self.tamper is TamperMode.TAG:
            return build_alt_store()
        if self.tamper is TamperMode.DEEP_INDEX:
            return _merged(_deep(self.store), self.store)
        return self.store


_DEEP: dict[int, Store] = {}


def _deep(store: Store) -> Store:
    if id(store) not in _DEEP:
        _DEEP[id(store)] = build_deep_store(store)
    return _DEEP[id(store)]


def _merged(first: Store, second: Store) -> Store:
    return Store(
        blobs={**second.blobs, **first.blobs},
        manifests={**second.manifests, **first.manifests},
        tags={**second.tags, **first.tags},
        repositories={**second.repositories, **first.repositories},
        layers=first.layers | second.layers,
    )


VANTAGES = ("ams", "sfo", "sgp")


def connected(
    store: Store,
    tampers: dict[str, TamperMode] | None = None,
    lies: dict[str, Lie] | None = None,
) -> list[Connected]:
    """Three vantages (ams, sfo, sgp) on ``store``; ``tampers`` and ``lies`` make some lie."""
    tampers, lies = tampers or {}, lies or {}
    return [
        Connected(
            vantage=Vantage(name=name, host=f"{name}.test"),
            port=FakeVantage(name, store, tampers.get(name), lies.get(name, _honest)),
        )
        for name in VANTAGES
    ]


def with_body(body: bytes, **headers: str) -> Callable[[Served], Served]:
    """A change to a response: these bytes (and these headers) instead."""

    def change(served: Served) -> Served:
        return replace(served, body=body, headers={**served.headers, **headers})

    return change


def lie_about(path_part: str, change: Callable[[Served], Served]) -> Lie:
    """A lie told for every request whose URL contains ``path_part``."""

    def lie(request: Request, served: Served) -> Served:
        return change(served) if path_part in request.url else served

    return lie
