"""The registry protocol as one vantage runs it: challenge, token, manifests, blobs.

Each vantage runs this independently with its own curl; the coordinator only interprets
what comes back. Manifest bytes are hashed here, on the coordinator, from the exact bytes
received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tofu3.digest import Digest, algorithm_of, digest_bytes
from tofu3.errors import DigestMismatch, HttpError, ProtocolViolation, UnsupportedManifest
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci import media_types as mt
from tofu3.oci.challenge import bearer_challenge, parse_token_response, token_url
from tofu3.oci.manifest import SCHEMA1_REFUSAL, is_schema1
from tofu3.reference import Reference
from tofu3.remote.curl import BlobDownload, Connection, Curl, Request

_HTTP_OK = 200
_HTTP_UNAUTHORIZED = 401


@dataclass(frozen=True)
class FetchedManifest:
    """Manifest bytes as received, and the digest the coordinator computed from them."""

    body: bytes
    digest: Digest
    content_type: str | None
    connection: Connection


class RegistrySession:
    """One vantage's conversation with one registry, for one repository."""

    def __init__(self, curl: Curl, reference: Reference, limits: Limits = DEFAULT_LIMITS) -> None:
        self._curl = curl
        self._reference = reference
        self._limits = limits
        self._token: str | None = None
        self._authenticated = False
        self._base = f"https://{reference.registry_host}/v2/{reference.path}"

    def authenticate(self) -> None:
        """``GET /v2/``; on a Bearer challenge, fetch an anonymous pull token from the realm."""
        ping = self._curl.fetch(
            Request(f"https://{self._reference.registry_host}/v2/", follow_redirects=False),
            cap=self._limits.token_bytes,
            what="registry ping (GET /v2/)",
        )
        status = ping.connection.status
        if status == _HTTP_OK:
            self._authenticated = True
            return
        if status != _HTTP_UNAUTHORIZED:
            raise HttpError(
                f"vantage {self._curl.vantage!r}: GET /v2/ answered HTTP {status}", status=status
            )
        header = ping.connection.header("www-authenticate")
        if header is None:
            raise ProtocolViolation(
                f"vantage {self._curl.vantage!r}: 401 from /v2/ without a WWW-Authenticate header"
            )
        challenge = bearer_challenge(header, self._limits)
        if challenge is None:
            raise ProtocolViolation(
                f"vantage {self._curl.vantage!r}: registry offers no Bearer challenge "
                "(anonymous Basic auth is not supported)"
            )
        url = token_url(challenge, self._reference.path)
        response = self._curl.fetch(
            Request(url), cap=self._limits.token_bytes, what="token request"
        )
        if response.connection.status != _HTTP_OK:
            raise HttpError(
                f"vantage {self._curl.vantage!r}: token realm answered HTTP "
                f"{response.connection.status}",
                status=response.connection.status,
            )
        self._token = parse_token_response(response.body, self._limits)
        self._authenticated = True

    def _headers(self, accept: str | None) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if accept:
            headers.append(("Accept", accept))
        if self._token is not None:
            headers.append(("Authorization", f"Bearer {self._token}"))
        return headers

    def manifest(self, reference: str, *, what: str, expected: Digest | None) -> FetchedManifest:
        """GET a manifest by tag or digest; hash the bytes here. When fetched by digest (or
        ``expected`` is given), bytes that hash otherwise raise DigestMismatch. A
        Docker-Content-Digest header that contradicts the bytes raises DigestMismatch."""
        if not self._authenticated:
            self.authenticate()
        response = self._curl.fetch(
            Request(f"{self._base}/manifests/{reference}", self._headers(mt.ACCEPT)),
            cap=self._limits.manifest_bytes,
            what=what,
        )
        status = response.connection.status
        if status != _HTTP_OK:
            raise HttpError(
                f"vantage {self._curl.vantage!r}: {what}: HTTP {status}"
                + (" (not found)" if status == 404 else ""),
                status=status,
            )
        if is_schema1(response.body, response.connection.content_type):
            # Refused for what it is: its registry digest never covers the bytes served, so
            # the digest checks below would fail, and say the wrong thing.
            raise UnsupportedManifest(f"vantage {self._curl.vantage!r}: {what}: {SCHEMA1_REFUSAL}")
        algorithm = algorithm_of(expected) if expected else "sha256"
        digest = digest_bytes(response.body, algorithm)
        if expected is not None and digest != expected:
            raise DigestMismatch(
                f"vantage {self._curl.vantage!r}: {what}: asked for {expected} but the bytes "
                f"received hash to {digest}"
            )
        claimed = response.connection.header("docker-content-digest")
        if claimed is not None and claimed.strip() != digest_bytes(
            response.body, claimed.split(":", 1)[0] if claimed.startswith("sha512:") else "sha256"
        ):
            raise DigestMismatch(
                f"vantage {self._curl.vantage!r}: {what}: the registry's Docker-Content-Digest "
                f"header says {claimed.strip()[:80]} but the bytes hash to {digest}"
            )
        return FetchedManifest(
            body=response.body,
            digest=digest,
            content_type=response.connection.content_type,
            connection=response.connection,
        )

    def blob(
        self, digest: Digest, *, what: str, on_progress: Callable[[int], None] | None = None
    ) -> BlobDownload:
        """Download a blob on the vantage (following redirects, https only, Authorization not
        forwarded across hosts) and return the digest computed there."""
        if not self._authenticated:
            self.authenticate()
        download = self._curl.download_digest(
            Request(f"{self._base}/blobs/{digest}", self._headers(None)),
            algorithm=algorithm_of(digest),
            what=what,
            on_progress=on_progress,
        )
        status = download.connection.status
        if status != _HTTP_OK:
            raise HttpError(f"vantage {self._curl.vantage!r}: {what}: HTTP {status}", status=status)
        return download
