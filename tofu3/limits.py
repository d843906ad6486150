"""Every cap and timeout tofu3 applies to untrusted input, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps on bytes, counts and time. The defaults suit public registries."""

    manifest_bytes: int = 4 * 1024 * 1024
    token_bytes: int = 1024 * 1024
    challenge_bytes: int = 64 * 1024
    stderr_bytes: int = 256 * 1024
    max_redirects: int = 5
    max_descriptors: int = 1000
    max_index_depth: int = 3
    ssh_connect_timeout: float = 15.0
    ssh_auth_timeout: float = 20.0
    # One request (token, manifest) from start to end.
    request_timeout: float = 60.0
    # A blob may take long; what is bounded is how long it may make no progress.
    blob_stall_seconds: int = 60
    blob_timeout: float = 6 * 3600.0
    curl_connect_timeout: int = 15


DEFAULT_LIMITS = Limits()
