"""tofu3's error types: one root, split by trust boundary.

- ConfigurationError: the user's input or set-up is wrong (exit 2).
- TransportError: a vantage could not finish; says nothing about the artifact (inconclusive).
- IntegrityError: a registry or path said something wrong: evidence of tampering (rejected).

The library raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations


class Tofu3Error(Exception):
    """Root of every error tofu3 raises on purpose."""

    def diagnostics(self) -> str:
        """A message fit to show the user as it is."""
        return str(self)


class ConfigurationError(Tofu3Error):
    """Bad reference, inventory, option or environment: the user must fix something."""


class InvalidReference(ConfigurationError):
    """A reference that does not match the Docker reference grammar."""


class InvalidDigest(ConfigurationError):
    """A digest that does not match the digest grammar."""


class InventoryError(ConfigurationError):
    """An inventory file that cannot be used as it is."""


class PlatformNotFound(ConfigurationError):
    """A --platform filter that matches nothing in the index."""


class HostKeyError(ConfigurationError):
    """A vantage whose SSH host key is not known, or does not match its pin."""

    def __init__(self, message: str, *, vantage: str) -> None:
        super().__init__(message)
        self.vantage = vantage


class VantageRefused(ConfigurationError):
    """A vantage that cannot be used safely (for example, its curl is too old)."""

    def __init__(self, message: str, *, vantage: str) -> None:
        super().__init__(message)
        self.vantage = vantage


class TransportError(Tofu3Error):
    """A vantage could not complete a step: unreachable, timeout, HTTP or curl failure."""

    code = "VANTAGE_FAILED"


class VantageUnreachable(TransportError):
    """SSH connection or authentication to a vantage failed."""

    code = "VANTAGE_UNREACHABLE"


class WorkingDirectoryUnavailable(TransportError):
    """No directory on the vantage where its session can make a private directory and FIFOs."""

    code = "NO_WORKING_DIRECTORY"


class SessionGarbled(TransportError):
    """A vantage's framed results came back broken (the SSH link, not the registry)."""

    code = "SESSION_GARBLED"


class RemoteTimeout(TransportError):
    """A command on a vantage did not finish in time."""

    code = "VANTAGE_TIMEOUT"


class HttpError(TransportError):
    """The registry answered with an HTTP status that ends the step."""

    code = "HTTP_ERROR"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class CurlFailed(TransportError):
    """curl itself failed (DNS, connect, TLS, transfer) on a vantage."""

    code = "CURL_FAILED"

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class IntegrityError(Tofu3Error):
    """What a registry or path returned contradicts itself or its content address."""

    code = "INTEGRITY_ERROR"


class DigestMismatch(IntegrityError):
    """Bytes whose hash differs from the digest that named them."""

    code = "DIGEST_MISMATCH"


class SizeMismatch(IntegrityError):
    """Bytes whose length differs from the size their descriptor gave."""

    code = "SIZE_MISMATCH"


class MalformedManifest(IntegrityError):
    """A manifest or index that is not valid, or is ambiguous."""

    code = "MALFORMED_MANIFEST"


class UnsupportedManifest(IntegrityError):
    """A manifest tofu3 refuses to trust (Docker schema 1 has no checkable content address)."""

    code = "UNSUPPORTED_MANIFEST"


class ResponseTooLarge(IntegrityError):
    """A response over its size cap."""

    code = "RESPONSE_TOO_LARGE"


class ProtocolViolation(IntegrityError):
    """A registry response that breaks the protocol in a way that could mislead (bad challenge,
    bad token response, unsafe redirect)."""

    code = "PROTOCOL_VIOLATION"


class SigningKeyError(ConfigurationError):
    """A signing key that cannot be loaded or used: unreadable, wrong passphrase, unsupported
    type, or not in the ssh-agent."""


class AllowedSignersError(ConfigurationError):
    """An allowed_signers file that cannot be used as it is."""


class LedgerError(ConfigurationError):
    """The ledger (the local record of verifications) cannot be opened or written."""


class SignatureError(IntegrityError):
    """A signature that is malformed, does not verify, or was made by a key no allowed
    signer holds."""

    code = "BAD_SIGNATURE"


class ReportInconsistent(IntegrityError):
    """A report that is not a tofu3 report, or whose verdict does not follow from the
    observations recorded in it."""

    code = "REPORT_INCONSISTENT"


class InvalidUrl(ConfigurationError):
    """A release-file URL tofu3 will not use (not https, credentials in it, odd characters)."""


class FetchFailed(TransportError):
    """The coordinator's own download (``tofu3 fetch``) could not finish."""

    code = "FETCH_FAILED"


class FetchedBytesMismatch(DigestMismatch):
    """Bytes the coordinator downloaded that differ from the digest or size the vantages
    agreed on: they are deleted, never kept."""

    code = "FETCH_DIGEST_MISMATCH"


class UnverifiedArtifact(ConfigurationError):
    """``tofu3 fetch`` would need an artifact the verification it relies on did not cover
    (a ledger entry made with another ``--platform``)."""
