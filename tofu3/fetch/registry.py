"""The registry protocol as the coordinator runs it for ``tofu3 fetch``: ``GET /v2/`` -> 401
Bearer challenge -> anonymous token from the realm -> manifests and blobs by digest.

Everything is fetched by the digest the vantages agreed on, and every byte is checked
against that digest and size as it arrives: a response longer than agreed is cut off, one
that hashes otherwise raises FetchedBytesMismatch. Nothing here decides what to trust; it
only refuses what differs from what was already trusted.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

import httpx

from tofu3.credentials import RegistryCredentials
from tofu3.credentials.auth import BasicAuth, plan_authentication, refusal
from tofu3.digest import Digest, algorithm_of, digest_bytes
from tofu3.errors import FetchedBytesMismatch, FetchFailed, ProtocolViolation
from tofu3.fetch.http import CoordinatorHttp, iter_body, read_capped
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci import media_types as mt
from tofu3.oci.challenge import parse_token_response
from tofu3.reference import Reference

_HTTP_OK = 200
_HTTP_UNAUTHORIZED = 401


class CoordinatorRegistry:
    """The coordinator's conversation with the registry of one reference."""

    def __init__(
        self,
        http: CoordinatorHttp,
        reference: Reference,
        limits: Limits = DEFAULT_LIMITS,
        credentials: RegistryCredentials | None = None,
    ) -> None:
        self._http = http
        self._reference = reference
        self._limits = limits
        self._token: str | None = None
        self._credentials = credentials or RegistryCredentials()
        self._basic: str | None = None
        self._authenticated = False
        self._base = f"https://{reference.registry_host}/v2/{reference.path}"

    def authenticate(self) -> None:
        """``GET /v2/``; then a pull token from the realm, or Basic auth to the registry, by
        the same rules as the vantages (credentials/auth.py)."""
        what = "registry ping (GET /v2/)"
        url = f"https://{self._reference.registry_host}/v2/"
        with self._http.get(url, follow_redirects=False, what=what) as ping:
            status = ping.status_code
            header = ping.headers.get("www-authenticate")
            read_capped(ping, self._limits.challenge_bytes, what)
        if status == _HTTP_OK:
            self._authenticated = True
            return
        if status != _HTTP_UNAUTHORIZED:
            raise FetchFailed(f"{what}: HTTP {status}")
        host = self._reference.registry_host
        credentials = self._credentials.for_registry(host)
        plan = plan_authentication(
            header,
            registry_host=host,
            repository=self._reference.path,
            credentials=credentials,
            trusted_realm_hosts=self._credentials.trusted_realm_hosts,
            limits=self._limits,
        )
        if isinstance(plan, BasicAuth):
            what, target, follow = "registry ping with credentials (GET /v2/)", url, False
            headers = [("Authorization", plan.authorization)]
        else:
            what, target, follow = "token request", plan.url, plan.authorization is None
            headers = [("Authorization", plan.authorization)] if plan.authorization else []
        with self._http.get(target, headers, follow_redirects=follow, what=what) as response:
            status = response.status_code
            body = read_capped(response, self._limits.token_bytes, what)
        if status != _HTTP_OK:
            refused = refusal(status, host, credentials, what=what)
            if refused is not None:
                raise refused
            raise FetchFailed(f"{what}: the token realm answered HTTP {status}")
        if isinstance(plan, BasicAuth):
            self._basic = plan.authorization
        else:
            self._token = parse_token_response(body, self._limits)
        self._authenticated = True

    def _headers(self, accept: str | None) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if accept is not None:
            headers.append(("Accept", accept))
        if self._token is not None:
            headers.append(("Authorization", f"Bearer {self._token}"))
        elif self._basic is not None:
            headers.append(("Authorization", self._basic))
        return headers

    def manifest(self, digest: Digest, size: int | None, *, what: str) -> tuple[bytes, str | None]:
        """The manifest ``digest`` names, checked against it and ``size`` (when known; the
        manifest cap holds either way); with the Content-Type it was served with."""
        if not self._authenticated:
            self.authenticate()
        url = f"{self._base}/manifests/{digest}"
        cap = (
            min(size, self._limits.manifest_bytes)
            if size is not None
            else self._limits.manifest_bytes
        )
        with self._http.get(url, self._headers(mt.ACCEPT), what=what) as response:
            if response.status_code != _HTTP_OK:
                raise FetchFailed(f"{what}: HTTP {response.status_code}")
            content_type = response.headers.get("content-type")
            try:
                body = read_capped(response, cap, what)
            except ProtocolViolation:
                raise _mismatch(what, digest, f"more than the {size} bytes agreed on") from None
        received = digest_bytes(body, algorithm_of(digest))
        if received != digest or (size is not None and len(body) != size):
            raise _mismatch(what, digest, f"{len(body)} bytes hashing to {received}")
        return body, content_type

    def blob(self, digest: Digest, size: int, sink: BinaryIO, *, what: str) -> None:
        """Stream the blob ``digest`` names into ``sink``, hashing as it arrives; raise
        FetchedBytesMismatch (after at most ``size`` + one chunk of bytes) if it differs."""
        if not self._authenticated:
            self.authenticate()
        url = f"{self._base}/blobs/{digest}"
        with self._http.get(
            url, self._headers(None), read_timeout=float(self._limits.blob_stall_seconds), what=what
        ) as response:
            if response.status_code != _HTTP_OK:
                raise FetchFailed(f"{what}: HTTP {response.status_code}")
            stream_checked(response, digest, size, sink, what=what)


def stream_checked(
    response: httpx.Response, digest: Digest, size: int | None, sink: BinaryIO, *, what: str
) -> int:
    """Copy a response body into ``sink`` while hashing it with ``digest``'s algorithm; raise
    FetchedBytesMismatch as soon as it exceeds ``size`` or, at the end, if it hashes to
    anything but ``digest``. Returns the byte count."""
    hasher = hashlib.new(algorithm_of(digest))
    total = 0
    for chunk in iter_body(response, what):
        total += len(chunk)
        if size is not None and total > size:
            raise _mismatch(what, digest, f"more than the {size} bytes agreed on")
        hasher.update(chunk)
        sink.write(chunk)
    received = f"{algorithm_of(digest)}:{hasher.hexdigest()}"
    if received != digest or (size is not None and total != size):
        raise _mismatch(what, digest, f"{total} bytes hashing to {received}")
    return total


def _mismatch(what: str, digest: Digest, got: str) -> FetchedBytesMismatch:
    return FetchedBytesMismatch(
        f"{what}: the coordinator received {got}, not the bytes the vantages agreed on "
        f"({digest}); nothing was kept"
    )
