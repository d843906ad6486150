"""Release-file URLs: what tofu3 accepts, what it refuses before any vantage sees it, and how
a URL travels where a Reference goes (tofu3.release.url)."""

from __future__ import annotations

import pytest

from tofu3.digest import Digest
from tofu3.errors import ConfigurationError, InvalidDigest, InvalidUrl
from tofu3.reference import Reference
from tofu3.release.url import (
    ReleaseReference,
    check_sha256_use,
    is_url,
    parse_release_url,
    parse_sha256,
    parse_target,
)

HEX = "a283ce13be8db83c9224eb070c25d66cab079c0e86964f709cbad413023dbdfd"
DIGEST = Digest(f"sha256:{HEX}")
GITHUB = "https://github.com/owner/Tool/releases/download/v1.2/Tool-1.2_linux%2Bamd64.tar.gz"


def test_a_github_release_url_is_carried_as_a_valid_reference() -> None:
    reference = parse_release_url(GITHUB)

    assert isinstance(reference, ReleaseReference)
    assert isinstance(reference, Reference)
    assert reference.original == GITHUB
    assert reference.url == GITHUB
    assert reference.domain == "github.com"
    assert reference.registry_host == "github.com"
    assert reference.digest is None
    assert reference.effective_tag is None
    assert reference.name == GITHUB
    assert str(reference) == GITHUB
    assert reference.url_path == "/owner/Tool/releases/download/v1.2/Tool-1.2_linux%2Bamd64.tar.gz"
    assert reference.file_name == "Tool-1.2_linux+amd64.tar.gz"


def test_the_pinned_form_is_the_url_with_a_sha256_fragment_and_reads_back_as_a_pin() -> None:
    reference = parse_release_url("https://example.org/tool-1.2.tar.gz")

    pinned = reference.pinned(DIGEST)

    assert pinned == f"https://example.org/tool-1.2.tar.gz#sha256={HEX}"
    again = parse_release_url(pinned)
    assert again.digest == DIGEST
    assert again.url == "https://example.org/tool-1.2.tar.gz"


def test_sha256_option_pins_the_file_and_agrees_with_a_fragment() -> None:
    assert parse_release_url("https://example.org/a.tgz", HEX.upper()).digest == DIGEST
    assert parse_release_url(f"https://example.org/a.tgz#sha256={HEX}", HEX).digest == DIGEST
    with pytest.raises(InvalidUrl, match="differ"):
        parse_release_url(f"https://example.org/a.tgz#sha256={HEX}", "0" * 64)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://example.org/tool.tar.gz", "plain http"),
        ("HTTP://example.org/tool.tar.gz", "plain http"),
        ("ftp://example.org/tool.tar.gz", "not https"),
        ("https://user:secret@example.org/tool.tar.gz", "credentials"),
        ("https://example.org/tool 1.tar.gz", "percent-encode"),
        ('https://example.org/tool".tar.gz', "percent-encode"),
        ("https://example.org/tool\n.tar.gz", "percent-encode"),
        ("https://example.org/tool[1-9].tar.gz", "percent-encode"),
        ("https://example.org/tool{a,b}.tar.gz", "percent-encode"),
        ("https://exa_mple.org/tool.tar.gz", "host"),
        ("https:///tool.tar.gz", "host"),
        ("https://example.org:99999/tool.tar.gz", "invalid URL"),
        ("https://example.org/tool.tar.gz#section", "fragment"),
        ("https://example.org/tool.tar.gz#sha256=abc", "--sha256"),
        ("https://ex\u00e4mple.org/tool.tar.gz", "percent-encode"),
        ("https://example.org/" + "a" * 5000, "longer"),
    ],
)
def test_urls_tofu3_will_not_fetch_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises((InvalidUrl, InvalidDigest), match=why):
        parse_release_url(text)


def test_refusals_are_configuration_errors_so_the_cli_exits_2() -> None:
    with pytest.raises(ConfigurationError):
        parse_release_url("http://example.org/tool.tar.gz")


def test_ports_and_ipv6_hosts_stay_in_the_domain() -> None:
    assert parse_release_url("https://example.org:8443/t.tgz").domain == "example.org:8443"
    assert parse_release_url("https://Example.ORG:443/t.tgz").url == "https://example.org/t.tgz"
    ipv6 = parse_release_url("https://[2001:db8::1]:8443/t.tgz")
    assert ipv6.domain == "[2001:db8::1]:8443"
    assert ipv6.url == "https://[2001:db8::1]:8443/t.tgz"


def test_a_query_is_kept_for_the_request() -> None:
    reference = parse_release_url("https://example.org/download?file=tool.tgz&v=2")

    assert reference.url == "https://example.org/download?file=tool.tgz&v=2"
    assert reference.url_path == "/download"
    assert reference.file_name == "download"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.org/", "download"),
        ("https://example.org/dir/", "dir"),
        ("https://example.org/.hidden", "download"),
        ("https://example.org/%2E%2E", "download"),
        ("https://example.org/a%2Fb", "download"),
    ],
)
def test_a_file_name_from_the_url_is_never_a_path_or_hidden(url: str, name: str) -> None:
    assert parse_release_url(url).file_name == name


def test_two_spellings_of_one_url_are_the_same_reference() -> None:
    assert parse_release_url("https://EXAMPLE.org/t.tgz") == parse_release_url(
        "https://example.org:443/t.tgz"
    )
    assert parse_release_url("https://example.org/t.tgz") != parse_release_url(
        "https://example.org/T.tgz"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEX, DIGEST),
        (f"sha256:{HEX}", DIGEST),
        (f"  {HEX.upper()} ", DIGEST),
    ],
)
def test_sha256_accepts_hex_with_or_without_its_algorithm(text: str, expected: Digest) -> None:
    assert parse_sha256(text) == expected


@pytest.mark.parametrize("text", ["", HEX[:-1], HEX + "0", f"sha512:{HEX}", "g" * 64])
def test_sha256_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidDigest):
        parse_sha256(text)


def test_targets_dispatch_on_the_scheme() -> None:
    assert is_url("https://example.org/x") and is_url("HTTP://example.org/x")
    assert not is_url("ghcr.io/homebrew/core/wget:1.24.5")
    assert isinstance(parse_target("https://example.org/x.tgz"), ReleaseReference)
    image = parse_target("alpine:3.19")
    assert not isinstance(image, ReleaseReference)
    assert image.registry_host == "registry-1.docker.io"


def test_sha256_needs_exactly_one_url() -> None:
    check_sha256_use(["alpine", "https://example.org/x.tgz"], HEX)
    check_sha256_use(["alpine"], None)
    with pytest.raises(InvalidUrl, match="exactly one URL"):
        check_sha256_use(["alpine"], HEX)
    with pytest.raises(InvalidUrl, match="exactly one URL"):
        check_sha256_use(["https://a.example/x", "https://b.example/y"], HEX)
