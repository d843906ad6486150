"""Credentials as values, and the typed errors a registry's refusal becomes."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tofu3.errors import ConfigurationError
from tofu3.reference import DOCKER_HUB_REGISTRY_HOST

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
"""The key Docker's config.json (and its credential helpers) use for Docker Hub."""


class CredentialsRequired(ConfigurationError):
    """The registry asks for credentials and none were given for it."""


class CredentialsRejected(ConfigurationError):
    """The registry (or its token realm) refused the credentials given for it."""


def config_key(registry_host: str) -> str:
    """The key credentials for ``registry_host`` are stored under in Docker's config.json:
    ``https://index.docker.io/v1/`` for Docker Hub, else ``host[:port]``."""
    if registry_host in (DOCKER_HUB_REGISTRY_HOST, "docker.io", "index.docker.io"):
        return DOCKER_HUB_CONFIG_KEY
    return registry_host


def _check_part(value: str, what: str) -> None:
    if not value:
        raise ConfigurationError(f"registry credentials: the {what} is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        # Never echoed: it may be the secret itself.
        raise ConfigurationError(f"registry credentials: the {what} contains control characters")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or access token) for one registry. ``source`` says where
    they came from, for messages; the password never appears in a repr or a message."""

    username: str
    password: str = field(repr=False)
    source: str = "credentials"

    def __post_init__(self) -> None:
        _check_part(self.username, "user name")
        _check_part(self.password, "password")
        if ":" in self.username:
            raise ConfigurationError(
                "registry credentials: a user name cannot contain ':' (HTTP Basic auth)"
            )

    def basic_authorization(self) -> str:
        """The value of an ``Authorization`` header carrying these credentials (a secret)."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class RegistryCredentials:
    """The credentials a verification may use, by registry host (``Reference.registry_host``),
    and the hosts the user allowed as token realms beyond the registry's own host."""

    by_registry: Mapping[str, Credentials] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    trusted_realm_hosts: frozenset[str] = frozenset()

    def for_registry(self, registry_host: str) -> Credentials | None:
        """The credentials for ``registry_host``, or None (anonymous)."""
        return self.by_registry.get(registry_host)
