"""The registry protocol, once: challenge, token, manifests, blobs, over any Transport
(remote/port.py): a vantage's session, where its own curl does the requests, or the
in-memory registry of the unit tests. Manifest bytes are hashed here, on the coordinator, from
the exact bytes received.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tofu3.credentials import RegistryCredentials
from tofu3.credentials.auth import BasicAuth, plan_authentication, refusal
from tofu3.digest import Digest, algorithm_of, digest_bytes
from tofu3.errors import (
    ConfigurationError,
    DigestMismatch,
    HttpError,
    ProtocolViolation,
    UnsupportedManifest,
)
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci import media_types as mt
from tofu3.oci.challenge import parse_token_response
from tofu3.oci.manifest import SCHEMA1_REFUSAL, is_schema1
from tofu3.reference import Reference
from tofu3.remote.port import (
    TOKEN_SLOT,
    BlobDownload,
    BlobRequest,
    Chained,
    Connection,
    FetchRequest,
    Request,
    Response,
    Transport,
)

_HTTP_OK = 200
_HTTP_UNAUTHORIZED = 401


@dataclass(frozen=True)
class FetchedManifest:
    """Manifest bytes as received, and the digest the coordinator computed from them."""

    body: bytes
    digest: Digest
    content_type: str | None
    connection: Connection


class TokenCache:
    """One vantage's pull tokens for a whole run, by (registry host, repository): a batch of
    references to one repository asks its token realm once per vantage, not once per
    reference. ``None`` records a registry that needed no token."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, str | None]:
        """(known, token) for ``key``."""
        with self._lock:
            return key in self._tokens, self._tokens.get(key)

    def put(self, key: tuple[str, str], token: str | None) -> None:
        """Remember the token (or that none was needed) for ``key``."""
        with self._lock:
            self._tokens[key] = token


PING = "registry ping (GET /v2/)"


def ping_request(registry_host: str) -> Request:
    """``GET /v2/`` of a registry: the first request of every walk, known before anything
    else, so a session sends it in its first exchange."""
    return Request(f"https://{registry_host}/v2/", follow_redirects=False)


def manifest_request(
    reference: Reference, manifest: str, headers: Sequence[tuple[str, str]] | None = None
) -> Request:
    """``GET /v2/NAME/manifests/MANIFEST``; without ``headers``, as a registry that needs no
    token is asked (the Accept list only), which a session's first exchange may send at once."""
    url = f"https://{reference.registry_host}/v2/{reference.path}/manifests/{manifest}"
    return Request(url, list(headers) if headers is not None else [("Accept", mt.ACCEPT)])


class RegistrySession:
    """One vantage's conversation with one registry, for one repository."""

    def __init__(
        self,
        transport: Transport,
        reference: Reference,
        limits: Limits = DEFAULT_LIMITS,
        tokens: TokenCache | None = None,
        credentials: RegistryCredentials | None = None,
    ) -> None:
        self._transport = transport
        self._name = transport.vantage
        self._reference = reference
        self._limits = limits
        self._token: str | None = None
        # Credentials stay on the coordinator until they go into a curl config on stdin.
        self._credentials = credentials or RegistryCredentials()
        self._basic: str | None = None
        self._authenticated = False
        self._base = f"https://{reference.registry_host}/v2/{reference.path}"
        self._tokens = tokens if tokens is not None else TokenCache()
        # A manifest fetched together with the token: (reference, response).
        self._chained: tuple[str, Response] | None = None
        self._cache_key = (reference.registry_host, reference.path)

    def authenticate(self, then: str | None = None) -> None:
        """Use this vantage's token for the repository if the run already has one; else
        authenticate afresh and remember the result. ``then``: the manifest (tag or digest)
        the walk asks for next, which a transport that can chain fetches in the same
        exchange as the token."""
        known, token = self._tokens.get(self._cache_key)
        if known:
            self._token = token
            self._authenticated = True
            return
        self._authenticate(then)
        if self._basic is None:
            # Basic auth is not a token: a later session pings (and checks it) again.
            self._tokens.put(self._cache_key, self._token)

    def _authenticate(self, then: str | None = None) -> None:
        """``GET /v2/``; on a Bearer challenge, fetch a pull token from the realm (with the
        registry's credentials, if any, when the realm may have them); on a Basic challenge,
        use the credentials with the registry itself (credentials/auth.py has the rules)."""
        v2 = f"https://{self._reference.registry_host}/v2/"
        ping = self._one(
            ping_request(self._reference.registry_host), self._limits.token_bytes, PING
        )
        status = ping.connection.status
        if status == _HTTP_OK:
            self._authenticated = True
            return
        if status != _HTTP_UNAUTHORIZED:
            raise HttpError(
                f"vantage {self._name!r}: GET /v2/ answered HTTP {status}", status=status
            )
        host = self._reference.registry_host
        credentials = self._credentials.for_registry(host)
        try:
            plan = plan_authentication(
                ping.connection.header("www-authenticate"),
                registry_host=host,
                repository=self._reference.path,
                credentials=credentials,
                trusted_realm_hosts=self._credentials.trusted_realm_hosts,
                limits=self._limits,
            )
        except (ProtocolViolation, ConfigurationError) as exc:
            raise type(exc)(f"vantage {self._name!r}: {exc}") from None
        if isinstance(plan, BasicAuth):
            what = "registry ping with credentials (GET /v2/)"
            request = Request(v2, [("Authorization", plan.authorization)], follow_redirects=False)
        else:
            what = "token request"
            headers = [("Authorization", plan.authorization)] if plan.authorization else []
            # A credentialed token request is never redirected: the realm was checked, a
            # redirect target was not.
            request = Request(plan.url, headers, follow_redirects=plan.authorization is None)
        token_item = FetchRequest(request, self._limits.token_bytes, what)
        chained: Chained | None = None
        if then is not None and not isinstance(plan, BasicAuth):
            # The manifest with the token the vantage finds in the answer: one round trip.
            template = Request(
                f"{self._base}/manifests/{then}",
                [("Accept", mt.ACCEPT), ("Authorization", f"Bearer {TOKEN_SLOT}")],
            )
            chained = self._transport.fetch_after_token(
                token_item, FetchRequest(template, self._limits.manifest_bytes, f"manifest {then}")
            )
            response = chained.token
        else:
            (response,) = self._transport.fetch([token_item], jobs=1)
        status = response.connection.status
        if status != _HTTP_OK:
            refused = refusal(status, host, credentials, what=what)
            if refused is not None:
                raise type(refused)(f"vantage {self._name!r}: {refused}")
            raise HttpError(f"vantage {self._name!r}: {what} answered HTTP {status}", status=status)
        if isinstance(plan, BasicAuth):
            self._basic = plan.authorization
        else:
            self._token = parse_token_response(response.body, self._limits)
            # The chained manifest counts only if the vantage used the very token parsed
            # here; else it is fetched again with it.
            used = hashlib.sha256(self._token.encode()).hexdigest()
            if then is not None and chained is not None and chained.used_sha256 == used:
                if chained.then_error is not None:
                    raise chained.then_error
                if chained.then is not None:
                    self._chained = (then, chained.then)
        self._authenticated = True

    def _headers(self, accept: str | None) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if accept:
            headers.append(("Accept", accept))
        if self._token is not None:
            headers.append(("Authorization", f"Bearer {self._token}"))
        elif self._basic is not None:
            headers.append(("Authorization", self._basic))
        return headers

    def manifest(self, reference: str, *, what: str, expected: Digest | None) -> FetchedManifest:
        """GET a manifest by tag or digest; hash the bytes here. When fetched by digest (or
        ``expected`` is given), bytes that hash otherwise raise DigestMismatch. A
        Docker-Content-Digest header that contradicts the bytes raises DigestMismatch."""
        if not self._authenticated:
            self.authenticate(then=reference)
        chained, self._chained = self._chained, None
        if chained is not None and chained[0] == reference:
            response = chained[1]
        else:
            response = self._one(
                self._manifest_request(reference), self._limits.manifest_bytes, what
            )
        return self._checked(response, what, expected)

    def _one(self, request: Request, cap: int, what: str) -> Response:
        (response,) = self._transport.fetch([FetchRequest(request, cap, what)], jobs=1)
        return response

    def manifests(self, items: Sequence[tuple[Digest, str]], *, jobs: int) -> list[FetchedManifest]:
        """One level of the tree: GET every ``(digest, what)`` in one SSH command (at most
        ``jobs`` at a time), each checked as ``manifest`` checks it, in order."""
        if not self._authenticated:
            self.authenticate()
        cap = self._limits.manifest_bytes
        responses = self._transport.fetch(
            [FetchRequest(self._manifest_request(digest), cap, what) for digest, what in items],
            jobs=jobs,
        )
        return [
            self._checked(response, what, digest)
            for response, (digest, what) in zip(responses, items, strict=True)
        ]

    def _blob_request(self, digest: Digest) -> Request:
        return Request(f"{self._base}/blobs/{digest}", self._headers(None))

    def _manifest_request(self, reference: str) -> Request:
        return manifest_request(self._reference, reference, self._headers(mt.ACCEPT))

    def _checked(self, response: Response, what: str, expected: Digest | None) -> FetchedManifest:
        status = response.connection.status
        if status != _HTTP_OK:
            raise HttpError(
                f"vantage {self._name!r}: {what}: HTTP {status}"
                + (" (not found)" if status == 404 else ""),
                status=status,
            )
        if is_schema1(response.body, response.connection.content_type):
            # Refused for what it is: its registry digest never covers the bytes served, so
            # the digest checks below would fail, and say the wrong thing.
            raise UnsupportedManifest(f"vantage {self._name!r}: {what}: {SCHEMA1_REFUSAL}")
        algorithm = algorithm_of(expected) if expected else "sha256"
        digest = digest_bytes(response.body, algorithm)
        if expected is not None and digest != expected:
            raise DigestMismatch(
                f"vantage {self._name!r}: {what}: asked for {expected} but the bytes "
                f"received hash to {digest}"
            )
        claimed = response.connection.header("docker-content-digest")
        claimed_algorithm = "sha512" if claimed and claimed.startswith("sha512:") else "sha256"
        # Hashed again only when the header names another algorithm than the one used above.
        computed = (
            digest
            if claimed_algorithm == algorithm
            else digest_bytes(response.body, claimed_algorithm)
        )
        if claimed is not None and claimed.strip() != computed:
            raise DigestMismatch(
                f"vantage {self._name!r}: {what}: the registry's Docker-Content-Digest "
                f"header says {claimed.strip()[:80]} but the bytes hash to {digest}"
            )
        return FetchedManifest(
            body=response.body,
            digest=digest,
            content_type=response.connection.content_type,
            connection=response.connection,
        )

    def blobs(
        self,
        items: Sequence[tuple[Digest, str]],
        *,
        jobs: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[BlobDownload]:
        """Every blob of a walk in one SSH command (at most ``jobs`` at a time), each hashed
        on the vantage as it streams; ``on_progress`` gets the bytes received so far."""
        if not self._authenticated:
            self.authenticate()
        downloads = self._transport.download(
            [
                BlobRequest(self._blob_request(digest), algorithm_of(digest), what)
                for digest, what in items
            ],
            jobs=jobs,
            on_progress=on_progress,
        )
        for download, (_, what) in zip(downloads, items, strict=True):
            status = download.connection.status
            if status != _HTTP_OK:
                raise HttpError(f"vantage {self._name!r}: {what}: HTTP {status}", status=status)
        return downloads
