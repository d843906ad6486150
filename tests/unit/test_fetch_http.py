"""The coordinator's network seam for ``tofu3 fetch`` (tofu3.fetch.http), against
httpx.MockTransport: redirects are followed here, Authorization never leaves the origin it
was meant for, nothing but https is fetched, and --connect-to keeps the name for TLS."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tofu3.digest import Digest, digest_bytes
from tofu3.errors import (
    ConfigurationError,
    FetchedBytesMismatch,
    FetchFailed,
    IntegrityError,
    ProtocolViolation,
)
from tofu3.fetch.http import (
    ConnectTo,
    CoordinatorHttp,
    HttpOptions,
    next_hop,
    origin,
    parse_connect_to,
    read_capped,
)
from tofu3.fetch.registry import stream_checked
from tofu3.limits import Limits

REGISTRY = "https://ghcr.io/v2/homebrew/core/wget/blobs/sha256:abc"
CDN = "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:abc?se=1&sig=secret"
TOKEN = ("Authorization", "Bearer s3cret")


class _Body(httpx.SyncByteStream):
    """A body that arrives in chunks, as from a socket (content= would be read up front)."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data = data
        self._chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), self._chunk):
            yield self._data[start : start + self._chunk]


def _ok(data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, stream=_Body(data), headers=headers)


def _recording(
    answer: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return httpx.MockTransport(handler), seen


def _redirect(location: str) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ghcr.io" and request.url.path.endswith("sha256:abc"):
            return httpx.Response(307, headers={"Location": location})
        return _ok(b"blob bytes")

    return answer


def _get(http: CoordinatorHttp, url: str, *headers: tuple[str, str]) -> tuple[int, bytes]:
    with http.get(url, list(headers), what="test") as response:
        return response.status_code, read_capped(response, 1 << 20, "test")


def test_a_blob_redirect_to_a_cdn_is_followed_without_the_registry_token() -> None:
    transport, seen = _recording(_redirect(CDN))

    status, body = _get(CoordinatorHttp(transport=transport), REGISTRY, TOKEN)

    assert (status, body) == (200, b"blob bytes")
    assert [r.url.host for r in seen] == ["ghcr.io", "pkg-containers.githubusercontent.com"]
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in seen[1].headers
    assert seen[1].url.query == b"se=1&sig=secret"


def test_the_token_is_not_sent_again_when_a_redirect_chain_comes_back_to_the_origin() -> None:
    hops = iter(
        [
            httpx.Response(302, headers={"Location": "https://cdn.example/x"}),
            httpx.Response(302, headers={"Location": REGISTRY}),
            _ok(b"ok"),
        ]
    )
    transport, seen = _recording(lambda request: next(hops))

    _get(CoordinatorHttp(transport=transport), REGISTRY, TOKEN)

    assert ["Authorization" in r.headers for r in seen] == [True, False, False]


def test_a_same_origin_relative_redirect_keeps_the_token() -> None:
    transport, seen = _recording(_redirect("/v2/homebrew/core/wget/blobs/other"))

    _get(CoordinatorHttp(transport=transport), REGISTRY, TOKEN)

    assert seen[1].url.path == "/v2/homebrew/core/wget/blobs/other"
    assert seen[1].headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    "location",
    ["http://pkg-containers.githubusercontent.com/blob", "ftp://example.org/blob", ""],
)
def test_a_redirect_anywhere_but_https_is_a_protocol_violation(location: str) -> None:
    transport, seen = _recording(_redirect(location))

    with pytest.raises(ProtocolViolation):
        _get(CoordinatorHttp(transport=transport), REGISTRY, TOKEN)
    assert len(seen) == 1


def test_a_redirect_loop_ends_at_the_redirect_cap() -> None:
    transport, seen = _recording(
        lambda request: httpx.Response(302, headers={"Location": REGISTRY})
    )
    http = CoordinatorHttp(HttpOptions(limits=Limits(max_redirects=3)), transport=transport)

    with pytest.raises(ProtocolViolation, match="more than 3 redirects"):
        _get(http, REGISTRY)
    assert len(seen) == 4


def test_a_redirect_is_returned_as_is_when_not_followed() -> None:
    transport, seen = _recording(_redirect(CDN))

    with CoordinatorHttp(transport=transport).get(
        REGISTRY, follow_redirects=False, what="ping"
    ) as response:
        assert response.status_code == 307
    assert len(seen) == 1


def test_plain_http_is_never_fetched() -> None:
    transport, seen = _recording(lambda request: httpx.Response(200))

    with pytest.raises(ProtocolViolation, match="https"):
        _get(CoordinatorHttp(transport=transport), "http://ghcr.io/v2/")
    assert seen == []


def test_connect_to_changes_the_address_but_not_the_name_tls_and_host_see() -> None:
    transport, seen = _recording(lambda request: _ok(b"x"))
    options = HttpOptions(connect_to=(ConnectTo("ghcr.io", 443, "127.0.0.1", 8443),))

    _get(CoordinatorHttp(options, transport=transport), REGISTRY)
    _get(CoordinatorHttp(options, transport=transport), "https://example.org/elsewhere")

    routed, direct = seen
    assert (routed.url.host, routed.url.port) == ("127.0.0.1", 8443)
    assert routed.headers["Host"] == "ghcr.io"
    assert routed.extensions["sni_hostname"] == "ghcr.io"
    assert direct.url.host == "example.org"
    assert "sni_hostname" not in direct.extensions


def test_responses_are_asked_for_and_read_as_sent_without_content_decoding() -> None:
    compressed = gzip.compress(b"tarball")
    transport, seen = _recording(lambda request: _ok(compressed, {"Content-Encoding": "gzip"}))

    _, body = _get(CoordinatorHttp(transport=transport), "https://example.org/t.tar.gz")

    assert seen[0].headers["Accept-Encoding"] == "identity"
    assert body == compressed


def test_transport_failures_become_fetch_failed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(FetchFailed, match="connection refused"):
        _get(CoordinatorHttp(transport=httpx.MockTransport(refuse)), REGISTRY)


def test_a_cacert_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--cacert"):
        CoordinatorHttp(HttpOptions(cacert=tmp_path / "missing.pem"))


def test_a_body_over_its_cap_is_refused() -> None:
    transport, _ = _recording(lambda request: _ok(b"x" * 100))

    with (
        CoordinatorHttp(transport=transport).get(REGISTRY, what="manifest") as response,
        pytest.raises(ProtocolViolation, match="cap"),
    ):
        read_capped(response, 99, "manifest")


def _stream(data: bytes, digest: Digest, size: int | None) -> tuple[int, bytes]:
    transport, _ = _recording(lambda request: _ok(data))
    sink = io.BytesIO()
    with CoordinatorHttp(transport=transport).get(REGISTRY, what="blob") as response:
        written = stream_checked(response, digest, size, sink, what="blob sha256:abc")
    return written, sink.getvalue()


def test_streamed_bytes_that_match_the_agreed_digest_and_size_are_written() -> None:
    data = b"the agreed bytes"

    assert _stream(data, digest_bytes(data), len(data)) == (len(data), data)


@pytest.mark.parametrize(
    ("served", "size"),
    [
        (b"the agreed bytez", 16),  # same length, other bytes
        (b"the agreed bytes and more", 16),  # longer than agreed
        (b"the agreed", 16),  # cut short
    ],
)
def test_streamed_bytes_that_differ_from_what_was_agreed_raise(served: bytes, size: int) -> None:
    with pytest.raises(FetchedBytesMismatch, match="blob sha256:abc") as caught:
        _stream(served, digest_bytes(b"the agreed bytes"), size)
    assert isinstance(caught.value, IntegrityError)


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
    first = origin(REGISTRY)

    same = next_hop(REGISTRY, "../other", first, authorized=True)
    away = next_hop(REGISTRY, CDN, first, authorized=True)

    assert same.url == "https://ghcr.io/v2/homebrew/core/wget/other"
    assert same.send_authorization
    assert away.url == CDN
    assert not away.send_authorization
