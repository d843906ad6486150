"""Credentials from Docker's config file (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``): an ``auths`` entry (base64 ``auth`` of ``user:pass``, or
``username`` and ``password``), or a credential helper named by ``credHelpers`` (for this
registry) or ``credsStore`` (for all), run here on the coordinator as
``docker-credential-NAME get`` with the registry's key on stdin.

Nothing read here is ever put in an error message: only file names, keys and helper names.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tofu3.credentials.model import Credentials, config_key
from tofu3.errors import ConfigurationError

CONFIG_BYTES = 1024 * 1024
"""Largest config.json tofu3 reads."""
HELPER_TIMEOUT = 30.0
"""Seconds a credential helper may take."""
HELPER_OUTPUT_BYTES = 64 * 1024
"""Largest answer tofu3 reads from a credential helper."""
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a marker, not a secret
"""The user name a helper gives for an identity (OAuth2 refresh) token."""

_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _hostname_of_key(key: str) -> str:
    """A config key as a host[:port]: Docker's legacy keys are URLs (``https://host/v1/``)."""
    if "://" in key:
        return urlsplit(key).netloc
    return key.split("/", 1)[0]


def load_config(path: Path) -> dict[str, Any]:
    """The parsed config file; an empty document when it does not exist."""
    try:
        with path.open("rb") as handle:
            data = handle.read(CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > CONFIG_BYTES:
        raise ConfigurationError(f"{path} is larger than {CONFIG_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ConfigurationError(f"{path} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return document


def _entry(auths: Mapping[str, Any], key: str) -> tuple[str, Any] | None:
    """The ``auths`` entry for ``key``: by exact key, else by a key naming the same host
    (as Docker matches legacy ``https://host/v1/`` keys)."""
    if key in auths:
        return key, auths[key]
    wanted = _hostname_of_key(key)
    for name, entry in auths.items():
        if isinstance(name, str) and _hostname_of_key(name) == wanted:
            return name, entry
    return None


def _from_auths(document: Mapping[str, Any], key: str, path: Path) -> Credentials | None:
    auths = document.get("auths")
    if auths is None:
        return None
    if not isinstance(auths, dict):
        raise ConfigurationError(f"{path}: 'auths' is not an object")
    found = _entry(auths, key)
    if found is None:
        return None
    name, entry = found
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path}: auths[{name!r}] is not an object")
    source = f"credentials in {path} for {name}"
    if entry.get("identitytoken"):
        raise ConfigurationError(
            f"{path}: auths[{name!r}] holds an identity token (OAuth2 refresh token), which "
            "tofu3 does not support yet: pass --username with --password-stdin instead"
        )
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            pair = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigurationError(f"{path}: auths[{name!r}].auth is not base64") from None
        username, colon, password = pair.partition(":")
        if not colon:
            raise ConfigurationError(f"{path}: auths[{name!r}].auth is not 'user:password'")
        return Credentials(username, password, source=source)
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user and secret:
        return Credentials(user, secret, source=source)
    return None  # An empty entry, as `docker login` leaves beside a credsStore.


def _helper(document: Mapping[str, Any], key: str, path: Path) -> tuple[str, bool] | None:
    """The helper to ask for ``key``, and whether it was named for this registry alone."""
    helpers = document.get("credHelpers")
    if helpers is not None and not isinstance(helpers, dict):
        raise ConfigurationError(f"{path}: 'credHelpers' is not an object")
    named = (helpers or {}).get(key)
    if named is None and helpers:
        found = _entry(helpers, key)
        named = found[1] if found else None
    store = document.get("credsStore")
    for value, specific in ((named, True), (store, False)):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not _HELPER_NAME.fullmatch(value):
            raise ConfigurationError(f"{path}: invalid credential helper name")
        return value, specific
    return None


def run_helper(name: str, key: str) -> Credentials | None:
    """``docker-credential-NAME get`` with ``key`` on stdin; None when it has nothing for
    ``key``. Raises ConfigurationError when it fails otherwise (its output is not shown)."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise ConfigurationError(f"credential helper docker-credential-{name} is not on PATH")
    try:
        result = subprocess.run(
            [program, "get"],
            input=key.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"credential helper docker-credential-{name} did not answer in {HELPER_TIMEOUT:g}s"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot run credential helper docker-credential-{name}: {exc.strerror}"
        ) from None
    if result.returncode != 0:
        # The helpers' protocol: "credentials not found in native keychain" on stdout.
        if b"credentials not found" in result.stdout.lower():
            return None
        raise ConfigurationError(
            f"credential helper docker-credential-{name} failed for {key} "
            f"(exit status {result.returncode})"
        )
    if len(result.stdout) > HELPER_OUTPUT_BYTES:
        raise ConfigurationError(f"credential helper docker-credential-{name}: answer too large")
    try:
        answer = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ConfigurationError(
            f"credential helper docker-credential-{name} did not answer with JSON"
        ) from None
    username = answer.get("Username") if isinstance(answer, dict) else None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ConfigurationError(
            f"credential helper docker-credential-{name} answered without Username and Secret"
        )
    if username == IDENTITY_TOKEN_USER:
        raise ConfigurationError(
            f"credential helper docker-credential-{name} holds an identity token for {key}, "
            "which tofu3 does not support yet: pass --username with --password-stdin instead"
        )
    if not username and not secret:
        return None
    return Credentials(username, secret, source=f"credentials from docker-credential-{name}")


def docker_credentials(
    registry_host: str, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The credentials Docker would use for ``registry_host``, or None. A helper named for
    this registry (``credHelpers``) must work; a global ``credsStore`` whose helper is not
    installed is passed over for the ``auths`` entries, so public images still verify."""
    path = docker_config_path(environ)
    document = load_config(path)
    key = config_key(registry_host)
    helper = _helper(document, key, path)
    if helper is not None:
        name, specific = helper
        if specific or shutil.which(f"docker-credential-{name}") is not None:
            return run_helper(name, key)
    return _from_auths(document, key, path)
