"""Image references: parse, normalize and print them (pure).

The grammar and normalization are those of distribution/reference's ``ParseNormalizedNamed``
(what ``docker pull`` accepts), so tofu3 fetches exactly what Docker would:

- ``alpine`` -> ``docker.io/library/alpine:latest`` (Docker Hub, ``library/`` for one-component
  names, ``latest`` when neither tag nor digest is given);
- ``index.docker.io`` is the legacy spelling of ``docker.io``;
- the first path component is a registry domain only if it is ``localhost``, contains ``.`` or
  ``:``, or contains an uppercase letter (repository names are lowercase, so it cannot be one);
- ``host:port``, IPv4 and bracketed IPv6 (``[::1]:5000``) registries; tags
  ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; ``name:tag@digest``.

Instead of one large regular expression the parser works in steps (characters, digest, tag,
domain, path), so that each rejection can say what is wrong. It accepts the same set as
distribution's expression (tests/unit/test_reference_properties.py checks that against a
transliteration of it), except that tofu3 is stricter in three places:

1. digests must be sha256 or sha512 with exactly the right number of lowercase hex digits
   (tofu3.digest), the only ones tofu3 can check;
2. a first component that looks like a domain (``foo_bar.com/app``) but is not a valid host is
   rejected, where distribution returns a name with no domain at all;
3. the whole reference is capped at 1024 characters (distribution does not bound the domain).

Everything a parsed Reference holds is drawn from ``[A-Za-z0-9._:/@\\-\\[\\]]``: it is safe to
put in a URL path or a shell word, though callers still quote it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from tofu3.digest import Digest, parse_digest
from tofu3.errors import InvalidDigest, InvalidReference

DOCKER_HUB_DOMAIN = "docker.io"
# docker.io is Docker Hub's name in references; the registry API is served from this host.
DOCKER_HUB_REGISTRY_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"

MAX_PATH_LENGTH = 255
MAX_TAG_LENGTH = 128
MAX_REFERENCE_LENGTH = 1024

_LEGACY_DOCKER_HUB_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_LOCALHOST = "localhost"

# Every character any valid reference can contain; anything else fails before any regex runs.
_ALLOWED_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._:/@-[]")

# Grammar pieces, as in distribution/reference's regexp.go. Written out with ASCII classes
# because Python's \w and \d would also match non-ASCII letters and digits.
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# A bare 64-hex string is an image ID; distribution refuses to read it as a repository name.
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalized image reference.

    Two references are equal when they name the same thing, however they were typed:
    ``original`` takes no part in comparison or hashing.
    """

    domain: str
    path: str
    tag: str | None
    digest: Digest | None
    original: str = field(compare=False)

    def __post_init__(self) -> None:
        # Parsing already checked all of this; checking again here means no Reference built
        # by hand can carry something unsafe into a URL or a shell.
        if _domain_problem(self.domain) is not None:
            raise InvalidReference(f"invalid registry domain {_shown(self.domain)!r}")
        if _path_problem(self.path) is not None:
            raise InvalidReference(f"invalid repository path {_shown(self.path)!r}")
        if self.tag is not None and _tag_problem(self.tag) is not None:
            raise InvalidReference(f"invalid tag {_shown(self.tag)!r}")
        if self.digest is not None:
            try:
                parse_digest(self.digest)
            except InvalidDigest as exc:
                raise InvalidReference(str(exc)) from exc

    @property
    def registry_host(self) -> str:
        """The host[:port] to contact: ``registry-1.docker.io`` for Docker Hub, else the domain."""
        return DOCKER_HUB_REGISTRY_HOST if self.domain == DOCKER_HUB_DOMAIN else self.domain

    @property
    def name(self) -> str:
        """The repository's full name, ``domain/path``."""
        return f"{self.domain}/{self.path}"

    @property
    def manifest_reference(self) -> str:
        """What goes in ``/v2/<path>/manifests/<X>``: the digest if pinned, else the tag."""
        if self.digest is not None:
            # With both, Docker fetches by digest and ignores the tag: the digest is the pin.
            return self.digest
        return self.tag if self.tag is not None else DEFAULT_TAG

    @property
    def effective_tag(self) -> str | None:
        """The tag, or ``latest`` when neither tag nor digest was given; None if digest only."""
        if self.tag is not None:
            return self.tag
        return DEFAULT_TAG if self.digest is None else None

    def pinned(self, digest: Digest) -> str:
        """This repository pinned to ``digest``: ``domain/path@digest`` (any tag dropped)."""
        # The digest usually comes from a registry response; check it before it is printed
        # into something a user may paste into a shell.
        return f"{self.name}@{parse_digest(digest)}"

    def __str__(self) -> str:
        """The fully normalized form: ``domain/path[:tag][@digest]``, ``:latest`` if bare."""
        text = self.name
        tag = self.effective_tag
        if tag is not None:
            text += f":{tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse and normalize ``text`` as ``docker pull`` would.

    Raises InvalidReference, with a message saying what is wrong, for anything outside the
    grammar; nothing else is raised.
    """
    if not isinstance(text, str):
        raise InvalidReference(f"reference must be a string, not {type(text).__name__}")

    def invalid(why: str) -> InvalidReference:
        return InvalidReference(f"invalid reference {_shown(text)!r}: {why}")

    # (1) Characters first: whitespace, control characters and shell metacharacters never get
    # as far as a regular expression.
    if not text:
        raise invalid("it is empty")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise invalid(
            f"it is {len(text)} characters long; at most {MAX_REFERENCE_LENGTH} are allowed"
        )
    for char in text:
        if char not in _ALLOWED_CHARACTERS:
            raise invalid(_character_problem(char))

    if "://" in text:
        # Cannot parse anyway (the "domain" would end in ':'), but say why in the user's terms.
        raise invalid("a reference has no URL scheme: write HOST/REPOSITORY[:TAG]")

    # (2) An image ID is not a repository name; naming one would be ambiguous.
    if _IDENTIFIER_RE.fullmatch(text):
        raise invalid(
            "a 64-character hexadecimal string is an image ID, not a repository name "
            "(to pin a digest write NAME@sha256:HEX)"
        )

    # (3) Digest: everything after the '@' (a name or tag never contains one).
    name_and_tag, at, digest_text = text.partition("@")
    digest: Digest | None = None
    if at:
        if "@" in digest_text:
            raise invalid("it contains more than one '@'")
        try:
            digest = parse_digest(digest_text)
        except InvalidDigest as exc:
            raise invalid(str(exc)) from exc

    # (4) Tag: after the last ':' unless a '/' follows it (then that ':' was a port).
    if name_and_tag.startswith("[") and "/" not in name_and_tag:
        raise invalid("a registry address must be followed by '/' and a repository path")
    name, tag = _split_tag(name_and_tag)
    if tag is not None and (problem := _tag_problem(tag)) is not None:
        raise invalid(problem)
    if not name:
        raise invalid("the repository name is missing")

    # (5) Domain, then (6) path, both normalized the way distribution's splitDockerDomain does.
    domain, path, uppercase_first = _split_domain(name)
    if (problem := _domain_problem(domain)) is not None:
        if uppercase_first:
            # Taken for a domain only because it has uppercase letters, and not a valid host
            # either: far more likely a mistyped repository name.
            raise invalid("repository name must be lowercase")
        raise invalid(problem)
    if (problem := _path_problem(path)) is not None:
        raise invalid(problem)

    return Reference(domain=domain, path=path, tag=tag, digest=digest, original=text)


def _split_tag(name_and_tag: str) -> tuple[str, str | None]:
    """Split ``name[:tag]``; a ':' followed by a '/' belongs to a host:port, not a tag."""
    colon = name_and_tag.rfind(":")
    if colon == -1 or "/" in name_and_tag[colon + 1 :]:
        return name_and_tag, None
    return name_and_tag[:colon], name_and_tag[colon + 1 :]


def _split_domain(name: str) -> tuple[str, str, bool]:
    """Split a name into (domain, path, whether the domain was chosen for its uppercase)."""
    first, slash, rest = name.partition("/")
    if not slash:
        # One component is always a Docker Hub official image, even "localhost" or
        # "example.com": that is how Docker reads it (a FIXME upstream, but the behaviour).
        return DOCKER_HUB_DOMAIN, _OFFICIAL_PREFIX + name, False
    uppercase_first = False
    if first == _LOCALHOST:
        domain, path = first, rest
    elif first == _LEGACY_DOCKER_HUB_DOMAIN:
        domain, path = DOCKER_HUB_DOMAIN, rest
    elif "." in first or ":" in first:
        domain, path = first, rest
    elif first.lower() != first:
        # Repository names are lowercase, so an uppercase first component must be a host.
        domain, path, uppercase_first = first, rest, True
    else:
        domain, path = DOCKER_HUB_DOMAIN, name
    if domain == DOCKER_HUB_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    return domain, path, uppercase_first


def _domain_problem(domain: str) -> str | None:
    """Why ``domain`` is not a valid registry host[:port], or None if it is."""
    if _DOMAIN_RE.fullmatch(domain):
        return None
    return (
        f"invalid registry domain {_shown(domain)!r}: expected HOST[:PORT] with a DNS name, "
        "an IPv4 address or a bracketed IPv6 address as HOST"
    )


def _path_problem(path: str) -> str | None:
    """Why ``path`` is not a valid repository path, or None if it is."""
    if len(path) > MAX_PATH_LENGTH:
        return (
            f"repository name is {len(path)} characters long; at most {MAX_PATH_LENGTH} are allowed"
        )
    for component in path.split("/"):
        if not component:
            return f"repository path {_shown(path)!r} has an empty component"
        if component.lower() != component:
            return "repository name must be lowercase"
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return (
                f"invalid repository path component {_shown(component)!r}: components are "
                "lowercase letters and digits, joined by single '.' or '_', '__', or dashes"
            )
    return None


def _tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not a valid tag, or None if it is."""
    if _TAG_RE.fullmatch(tag):
        return None
    if not tag:
        return "invalid tag '': nothing follows the ':'"
    if len(tag) > MAX_TAG_LENGTH:
        return (
            f"invalid tag {_shown(tag)!r}: it is {len(tag)} characters long; "
            f"at most {MAX_TAG_LENGTH} are allowed"
        )
    return (
        f"invalid tag {_shown(tag)!r}: a tag is letters, digits, '_', '.' and '-', "
        "and does not start with '.' or '-'"
    )


def _character_problem(char: str) -> str:
    """Describe a character no reference may contain."""
    if char.isspace():
        return f"it contains whitespace ({char!r})"
    if not char.isprintable():
        return f"it contains a control character ({char!r})"
    return f"it contains {char!r}, which cannot appear in a reference"


def _shown(value: str) -> str:
    """``value`` cut short enough for an error message."""
    return value[:80] + ("..." if len(value) > 80 else "")
