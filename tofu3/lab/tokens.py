"""What the lab registry hands out and later checks: bearer tokens and signed CDN URLs.

Both are secrets in the sense the design cares about: the registry never logs them, and a
vantage must keep them out of command lines. Tokens are random and remembered in memory
with what they grant; CDN URLs carry an expiry and an HMAC made with a per-process key, so
only the registry that redirected to them can have made them.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from tofu3.digest import Digest, hex_of, parse_digest

TOKEN_LIFETIME = 300
"""Seconds a bearer token is valid (what ghcr.io and Docker Hub say in expires_in)."""

URL_LIFETIME = 600
"""Seconds a signed CDN URL is valid."""

GHCR_CDN = "pkg-containers.githubusercontent.com"
DOCKER_CDN = "production.cloudflare.docker.com"

_GHCR_BLOB_PATH = re.compile(r"/ghcr1/blobs/(sha256:[0-9a-f]{64})")
_DOCKER_BLOB_PATH = re.compile(
    r"/registry-v2/docker/registry/v2/blobs/sha256/([0-9a-f]{2})/([0-9a-f]{64})/data"
)
_DOCKER_VERIFY = re.compile(r"([0-9]{1,12})-([A-Za-z0-9_-]{1,100})")


@dataclass(frozen=True)
class Grant:
    """What one token allows: pulling ``repositories`` from ``service`` until ``expires``."""

    service: str
    repositories: frozenset[str]
    expires: float


class TokenCheck(enum.Enum):
    """How an Authorization header measures up to what a request needs."""

    MISSING = "missing"  # no bearer token at all: challenge without an error
    INVALID = "invalid_token"  # unknown, expired or for another service
    INSUFFICIENT = "insufficient_scope"  # a good token that does not cover this repository
    GRANTED = "granted"


class TokenBook:
    """Bearer tokens issued by the lab's realms, kept in memory (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(
        self, service: str, scopes: Iterable[str], pullable: Collection[str]
    ) -> tuple[str, Grant]:
        """A new anonymous token for ``service`` granting pull on the requested repositories
        that are in ``pullable`` (others are silently left out, as Docker Hub does)."""
        wanted = {name for scope in scopes for name in _pull_repositories(scope)}
        now = self._clock()
        grant = Grant(service, frozenset(wanted & set(pullable)), now + TOKEN_LIFETIME)
        token = secrets.token_urlsafe(32)
        with self._lock:
            # Forget expired tokens here, so a long-running lab does not grow without bound.
            self._grants = {t: g for t, g in self._grants.items() if g.expires > now}
            self._grants[token] = grant
        return token, grant

    def check(self, authorization: str | None, service: str, repository: str) -> TokenCheck:
        """Whether ``authorization`` (the header's value) lets a client pull ``repository``."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return TokenCheck.MISSING
        with self._lock:
            grant = self._grants.get(token.strip())
        if grant is None or grant.service != service or grant.expires <= self._clock():
            return TokenCheck.INVALID
        if repository not in grant.repositories:
            return TokenCheck.INSUFFICIENT
        return TokenCheck.GRANTED


def _pull_repositories(scope: str) -> list[str]:
    """Repository names a scope string asks to pull (a scope parameter may hold several,
    separated by spaces): ``repository:library/alpine:pull`` -> ``["library/alpine"]``."""
    names = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name and "pull" in actions.split(","):
            names.append(name)
    return names


class CdnSigner:
    """Makes and checks the signed blob URLs the registry redirects to.

    ghcr.io redirects to ``pkg-containers.githubusercontent.com/ghcr1/blobs/DIGEST?se=..&sig=..``
    (an Azure-style SAS); Docker Hub to a Cloudflare URL with ``?verify=EXPIRY-SIGNATURE``.
    """

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._clock = clock

    def ghcr_url(self, digest: Digest) -> str:
        """Where ghcr.io sends a client for ``digest``."""
        path = f"/ghcr1/blobs/{digest}"
        expires = self._expiry()
        return f"https://{GHCR_CDN}{path}?se={expires}&sig={self._sign(path, expires)}"

    def docker_url(self, digest: Digest) -> str:
        """Where Docker Hub sends a client for ``digest``."""
        hex_part = hex_of(digest)
        path = f"/registry-v2/docker/registry/v2/blobs/sha256/{hex_part[:2]}/{hex_part}/data"
        expires = self._expiry()
        return f"https://{DOCKER_CDN}{path}?verify={expires}-{self._sign(path, expires)}"

    def verify(self, path: str, query: str) -> Digest | None:
        """The digest a CDN URL names if its signature is good and unexpired, else None."""
        params = parse_qs(query)
        ghcr = _GHCR_BLOB_PATH.fullmatch(path)
        docker = _DOCKER_BLOB_PATH.fullmatch(path)
        if ghcr is not None:
            digest = ghcr.group(1)
            expires, signature = _only(params, "se"), _only(params, "sig")
        elif docker is not None and docker.group(2).startswith(docker.group(1)):
            digest = f"sha256:{docker.group(2)}"
            match = _DOCKER_VERIFY.fullmatch(_only(params, "verify") or "")
            expires, signature = (match.group(1), match.group(2)) if match else (None, None)
        else:
            return None
        if expires is None or signature is None or not expires.isdigit():
            return None
        expected = self._sign(path, int(expires))
        if not hmac.compare_digest(expected, signature) or int(expires) <= self._clock():
            return None
        return parse_digest(digest)

    def _expiry(self) -> int:
        return int(self._clock()) + URL_LIFETIME

    def _sign(self, path: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _only(params: dict[str, list[str]], name: str) -> str | None:
    # A parameter given twice is ambiguous; a signed URL never has that.
    values = params.get(name, [])
    return values[0] if len(values) == 1 else None
