"""``tofu3 report sign|verify``: sign a report off, and check a signed report (or attestation)
without trusting whoever handed it over.

    tofu3 report sign REPORT --key KEY [--signer ID]
    tofu3 report verify REPORT --allowed-signers FILE [--identity ID] [--signature SIG]
                        [--require-accepted]

``verify`` exits 0 when the signature is good, made by a key the allowed signers let sign
tofu3 reports (as ``ID``), and the report's verdicts follow from its observations; 1 when any
of that fails (or, with --require-accepted, when a verdict is not accepted); 2 on a usage
error (a missing file, a malformed allowed_signers).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def register(commands: Any) -> None:
    """Add ``report sign`` and ``report verify``."""
    report = commands.add_parser("report", help="sign a report off, or check a signed report")
    actions = report.add_subparsers(dest="report_command", required=True, metavar="ACTION")

    sign = actions.add_parser("sign", help="write REPORT.sig (SSHSIG) for a JSON report")
    sign.set_defaults(handler=_run_sign)
    sign.add_argument("report", type=Path, metavar="REPORT")
    sign.add_argument(
        "--key",
        required=True,
        metavar="KEY",
        help="a private key file, a .pub file of a key in ssh-agent, or agent:SHA256:...",
    )
    sign.add_argument("--signer", metavar="ID", help="the identity to name in the hint printed")

    verify = actions.add_parser(
        "verify", help="check a report's signature and that its verdict follows from it"
    )
    verify.set_defaults(handler=_run_verify)
    verify.add_argument("report", type=Path, metavar="REPORT")
    verify.add_argument("--allowed-signers", required=True, type=Path, metavar="FILE")
    verify.add_argument("--identity", metavar="ID", help="who must have signed it")
    verify.add_argument(
        "--signature", type=Path, metavar="SIG", help="the signature (default: REPORT.sig)"
    )
    verify.add_argument(
        "--require-accepted",
        action="store_true",
        help="also fail unless every verdict in the report is accepted",
    )


def _run_sign(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tofu3.cli import report_run  # noqa: PLC0415 - loaded when the command runs (start-up)

    return report_run.run_sign(args, out, err)


def _run_verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tofu3.cli import report_run  # noqa: PLC0415 - loaded when the command runs (start-up)

    return report_run.run_verify(args, out, err)
