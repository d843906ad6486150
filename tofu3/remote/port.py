"""The port to a vantage: what the registry protocol (tofu3/protocol.py) asks of whatever
carries its requests, and the values that come back.

Three things implement it: the framed SSH session to a real vantage (session.py), where the
vantage's own curl does the work; the coordinator's own HTTPS client for ``tofu3 fetch``;
and the in-memory registry the unit tests walk against. The protocol's checks (challenge,
token, Accept list, digests, sizes, caps, redirect rules) are written once, above this port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tofu3.digest import Digest
from tofu3.errors import Tofu3Error
from tofu3.remote.probe import VantageFacts


@dataclass(frozen=True)
class Request:
    """One HTTP GET. Header values may be secret: on a vantage they only ever go into curl's
    config on stdin."""

    url: str
    headers: Sequence[tuple[str, str]] = ()
    follow_redirects: bool = True


@dataclass(frozen=True)
class Connection:
    """Connection facts of one transfer (as curl reports them on a vantage)."""

    status: int
    remote_ip: str
    url_effective: str
    redirects: int
    size: int
    content_type: str | None
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The last value of a response header, by case-insensitive name."""
        values = self.headers.get(name.lower())
        return values[-1] if values else None


@dataclass(frozen=True)
class Response:
    """A small response whose exact bytes came back to the coordinator."""

    connection: Connection
    body: bytes


@dataclass(frozen=True)
class BlobDownload:
    """A blob hashed where it was downloaded."""

    connection: Connection
    digest: Digest


@dataclass(frozen=True)
class BlobRequest:
    """A blob to download and hash with ``algorithm`` (sha256 or sha512); ``what`` names it
    in errors."""

    request: Request
    algorithm: str
    what: str


@dataclass(frozen=True)
class FetchRequest:
    """A small response to bring back whole, at most ``cap`` bytes; ``what`` names it."""

    request: Request
    cap: int
    what: str


@dataclass(frozen=True)
class FirstRequest:
    """A request a session may send in its first exchange (the registry's ``GET /v2/``), and
    ``then_if_ok``, sent in the same exchange only if that one was answered 200 (the root
    manifest of a registry that needs no token)."""

    item: FetchRequest
    then_if_ok: FetchRequest | None = None


TOKEN_SLOT = "@TOFU3-TOKEN@"  # noqa: S105 - a placeholder, not a secret
"""In a request's header value, where ``fetch_after_token`` puts the token the token response
carried. Not a character a token may hold (``@``), so it cannot be one."""


@dataclass(frozen=True)
class Chained:
    """A token response and, when the transport could chain it, the request that followed
    with the token in its TOKEN_SLOT: the caller takes that response only if ``used_sha256``
    is the sha256 of the token it parsed from ``token`` itself."""

    token: Response
    then: Response | None = None
    used_sha256: str | None = None
    then_error: Tofu3Error | None = None  # the chained request failed (counts as ``then``)


class Transport(Protocol):
    """Carries one level of the tree at a time: every request of a level in one exchange."""

    @property
    def vantage(self) -> str:
        """The name of the vantage (or ``coordinator``) the requests run on."""

    def fetch(self, items: Sequence[FetchRequest], *, jobs: int) -> list[Response]:
        """GET every item (at most ``jobs`` at once); each body exactly as received, in order.
        Raises the typed error of the first item (in order) whose transfer failed."""

    def fetch_after_token(self, token: FetchRequest, then: FetchRequest) -> Chained:
        """GET ``token``; then, where the transport can, ``then`` with the token the answer
        carried, in the same exchange (a round trip less). ``then`` is None in the result
        where it was not run: the caller fetches it with the token it parsed."""

    def download(
        self,
        items: Sequence[BlobRequest],
        *,
        jobs: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[BlobDownload]:
        """Download and hash every item as it streams (at most ``jobs`` at once), in order;
        ``on_progress`` gets the bytes received by all of them so far."""


class VantagePort(Transport, Protocol):
    """A Transport that is one open vantage: what it has, how it was reached, and its end."""

    @property
    def facts(self) -> VantageFacts:
        """The tools the vantage has (its curl, its hash tool, its working directory)."""

    @property
    def host_key_fingerprint(self) -> str:
        """The SSH host key the vantage presented ("" where there is none)."""

    def close(self) -> None:
        """End the session and everything it started on the vantage."""


def token_only(transport: Transport, token: FetchRequest) -> Chained:
    """``fetch_after_token`` for a transport that does not chain: the token request alone (the
    caller then fetches what was to follow with the token it parsed)."""
    (response,) = transport.fetch([token], jobs=1)
    return Chained(response)
