"""Registry credentials: where they come from (``~/.docker/config.json``, a
``docker-credential-*`` helper, ``--username`` with ``--password-stdin``) and where they may go
(only the registry they belong to, or its token realm).

A password is a secret: it lives in a ``Credentials`` value whose repr hides it, travels to a
vantage only inside curl's config on stdin, and is never part of an error message.
"""

from __future__ import annotations

from tofu3.credentials.model import (
    Credentials,
    CredentialsRejected,
    CredentialsRequired,
    RegistryCredentials,
    config_key,
)

__all__ = [
    "Credentials",
    "CredentialsRejected",
    "CredentialsRequired",
    "RegistryCredentials",
    "config_key",
]
