"""Properties of parse_reference, checked on generated input.

The strongest check compares parse_reference with ``distribution_parse``: a literal Python
transliteration of distribution/reference's ParseNormalizedNamed (one big regular expression,
as in its regexp.go). tofu3's parser works step by step to give precise messages; this test is
what shows the steps accept exactly the same references, apart from the documented deviations.
"""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tofu3.digest import Digest, is_digest
from tofu3.errors import InvalidReference
from tofu3.reference import MAX_REFERENCE_LENGTH, Reference, parse_reference

# --- distribution/reference, transliterated (Go regexp syntax -> Python, ASCII classes) ---
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")

Parts = tuple[str, str, str | None, str | None]


def _split_docker_domain(name: str) -> tuple[str, str]:
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return "docker.io", "library/" + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == "index.docker.io":
        domain, remote = "docker.io", maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = "docker.io", name
    if domain == "docker.io" and "/" not in remote:
        remote = "library/" + remote
    return domain, remote


def distribution_parse(text: str) -> Parts | None:
    """(domain, path, tag, digest) as ParseNormalizedNamed gives them, or None if it errs.

    Digests are checked with tofu3's rule (sha256/sha512 only), the deviation tofu3 intends;
    other differences are left for the test to state.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        return None
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return None
    # Go's ^...$ is anchored at the very end; Python's $ is not (it allows a final "\n").
    match = _REFERENCE_RE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        return None
    name_match = _ANCHORED_NAME_RE.fullmatch(match[1])
    assert name_match is not None
    parsed_domain, path = name_match[1] or "", name_match[2]
    if len(path) > 255:
        return None
    digest = match[3]
    if digest is not None and not is_digest(digest):
        return None
    return parsed_domain, path, match[2], digest


def tofu3_expects(text: str) -> Parts | None:
    """distribution's answer, with tofu3's other documented deviations applied."""
    if len(text) > MAX_REFERENCE_LENGTH:
        return None
    parts = distribution_parse(text)
    # distribution returns "foo_bar.com/app" as a name with no domain; tofu3 refuses it.
    if parts is None or parts[0] == "":
        return None
    return parts


def _parse_or_none(text: str) -> Reference | None:
    try:
        return parse_reference(text)
    except InvalidReference:
        return None


# --- strategies ---
HEX = "0123456789abcdef"
SHA256 = st.text(HEX, min_size=64, max_size=64).map(lambda h: Digest(f"sha256:{h}"))

# Characters that matter to the grammar, a few lookalikes and some that must never pass.
REFERENCE_SOUP = st.text(
    alphabet="abcxyzAZ019._-:/@[]_ \n\t\x00;$`'\"|&%~#+é",
    max_size=40,
)

domains = st.one_of(
    st.sampled_from(
        [
            "docker.io",
            "index.docker.io",
            "localhost",
            "localhost:5000",
            "ghcr.io",
            "Foo",
            "foo",
            "127.0.0.1:8000",
            "[::1]:5000",
            "[fe80::1%eth0]",
            "foo_bar.com",
            "-docker.io",
            "a..b",
            "example.com:http",
        ]
    ),
    st.from_regex(re.compile(_DOMAIN_AND_PORT, re.ASCII), fullmatch=True),
)
path_components = st.one_of(
    st.from_regex(re.compile(_PATH_COMPONENT), fullmatch=True),
    st.text(alphabet="abAB09._-", min_size=0, max_size=8),
)
paths = st.lists(path_components, min_size=1, max_size=4).map("/".join)
tags = st.one_of(
    st.from_regex(re.compile(_TAG, re.ASCII), fullmatch=True),
    st.text(alphabet="aZ09._-", max_size=6),
)
digests = st.one_of(
    SHA256,
    st.text(HEX, min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
    st.text("0123456789abcdefABCDEF", min_size=30, max_size=70).map(lambda h: f"sha256:{h}"),
    st.from_regex(re.compile(_DIGEST, re.ASCII), fullmatch=True),
)


@st.composite
def reference_like(draw: st.DrawFn) -> str:
    """Text put together from grammar-shaped parts, often valid, often just off."""
    text = draw(paths)
    if draw(st.booleans()):
        text = f"{draw(domains)}/{text}"
    if draw(st.booleans()):
        text += f":{draw(tags)}"
    if draw(st.booleans()):
        text += f"@{draw(digests)}"
    return text


ANY_REFERENCE_TEXT = st.one_of(
    st.text(),
    REFERENCE_SOUP,
    reference_like(),
    st.from_regex(_REFERENCE_RE, fullmatch=True),
)
SAFE_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._:/@-[]")


@given(st.text())
def test_arbitrary_text_parses_or_raises_invalid_reference(text: str) -> None:
    # Anything else escaping (IndexError, re.error, ...) would fail this test.
    _parse_or_none(text)


@given(ANY_REFERENCE_TEXT)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("foo_bar.com/app")
@example("Foo/bar")
@example("Foo_bar/x")
@example("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a")
@example("localhost:8080@sha256:" + "b" * 64)
@example("alpine\n")
def test_accepts_exactly_what_distribution_accepts(text: str) -> None:
    expected = tofu3_expects(text)
    reference = _parse_or_none(text)
    if expected is None:
        assert reference is None, f"{text!r} should be rejected, got {reference}"
    else:
        assert reference is not None, f"{text!r} should parse to {expected}"
        assert (reference.domain, reference.path, reference.tag, reference.digest) == expected


@given(ANY_REFERENCE_TEXT)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_normalized_form_parses_back_to_the_same_reference(text: str) -> None:
    reference = _parse_or_none(text)
    if reference is None:
        return
    again = parse_reference(str(reference))
    assert again.domain == reference.domain
    assert again.path == reference.path
    assert again.digest == reference.digest
    # str() spells out the implied ":latest", so only the effective tag survives a round trip.
    assert again.effective_tag == reference.effective_tag
    assert again.manifest_reference == reference.manifest_reference
    assert str(again) == str(reference)
    if reference.tag is not None or reference.digest is not None:
        assert again == reference


@given(ANY_REFERENCE_TEXT)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parsed_reference_holds_only_safe_characters(text: str) -> None:
    reference = _parse_or_none(text)
    if reference is None:
        return
    for value in (str(reference), reference.registry_host, reference.manifest_reference):
        assert set(value) <= SAFE_CHARACTERS, value


@given(ANY_REFERENCE_TEXT, SHA256)
def test_pinned_reference_parses_to_the_pin(text: str, digest: Digest) -> None:
    reference = _parse_or_none(text)
    if reference is None:
        return
    pin = reference.digest or digest
    pinned = parse_reference(reference.pinned(pin))
    assert (pinned.domain, pinned.path, pinned.tag, pinned.digest) == (
        reference.domain,
        reference.path,
        None,
        pin,
    )
