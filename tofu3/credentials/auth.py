"""Where credentials may be sent, decided from the registry's challenge (pure).

The rules (docs/how-it-works.md, "Credentials"):

1. No credentials: the anonymous token flow, as before. A registry that answers with a Basic
   challenge only is asking for credentials: CredentialsRequired.
2. A Bearer challenge: credentials go, as HTTP Basic auth, only to the token realm, and only
   when the realm's host is the registry's own host name (any port), a known pair
   (Docker Hub's ``auth.docker.io`` for ``registry-1.docker.io``), or a host the user listed
   with ``--trust-realm``. Any other realm is refused before anything is sent to it.
3. A Basic challenge (htpasswd registries): credentials go as Basic auth to the registry
   itself, on every request; curl (and tofu3's own redirect loop) drop the Authorization
   header when a redirect leaves the registry's origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tofu3.credentials.model import Credentials, CredentialsRejected, CredentialsRequired
from tofu3.errors import ConfigurationError, ProtocolViolation
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci.challenge import parse_challenges, token_url

KNOWN_REALM_HOSTS: dict[str, frozenset[str]] = {
    "registry-1.docker.io": frozenset({"auth.docker.io"}),
}
"""Registries whose token realm lives on another host, by registry host name."""


@dataclass(frozen=True)
class TokenAuth:
    """Ask ``url`` for a bearer token; ``authorization`` (a secret) goes with that request."""

    url: str
    authorization: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BasicAuth:
    """Send ``authorization`` (a secret) with every request to the registry itself."""

    authorization: str = field(repr=False)


def _hostname(host: str) -> str:
    """The host name of ``host[:port]`` (an IPv6 literal keeps its brackets off)."""
    parsed = urlsplit(f"https://{host}/")
    return (parsed.hostname or host).lower()


def realm_allowed(registry_host: str, realm: str, trusted: frozenset[str] = frozenset()) -> bool:
    """Whether credentials for ``registry_host`` may be sent to the token realm ``realm``."""
    realm_host = (urlsplit(realm).hostname or "").lower()
    registry_name = _hostname(registry_host)
    if not realm_host:
        return False
    if realm_host == registry_name:
        return True
    if realm_host in KNOWN_REALM_HOSTS.get(registry_name, frozenset()):
        return True
    return realm_host in {_hostname(t) for t in trusted}


def plan_authentication(
    header: str | None,
    *,
    registry_host: str,
    repository: str,
    credentials: Credentials | None,
    trusted_realm_hosts: frozenset[str] = frozenset(),
    limits: Limits = DEFAULT_LIMITS,
) -> TokenAuth | BasicAuth:
    """How to answer the 401 ``GET /v2/`` gave, with WWW-Authenticate ``header``."""
    if header is None:
        raise ProtocolViolation("401 from /v2/ without a WWW-Authenticate header")
    challenges = parse_challenges(header, limits)
    bearer = next((c for c in challenges if c.scheme == "bearer"), None)
    if bearer is not None:
        url = token_url(bearer, repository)
        if credentials is None:
            return TokenAuth(url)
        realm = bearer.realm or ""
        if not realm_allowed(registry_host, realm, trusted_realm_hosts):
            shown = urlsplit(realm).hostname or "?"
            raise ConfigurationError(
                f"the registry {registry_host} sends clients to a token realm on {shown}, "
                f"another host: tofu3 will not send the {credentials.source} for "
                f"{registry_host} there (if {shown} is really that registry's token service, "
                f"pass --trust-realm {shown})"
            )
        return TokenAuth(url, credentials.basic_authorization())
    if any(c.scheme == "basic" for c in challenges):
        if credentials is None:
            raise CredentialsRequired(
                f"the registry {registry_host} requires credentials (HTTP Basic): run "
                "`docker login` for it or pass --username with --password-stdin"
            )
        return BasicAuth(credentials.basic_authorization())
    raise ProtocolViolation(
        f"the registry {registry_host} offers neither a Bearer nor a Basic challenge"
    )


def refusal(
    status: int, registry_host: str, credentials: Credentials | None, *, what: str
) -> ConfigurationError | None:
    """The error a 401 or 403 from ``what`` (the token realm, or the registry itself under
    Basic auth) means; None for any other status."""
    if status not in (401, 403):
        return None
    if credentials is None:
        return CredentialsRequired(
            f"{what} answered HTTP {status}: {registry_host} requires credentials; run "
            "`docker login` for it or pass --username with --password-stdin"
        )
    return CredentialsRejected(
        f"{what} answered HTTP {status}: the {credentials.source} for {registry_host} "
        f"(user {credentials.username!r}) were refused"
    )
