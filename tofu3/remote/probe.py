"""What a vantage has, as the session's first frame tells it: its curl, a hash tool, a working
directory and its system. The probe itself is part of the session's program
(session_script.py); this module reads its answer and refuses what tofu3 cannot work with.

The hash tool: ``openssl dgst`` when it computes the right sha256 and sha512 of a known
input (it uses the CPU's SHA instructions, and hashes a blob three to four times faster than
coreutils' ``sha256sum``: on a busy vantage, hashing is most of the CPU a download costs);
else ``sha256sum``, else ``shasum``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tofu3.errors import VantageRefused, WorkingDirectoryUnavailable

# curl before 7.83.0 could send credentials on to a redirect target on another port or
# scheme (CVE-2022-27776), and lacks %{header_json}, which tofu3 reads.
MIN_CURL = (7, 83, 0)
# Known answers for "abc" (FIPS 180-2 test vectors): an openssl that cannot produce both, or
# prints them in a form tofu3 would not read, is passed over.
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC_SHA512 = (
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
)
HASH_TOOLS = ("openssl", "sha256sum", "shasum")
_CURL_RE = re.compile(r"^curl (\d+)\.(\d+)(?:\.(\d+))?\S*")


@dataclass(frozen=True)
class VantageFacts:
    """Tools found on a vantage, and the private directory its session works in."""

    curl_version: str
    hash_tool: str
    system: str
    directory: str = ""

    def hash_bits(self, algorithm: str) -> str:
        """``256`` or ``512``: the word the session's hasher takes for ``algorithm``."""
        bits = algorithm.removeprefix("sha")
        if bits not in ("256", "512"):
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        return bits


def parse_probe(text: str, vantage: str) -> VantageFacts:
    """Read the probe frame (``key=value`` lines); refuse a vantage without curl, with a curl
    too old, without any sha256 tool, or without a directory it can work in."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        fields.setdefault(key, value)
    curl = _CURL_RE.match(fields.get("curl", ""))
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
    hash_tool = fields.get("hash", "")
    if hash_tool not in HASH_TOOLS:
        raise VantageRefused(
            f"vantage {vantage!r}: no sha256sum, shasum or openssl to hash with",
            vantage=vantage,
        )
    if fields.get("printf", "printf") != "printf":
        # An external printf would hold every curl config, tokens included, in its argv.
        raise VantageRefused(
            f"vantage {vantage!r}: its sh has no printf built in (found "
            f"{fields.get('printf', '')[:80] or 'none'}): tofu3 hands curl its configuration "
            "through printf, which must not show it in a process list",
            vantage=vantage,
        )
    directory = fields.get("dir", "")
    if not directory:
        tried = [t for t in fields.get("tried", "").split(",") if t]
        named = ", ".join(t.replace("TMPDIR(unset)", "$TMPDIR (unset)") for t in tried)
        raise WorkingDirectoryUnavailable(
            f"vantage {vantage!r}: no directory to work in: tried {named or 'nothing'}; none "
            "let tofu3 make a private directory with a FIFO in it (read-only, full, or not "
            "a local file system). Make one of them writable, or set TMPDIR for the vantage "
            "user to a directory that is"
        )
    return VantageFacts(
        curl_version=version_text,
        hash_tool=hash_tool,
        system=fields.get("system", "")[:80],
        directory=directory,
    )
