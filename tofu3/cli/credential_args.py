"""``--username``, ``--password-stdin`` and ``--trust-realm``, shared by verify and fetch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tofu3.credentials import RegistryCredentials
from tofu3.credentials.resolve import password_from_stdin_text, resolve_credentials
from tofu3.errors import ConfigurationError
from tofu3.reference import Reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the registry-credential options to ``parser``."""
    parser.add_argument(
        "--username",
        metavar="USER",
        help="registry user name (with --password-stdin); default: the credentials "
        "`docker login` stored in $DOCKER_CONFIG/config.json or ~/.docker/config.json",
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password or access token from stdin (all of it, one "
        "trailing newline removed)",
    )
    parser.add_argument(
        "--trust-realm",
        action="append",
        default=[],
        metavar="HOST",
        help="also send registry credentials to a token realm on HOST (by default only to "
        "the registry's own host name, and auth.docker.io for Docker Hub); repeatable",
    )


def credentials_from_args(
    args: argparse.Namespace, references: Sequence[Reference]
) -> RegistryCredentials:
    """The credentials the command line (or Docker's config) gives for ``references``."""
    if args.password_stdin and args.username is None:
        raise ConfigurationError("--password-stdin needs --username")
    password = password_from_stdin_text(sys.stdin.read()) if args.password_stdin else None
    return resolve_credentials(
        references,
        username=args.username,
        password=password,
        trusted_realm_hosts=args.trust_realm,
    )
