"""WWW-Authenticate challenges and token responses: both come from the registry, so both are
read as an attacker would write them.

The realm decides where the vantage goes for a token; the token ends up inside curl's config.
A realm that is not plain https, carries credentials or hides odd bytes is refused; a token
that could break out of a config line is refused rather than escaped.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tofu3.errors import ProtocolViolation, ResponseTooLarge
from tofu3.limits import Limits
from tofu3.oci.challenge import (
    Challenge,
    bearer_challenge,
    check_url,
    parse_challenges,
    parse_token_response,
    token_url,
)

GHCR_CHALLENGE = (
    'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
    'scope="repository:homebrew/core/wget:pull"'
)
DOCKER_HUB_CHALLENGE = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3MiOlt7InR5cGUiOiJyZXBvc2l0b3J5In1dfQ."
    "c2lnbmF0dXJlLWJ5dGVzLWluLWJhc2U2NHVybA"
)


def _bearer(realm: str, **params: str) -> Challenge:
    return Challenge("bearer", {"realm": realm, **params})


# --- Parsing challenges as registries send them --------------------------------------------


def test_ghcr_challenge_parses() -> None:
    [challenge] = parse_challenges(GHCR_CHALLENGE)

    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:homebrew/core/wget:pull",
    }
    assert challenge.realm == "https://ghcr.io/token"


def test_docker_hub_challenge_parses() -> None:
    challenge = bearer_challenge(DOCKER_HUB_CHALLENGE)

    assert challenge is not None
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
    }


def test_the_bearer_challenge_is_found_after_a_basic_one() -> None:
    header = 'Basic realm="x", Bearer realm="https://ghcr.io/token",service="ghcr.io"'

    challenges = parse_challenges(header)
    bearer = bearer_challenge(header)

    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params == {"realm": "x"}
    assert bearer is not None
    assert bearer.params == {"realm": "https://ghcr.io/token", "service": "ghcr.io"}


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    challenge = bearer_challenge('BEARER Realm="https://ghcr.io/token", SERVICE=ghcr.io')

    assert challenge is not None
    assert challenge.params == {"realm": "https://ghcr.io/token", "service": "ghcr.io"}


def test_a_registry_that_offers_only_basic_has_no_bearer_challenge() -> None:
    assert bearer_challenge('Basic realm="Registry Realm"') is None


def test_escaped_quotes_and_backslashes_are_unescaped() -> None:
    [challenge] = parse_challenges(r'Bearer realm="a\"b\\c",service="x"')

    assert challenge.params["realm"] == 'a"b\\c'
    assert challenge.params["service"] == "x"


def test_a_quoted_comma_does_not_split_parameters() -> None:
    [challenge] = parse_challenges('Bearer realm="https://r/t",scope="repository:a:pull,push"')

    assert challenge.params["scope"] == "repository:a:pull,push"


def test_a_scheme_without_parameters_then_bearer_parses() -> None:
    challenges = parse_challenges('Negotiate, Bearer realm="https://ghcr.io/token"')

    assert [c.scheme for c in challenges] == ["negotiate", "bearer"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('Bearer realm="https://ghcr.io/token', id="unterminated-quote"),
        pytest.param('Bearer realm="ends-in-escape\\', id="trailing-escape"),
        pytest.param("Bearer realm=", id="missing-value"),
        pytest.param('="https://ghcr.io/token"', id="missing-scheme"),
        pytest.param('Bearer realm="a",realm="b"', id="duplicate-realm"),
        pytest.param('Bearer Realm="a",REALM="b"', id="duplicate-realm-other-case"),
        pytest.param('Bearer realm="a" service="b"', id="missing-comma"),
        pytest.param('"Bearer" realm="a"', id="quoted-scheme"),
        pytest.param("Bearer realm=@", id="value-not-a-token"),
    ],
)
def test_a_malformed_challenge_is_a_protocol_violation(header: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_challenges(header)


def test_an_oversized_challenge_header_is_refused() -> None:
    header = 'Bearer realm="https://ghcr.io/token",service="' + "a" * 70_000 + '"'

    with pytest.raises(ResponseTooLarge):
        parse_challenges(header)


def test_the_challenge_cap_comes_from_the_limits_given() -> None:
    with pytest.raises(ResponseTooLarge):
        parse_challenges(GHCR_CHALLENGE, Limits(challenge_bytes=10))


def test_an_empty_header_has_no_challenges() -> None:
    assert parse_challenges("") == []
    assert bearer_challenge(" , ") is None


# --- Building the token URL from a checked realm ------------------------------------------


def test_ghcr_token_url_asks_for_pull_on_the_repository() -> None:
    challenge = bearer_challenge(GHCR_CHALLENGE)
    assert challenge is not None

    url = token_url(challenge, "homebrew/core/wget")

    assert url == (
        "https://ghcr.io/token?service=ghcr.io&scope=repository%3Ahomebrew%2Fcore%2Fwget%3Apull"
    )


def test_docker_hub_token_url_asks_for_the_library_repository() -> None:
    challenge = bearer_challenge(DOCKER_HUB_CHALLENGE)
    assert challenge is not None

    url = token_url(challenge, "library/alpine")

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.docker.io", "/token")
    assert parse_qs(parts.query) == {
        "service": ["registry.docker.io"],
        "scope": ["repository:library/alpine:pull"],
    }


def test_the_registry_scope_parameter_is_not_trusted_for_the_repository() -> None:
    # The challenge may name another repository (or push); tofu3 asks for what it pulls.
    challenge = _bearer("https://ghcr.io/token", scope="repository:evil/thing:pull,push")

    url = token_url(challenge, "homebrew/core/wget")

    assert parse_qs(urlsplit(url).query)["scope"] == ["repository:homebrew/core/wget:pull"]


def test_a_realm_with_its_own_query_gets_the_parameters_appended() -> None:
    url = token_url(_bearer("https://auth.example/token?client=x"), "a/b")

    assert url == "https://auth.example/token?client=x&scope=repository%3Aa%2Fb%3Apull"


def test_a_challenge_without_service_omits_it() -> None:
    url = token_url(_bearer("https://auth.example/token"), "a/b")

    assert "service" not in parse_qs(urlsplit(url).query)


def test_a_bearer_challenge_without_realm_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="without a realm"):
        token_url(Challenge("bearer", {"service": "ghcr.io"}), "a/b")


def test_a_plain_http_realm_is_refused_unless_allowed() -> None:
    # A network attacker could send the vantage for its token over plain http.
    with pytest.raises(ProtocolViolation, match="must be https"):
        token_url(_bearer("http://ghcr.io/token"), "a/b")

    assert token_url(_bearer("http://lab.test/token"), "a/b", allow_http=True).startswith(
        "http://lab.test/token?"
    )


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("https://user:pass@ghcr.io/token", id="user-and-password"),
        pytest.param("https://user@ghcr.io/token", id="user-only"),
        pytest.param("https://ghcr.io%2F@evil.example/token", id="encoded-slash-userinfo"),
    ],
)
def test_a_realm_carrying_credentials_is_refused(realm: str) -> None:
    with pytest.raises(ProtocolViolation, match="credentials"):
        token_url(_bearer(realm), "a/b")


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("ftp://ghcr.io/token", id="ftp"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("gopher://ghcr.io/token", id="gopher"),
        pytest.param("//ghcr.io/token", id="scheme-relative"),
        pytest.param("/token", id="path-only"),
        pytest.param("HTTPS-ish://ghcr.io/token", id="odd-scheme"),
    ],
)
def test_a_realm_with_another_scheme_is_refused(realm: str) -> None:
    with pytest.raises(ProtocolViolation, match="must be https"):
        token_url(_bearer(realm), "a/b")


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("https:///token", id="no-host"),
        pytest.param("https://ghcr_io/token", id="underscore"),
        pytest.param("https://ghcr.io;id/token", id="semicolon"),
        pytest.param("https://gh\u0441r.io/token", id="cyrillic-homoglyph"),
        pytest.param("https://ghcr.io:99999/token", id="port-out-of-range"),
        pytest.param("https://ghcr.io:http/token", id="port-not-a-number"),
        pytest.param("https://$(id).example/token", id="command-substitution"),
    ],
)
def test_a_realm_with_an_odd_host_or_port_is_refused(realm: str) -> None:
    with pytest.raises(ProtocolViolation, match=r"invalid (host|port)"):
        token_url(_bearer(realm), "a/b")


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("https://ghcr.io/token\nurl = https://evil.example/", id="newline"),
        pytest.param("https://ghcr.io/token\r", id="carriage-return"),
        pytest.param("https://ghcr.io/to ken", id="space"),
        pytest.param("https://ghcr.io/token\x00", id="nul"),
        pytest.param("https://ghcr.io/token\x7f", id="delete"),
        pytest.param("https://ghcr.io/\ttoken", id="tab"),
        pytest.param('https://ghcr.io/token"', id="double-quote"),
        pytest.param("https://ghcr.io\\@evil.example/token", id="backslash"),
        pytest.param("https://ghcr.io/" + "a" * 8200, id="over-8k"),
    ],
)
def test_a_realm_with_characters_that_could_break_a_curl_config_is_refused(realm: str) -> None:
    with pytest.raises(ProtocolViolation, match="characters tofu3 does not send"):
        token_url(_bearer(realm), "a/b")


@pytest.mark.parametrize(
    "url",
    ["https://ghcr.io/token", "https://127.0.0.1:8443/token", "https://[::1]:8443/token"],
)
def test_ordinary_https_urls_pass_the_check(url: str) -> None:
    check_url(url)


# --- Token responses --------------------------------------------------------------------------


def test_a_token_field_is_used() -> None:
    data = json.dumps({"token": JWT, "expires_in": 300}).encode()

    assert parse_token_response(data) == JWT


def test_an_access_token_field_is_used() -> None:
    # Docker Hub sends both; OAuth2-style endpoints only access_token.
    assert parse_token_response(json.dumps({"access_token": "djE6YWJj"}).encode()) == "djE6YWJj"


def test_token_is_preferred_to_access_token() -> None:
    data = json.dumps({"token": "first", "access_token": "second"}).encode()

    assert parse_token_response(data) == "first"


def test_ghcr_anonymous_token_shape_is_accepted() -> None:
    assert parse_token_response(b'{"token":"djE6aG9tZWJyZXcvY29yZS93Z2V0OjE3MTAwMDAwMDA="}') == (
        "djE6aG9tZWJyZXcvY29yZS93Z2V0OjE3MTAwMDAwMDA="
    )


def test_an_oversized_token_response_is_refused_before_parsing() -> None:
    data = b'{"token": "' + b"a" * (1024 * 1024) + b'"}'

    with pytest.raises(ResponseTooLarge):
        parse_token_response(data)


def test_the_token_cap_comes_from_the_limits_given() -> None:
    with pytest.raises(ResponseTooLarge):
        parse_token_response(b'{"token": "abc"}', Limits(token_bytes=8))


@pytest.mark.parametrize(
    "data",
    [b"", b"<html>502 Bad Gateway</html>", b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "html", "truncated", "not-utf8", "deeply-nested"],
)
def test_a_token_response_that_is_not_json_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="not valid JSON"):
        parse_token_response(data)


@pytest.mark.parametrize("data", [b"[]", b'"token"', b"null", b"42"])
def test_a_token_response_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="not a JSON object"):
        parse_token_response(data)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param('abc"\nurl = "https://evil.example/', id="quote-newline-config-injection"),
        pytest.param('abc"', id="quote"),
        pytest.param("abc\n", id="newline"),
        pytest.param("abc\r\nX-Injected: 1", id="crlf-header-injection"),
        pytest.param("abc def", id="space"),
        pytest.param("abc\\", id="backslash"),
        pytest.param("abc\x00", id="nul"),
        pytest.param("t\u00f6ken", id="non-ascii"),
        pytest.param("", id="empty"),
        pytest.param("a" * 16385, id="over-16k"),
        pytest.param(12345, id="number"),
        pytest.param(None, id="null"),
        pytest.param(["abc"], id="list"),
    ],
)
def test_an_unusable_token_is_refused(token: object) -> None:
    with pytest.raises(ProtocolViolation, match="no usable token"):
        parse_token_response(json.dumps({"token": token}).encode())


def test_a_response_without_any_token_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="no usable token"):
        parse_token_response(b'{"expires_in": 300}')


def test_a_token_response_with_a_huge_number_is_refused_not_crashed_on() -> None:
    with pytest.raises(ProtocolViolation):
        parse_token_response(b'{"token": "abc", "expires_in": ' + b"9" * 5000 + b"}")


def test_a_realm_with_a_fragment_never_hides_the_scope_in_it() -> None:
    try:
        url = token_url(_bearer("https://auth.example/token#frag"), "a/b")
    except ProtocolViolation:
        return  # refusing such a realm keeps the promise too
    assert parse_qs(urlsplit(url).query).get("scope") == ["repository:a/b:pull"]
