"""The coordinator's one network seam for ``tofu3 fetch``: httpx, https only, redirects
followed here (never by httpx) so that Authorization never reaches another origin, and every
httpx error turned into a tofu3 error.

Two options make the lab (and unusual networks) reachable without touching DNS:
``--cacert FILE`` (trust only the CAs in FILE, as curl's option does) and
``--connect-to HOST:PORT:ADDR:PORT`` (connect to ADDR:PORT whenever a URL names HOST:PORT,
while TLS still checks the certificate against HOST, as curl's option does).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tofu3.credentials import RegistryCredentials
from tofu3.errors import ConfigurationError, FetchFailed, ProtocolViolation
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci.challenge import check_url

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_CONNECT_TO_RE = re.compile(
    rf"(?P<host>{_HOST}):(?P<port>\d{{1,5}}):(?P<addr>{_HOST}):(?P<to>\d{{1,5}})"
)


@dataclass(frozen=True)
class ConnectTo:
    """One ``--connect-to`` mapping: requests for host:port go to address:target_port."""

    host: str
    port: int
    address: str
    target_port: int


def parse_connect_to(text: str) -> ConnectTo:
    """Parse ``HOST:PORT:ADDR:PORT`` (an IPv6 address in brackets); every part is required."""
    match = _CONNECT_TO_RE.fullmatch(text)
    ports = (int(match["port"]), int(match["to"])) if match else (0, 0)
    if match is None or not all(0 < p < 65536 for p in ports):
        raise ConfigurationError(
            f"invalid --connect-to {text[:120]!r}: expected HOST:PORT:ADDRESS:PORT, e.g. "
            "ghcr.io:443:127.0.0.1:8443"
        )
    return ConnectTo(
        host=match["host"].lower().strip("[]"),
        port=ports[0],
        address=match["addr"].strip("[]"),
        target_port=ports[1],
    )


@dataclass(frozen=True)
class HttpOptions:
    """How the coordinator reaches servers."""

    cacert: Path | None = None
    connect_to: tuple[ConnectTo, ...] = ()
    limits: Limits = DEFAULT_LIMITS
    # For the coordinator's own token request (or Basic auth), as the vantages use them.
    credentials: RegistryCredentials = field(default_factory=RegistryCredentials)


@dataclass(frozen=True)
class Hop:
    """Where the next request of a redirect chain goes, and whether it may carry the
    Authorization header (only to the origin the chain started at, and never again once it
    has left that origin)."""

    url: str
    send_authorization: bool


def next_hop(current: str, location: str | None, first_origin: str, authorized: bool) -> Hop:
    """The request after a redirect from ``current`` to ``location`` (pure). Raises
    ProtocolViolation for a redirect without a Location, or to anything but https."""
    if not location:
        raise ProtocolViolation(f"redirect from {_shown(current)} without a Location header")
    target = urljoin(current, location.strip())
    check_url(target, what="redirect target")
    return Hop(url=target, send_authorization=authorized and origin(target) == first_origin)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _shown(url: str) -> str:
    """A URL for messages: never its query (signed CDN URLs carry secrets there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class CoordinatorHttp:
    """HTTPS GETs from the coordinator. One httpx pool per origin a URL names, so a TLS
    session checked for one name never carries requests meant for another, even when
    ``--connect-to`` sends both to one address."""

    def __init__(
        self, options: HttpOptions = HttpOptions(), *, transport: httpx.BaseTransport | None = None
    ) -> None:
        """``transport`` replaces the network (tests use httpx.MockTransport)."""
        self._options = options
        self._transport = transport
        self._tls = _tls_context(options.cacert)
        self._routes: Mapping[tuple[str, int], ConnectTo] = {
            (c.host, c.port): c for c in options.connect_to
        }
        self._clients: dict[str, httpx.Client] = {}

    @property
    def limits(self) -> Limits:
        """The caps and timeouts this client applies."""
        return self._options.limits

    def close(self) -> None:
        """Close every pool."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> CoordinatorHttp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def get(
        self,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        follow_redirects: bool = True,
        read_timeout: float | None = None,
        what: str,
    ) -> Iterator[httpx.Response]:
        """GET ``url`` and yield the final response, its body not yet read (read it with
        ``iter_raw``: the bytes exactly as sent, as curl on the vantages hashes them)."""
        limits = self._options.limits
        check_url(url, what=what)
        first_origin = origin(url)
        authorized = any(name.lower() == "authorization" for name, _ in headers)
        hop = Hop(url, authorized)
        for _ in range(limits.max_redirects + 1):
            sent = [
                (name, value)
                for name, value in headers
                if hop.send_authorization or name.lower() != "authorization"
            ]
            response = self._send(hop.url, sent, read_timeout, what)
            try:
                if not follow_redirects or response.status_code not in _REDIRECTS:
                    yield response
                    return
                location = response.headers.get("location")
            finally:
                response.close()
            hop = next_hop(hop.url, location, first_origin, hop.send_authorization)
        raise ProtocolViolation(f"{what}: more than {limits.max_redirects} redirects")

    def _send(
        self, url: str, headers: Sequence[tuple[str, str]], read_timeout: float | None, what: str
    ) -> httpx.Response:
        limits = self._options.limits
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or 443
        target = httpx.URL(url)
        request_headers = [("Accept-Encoding", "identity"), *headers]
        extensions: dict[str, object] = {}
        route = self._routes.get((host, port))
        if route is not None:
            # curl's --connect-to: another address, the same name for Host and for TLS.
            target = target.copy_with(host=route.address, port=route.target_port)
            request_headers.append(("Host", parts.netloc.rpartition("@")[2]))
            extensions["sni_hostname"] = host
        timeout = httpx.Timeout(
            limits.request_timeout if read_timeout is None else read_timeout,
            connect=float(limits.curl_connect_timeout),
        )
        client = self._client(origin(url))
        try:
            request = client.build_request(
                "GET", target, headers=request_headers, timeout=timeout, extensions=extensions
            )
            return client.send(request, stream=True)
        except httpx.TimeoutException:
            raise FetchFailed(f"{what}: {_shown(url)} timed out") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{what}: {_shown(url)}: {_reason(exc)}") from None

    def _client(self, key: str) -> httpx.Client:
        client = self._clients.get(key)
        if client is None:
            client = httpx.Client(
                verify=self._tls,
                follow_redirects=False,
                trust_env=False,
                transport=self._transport,
            )
            self._clients[key] = client
        return client


def read_capped(response: httpx.Response, cap: int, what: str) -> bytes:
    """The whole body as sent, refusing more than ``cap`` bytes."""
    chunks: list[bytes] = []
    total = 0
    for chunk in iter_body(response, what):
        total += len(chunk)
        if total > cap:
            raise ProtocolViolation(f"{what}: response over its {cap}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def iter_body(response: httpx.Response, what: str) -> Iterator[bytes]:
    """The body's raw bytes (no content decoding), with httpx errors as tofu3 errors."""
    try:
        yield from response.iter_raw()
    except httpx.TimeoutException:
        raise FetchFailed(f"{what}: the download stalled") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{what}: the download failed: {_reason(exc)}") from None


def _tls_context(cacert: Path | None) -> ssl.SSLContext:
    try:
        if cacert is None:
            return ssl.create_default_context()
        # As curl's --cacert: only these CAs, not the system's as well.
        return ssl.create_default_context(cafile=str(cacert))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot use --cacert {cacert}: {exc}") from None


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
