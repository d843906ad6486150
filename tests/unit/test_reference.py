"""Reference parsing: the cases of distribution/reference's own tests, plus tofu3's promises.

The tables carry over the facts in distribution/reference's reference_test.go, normalize_test.go
and regexp_test.go (github.com/distribution/reference), restated for ParseNormalizedNamed: the
parser ``docker pull`` uses, which adds ``docker.io`` and ``library/``. Where tofu3 is stricter
than distribution the case says so.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tofu3.digest import Digest
from tofu3.errors import ConfigurationError, InvalidDigest, InvalidReference
from tofu3.reference import Reference, parse_reference

SHA256_F = "sha256:" + "f" * 64
SHA256_A = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA512_F = "sha512:" + "f" * 128
IMAGE_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
LONG_NAMESPACE = "_".join(
    ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4
)


class Parsed(NamedTuple):
    """What a valid reference must parse to."""

    text: str
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None


VALID = [
    # --- tofu3's own examples ---
    Parsed("alpine", "docker.io", "library/alpine"),
    Parsed("library/alpine", "docker.io", "library/alpine"),
    Parsed("docker.io/alpine", "docker.io", "library/alpine"),
    Parsed("docker.io/library/alpine", "docker.io", "library/alpine"),
    Parsed("index.docker.io/library/alpine", "docker.io", "library/alpine"),
    Parsed("index.docker.io/alpine", "docker.io", "library/alpine"),
    Parsed("alpine:3.19", "docker.io", "library/alpine", "3.19"),
    Parsed("ghcr.io/homebrew/core/wget:1.24.5", "ghcr.io", "homebrew/core/wget", "1.24.5"),
    Parsed(f"localhost:5000/foo@{SHA256_F}", "localhost:5000", "foo", None, SHA256_F),
    Parsed(f"localhost/foo:1@{SHA256_F}", "localhost", "foo", "1", SHA256_F),
    Parsed(f"example.com/app@{SHA512_F}", "example.com", "app", None, SHA512_F),
    Parsed("localhost/foo", "localhost", "foo"),
    # --- reference_test.go, TestReferenceParse (normalized) ---
    Parsed("test_com", "docker.io", "library/test_com"),
    Parsed("test.com:tag", "docker.io", "library/test.com", "tag"),
    Parsed("test.com:5000", "docker.io", "library/test.com", "5000"),
    # regexp_test.go rejects "test.com:http" as a domain; as a reference it is a name and a tag.
    Parsed("test.com:http", "docker.io", "library/test.com", "http"),
    Parsed("test.com/repo:tag", "test.com", "repo", "tag"),
    Parsed("test:5000/repo", "test:5000", "repo"),
    Parsed("test:5000/repo:tag", "test:5000", "repo", "tag"),
    Parsed(f"test:5000/repo@{SHA256_F}", "test:5000", "repo", None, SHA256_F),
    Parsed(f"test:5000/repo:tag@{SHA256_F}", "test:5000", "repo", "tag", SHA256_F),
    Parsed("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase"),
    # 255 characters of path is the limit, and the tag does not count towards it.
    Parsed(
        "a/" * 127 + "a:tag-puts-this-over-max",
        "docker.io",
        "a/" * 127 + "a",
        "tag-puts-this-over-max",
    ),
    Parsed("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag"),
    Parsed("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux"),
    Parsed(
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
    ),
    Parsed(
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
    ),
    Parsed("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com"),
    Parsed(
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA256_F}",
        "xn--7o8h.com",
        "myimage",
        "xn--7o8h.com",
        SHA256_F,
    ),
    Parsed("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080"),
    Parsed("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080"),
    Parsed("192.168.1.1", "docker.io", "library/192.168.1.1"),
    Parsed("192.168.1.1:tag", "docker.io", "library/192.168.1.1", "tag"),
    Parsed("192.168.1.1:5000", "docker.io", "library/192.168.1.1", "5000"),
    Parsed("192.168.1.1/repo", "192.168.1.1", "repo"),
    Parsed("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo"),
    Parsed("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050"),
    Parsed("[2001:db8::1]/repo", "[2001:db8::1]", "repo"),
    Parsed("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag"),
    Parsed("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo"),
    Parsed("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "repo", "tag"),
    Parsed(f"[2001:db8::1]:5000/repo@{SHA256_F}", "[2001:db8::1]:5000", "repo", None, SHA256_F),
    Parsed(
        f"[2001:db8::1]:5000/repo:tag@{SHA256_F}", "[2001:db8::1]:5000", "repo", "tag", SHA256_F
    ),
    Parsed("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo"),
    Parsed("[::1]:5000/repo", "[::1]:5000", "repo"),
    # --- normalize_test.go, TestValidateReferenceName and TestValidateRemoteName ---
    Parsed("docker/docker", "docker.io", "docker/docker"),
    Parsed("library/debian", "docker.io", "library/debian"),
    Parsed("debian", "docker.io", "library/debian"),
    Parsed("localhost/library/debian", "localhost", "library/debian"),
    Parsed("localhost/debian", "localhost", "debian"),
    Parsed("LOCALDOMAIN/library/debian", "LOCALDOMAIN", "library/debian"),
    Parsed("LOCALDOMAIN/debian", "LOCALDOMAIN", "debian"),
    Parsed("docker.io/docker/docker", "docker.io", "docker/docker"),
    Parsed("index.docker.io/docker/docker", "docker.io", "docker/docker"),
    Parsed("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker"),
    Parsed("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian"),
    Parsed("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian"),
    Parsed("192.168.0.1:80", "docker.io", "library/192.168.0.1", "80"),
    Parsed("192.168.0.1:8/debian", "192.168.0.1:8", "debian"),
    Parsed("192.168.0.2:25000/debian", "192.168.0.2:25000", "debian"),
    Parsed(
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker.io",
        "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    ),
    Parsed("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker"),
    Parsed("[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker"),
    Parsed(
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian"
    ),
    # With a domain, 64 hex characters are a name again, not an image ID.
    Parsed(f"docker.io/{IMAGE_ID}", "docker.io", f"library/{IMAGE_ID}"),
    # An uppercase first component cannot be a repository name, so it is a host.
    Parsed("Docker/docker", "Docker", "docker"),
    Parsed("DOCKER/docker", "DOCKER", "docker"),
    Parsed("docker-rules/docker", "docker.io", "docker-rules/docker"),
    Parsed("docker---rules/docker", "docker.io", "docker---rules/docker"),
    Parsed("doc/docker", "docker.io", "doc/docker"),
    Parsed("d/docker", "docker.io", "d/docker"),
    Parsed("jess/t", "docker.io", "jess/t"),
    Parsed("dock__er/docker", "docker.io", "dock__er/docker"),
    # --- normalize_test.go, TestParseRepositoryInfo and TestNormalizedSplitHostname ---
    Parsed("localhost/fooo/bar", "localhost", "fooo/bar"),
    Parsed("fooo/bar", "docker.io", "fooo/bar"),
    Parsed("index.docker.io/fooo/bar", "docker.io", "fooo/bar"),
    Parsed("nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu"),
    Parsed("other/library", "docker.io", "other/library"),
    Parsed("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase"),
    Parsed("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase"),
    Parsed("example.com/private/moonbase", "example.com", "private/moonbase"),
    Parsed("example.com:8000/privatebasee", "example.com:8000", "privatebasee"),
    Parsed("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base"),
    Parsed("index.docker.io/library/ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base"),
    Parsed("library/foo/bar", "docker.io", "library/foo/bar"),
    Parsed("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    Parsed("store/foo/bar", "docker.io", "store/foo/bar"),
    Parsed("Foo/bar", "Foo", "bar"),
    Parsed("FOO/bar", "FOO", "bar"),
    Parsed("test_com/foo", "docker.io", "test_com/foo"),
    Parsed("test-com:8080/foo", "test-com:8080", "foo"),
    Parsed("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    Parsed(f"busybox:latest@{SHA256_A}", "docker.io", "library/busybox", "latest", SHA256_A),
    Parsed(
        f"gcr.io/library/busybox:latest@{SHA256_A}", "gcr.io", "library/busybox", "latest", SHA256_A
    ),
    # --- reference_test.go, TestParseAnyReference: 63 hex characters are just a name ---
    Parsed(IMAGE_ID[:63], "docker.io", f"library/{IMAGE_ID[:63]}"),
    Parsed("dbcc1", "docker.io", "library/dbcc1"),
    # Only the bare 64-hex string is refused; with a tag it is a name.
    Parsed(f"{IMAGE_ID}:tag", "docker.io", f"library/{IMAGE_ID}", "tag"),
    # --- regexp_test.go ---
    # One component before ':' is a name and a tag, never a host and a port.
    Parsed(f"localhost:8080@{SHA256_F}", "docker.io", "library/localhost", "8080", SHA256_F),
    Parsed(f"localhost@{SHA256_F}", "docker.io", "library/localhost", None, SHA256_F),
    Parsed("registry.com:8080/myapp:tag", "registry.com:8080", "myapp", "tag"),
    Parsed(
        "registry.io/foo/project--id.module--name.ver---sion--name",
        "registry.io",
        "foo/project--id.module--name.ver---sion--name",
    ),
    Parsed("Asdf.com/foo/bar", "Asdf.com", "foo/bar"),
    Parsed(
        "example.com/some_separator__underscore/myimage",
        "example.com",
        "some_separator__underscore/myimage",
    ),
    Parsed("example.com/xn--7o8h.com/myimage", "example.com", "xn--7o8h.com/myimage"),
    Parsed("foo.com/foo_bar", "foo.com", "foo_bar"),
    Parsed(
        "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
        "docker.io",
        "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
    ),
    Parsed("do__cker/docker", "docker.io", "do__cker/docker"),
    Parsed("0101.com/x", "0101.com", "x"),
    Parsed("192.168.1.1:75050/x", "192.168.1.1:75050", "x"),
    Parsed("a-b.com/x:_tag", "a-b.com", "x", "_tag"),
    Parsed("x:" + "t" * 128, "docker.io", "library/x", "t" * 128),
]


class Rejected(NamedTuple):
    """A reference that must be refused, and words the message must contain."""

    text: str
    says: str


INVALID = [
    # --- reference_test.go, TestReferenceParse ---
    Rejected("", "empty"),
    Rejected(":justtag", "repository name is missing"),
    Rejected(f"@{SHA256_F}", "repository name is missing"),
    Rejected("repo@sha256:" + "f" * 34, "sha256 needs 64 hex digits, got 34"),
    Rejected(f"validname@invaliddigest:{'f' * 64}", "unsupported algorithm"),
    Rejected("Uppercase:tag", "repository name must be lowercase"),
    Rejected("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    Rejected("domain/" + "a" * 256 + ":tag", "at most 255"),
    Rejected("aa/asdf$$^/aa", "'$'"),
    Rejected("[2001:db8::1]", "must be followed by '/'"),
    Rejected("[2001:db8::1]:5000", "must be followed by '/'"),
    Rejected("[2001:db8::1]:tag", "must be followed by '/'"),
    Rejected("[fe80::1%eth0]:5000/repo", "'%'"),
    Rejected("[fe80::1%@invalidzone]:5000/repo", "'%'"),
    # --- normalize_test.go ---
    Rejected("https://github.com/docker/docker", "no URL scheme"),
    Rejected("docker/Docker", "repository name must be lowercase"),
    Rejected("-docker", "invalid repository path component '-docker'"),
    Rejected("-docker/docker", "invalid repository path component '-docker'"),
    Rejected("-docker.io/docker/docker", "invalid registry domain '-docker.io'"),
    Rejected("docker///docker", "empty component"),
    Rejected("docker.io/docker/Docker", "repository name must be lowercase"),
    Rejected("docker.io/docker///docker", "empty component"),
    Rejected("[fc00::1]", "must be followed by '/'"),
    Rejected("[fc00::1]:5000", "must be followed by '/'"),
    Rejected("fc00::1:5000/debian", "invalid registry domain 'fc00::1:5000'"),
    Rejected("[fe80::1%eth0]:5000/debian", "'%'"),
    Rejected("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry domain"),
    Rejected(IMAGE_ID, "image ID"),
    Rejected("docker-/docker", "invalid repository path component 'docker-'"),
    Rejected("-docker-/docker", "invalid repository path component"),
    Rejected("____/____", "invalid repository path component '____'"),
    Rejected("_docker/_docker", "invalid repository path component '_docker'"),
    Rejected("dock..er/docker", "invalid registry domain 'dock..er'"),
    Rejected("dock_.er/docker", "invalid registry domain 'dock_.er'"),
    Rejected("dock-.er/docker", "invalid registry domain 'dock-.er'"),
    Rejected("docker/", "empty component"),
    Rejected(f"{LONG_NAMESPACE}/docker", "at most 255"),
    # --- regexp_test.go ---
    Rejected("registry.com:8080/myapp@sha256:badbadbadbad", "sha256 needs 64 hex digits"),
    Rejected("registry.com:8080/myapp:invalid~tag", "'~'"),
    Rejected("bad_hostname.com:8080/myapp:tag", "invalid registry domain 'bad_hostname.com:8080'"),
    Rejected(f"localhost:http/name@{SHA256_F}", "invalid registry domain 'localhost:http'"),
    Rejected("registry.com:8080/myapp@bad", "expected ALGORITHM:HEX"),
    Rejected("registry.com:8080/myapp@2bad", "expected ALGORITHM:HEX"),
    Rejected("a/a/a/a/", "empty component"),
    Rejected("a//a/a", "empty component"),
    Rejected("foo.com/", "empty component"),
    Rejected("foo.com:http/bar", "invalid registry domain 'foo.com:http'"),
    Rejected("a^a", "'^'"),
    Rejected("a-/a/a/a", "invalid repository path component 'a-'"),
    Rejected("foo.com/a-/a/a", "invalid repository path component 'a-'"),
    Rejected("foo/bar-", "invalid repository path component 'bar-'"),
    Rejected("foo/-bar", "invalid repository path component '-bar'"),
    Rejected("docker_/docker_", "invalid repository path component 'docker_'"),
    Rejected(
        "example.com/__underscore/myimage", "invalid repository path component '__underscore'"
    ),
    Rejected("example.com/..dots/myimage", "invalid repository path component '..dots'"),
    Rejected("example.com/.dots/myimage", "invalid repository path component '.dots'"),
    Rejected(
        "example.com/nodouble..dots/myimage", "invalid repository path component 'nodouble..dots'"
    ),
    Rejected("docker./docker", "invalid registry domain 'docker.'"),
    Rejected(".docker/docker", "invalid registry domain '.docker'"),
    Rejected("do__cker:8080/docker", "invalid registry domain 'do__cker:8080'"),
    Rejected("Foo/FarB", "repository name must be lowercase"),
    Rejected("foo_bar.com:8080/app", "invalid registry domain 'foo_bar.com:8080'"),
    Rejected("[fd00:1:2::3]75050/x", "invalid registry domain"),
    Rejected("[fd00:1:2::3]::75050/x", "invalid registry domain"),
    # --- stricter than distribution (see tofu3/reference.py) ---
    # distribution would return this with no domain at all; there is nothing to contact.
    Rejected("foo_bar.com/app", "invalid registry domain 'foo_bar.com'"),
    Rejected(f"app@sha384:{'f' * 96}", "unsupported algorithm (only sha256 and sha512)"),
    Rejected(f"app@sha512:{'f' * 64}", "sha512 needs 128 hex digits, got 64"),
    Rejected("localhost:5000/" + "a/" * 600 + "a", "at most 1024"),
    # --- tags ---
    Rejected("alpine:", "invalid tag '': nothing follows the ':'"),
    Rejected("alpine:-rc1", "invalid tag '-rc1'"),
    Rejected("alpine:.hidden", "invalid tag '.hidden'"),
    Rejected("alpine:" + "t" * 129, "it is 129 characters long; at most 128"),
    Rejected("alpine:a:b", "invalid repository path component 'alpine:a'"),
    Rejected("localhost:5000/foo:[x]", "invalid tag '[x]'"),
    # --- digests ---
    Rejected("alpine@", "invalid digest ''"),
    Rejected(f"alpine@SHA256:{'f' * 64}", "algorithm must be lowercase"),
    Rejected(f"alpine@sha256:{'F' * 64}", "64 lowercase hex digits"),
    Rejected(f"alpine@sha256:{'f' * 63}", "sha256 needs 64 hex digits, got 63"),
    Rejected(f"alpine@{SHA256_F}@{SHA256_F}", "more than one '@'"),
    Rejected(f"alpine@{SHA256_F}:tag", "invalid digest"),
    # --- characters that must never reach a shell or a URL ---
    Rejected(" alpine", "whitespace"),
    Rejected("alpine ", "whitespace"),
    Rejected("alp ine", "whitespace"),
    Rejected("alpine\n", "whitespace"),
    Rejected("alpine\tx", "whitespace"),
    Rejected("alpine\x00", "control character"),
    Rejected("alpine\x1b[31m", "control character"),
    Rejected("alpine\u202e", "control character"),
    Rejected("alpine;rm -rf ~", "';'"),
    Rejected("$(id)/x", "'$'"),
    Rejected("`id`", "'`'"),
    Rejected("alpine|sh", "'|'"),
    Rejected("alpine&&true", "'&'"),
    Rejected("alpine>out", "'>'"),
    Rejected("alpine'x", '"\'"'),
    Rejected('alpine"x', "'\"'"),
    Rejected("alpine\\x", "'\\\\'"),
    Rejected("alpine?x=1", "'?'"),
    Rejected("alpine#x", "'#'"),
    Rejected("alpíne", "'í'"),
    Rejected("alpine\uff1atag", "'\uff1a'"),
]


@pytest.mark.parametrize("case", VALID, ids=lambda case: case.text[:60])
def test_valid_reference_parses_as_distribution_does(case: Parsed) -> None:
    reference = parse_reference(case.text)
    assert (reference.domain, reference.path, reference.tag, reference.digest) == (
        case.domain,
        case.path,
        case.tag,
        case.digest,
    )
    assert reference.original == case.text


@pytest.mark.parametrize("case", INVALID, ids=lambda case: repr(case.text[:60]))
def test_invalid_reference_is_rejected_saying_what_is_wrong(case: Rejected) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(case.text)
    message = str(caught.value)
    assert message.startswith("invalid reference ")
    assert case.says in message


def test_invalid_reference_is_a_configuration_error() -> None:
    # The CLI maps ConfigurationError to exit 2: a bad reference is the user's to fix.
    with pytest.raises(ConfigurationError):
        parse_reference("Foo/Bar")


def test_message_quotes_the_reference_as_typed() -> None:
    with pytest.raises(InvalidReference, match=r"^invalid reference 'foo/Bar': "):
        parse_reference("foo/Bar")


def test_message_escapes_control_characters() -> None:
    # A terminal must not interpret what an attacker put in a reference.
    with pytest.raises(InvalidReference) as caught:
        parse_reference("alpine\x1b[2J")
    assert "\x1b" not in str(caught.value)
    assert "\\x1b" in str(caught.value)


def test_message_shortens_a_huge_reference() -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference("a" * 100_000)
    assert len(str(caught.value)) < 300


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidReference, match="must be a string"):
        parse_reference(b"alpine")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "alpine",
        "library/alpine",
        "docker.io/alpine",
        "docker.io/library/alpine",
        "index.docker.io/library/alpine",
    ],
)
def test_docker_hub_official_image_spellings_are_one_reference(text: str) -> None:
    reference = parse_reference(text)
    assert reference.domain == "docker.io"
    assert reference.path == "library/alpine"
    assert reference.registry_host == "registry-1.docker.io"
    assert reference.name == "docker.io/library/alpine"
    assert str(reference) == "docker.io/library/alpine:latest"
    assert reference == parse_reference("docker.io/library/alpine")


def test_bare_name_means_latest() -> None:
    reference = parse_reference("alpine")
    assert reference.tag is None
    assert reference.digest is None
    assert reference.effective_tag == "latest"
    assert reference.manifest_reference == "latest"
    assert str(reference) == "docker.io/library/alpine:latest"


def test_tagged_reference() -> None:
    reference = parse_reference("ghcr.io/homebrew/core/wget:1.24.5")
    assert reference.domain == "ghcr.io"
    assert reference.registry_host == "ghcr.io"
    assert reference.path == "homebrew/core/wget"
    assert reference.name == "ghcr.io/homebrew/core/wget"
    assert reference.tag == "1.24.5"
    assert reference.effective_tag == "1.24.5"
    assert reference.manifest_reference == "1.24.5"
    assert str(reference) == "ghcr.io/homebrew/core/wget:1.24.5"


def test_digest_only_reference_has_no_tag() -> None:
    reference = parse_reference(f"localhost:5000/foo@{SHA256_F}")
    assert reference.domain == "localhost:5000"
    assert reference.registry_host == "localhost:5000"
    assert reference.tag is None
    assert reference.effective_tag is None
    assert reference.digest == SHA256_F
    assert reference.manifest_reference == SHA256_F
    assert str(reference) == f"localhost:5000/foo@{SHA256_F}"


def test_tag_and_digest_fetches_by_digest_and_keeps_the_tag() -> None:
    reference = parse_reference(f"busybox:1.36@{SHA256_A}")
    assert reference.tag == "1.36"
    assert reference.effective_tag == "1.36"
    assert reference.digest == SHA256_A
    assert reference.manifest_reference == SHA256_A
    assert str(reference) == f"docker.io/library/busybox:1.36@{SHA256_A}"


def test_ipv6_registry_is_contacted_at_its_bracketed_address() -> None:
    reference = parse_reference("[::1]:5000/repo:tag")
    assert reference.registry_host == "[::1]:5000"
    assert str(reference) == "[::1]:5000/repo:tag"


def test_docker_hub_host_is_only_substituted_for_docker_io_itself() -> None:
    assert parse_reference("docker.io:443/foo/bar").registry_host == "docker.io:443"
    assert parse_reference("registry-1.docker.io/foo/bar").registry_host == "registry-1.docker.io"


def test_pinned_drops_the_tag_and_names_the_digest() -> None:
    reference = parse_reference("ghcr.io/homebrew/core/wget:1.24.5")
    assert reference.pinned(Digest(SHA256_A)) == f"ghcr.io/homebrew/core/wget@{SHA256_A}"
    assert (
        parse_reference("alpine").pinned(Digest(SHA256_F)) == f"docker.io/library/alpine@{SHA256_F}"
    )


def test_pinned_refuses_a_digest_that_is_not_one() -> None:
    # The digest comes from a registry; it is checked before it is printed for a shell.
    with pytest.raises(InvalidDigest):
        parse_reference("alpine").pinned(Digest("sha256:$(id)"))


def test_equality_ignores_how_the_reference_was_typed() -> None:
    typed = parse_reference("alpine:3.19")
    canonical = parse_reference("docker.io/library/alpine:3.19")
    assert typed == canonical
    assert hash(typed) == hash(canonical)
    assert typed.original != canonical.original


def test_explicit_latest_differs_from_no_tag_but_fetches_the_same() -> None:
    bare = parse_reference("alpine")
    latest = parse_reference("alpine:latest")
    assert bare.tag is None
    assert latest.tag == "latest"
    assert bare.manifest_reference == latest.manifest_reference
    assert str(bare) == str(latest)


def test_reference_is_immutable() -> None:
    reference = parse_reference("alpine")
    with pytest.raises(AttributeError):
        reference.path = "library/evil"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domain", "evil.com/$(id)"),
        ("domain", ""),
        ("path", "library/alpine;id"),
        ("path", "Library/alpine"),
        ("path", ""),
        ("tag", "1 && id"),
        ("digest", "sha256:beef"),
    ],
)
def test_reference_built_by_hand_is_checked_too(field: str, value: str) -> None:
    fields: dict[str, str | None] = {
        "domain": "docker.io",
        "path": "library/alpine",
        "tag": "3.19",
        "digest": None,
        "original": "alpine:3.19",
    }
    fields[field] = value
    with pytest.raises(InvalidReference):
        Reference(**fields)  # type: ignore[arg-type]


def test_reference_built_by_hand_from_valid_parts() -> None:
    reference = Reference(
        domain="docker.io",
        path="library/alpine",
        tag="3.19",
        digest=Digest(SHA256_F),
        original="alpine:3.19",
    )
    assert reference == parse_reference(f"alpine:3.19@{SHA256_F}")
