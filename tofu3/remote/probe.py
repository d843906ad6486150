"""What a vantage has: its curl version and a sha256 tool, found in one round trip.

The hash tool: ``openssl dgst`` when it computes the right sha256 and sha512 of a known
input (it uses the CPU's SHA instructions, and hashes a blob three to four times faster than
coreutils' ``sha256sum``: on a busy vantage, hashing is most of the CPU a download costs);
else ``sha256sum``, else ``shasum``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tofu3.errors import TransportError, VantageRefused
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.shell import remote_sh
from tofu3.remote.ssh import SshConnection

# curl before 7.83.0 could send credentials on to a redirect target on another port or
# scheme (CVE-2022-27776), and lacks %{header_json}, which tofu3 reads.
MIN_CURL = (7, 83, 0)
# Known answers for "abc" (FIPS 180-2 test vectors): an openssl that cannot produce both, or
# prints them in a form tofu3 would not read, is passed over.
_ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
_ABC_SHA512 = (
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
)
PROBE_COMMAND = (
    "curl --version 2>/dev/null | head -n 1; "
    "t=; if command -v openssl >/dev/null 2>&1 && "
    f"printf abc | openssl dgst -sha256 2>/dev/null | grep -q '= *{_ABC_SHA256}$' && "
    f"printf abc | openssl dgst -sha512 2>/dev/null | grep -q '= *{_ABC_SHA512}$'; "
    "then t=openssl; else for c in sha256sum shasum; do "
    'if command -v "$c" >/dev/null 2>&1; then t=$c; break; fi; done; fi; '
    '[ -n "$t" ] && echo "TOFU3-HASH $t"; '
    "uname -sm 2>/dev/null"
)
_CURL_RE = re.compile(r"^curl (\d+)\.(\d+)(?:\.(\d+))?\S*", re.MULTILINE)
_HASH_RE = re.compile(r"^TOFU3-HASH (sha256sum|shasum|openssl)$", re.MULTILINE)


@dataclass(frozen=True)
class VantageFacts:
    """Tools found on a vantage."""

    curl_version: str
    hash_tool: str
    system: str

    def hash_command(self, algorithm: str) -> str:
        """The command that hashes stdin with ``algorithm`` (sha256 or sha512)."""
        bits = algorithm.removeprefix("sha")
        if bits not in ("256", "512"):
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        if self.hash_tool == "sha256sum":
            return f"sha{bits}sum"
        if self.hash_tool == "shasum":
            return f"shasum -a {bits}"
        return f"openssl dgst -sha{bits}"


def parse_probe(output: str, vantage: str) -> VantageFacts:
    """Read the probe's output; refuse a vantage without curl, with a curl too old, or
    without any sha256 tool."""
    curl = _CURL_RE.search(output)
    if curl is None:
        raise VantageRefused(f"vantage {vantage!r}: curl not found", vantage=vantage)
    version = tuple(int(part or 0) for part in curl.groups())
    version_text = ".".join(str(part) for part in version)
    if version < MIN_CURL:
        raise VantageRefused(
            f"vantage {vantage!r}: curl {version_text} is too old; tofu3 needs curl >= 7.83.0 "
            "(older curl can forward credentials to a redirect target, CVE-2022-27776)",
            vantage=vantage,
        )
    hash_tool = _HASH_RE.search(output)
    if hash_tool is None:
        raise VantageRefused(
            f"vantage {vantage!r}: no sha256sum, shasum or openssl to hash with",
            vantage=vantage,
        )
    lines = [
        line for line in output.splitlines() if line and not line.startswith(("curl ", "TOFU3"))
    ]
    return VantageFacts(
        curl_version=version_text, hash_tool=hash_tool.group(1), system=(lines or [""])[-1][:80]
    )


def probe(connection: SshConnection, limits: Limits = DEFAULT_LIMITS) -> VantageFacts:
    """Run the probe on a connected vantage."""
    result = connection.run(
        remote_sh(PROBE_COMMAND), timeout=limits.request_timeout, stdout_cap=16 * 1024
    )
    if result.stdout_truncated:
        raise TransportError(f"vantage {connection.vantage.name!r}: probe output too long")
    return parse_probe(result.stdout.decode("utf-8", "replace"), connection.vantage.name)
