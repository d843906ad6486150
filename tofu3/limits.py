"""Every cap and timeout tofu3 applies to untrusted input, in one place."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tofu3.errors import ConfigurationError


@dataclass(frozen=True)
class Limits:
    """Caps on bytes, counts and time. The defaults suit public registries."""

    manifest_bytes: int = 4 * 1024 * 1024
    # Every manifest of one level of the tree together (they come back in one command).
    level_manifest_bytes: int = 32 * 1024 * 1024
    token_bytes: int = 1024 * 1024
    challenge_bytes: int = 64 * 1024
    stderr_bytes: int = 256 * 1024
    max_redirects: int = 5
    max_descriptors: int = 1000
    max_index_depth: int = 3
    # SSH: the TCP connect, the server's banner and key exchange, opening a session and the
    # start of each command.
    ssh_connect_timeout: float = 15.0
    ssh_auth_timeout: float = 20.0
    # One request (token, manifest) from start to end.
    request_timeout: float = 60.0
    # A blob may take long; what is bounded is how long it may make no progress.
    blob_stall_seconds: int = 60
    blob_timeout: float = 6 * 3600.0
    curl_connect_timeout: float = 15.0

    @property
    def vantage_silence_seconds(self) -> float:
        """How long a blob download may go without a single byte from the vantage. curl's
        progress meter writes every second (every half second in parallel mode), stalled or
        not, so silence this long means the vantage froze or the link to it died; curl's own
        stall timeout comes first."""
        return self.blob_stall_seconds + 5.0

    def with_timeouts(self, *, connect: float | None = None, stall: int | None = None) -> Limits:
        """These limits with the connect timeout (SSH connect and authentication, curl's
        connect) and the stall timeout (a blob that makes no progress) replaced."""
        limits = self
        if connect is not None:
            if not connect > 0:
                raise ConfigurationError("the connect timeout must be positive")
            limits = replace(
                limits,
                ssh_connect_timeout=connect,
                ssh_auth_timeout=connect,
                curl_connect_timeout=connect,
            )
        if stall is not None:
            if stall < 1:
                raise ConfigurationError("the stall timeout must be at least 1 second")
            limits = replace(limits, blob_stall_seconds=stall)
        return limits


DEFAULT_LIMITS = Limits()


def positive_seconds(text: str) -> float:
    """A command-line number of seconds greater than zero (``2``, ``0.5``)."""
    value = float(text)
    if not 0 < value <= 24 * 3600:
        raise ValueError(text)
    return value


def whole_seconds(text: str) -> int:
    """A command-line whole number of seconds, at least 1 (curl's stall timer counts whole
    seconds)."""
    value = int(text)
    if not 1 <= value <= 24 * 3600:
        raise ValueError(text)
    return value
