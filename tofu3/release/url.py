"""Release-file URLs: parse and check them, and carry them where a Reference goes (pure).

``tofu3 verify https://example.org/tool-1.2.tar.gz`` runs the same three-vantage agreement
for a plain file as for an image. The verdict and the reports take a Reference, so a URL is
carried as a ReleaseReference: a Reference whose domain is the URL's host (the domain grammar
holds for every host tofu3 accepts), whose path is a grammar-safe slug of the URL's path, whose
``original`` is the URL as given, and whose ``pinned()`` form is ``URL#sha256=HEX`` (the hash
fragment pip and others use), which tofu3 itself reads back as a pin.

Only https URLs are accepted: without TLS any path could change the bytes for every vantage
alike. URLs with credentials, fragments other than a ``sha256=`` pin, or characters outside
RFC 3986 are refused before they go near a vantage.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from tofu3.digest import Digest, hex_of, parse_digest
from tofu3.errors import InvalidDigest, InvalidReference, InvalidUrl
from tofu3.reference import Reference, parse_reference

MAX_URL_LENGTH = 4096
URL_PREFIXES = ("https://", "http://")

# RFC 3986 unreserved, reserved and '%'; but not [] or {} outside the host: curl would read
# them as a glob pattern and fetch something else.
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#@!$&'()*+,;=%")
_HOST_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "-.[]:")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SLUG_WORD = re.compile(r"[a-z0-9]+")
_MAX_SLUG = 200
_FILE_NAME = re.compile(r"[A-Za-z0-9_+~@-][A-Za-z0-9._+~@-]{0,254}")


@dataclass(frozen=True)
class ReleaseReference(Reference):
    """An https URL of a release file, as a Reference. ``digest`` is the pinned sha256, if
    any (from ``--sha256`` or a ``#sha256=`` fragment); ``url`` is what the vantages fetch."""

    url: str = ""

    @property
    def registry_host(self) -> str:
        """The URL's host[:port] (never Docker Hub's API host)."""
        return self.domain

    @property
    def name(self) -> str:
        """The URL itself."""
        return self.url

    @property
    def manifest_reference(self) -> str:
        """A URL has no manifest; the URL stands in."""
        return self.url

    @property
    def effective_tag(self) -> str | None:
        """A URL has no tag."""
        return None

    @property
    def url_path(self) -> str:
        """The URL's path, without query."""
        return urlsplit(self.url).path or "/"

    @property
    def file_name(self) -> str:
        """The last path segment, decoded: the name ``tofu3 fetch`` saves the file under in
        a directory (``download`` when that segment is not a plain file name)."""
        name = unquote(self.url_path.rstrip("/").rpartition("/")[2])
        return name if _FILE_NAME.fullmatch(name) else "download"

    def pinned(self, digest: Digest) -> str:
        """``URL#sha256=HEX``: the URL pinned to what the vantages agreed on."""
        return f"{self.url}#sha256={hex_of(parse_digest(digest))}"

    def __str__(self) -> str:
        """The URL."""
        return self.url


def is_url(text: str) -> bool:
    """True when ``text`` is meant as a URL rather than an image reference."""
    return text.lower().startswith(URL_PREFIXES)


def parse_sha256(text: str) -> Digest:
    """``--sha256``: 64 hex digits, with or without ``sha256:``; upper case is accepted."""
    value = text.strip().removeprefix("sha256:")
    if not _HEX64.fullmatch(value):
        raise InvalidDigest(
            f"invalid --sha256 {text[:80]!r}: expected 64 hex digits (optionally after sha256:)"
        )
    return parse_digest(f"sha256:{value.lower()}")


def parse_release_url(text: str, sha256: str | None = None) -> ReleaseReference:
    """Parse and check an https URL (and an optional ``--sha256``) as given by the user.

    Raises InvalidUrl for anything tofu3 will not fetch: another scheme (plain http
    included), credentials, characters curl would misread, a host outside the DNS grammar."""
    shown = text[:120] + ("..." if len(text) > 120 else "")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidUrl(f"URL is longer than {MAX_URL_LENGTH} characters: {shown!r}")
    bad = sorted({c for c in text if c not in _URL_CHARACTERS and c not in "[]"})
    if bad:
        raise InvalidUrl(f"URL {shown!r} contains {bad[0]!r}: percent-encode it")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidUrl(f"invalid URL {shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise InvalidUrl(
            f"refusing plain http URL {shown!r}: tofu3 verifies release files over https "
            "only (without TLS one path could change the file for every vantage alike)"
        )
    if scheme != "https":
        raise InvalidUrl(f"URL {shown!r} is not https")
    if parts.username is not None or parts.password is not None:
        raise InvalidUrl(f"URL {shown!r} carries credentials: refused (they would be logged)")
    host = parts.hostname or ""
    netloc_host = parts.netloc.rpartition("@")[2].lower()
    if not host or not set(netloc_host) <= _HOST_CHARACTERS:
        raise InvalidUrl(f"URL {shown!r} has no valid host name")
    if any(c in "[]" for c in parts.path + parts.query + parts.fragment):
        raise InvalidUrl(f"URL {shown!r} has '[' or ']' outside the host: percent-encode them")
    pin = _pin(parts.fragment, text.endswith("#"), sha256, shown)
    domain = netloc_host if port not in (None, 443) else host_for_domain(host)
    url = urlunsplit(("https", domain, parts.path or "/", parts.query, ""))
    try:
        return ReleaseReference(
            domain=domain, path=_slug(parts.path), tag=None, digest=pin, original=text, url=url
        )
    except InvalidReference:
        raise InvalidUrl(f"URL {shown!r} has a host tofu3 cannot use") from None


def host_for_domain(host: str) -> str:
    """An IPv6 literal back in brackets, as the domain grammar wants it."""
    return f"[{host}]" if ":" in host else host


def parse_target(text: str, sha256: str | None = None) -> Reference:
    """A command-line REF or URL: a ReleaseReference for ``http(s)://...``, else an image
    reference (``--sha256`` only goes with a URL)."""
    if is_url(text):
        return parse_release_url(text, sha256)
    return parse_reference(text)


def check_sha256_use(texts: list[str], sha256: str | None) -> None:
    """``--sha256`` pins one file: it needs exactly one URL among the arguments."""
    urls = [text for text in texts if is_url(text)]
    if sha256 is not None and len(urls) != 1:
        raise InvalidUrl(f"--sha256 pins one release file: give exactly one URL (got {len(urls)})")


def _pin(fragment: str, empty_fragment: bool, sha256: str | None, shown: str) -> Digest | None:
    from_fragment: Digest | None = None
    if fragment or empty_fragment:
        name, _, value = fragment.partition("=")
        if name.lower() != "sha256" or not value:
            raise InvalidUrl(
                f"URL {shown!r} has a fragment tofu3 does not understand (only #sha256=HEX)"
            )
        from_fragment = parse_sha256(value)
    from_option = parse_sha256(sha256) if sha256 is not None else None
    if from_fragment and from_option and from_fragment != from_option:
        raise InvalidUrl(f"--sha256 and the URL's #sha256= fragment differ for {shown!r}")
    return from_option or from_fragment


def _slug(path: str) -> str:
    """A repository-grammar stand-in for a URL path: lower-case words joined by '-', one
    component per path segment (never shown as the path; ``url_path`` is)."""
    components = ["-".join(_SLUG_WORD.findall(part.lower())) for part in path.split("/")]
    slug = "/".join(c for c in components if c)[:_MAX_SLUG].strip("/-")
    slug = re.sub(r"/+", "/", re.sub(r"-*/-*", "/", slug))
    return slug or "file"
