"""What every command shares: exit statuses, consoles, error printing."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from tofu3.errors import ConfigurationError

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130
# Worst first: rejected, inconclusive, usage error, accepted.
_SEVERITY_ORDER = (EXIT_REJECTED, EXIT_INCONCLUSIVE, EXIT_USAGE, EXIT_ACCEPTED)


MAX_JOBS = 64


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose``: the exchange with each vantage, logged on stderr."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log the exchange with each vantage on stderr: each job's kind, size, statuses "
        "and round-trip time, and anything the vantage printed outside tofu3's frames (rc "
        "files, banners); never a token or password",
    )


def start_logging(verbose: bool) -> None:
    """With ``-v``, tofu3's log messages go to stderr."""
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tofu3: %(message)s"))
    logger = logging.getLogger("tofu3")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    """``--jobs N``: transfers at a time per vantage (verify and fetch)."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=4,
        metavar="N",
        help=f"parallel downloads per vantage (1-{MAX_JOBS}, default 4)",
    )


def check_jobs(jobs: int) -> None:
    """Refuse a ``--jobs`` out of range."""
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigurationError(f"--jobs must be between 1 and {MAX_JOBS}")


def worst_exit(codes: Sequence[int]) -> int:
    """The exit status for several references: the worst, in the order 1 > 3 > 2 > 0."""
    for code in _SEVERITY_ORDER:
        if code in codes:
            return code
    return EXIT_ACCEPTED


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles; no colour when NO_COLOR is set or not on a terminal."""
    no_color = bool(os.environ.get("NO_COLOR"))
    out = Console(no_color=no_color, highlight=False, soft_wrap=False)
    err = Console(stderr=True, no_color=no_color, highlight=False)
    # Piped output (logs, CI) keeps full table rows rather than the 80 columns rich assumes.
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 200
    if not err.is_terminal and "COLUMNS" not in os.environ:
        err.width = 200
    return out, err


def print_error(err: Console, message: str) -> None:
    """One error, on stderr, as the user should read it."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
