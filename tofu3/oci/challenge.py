"""WWW-Authenticate challenges and token responses (pure).

Both come from the registry, so both are untrusted: the realm must be an https URL without
credentials, and a token must be something that can travel safely inside a curl config line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from tofu3.errors import ProtocolViolation, ResponseTooLarge
from tofu3.limits import DEFAULT_LIMITS, Limits

_TOKEN68_OR_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# Bearer tokens are JWTs or opaque base64url strings; anything else is refused rather than
# escaped, because it would be written into curl's config.
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{1,16384}")
_HOST_RE = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


@dataclass(frozen=True)
class Challenge:
    """One parsed challenge: ``Bearer realm="...",service="..."``."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """The token endpoint, when the scheme has one."""
        return self.params.get("realm")


def parse_challenges(header: str, limits: Limits = DEFAULT_LIMITS) -> list[Challenge]:
    """Parse a WWW-Authenticate value (RFC 9110 section 11.6.1) into challenges."""
    if len(header) > limits.challenge_bytes:
        raise ResponseTooLarge("WWW-Authenticate header over its size cap")
    parser = _Parser(header)
    challenges: list[Challenge] = []
    while True:
        parser.skip(" \t,")
        if parser.done():
            break
        scheme = parser.token()
        if scheme is None:
            raise ProtocolViolation(f"malformed WWW-Authenticate header: {header[:120]!r}")
        params: dict[str, str] = {}
        parser.skip(" \t")
        while not parser.done():
            mark = parser.pos
            key = parser.token()
            parser.skip(" \t")
            if key is None or not parser.take("="):
                # Not a parameter: the start of the next challenge (or a token68).
                parser.pos = mark
                break
            parser.skip(" \t")
            value = parser.quoted() if parser.peek() == '"' else parser.token()
            if value is None:
                raise ProtocolViolation(f"malformed WWW-Authenticate parameter {key!r}")
            if key.lower() in params:
                raise ProtocolViolation(f"duplicate WWW-Authenticate parameter {key!r}")
            params[key.lower()] = value
            parser.skip(" \t")
            if not parser.take(","):
                break
            parser.skip(" \t")
        challenges.append(Challenge(scheme=scheme.lower(), params=params))
    return challenges


def bearer_challenge(header: str, limits: Limits = DEFAULT_LIMITS) -> Challenge | None:
    """The Bearer challenge in ``header``; None when the registry offers only other schemes."""
    for challenge in parse_challenges(header, limits):
        if challenge.scheme == "bearer":
            return challenge
    return None


def token_url(challenge: Challenge, repository: str, *, allow_http: bool = False) -> str:
    """The URL to ask for a pull token for ``repository``, from a checked realm."""
    realm = challenge.realm
    if not realm:
        raise ProtocolViolation("Bearer challenge without a realm")
    check_url(realm, allow_http=allow_http, what="token realm")
    query: list[tuple[str, str]] = []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    query.append(("scope", f"repository:{repository}:pull"))
    separator = "&" if urlsplit(realm).query else "?"
    return f"{realm}{separator}{urlencode(query)}"


def check_url(url: str, *, allow_http: bool = False, what: str = "URL") -> None:
    """Refuse URLs tofu3 will not hand to curl: other schemes, credentials, odd hosts."""
    if len(url) > 8192 or any(ord(c) <= 32 or ord(c) == 127 or c in '"\\' for c in url):
        raise ProtocolViolation(f"{what} contains characters tofu3 does not send: {url[:120]!r}")
    parts = urlsplit(url)
    allowed = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in allowed:
        raise ProtocolViolation(f"{what} must be https, got {url[:120]!r}")
    if parts.fragment or url.endswith("#"):
        raise ProtocolViolation(f"{what} has a fragment: refused")
    if parts.username is not None or parts.password is not None:
        raise ProtocolViolation(f"{what} carries credentials: refused")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ProtocolViolation(f"{what} has an invalid port: {url[:120]!r}") from None
    if not parts.hostname or not _HOST_RE.fullmatch(parts.hostname):
        raise ProtocolViolation(f"{what} has an invalid host: {url[:120]!r}")


def parse_token_response(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """The bearer token from a token endpoint's JSON (``token`` or ``access_token``)."""
    if len(data) > limits.token_bytes:
        raise ResponseTooLarge(f"token response over its {limits.token_bytes}-byte cap")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolViolation("token response is not valid JSON") from None
    if not isinstance(document, dict):
        raise ProtocolViolation("token response is not a JSON object")
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise ProtocolViolation("token response has no usable token")
    return token


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if not self.done() else ""

    def skip(self, chars: str) -> None:
        while not self.done() and self.text[self.pos] in chars:
            self.pos += 1

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def token(self) -> str | None:
        match = _TOKEN68_OR_KEY.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group(0)

    def quoted(self) -> str | None:
        if not self.take('"'):
            return None
        out: list[str] = []
        while not self.done():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                if self.done():
                    return None
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                return "".join(out)
            else:
                out.append(char)
        return None
