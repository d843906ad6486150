"""Which credentials a run uses, for which registry (no I/O but the Docker config file and
its credential helpers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from tofu3.credentials.docker_config import docker_credentials
from tofu3.credentials.model import Credentials, RegistryCredentials
from tofu3.errors import ConfigurationError
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference

PASSWORD_STDIN_BYTES = 64 * 1024
"""Largest password tofu3 reads from stdin."""


def password_from_stdin_text(text: str) -> str:
    """The password ``--password-stdin`` read: all of stdin, one trailing newline removed."""
    if len(text) > PASSWORD_STDIN_BYTES:
        raise ConfigurationError(f"--password-stdin: more than {PASSWORD_STDIN_BYTES} bytes")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigurationError("--password-stdin: stdin held no password")
    return text


def resolve_credentials(
    references: Iterable[Reference],
    *,
    username: str | None,
    password: str | None,
    trusted_realm_hosts: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> RegistryCredentials:
    """Credentials for every registry ``references`` name: ``username``/``password`` (from
    ``--username``/``--password-stdin``) when given, which must then name one registry;
    else what Docker's config file has for each registry."""
    if (username is None) != (password is None):
        raise ConfigurationError("--username and --password-stdin go together")
    # Release files are fetched anonymously: credentials are for registries.
    hosts = sorted({r.registry_host for r in references if not isinstance(r, ReleaseReference)})
    found: dict[str, Credentials] = {}
    if username is not None and password is not None:
        if len(hosts) != 1:
            raise ConfigurationError(
                "--username applies to one registry, but these references name "
                f"{len(hosts)}: {', '.join(hosts) or 'none'}"
            )
        found[hosts[0]] = Credentials(username, password, source="--username credentials")
    else:
        for host in hosts:
            credentials = docker_credentials(host, environ)
            if credentials is not None:
                found[host] = credentials
    return RegistryCredentials(
        by_registry=MappingProxyType(found),
        trusted_realm_hosts=frozenset(h.strip().lower() for h in trusted_realm_hosts),
    )
