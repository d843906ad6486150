"""``tofu3 verify REF [REF...]``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tofu3.cli import credential_args, verify_outputs
from tofu3.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_REJECTED,
    EXIT_USAGE,
    add_jobs_argument,
    add_verbose_argument,
    check_jobs,
    print_error,
    worst_exit,
)
from tofu3.errors import ConfigurationError
from tofu3.inventory import Inventory, find_inventory, load_inventory
from tofu3.limits import DEFAULT_LIMITS, positive_seconds, whole_seconds
from tofu3.oci.platform import parse_platform_filter
from tofu3.reference import Reference
from tofu3.release.url import check_sha256_use, parse_target
from tofu3.release.walk import verify_target_connected
from tofu3.report.terminal import LiveProgress, print_summary, print_verdict
from tofu3.verdict import Verdict
from tofu3.verify import (
    Options,
    VerificationInterrupted,
    close_all,
    connect_all,
    decide_runs,
    prefetch_for,
)


def register(commands: Any) -> None:
    """Add ``verify``."""
    verify = commands.add_parser("verify", help="verify one or more OCI references")
    verify.set_defaults(handler=run)
    verify.add_argument(
        "references",
        nargs="*",
        metavar="REF",
        help="e.g. ghcr.io/homebrew/core/wget:1.24.5, or the https URL of a release file",
    )
    verify.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="read references from FILE, one per line ('#' starts a comment); repeatable. "
        "Every reference is verified over the same SSH connection per vantage",
    )
    verify.add_argument(
        "--sha256",
        metavar="HEX",
        help="the sha256 the release file given by URL must have (a mismatch is rejected)",
    )
    verify.add_argument(
        "-i",
        "--inventory",
        help="inventory file (default: $TOFU3_INVENTORY, "
        "./inventory.yaml, ~/.config/tofu3/inventory.yaml)",
    )
    verify.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="SPEC",
        help="verify only this platform of an index: os/arch[/variant] or a "
        "Homebrew bottle tag such as arm64_sonoma (repeatable; default: all)",
    )
    verify.add_argument(
        "--json",
        action="store_true",
        help="print the JSON report on stdout (and nothing else there)",
    )
    verify.add_argument(
        "--report",
        metavar="FILE",
        type=Path,
        help="write the JSON report to FILE (atomically, whatever the verdict)",
    )
    verify_outputs.add_arguments(verify)
    credential_args.add_arguments(verify)
    add_jobs_argument(verify)
    add_verbose_argument(verify)
    verify.add_argument(
        "--connect-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="give up on a vantage that does not connect, show its SSH banner or let us log "
        f"in within SECONDS, and on a registry connection that does not open (default "
        f"{DEFAULT_LIMITS.ssh_connect_timeout:g})",
    )
    verify.add_argument(
        "--stall-timeout",
        type=whole_seconds,
        metavar="SECONDS",
        help="give up on a blob download that makes no progress for SECONDS, or a vantage "
        f"that goes silent (default {DEFAULT_LIMITS.blob_stall_seconds})",
    )


def _parse_references(
    texts: list[str], err: Console, sha256: str | None = None
) -> tuple[list[Reference], list[int]]:
    references: list[Reference] = []
    codes: list[int] = []
    for text in texts:
        try:
            references.append(parse_target(text, sha256))
        except ConfigurationError as exc:
            print_error(err, exc.diagnostics())
            codes.append(EXIT_USAGE)
    return references, codes


def verify_all(
    references: list[Reference],
    inventory: Inventory,
    options: Options,
    err: Console,
) -> tuple[list[Verdict], list[int], bool]:
    """Verify every reference over one connection per vantage. Returns the verdicts, exit
    codes of references that ended in a usage error, and whether the user interrupted."""
    verdicts: list[Verdict] = []
    codes: list[int] = []
    with LiveProgress(err) as progress:
        connected, unreachable = connect_all(
            inventory, progress, options.limits, prefetch_for(references, options.limits)
        )
        try:
            for reference in references:
                try:
                    runs = verify_target_connected(reference, connected, options, progress)
                except VerificationInterrupted as interrupted:
                    # What was seen so far is recorded: the report says inconclusive.
                    verdicts.append(
                        decide_runs(reference, inventory, interrupted.runs, unreachable)
                    )
                    return verdicts, codes, True
                try:
                    verdicts.append(decide_runs(reference, inventory, runs, unreachable))
                except ConfigurationError as exc:
                    print_error(err, exc.diagnostics())
                    codes.append(EXIT_USAGE)
        finally:
            close_all(connected)
    return verdicts, codes, False


def read_reference_files(paths: list[Path]) -> list[str]:
    """References from ``-f`` files: one per line; blank lines and ``#`` comments skipped."""
    texts: list[str] = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read references from {path}: {exc}") from None
        for line in lines:
            # A comment starts a line or follows a space: URLs may carry '#sha256=' pins.
            text = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if text and not text.startswith("#"):
                texts.append(text)
    return texts


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 verify``: exit with the worst verdict (1 > 3 > 2 > 0)."""
    texts = [*args.references, *read_reference_files(args.file)]
    if not texts:
        raise ConfigurationError("no reference given: name at least one REF or pass -f FILE")
    check_sha256_use(texts, args.sha256)
    references, codes = _parse_references(texts, err, args.sha256)
    check_jobs(args.jobs)
    platforms = tuple(parse_platform_filter(p) for p in args.platform)
    inventory = load_inventory(find_inventory(args.inventory))
    if not references:
        return worst_exit(codes)
    options = Options(
        platforms=platforms,
        jobs=args.jobs,
        limits=DEFAULT_LIMITS.with_timeouts(connect=args.connect_timeout, stall=args.stall_timeout),
        credentials=credential_args.credentials_from_args(args, references),
    )
    # Reports, sign-off, attestation and ledger: checked and opened before any vantage is
    # contacted; applied (tag history) and written once the verdicts are in.
    outputs = verify_outputs.Outputs(args)
    try:
        verdicts, usage_codes, interrupted = verify_all(references, inventory, options, err)
        finished = outputs.finish(verdicts, many=len(texts) > 1)
    finally:
        outputs.close()
    codes.extend(usage_codes)
    verdicts = finished.verdicts
    human = err if args.json else out
    for verdict in verdicts:
        print_verdict(human, verdict)
    for note in finished.notes:
        err.print(escape(note), soft_wrap=True)
    if len(verdicts) > 1:
        print_summary(human, verdicts)
    if args.json and verdicts:
        sys.stdout.write(finished.json_text)
        sys.stdout.flush()
    for problem in finished.problems:
        print_error(err, problem)
        codes.append(EXIT_USAGE)
    if interrupted:
        err.print("[red]interrupted[/]: the report records what was seen until then")
        # Evidence of tampering found before the interrupt still decides the exit status.
        rejected = any(v.exit_code == EXIT_REJECTED for v in verdicts)
        return EXIT_REJECTED if rejected else EXIT_INTERRUPTED
    codes.extend(v.exit_code for v in verdicts)
    return worst_exit(codes)
