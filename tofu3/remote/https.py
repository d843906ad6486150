"""The coordinator's own HTTPS client, as a Transport (port.py): what ``tofu3 fetch`` runs the
registry protocol (tofu3/protocol.py) over on this machine, as a vantage's session runs it over
the vantage's curl. httpx is imported here and in tofu3/fetch only, and only when fetch runs.

The rules curl keeps on a vantage are kept here:

- https only, for the first URL and for every redirect target (``check_url``);
- redirects are followed here, never by httpx: at most ``Limits.max_redirects``, and only
  when the request says so (``Request.follow_redirects``);
- ``Authorization`` goes only to the origin (scheme, host, port) the chain started at, and
  never again once a redirect has left it (curl drops it on leaving the host; this client
  also does not send it again if the chain comes back), so a blob's CDN never sees a token;
- a small response is read whole up to its cap (``FetchRequest.cap``), and over the request
  timeout in all; a blob is hashed as it streams, with a stall timeout;
- bodies are asked for and read as sent (``Accept-Encoding: identity``, no decoding), so the
  bytes hashed are the bytes the server sent, as curl on the vantages hashes them;
- nothing from the environment (proxies, ``.netrc``).

What the coordinator already knows of a response it gives through ``expect``: the most bytes
it may have (the transfer is cut off with Overlong as soon as one more arrives) and, for a
blob, where to keep it (every byte is written there right after it is hashed). Only a 200
answer is held to them: an error page is not the blob.

Two options make the lab (and unusual networks) reachable without touching DNS:
``--cacert FILE`` (trust only the CAs in FILE, as curl's option does) and
``--connect-to HOST:PORT:ADDR:PORT`` (connect to ADDR:PORT whenever a URL names HOST:PORT,
while TLS still checks the certificate against HOST, as curl's option does).
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from tofu3.digest import Digest, parse_digest
from tofu3.errors import ConfigurationError, FetchFailed, ProtocolViolation, ResponseTooLarge
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci.challenge import check_url
from tofu3.remote.curl import redact_url
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

COORDINATOR = "coordinator"
_HTTP_OK = 200
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_CONNECT_TO_RE = re.compile(
    rf"(?P<host>{_HOST}):(?P<port>\d{{1,5}}):(?P<addr>{_HOST}):(?P<to>\d{{1,5}})"
)

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


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
        raise ProtocolViolation(f"redirect from {redact_url(current)} without a Location header")
    target = urljoin(current, location.strip())
    check_url(target, what="redirect target")
    return Hop(url=target, send_authorization=authorized and origin(target) == first_origin)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Expected:
    """What the coordinator already knows of one response (given through ``expect``, by the
    name it is asked for under): at most ``size`` bytes, and, for a blob, ``into``: opened
    when its 200 answer starts, it gets every byte right after the byte is hashed, and is
    closed when the transfer ends."""

    size: int | None = None
    into: Callable[[], AbstractContextManager[BinaryIO]] | None = None


class Overlong(ResponseTooLarge):
    """A response that went past the size it was expected to have (``Expected.size``): the
    transfer was cut off as soon as it did."""

    def __init__(self, what: str, size: int) -> None:
        super().__init__(f"{what}: more than the {size} bytes expected")
        self.what = what
        self.size = size


class _Stopped(Exception):
    """Another transfer of the same exchange failed: this one ends too."""


@dataclass(frozen=True)
class _Final:
    """The last response of a redirect chain, its body not yet read."""

    response: httpx.Response
    url: str
    redirects: int


class HttpsTransport:
    """HTTPS GETs from the coordinator; a Transport (port.py). One httpx pool per origin a
    URL names, so a TLS session checked for one name never carries requests meant for
    another, even when ``--connect-to`` sends both to one address. Thread-safe: ``jobs``
    transfers run at once, each on its own thread."""

    def __init__(
        self,
        options: HttpOptions = HttpOptions(),
        *,
        expect: Callable[[str], Expected | None] | None = None,
        network: httpx.BaseTransport | None = None,
    ) -> None:
        """``expect(what)`` says what is known of the response named ``what`` (None:
        nothing). ``network`` replaces the network (tests use httpx.MockTransport)."""
        self._options = options
        self._expect = expect or (lambda what: None)
        self._network = network
        self._tls = _tls_context(options.cacert)
        self._routes: Mapping[tuple[str, int], ConnectTo] = {
            (c.host, c.port): c for c in options.connect_to
        }
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    @property
    def vantage(self) -> str:
        """``coordinator``: the requests run on this machine."""
        return COORDINATOR

    @property
    def limits(self) -> Limits:
        """The caps and timeouts this client applies."""
        return self._options.limits

    def close(self) -> None:
        """Close every pool."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def __enter__(self) -> HttpsTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Transport ----------------------------------------------------------------------------

    def fetch_after_token(self, token: FetchRequest, then: FetchRequest) -> Chained:
        """The token only: this transport does not chain."""
        del then
        return token_only(self, token)

    def fetch(self, items: Sequence[FetchRequest], *, jobs: int) -> list[Response]:
        """GET every item (at most ``jobs`` at once), each body read whole up to its cap (and
        the size ``expect`` gives for it, for a 200 answer); in order. Raises the error of
        the first item (in order) whose transfer failed."""
        responses = _each(items, jobs, self._fetch_one)
        limit = self.limits.level_manifest_bytes
        if len(items) > 1 and sum(len(r.body) for r in responses) > limit:
            raise ResponseTooLarge(
                f"the {len(items)} responses of one level are over {limit} bytes together"
            )
        return responses

    def download(
        self,
        items: Sequence[BlobRequest],
        *,
        jobs: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[BlobDownload]:
        """Download and hash every item as it streams (at most ``jobs`` at once), in order;
        a 200 answer goes into the file ``expect`` gives for it, if any, and is cut off as
        soon as it is longer than ``expect`` says. ``on_progress`` gets the bytes received by
        all of them so far."""
        seen = 0
        seen_lock = threading.Lock()

        def received(count: int) -> None:
            nonlocal seen
            with seen_lock:
                seen += count
                if on_progress is not None:
                    on_progress(seen)

        return _each(items, jobs, lambda item, stop: self._download_one(item, stop, received))

    # -- one transfer -------------------------------------------------------------------------

    def _fetch_one(self, item: FetchRequest, stop: threading.Event) -> Response:
        limits = self.limits
        deadline = time.monotonic() + limits.request_timeout
        expected = self._expect(item.what)
        with self._get(item.request, read_timeout=limits.request_timeout, what=item.what) as final:
            size = expected.size if expected is not None else None
            if final.response.status_code != _HTTP_OK or (size is not None and size >= item.cap):
                size = None
            cap = item.cap if size is None else size
            chunks: list[bytes] = []
            total = 0
            for chunk in _body(final.response, item.what, deadline, stop):
                total += len(chunk)
                if total > cap:
                    if size is not None:
                        raise Overlong(item.what, size)
                    raise ResponseTooLarge(f"{item.what} is over its {item.cap}-byte cap")
                chunks.append(chunk)
            body = b"".join(chunks)
            return Response(_connection(final, len(body)), body)

    def _download_one(
        self, item: BlobRequest, stop: threading.Event, received: Callable[[int], None]
    ) -> BlobDownload:
        limits = self.limits
        deadline = time.monotonic() + limits.blob_timeout
        expected = self._expect(item.what)
        hasher = hashlib.new(item.algorithm)
        total = 0
        with self._get(
            item.request, read_timeout=float(limits.blob_stall_seconds), what=item.what
        ) as final:
            if final.response.status_code == _HTTP_OK:
                size = expected.size if expected is not None else None
                into = expected.into if expected is not None else None
                opened: AbstractContextManager[_Writer] = (
                    into() if into is not None else nullcontext(_Discard())
                )
                with opened as sink:
                    for chunk in _body(final.response, item.what, deadline, stop):
                        total += len(chunk)
                        if size is not None and total > size:
                            raise Overlong(item.what, size)
                        hasher.update(chunk)
                        sink.write(chunk)
                        received(len(chunk))
            # Any other answer is not the blob: its body is neither read nor kept.
            digest: Digest = parse_digest(f"{item.algorithm}:{hasher.hexdigest()}")
            return BlobDownload(_connection(final, total), digest)

    @contextmanager
    def _get(self, request: Request, *, read_timeout: float, what: str) -> Iterator[_Final]:
        """GET ``request.url``, following redirects by the rules above, and yield the final
        response, its body not yet read (read it with ``_body``)."""
        limits = self.limits
        check_url(request.url, what=what)
        first_origin = origin(request.url)
        authorized = any(name.lower() == "authorization" for name, _ in request.headers)
        hop = Hop(request.url, authorized)
        for redirects in range(limits.max_redirects + 1):
            sent = [
                (name, value)
                for name, value in request.headers
                if hop.send_authorization or name.lower() != "authorization"
            ]
            response = self._send(hop.url, sent, read_timeout, what)
            try:
                if not request.follow_redirects or response.status_code not in _REDIRECTS:
                    yield _Final(response, hop.url, redirects)
                    return
                location = response.headers.get("location")
            finally:
                response.close()
            hop = next_hop(hop.url, location, first_origin, hop.send_authorization)
        raise ProtocolViolation(f"{what}: more than {limits.max_redirects} redirects")

    def _send(
        self, url: str, headers: Sequence[tuple[str, str]], read_timeout: float, what: str
    ) -> httpx.Response:
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
        timeout = httpx.Timeout(read_timeout, connect=float(self.limits.curl_connect_timeout))
        client = self._client(origin(url))
        try:
            built = client.build_request(
                "GET", target, headers=request_headers, timeout=timeout, extensions=extensions
            )
            return client.send(built, stream=True)
        except httpx.TimeoutException:
            raise FetchFailed(f"{what}: {redact_url(url)} timed out") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{what}: {redact_url(url)}: {_reason(exc)}") from None

    def _client(self, key: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = httpx.Client(
                    verify=self._tls,
                    follow_redirects=False,
                    trust_env=False,
                    transport=self._network,
                )
                self._clients[key] = client
            return client


def _each(
    items: Sequence[_Item],
    jobs: int,
    work: Callable[[_Item, threading.Event], _Result],
) -> list[_Result]:
    """``work`` on every item, at most ``jobs`` at once, results in order. When one fails the
    others stop at their next chunk; the error raised is the first (in order) that is not
    such a stop."""
    stop = threading.Event()
    if jobs <= 1 or len(items) <= 1:
        return [work(item, stop) for item in items]
    results: list[_Result | None] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)

    def run(index: int) -> None:
        if stop.is_set():
            return
        try:
            results[index] = work(items[index], stop)
        except _Stopped:
            pass
        except BaseException as exc:
            errors[index] = exc
            stop.set()

    with ThreadPoolExecutor(max_workers=min(jobs, len(items)), thread_name_prefix="https") as pool:
        try:
            list(pool.map(run, range(len(items))))
        except BaseException:
            stop.set()  # Ctrl-C: every transfer ends at its next chunk
            raise
    for error in errors:
        if error is not None:
            raise error
    done: list[_Result] = []
    for result in results:
        if result is None:  # never: no error, so every item ran
            raise FetchFailed("a transfer ended without a result")
        done.append(result)
    return done


def _body(
    response: httpx.Response, what: str, deadline: float, stop: threading.Event
) -> Iterator[bytes]:
    """The body's raw bytes (no content decoding), with httpx errors as tofu3 errors; ends
    the transfer at ``deadline`` or when ``stop`` is set."""
    if response.is_stream_consumed:  # a response made in memory (httpx.MockTransport), read
        yield response.content
        return
    try:
        for chunk in response.iter_raw():
            if stop.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                raise FetchFailed(f"{what}: the download did not finish in time")
            yield chunk
    except httpx.TimeoutException:
        raise FetchFailed(f"{what}: the download stalled") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{what}: the download failed: {_reason(exc)}") from None


def _connection(final: _Final, size: int) -> Connection:
    response = final.response
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return Connection(
        status=response.status_code,
        remote_ip=_remote_ip(response),
        url_effective=redact_url(final.url),
        redirects=final.redirects,
        size=size,
        content_type=response.headers.get("content-type"),
        headers={name: tuple(values) for name, values in headers.items()},
    )


def _remote_ip(response: httpx.Response) -> str:
    stream = response.extensions.get("network_stream")
    try:
        address = stream.get_extra_info("server_addr") if stream is not None else None
    except Exception:  # a fact for the record, never worth failing over
        return ""
    return str(address[0]) if isinstance(address, tuple) and address else ""


class _Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _Discard:
    """Where a blob nobody keeps goes (after it is hashed), as on a vantage."""

    def write(self, data: bytes, /) -> int:
        return len(data)


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
