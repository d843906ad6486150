"""Command line: argparse + rich. The only package that prints or exits.

Each command lives in its own module with ``register(commands)``, which adds its parser and
sets ``handler`` to a function ``(args, out, err) -> exit status``.

Exit status (contract): 0 accepted, 1 rejected, 2 usage or configuration error,
3 inconclusive; with several references the worst of them in the order 1 > 3 > 2 > 0.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence

from rich.console import Console

from tofu3 import __version__
from tofu3.cli import fetch_cmd, history_cmd, inventory_cmd, lab_cmd, report_cmd, verify_cmd
from tofu3.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    consoles,
    print_error,
    start_logging,
)
from tofu3.errors import Tofu3Error

Handler = Callable[[argparse.Namespace, Console, Console], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs' examples)."""
    parser = argparse.ArgumentParser(
        prog="tofu3",
        description="Verify an unsigned download the 3TOFU way: fetch it from three or more "
        "vantages over SSH and trust it only if every copy is identical.",
    )
    parser.add_argument("--version", action="version", version=f"tofu3 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (verify_cmd, fetch_cmd, lab_cmd, inventory_cmd, report_cmd, history_cmd):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tofu3`` console script."""
    args = build_parser().parse_args(argv)
    out, err = consoles()
    start_logging(getattr(args, "verbose", False))
    handler: Handler = args.handler
    try:
        return handler(args, out, err)
    except KeyboardInterrupt:
        # A second Ctrl-C while saying so must not turn into a traceback.
        with contextlib.suppress(KeyboardInterrupt):
            err.print("[red]interrupted[/]")
        return EXIT_INTERRUPTED
    except Tofu3Error as exc:
        print_error(err, exc.diagnostics())
        return EXIT_USAGE
