"""The coordinator's own HTTPS client (tofu3/remote/https.py), a Transport like a vantage's
session: against a local TLS server on 127.0.0.1 that answers for registry.test and cdn.test
(reached with --connect-to, its certificate from a throw-away CA and valid for those names
only), and, where only the request httpx builds matters, against httpx.MockTransport.

Redirects are https only and capped, Authorization never leaves the origin it was meant for,
small responses are capped, a blob is hashed over exactly the bytes sent and cut off as soon
as it is longer than expected, and the bytes go into the destination the caller gave."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest

from tofu3.digest import digest_bytes
from tofu3.errors import ConfigurationError, FetchFailed, ProtocolViolation, ResponseTooLarge
from tofu3.lab.pki import ensure_pki, issue_server_cert
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.https import (
    ConnectTo,
    Expected,
    HttpOptions,
    HttpsTransport,
    Overlong,
    next_hop,
    origin,
    parse_connect_to,
)
from tofu3.remote.port import BlobRequest, FetchRequest, Request, Response

REGISTRY = "registry.test"
CDN = "cdn.test"
TOKEN = ("Authorization", "Bearer s3cret")
BIG = 64 * 1024 * 1024
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What the server answers on one host and path: ``body`` sent ``repeat`` times, with a
    Content-Length unless ``announce`` is False (then the body ends when the connection
    closes)."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    repeat: int = 1
    announce: bool = True


@dataclass(frozen=True)
class Seen:
    host: str
    path: str
    query: str
    authorization: str | None
    accept_encoding: str | None


@dataclass
class _State:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that refused the certificate, or went away, is what some tests
        want."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        host = (self.headers.get("Host") or "").partition(":")[0]
        url = urlsplit(self.path)
        with state.lock:
            state.seen.append(
                Seen(
                    host,
                    url.path,
                    url.query,
                    self.headers.get("Authorization"),
                    self.headers.get("Accept-Encoding"),
                )
            )
            answer = state.answers.get((host, url.path), Answer(404, b"not found"))
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.announce:
            self.send_header("Content-Length", str(len(answer.body) * answer.repeat))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        try:
            for _ in range(answer.repeat):
                self.wfile.write(answer.body)
                sent += len(answer.body)
        except OSError:  # the client went away: that is what the cut-off tests want
            self.close_connection = True
        with state.lock:
            state.sent[url.path] = sent

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on what was seen."""


@dataclass
class Local:
    """The running server, and a transport that reaches it by name."""

    port: int
    ca: Path
    state: _State

    def answer(self, host: str, path: str, answer: Answer) -> str:
        self.state.answers[(host, path)] = answer
        return f"https://{host}{path}"

    def options(self, limits: Limits = DEFAULT_LIMITS, *, cacert: bool = True) -> HttpOptions:
        routes = tuple(ConnectTo(h, 443, "127.0.0.1", self.port) for h in (REGISTRY, CDN))
        return HttpOptions(cacert=self.ca if cacert else None, connect_to=routes, limits=limits)

    def transport(
        self,
        expect: Callable[[str], Expected | None] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> HttpsTransport:
        return HttpsTransport(self.options(limits), expect=expect)

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    directory = tmp_path_factory.mktemp("https-transport")
    pki = ensure_pki(directory / "ca")
    # The names only, no address: TLS to 127.0.0.1 passes only when it checks the name.
    cert = issue_server_cert(
        directory, ca_cert=pki.ca_cert, ca_key=pki.ca_key, names=[REGISTRY, CDN], stem="local"
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert.cert, cert.key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = _State()
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="https-transport", daemon=True)
    thread.start()
    try:
        yield Local(int(server.server_address[1]), pki.ca_cert, server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def local(_server: Local) -> Local:
    """The server, with no answers and nothing seen yet."""
    with _server.state.lock:
        _server.state.answers.clear()
        _server.state.seen.clear()
        _server.state.sent.clear()
    return _server


def _fetch(
    transport: HttpsTransport, url: str, *headers: tuple[str, str], cap: int = 1 << 20
) -> Response:
    (response,) = transport.fetch([FetchRequest(Request(url, headers), cap, "test")], jobs=1)
    return response


def _into(sink: BinaryIO) -> Callable[[], AbstractContextManager[BinaryIO]]:
    return lambda: nullcontext(sink)


# -- small responses -------------------------------------------------------------------------


def test_a_small_response_comes_back_whole_with_its_connection_facts(local: Local) -> None:
    body = b'{"schemaVersion": 2}'
    url = local.answer(
        REGISTRY,
        "/v2/x/manifests/1",
        Answer(200, body, (("Content-Type", "application/json"), ("X-Two", "a"), ("X-Two", "b"))),
    )

    with local.transport() as transport:
        response = _fetch(transport, url + "?sig=secret")

    assert response.body == body
    facts = response.connection
    assert (facts.status, facts.size, facts.redirects) == (200, len(body), 0)
    assert facts.content_type == "application/json"
    assert facts.headers["x-two"] == ("a", "b")
    assert facts.remote_ip == "127.0.0.1"
    assert facts.url_effective == url  # the query (a CDN's signature) is not kept
    assert transport.vantage == "coordinator"
    (seen,) = local.seen
    assert (seen.host, seen.accept_encoding) == (REGISTRY, "identity")


def test_a_small_response_over_its_cap_is_refused(local: Local) -> None:
    announced = local.answer(REGISTRY, "/announced", Answer(200, b"x" * 100))
    unannounced = local.answer(REGISTRY, "/unannounced", Answer(200, b"x" * 100, announce=False))

    with local.transport() as transport:
        for url in (announced, unannounced):
            with pytest.raises(ResponseTooLarge, match="over its 99-byte cap"):
                _fetch(transport, url, cap=99)
        assert _fetch(transport, announced, cap=100).body == b"x" * 100


def test_a_small_response_longer_than_expected_is_cut_off_as_overlong(local: Local) -> None:
    url = local.answer(REGISTRY, "/manifest", Answer(200, b"m" * 50))
    expected = {"test": Expected(size=49)}

    with local.transport(expected.get) as transport, pytest.raises(Overlong) as caught:
        _fetch(transport, url)

    assert (caught.value.what, caught.value.size) == ("test", 49)


def test_an_error_answer_is_not_held_to_the_expected_size(local: Local) -> None:
    url = local.answer(REGISTRY, "/gone", Answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'))

    with local.transport({"test": Expected(size=2)}.get) as transport:
        response = _fetch(transport, url)

    assert response.connection.status == 404


def test_responses_of_one_level_are_capped_together(local: Local) -> None:
    url = local.answer(REGISTRY, "/part", Answer(200, b"p" * 60))
    items = [FetchRequest(Request(url), 100, f"part {n}") for n in range(2)]

    with local.transport(limits=Limits(level_manifest_bytes=100)) as transport:
        with pytest.raises(ResponseTooLarge, match="together"):
            transport.fetch(items, jobs=2)
        assert len(transport.fetch(items[:1], jobs=2)) == 1


# -- redirects -------------------------------------------------------------------------------


def test_a_redirect_to_plain_http_is_refused(local: Local) -> None:
    url = local.answer(REGISTRY, "/blob", Answer(307, headers=(("Location", "http://cdn.test/b"),)))

    with local.transport() as transport, pytest.raises(ProtocolViolation, match="https"):
        _fetch(transport, url, TOKEN)

    assert [s.path for s in local.seen] == ["/blob"]


def test_plain_http_is_never_asked_for(local: Local) -> None:
    with local.transport() as transport, pytest.raises(ProtocolViolation, match="https"):
        _fetch(transport, f"http://{REGISTRY}/v2/")

    assert local.seen == []


def test_the_token_is_not_forwarded_to_another_host(local: Local) -> None:
    url = local.answer(
        REGISTRY,
        "/v2/x/blobs/1",
        Answer(307, headers=(("Location", "https://cdn.test/blob?sig=s3cret-too"),)),
    )
    local.answer(CDN, "/blob", Answer(200, b"blob bytes"))

    with local.transport() as transport:
        response = _fetch(transport, url, TOKEN)

    assert response.body == b"blob bytes"
    assert response.connection.redirects == 1
    assert response.connection.url_effective == "https://cdn.test/blob"
    assert [(s.host, s.authorization) for s in local.seen] == [
        (REGISTRY, "Bearer s3cret"),
        (CDN, None),
    ]
    assert local.seen[1].query == "sig=s3cret-too"


def test_the_token_is_not_sent_again_when_a_chain_comes_back_to_its_origin(local: Local) -> None:
    url = local.answer(
        REGISTRY, "/start", Answer(302, headers=(("Location", "https://cdn.test/x"),))
    )
    local.answer(CDN, "/x", Answer(302, headers=(("Location", "https://registry.test/end"),)))
    local.answer(REGISTRY, "/end", Answer(200, b"ok"))

    with local.transport() as transport:
        _fetch(transport, url, TOKEN)

    assert [s.authorization for s in local.seen] == ["Bearer s3cret", None, None]


def test_a_same_origin_relative_redirect_keeps_the_token(local: Local) -> None:
    url = local.answer(REGISTRY, "/v2/a/blobs/1", Answer(307, headers=(("Location", "../b"),)))
    local.answer(REGISTRY, "/v2/a/b", Answer(200, b"ok"))

    with local.transport() as transport:
        _fetch(transport, url, TOKEN)

    assert [(s.path, s.authorization) for s in local.seen][1] == ("/v2/a/b", "Bearer s3cret")


def test_a_redirect_loop_ends_at_the_redirect_cap(local: Local) -> None:
    url = local.answer(REGISTRY, "/loop", Answer(302, headers=(("Location", "/loop"),)))

    with (
        local.transport(limits=Limits(max_redirects=3)) as transport,
        pytest.raises(ProtocolViolation, match="more than 3 redirects"),
    ):
        _fetch(transport, url)

    assert len(local.seen) == 4


def test_a_redirect_is_returned_as_it_is_when_not_to_be_followed(local: Local) -> None:
    url = local.answer(REGISTRY, "/v2/", Answer(307, headers=(("Location", "https://cdn.test/"),)))

    with local.transport() as transport:
        (response,) = transport.fetch(
            [FetchRequest(Request(url, follow_redirects=False), 1024, "ping")], jobs=1
        )

    assert response.connection.status == 307
    assert len(local.seen) == 1


def test_a_redirect_without_a_location_is_refused(local: Local) -> None:
    url = local.answer(REGISTRY, "/nowhere", Answer(302))

    with local.transport() as transport, pytest.raises(ProtocolViolation, match="Location"):
        _fetch(transport, url)


# -- blobs -----------------------------------------------------------------------------------


def _blob(url: str, what: str = "blob", algorithm: str = "sha256") -> BlobRequest:
    return BlobRequest(Request(url, (TOKEN,)), algorithm, what)


def test_a_blob_is_hashed_over_exactly_the_bytes_sent_and_kept_as_sent(local: Local) -> None:
    sent = gzip.compress(b"tarball " * 1000)
    url = local.answer(REGISTRY, "/tool.tar.gz", Answer(200, sent, (("Content-Encoding", "gzip"),)))
    sink = io.BytesIO()

    with local.transport({"blob": Expected(len(sent), _into(sink))}.get) as transport:
        (download,) = transport.download([_blob(url)], jobs=1)
        (as512,) = transport.download([_blob(url, "other", "sha512")], jobs=1)

    assert download.digest == digest_bytes(sent)
    assert download.connection.size == len(sent)
    assert sink.getvalue() == sent  # not decoded: the bytes the digest covers
    assert as512.digest == f"sha512:{hashlib.sha512(sent).hexdigest()}"
    assert all(s.accept_encoding == "identity" for s in local.seen)


def test_a_blob_longer_than_expected_is_cut_off_as_soon_as_it_is(local: Local) -> None:
    url = local.answer(REGISTRY, "/long", Answer(200, b"L" * CHUNK, repeat=BIG // CHUNK))
    sink = io.BytesIO()

    with (
        local.transport({"blob": Expected(1000, _into(sink))}.get) as transport,
        pytest.raises(Overlong, match="more than the 1000 bytes expected"),
    ):
        transport.download([_blob(url)], jobs=1)

    assert len(sink.getvalue()) <= 1000
    assert local.state.sent.get("/long", 0) < BIG  # the server could not send it all


def test_a_blob_without_expectations_is_hashed_and_not_kept(local: Local) -> None:
    url = local.answer(REGISTRY, "/plain", Answer(200, b"abc", announce=False))

    with local.transport() as transport:
        (download,) = transport.download([_blob(url)], jobs=1)

    assert (download.digest, download.connection.size) == (digest_bytes(b"abc"), 3)


def test_an_error_answer_is_not_written_as_the_blob(local: Local) -> None:
    url = local.answer(REGISTRY, "/missing", Answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'))
    sink = io.BytesIO()

    with local.transport({"blob": Expected(2, _into(sink))}.get) as transport:
        (download,) = transport.download([_blob(url)], jobs=1)

    assert download.connection.status == 404
    assert sink.getvalue() == b""


def test_several_blobs_run_at_once_and_come_back_in_order(local: Local) -> None:
    bodies = [bytes([n]) * (1000 * (n + 1)) for n in range(6)]
    urls = [local.answer(REGISTRY, f"/b{n}", Answer(200, body)) for n, body in enumerate(bodies)]
    sinks = {f"b{n}": io.BytesIO() for n in range(6)}
    progress: list[int] = []

    with local.transport({w: Expected(None, _into(s)) for w, s in sinks.items()}.get) as transport:
        downloads = transport.download(
            [_blob(url, f"b{n}") for n, url in enumerate(urls)], jobs=3, on_progress=progress.append
        )

    assert [d.digest for d in downloads] == [digest_bytes(b) for b in bodies]
    assert [s.getvalue() for s in sinks.values()] == bodies
    assert progress[-1] == sum(len(b) for b in bodies)


def test_the_first_failure_in_order_is_the_one_raised(local: Local) -> None:
    to_http = local.answer(REGISTRY, "/to-http", Answer(302, headers=(("Location", "http://x/"),)))
    good = local.answer(REGISTRY, "/good", Answer(200, b"ok"))
    long = local.answer(REGISTRY, "/long", Answer(200, b"L" * CHUNK, repeat=16))
    expected = {"long": Expected(10)}
    items = [_blob(to_http, "to-http"), _blob(good, "good"), _blob(long, "long")]

    with local.transport(expected.get) as transport:
        with pytest.raises(ProtocolViolation):
            transport.download(items, jobs=3)
        with pytest.raises(Overlong):
            transport.download(items[1:], jobs=3)


# -- TLS and the network ---------------------------------------------------------------------


def test_without_the_ca_the_certificate_is_refused(local: Local) -> None:
    url = local.answer(REGISTRY, "/v2/", Answer(200, b"{}"))

    with (
        HttpsTransport(local.options(cacert=False)) as transport,
        pytest.raises(FetchFailed, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        _fetch(transport, url)


def test_a_connection_refused_is_a_fetch_failure(local: Local) -> None:
    with socket.socket() as sock:  # a port bound, then released: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    route = ConnectTo(REGISTRY, 443, "127.0.0.1", port)

    with (
        HttpsTransport(HttpOptions(cacert=local.ca, connect_to=(route,))) as transport,
        pytest.raises(FetchFailed, match=r"test: https://registry\.test/v2/"),
    ):
        _fetch(transport, f"https://{REGISTRY}/v2/")


def test_a_cacert_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--cacert"):
        HttpsTransport(HttpOptions(cacert=tmp_path / "missing.pem"))


def test_connect_to_changes_the_address_but_not_the_name_tls_and_host_see() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"x"))

    options = HttpOptions(connect_to=(ConnectTo("ghcr.io", 443, "127.0.0.1", 8443),))
    with HttpsTransport(options, network=httpx.MockTransport(answer)) as transport:
        _fetch(transport, "https://ghcr.io/v2/")
        _fetch(transport, "https://example.org/elsewhere")

    routed, direct = seen
    assert (routed.url.host, routed.url.port) == ("127.0.0.1", 8443)
    assert routed.headers["Host"] == "ghcr.io"
    assert routed.extensions["sni_hostname"] == "ghcr.io"
    assert direct.url.host == "example.org"
    assert "sni_hostname" not in direct.extensions


def test_tofu3_verify_never_imports_httpx() -> None:
    code = (
        "import sys, tofu3.cli, tofu3.cli.verify_cmd, tofu3.verify, tofu3.protocol; "
        "sys.exit('httpx' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ghcr.io:443:127.0.0.1:8443", ConnectTo("ghcr.io", 443, "127.0.0.1", 8443)),
        ("GHCR.io:443:[::1]:8443", ConnectTo("ghcr.io", 443, "::1", 8443)),
        ("[2001:db8::1]:443:10.0.0.1:443", ConnectTo("2001:db8::1", 443, "10.0.0.1", 443)),
    ],
)
def test_connect_to_is_parsed_as_curl_writes_it(text: str, expected: ConnectTo) -> None:
    assert parse_connect_to(text) == expected


@pytest.mark.parametrize(
    "text",
    ["ghcr.io:443:127.0.0.1", "ghcr.io::127.0.0.1:8443", ":443:127.0.0.1:8443", "a:0:b:1", "x"],
)
def test_connect_to_without_every_part_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--connect-to"):
        parse_connect_to(text)


def test_origins_make_default_ports_explicit() -> None:
    assert origin("https://GHCR.io/v2/") == origin("https://ghcr.io:443/other")
    assert origin("https://ghcr.io:8443/") != origin("https://ghcr.io/")


def test_next_hop_resolves_relative_locations_and_drops_the_token_off_origin() -> None:
    start = "https://ghcr.io/v2/homebrew/core/wget/blobs/sha256:abc"
    cdn = "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:abc?se=1&sig=s"

    same = next_hop(start, "../other", origin(start), authorized=True)
    away = next_hop(start, cdn, origin(start), authorized=True)

    assert same.url == "https://ghcr.io/v2/homebrew/core/wget/other"
    assert same.send_authorization
    assert away.url == cdn
    assert not away.send_authorization
