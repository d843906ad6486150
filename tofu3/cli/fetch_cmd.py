"""``tofu3 fetch REF|URL -o PATH``: verify exactly as ``tofu3 verify`` does (the same
reports, sign-off, tag history and ledger entry), or rely on an accepted ledger entry younger
than ``--max-age``; then download the artifact onto this machine and keep it only if every
byte matches what the vantages agreed on.

Exit status: 0 fetched; 1 rejected (by the vantages, or because the coordinator was served
other bytes than they agreed on: nothing is kept); 2 usage or configuration error;
3 inconclusive (the verification, or the coordinator's own download, could not finish).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from tofu3.cli import credential_args, verify_outputs
from tofu3.cli.common import add_jobs_argument, add_verbose_argument


def register(commands: Any) -> None:
    """Add ``fetch``."""
    fetch = commands.add_parser(
        "fetch",
        help="verify, then download the verified artifact onto this machine",
        description="Verify REF or URL from every vantage (exactly as `tofu3 verify`), then "
        "download it here and keep it only if every byte matches what the vantages agreed "
        "on. An image becomes an OCI image layout directory; a Homebrew bottle chosen with "
        "--platform TAG a file named as brew names it; a URL the file.",
    )
    fetch.set_defaults(handler=run)
    fetch.add_argument(
        "target", metavar="REF|URL", help="an image reference, or the https URL of a file"
    )
    fetch.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="PATH",
        help="where to write: an OCI layout directory (must not exist, or be empty); for a "
        "bottle or a file, the file, or a directory to put it in under its own name",
    )
    fetch.add_argument(
        "-i",
        "--inventory",
        help="inventory file (default: $TOFU3_INVENTORY, "
        "./inventory.yaml, ~/.config/tofu3/inventory.yaml)",
    )
    fetch.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="SPEC",
        help="verify and fetch only this platform: os/arch[/variant] or a bottle tag "
        "such as arm64_sonoma (repeatable; default: all)",
    )
    fetch.add_argument("--sha256", metavar="HEX", help="the sha256 the file at URL must have")
    fetch.add_argument(
        "--cacert",
        type=Path,
        metavar="FILE",
        help="for this machine's own download only: trust only the CAs in FILE (as curl's "
        "--cacert); the vantages use their inventory's curl_args",
    )
    fetch.add_argument(
        "--connect-to",
        action="append",
        default=[],
        metavar="HOST:PORT:ADDR:PORT",
        help="for this machine's own download only: connect to ADDR:PORT whenever a URL names "
        "HOST:PORT, still checking TLS against HOST (as curl's --connect-to; repeatable)",
    )
    fetch.add_argument(
        "--max-age",
        metavar="DURATION",
        help="use the latest accepted verification in the ledger if it is younger than "
        "DURATION (e.g. 30m, 12h, 7d) instead of verifying again",
    )
    fetch.add_argument(
        "--report",
        metavar="FILE",
        type=Path,
        help="write the verification's JSON report to FILE (atomically, whatever the verdict)",
    )
    verify_outputs.add_arguments(fetch)
    credential_args.add_arguments(fetch)
    add_jobs_argument(fetch)
    add_verbose_argument(fetch)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 fetch``. Its body (and with it httpx and the OCI layout writer) is imported only
    when fetch runs: start-up time is part of every ``tofu3 verify``."""
    from tofu3.cli import fetch_run  # noqa: PLC0415 - loaded when the command runs (start-up)

    return fetch_run.run(args, out, err)
