"""Command line: argparse + rich. The only module that prints or exits.

Exit status (contract): 0 accepted, 1 rejected, 2 usage or configuration error,
3 inconclusive; with several references the worst of them in the order 1 > 3 > 2 > 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tofu3 import __version__
from tofu3.errors import ConfigurationError, Tofu3Error
from tofu3.inventory import find_inventory, load_inventory
from tofu3.oci.platform import parse_platform_filter
from tofu3.reference import Reference, parse_reference
from tofu3.report.files import write_report_file
from tofu3.report.json_report import render_json
from tofu3.report.terminal import LiveProgress, print_verdict
from tofu3.verdict import Verdict
from tofu3.verify import Options, connect_all, decide_runs, verify_connected

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130
# Worst first: rejected, inconclusive, usage error, accepted.
_SEVERITY_ORDER = (EXIT_REJECTED, EXIT_INCONCLUSIVE, EXIT_USAGE, EXIT_ACCEPTED)


def worst_exit(codes: Sequence[int]) -> int:
    """The exit status for several references: the worst, in the order 1 > 3 > 2 > 0."""
    for code in _SEVERITY_ORDER:
        if code in codes:
            return code
    return EXIT_ACCEPTED


def _consoles() -> tuple[Console, Console]:
    no_color = bool(os.environ.get("NO_COLOR"))
    out = Console(no_color=no_color, highlight=False, soft_wrap=False)
    err = Console(stderr=True, no_color=no_color, highlight=False)
    # Piped output (logs, CI) keeps full table rows rather than the 80 columns rich assumes.
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 200
    if not err.is_terminal and "COLUMNS" not in os.environ:
        err.width = 200
    return out, err


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs' examples)."""
    parser = argparse.ArgumentParser(
        prog="tofu3",
        description="Verify an unsigned download the 3TOFU way: fetch it from three or more "
        "vantages over SSH and trust it only if every copy is identical.",
    )
    parser.add_argument("--version", action="version", version=f"tofu3 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", help="verify one or more OCI references")
    verify.add_argument(
        "references", nargs="+", metavar="REF", help="e.g. ghcr.io/homebrew/core/wget:1.24.5"
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
    verify.add_argument(
        "--jobs",
        type=int,
        default=4,
        metavar="N",
        help="parallel downloads per vantage (default 4)",
    )

    lab = commands.add_parser("lab", help="a local three-vantage lab (no root, no network)")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = lab_commands.add_parser("up", help="start the lab (idempotent)")
    up.add_argument(
        "--mode",
        choices=["loopback", "netns"],
        default=None,
        help="loopback (default without root) or netns (default as root)",
    )
    lab_commands.add_parser("down", help="stop exactly what the lab started")
    lab_commands.add_parser("status", help="show the lab's processes")
    lab_commands.add_parser("inventory", help="print the path of the lab's inventory")
    tamper = lab_commands.add_parser("tamper", help="make the lab registry lie to one vantage")
    tamper.add_argument("vantage", help="vantage name (ams, sfo or sgp)")
    tamper.add_argument(
        "kind",
        choices=["blob", "manifest", "tag", "none"],
        help="blob: altered layer bytes; manifest: altered manifest bytes; "
        "tag: the tag resolves to another consistent tree; none: honest again",
    )

    demo = commands.add_parser(
        "demo", help="lab up, verify (accepted), tamper, verify (rejected), lab down"
    )
    demo.add_argument("--mode", choices=["loopback", "netns"], default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tofu3`` console script."""
    args = build_parser().parse_args(argv)
    out, err = _consoles()
    try:
        if args.command == "verify":
            return _verify(args, out, err)
        if args.command == "lab":
            return _lab(args, out, err)
        if args.command == "demo":
            from tofu3.demo import run_demo  # noqa: PLC0415 - only the demo needs it

            code: int = run_demo(out, err, mode=args.mode)
            return code
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return EXIT_INTERRUPTED
    except Tofu3Error as exc:
        err.print(f"[red]error:[/] {escape(exc.diagnostics())}")
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command!r}")


def _verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    references: list[Reference] = []
    codes: list[int] = []
    for text in args.references:
        try:
            references.append(parse_reference(text))
        except ConfigurationError as exc:
            err.print(f"[red]error:[/] {escape(exc.diagnostics())}")
            codes.append(EXIT_USAGE)
    if args.jobs < 1 or args.jobs > 64:
        raise ConfigurationError("--jobs must be between 1 and 64")
    platforms = tuple(parse_platform_filter(p) for p in args.platform)
    inventory = load_inventory(find_inventory(args.inventory))
    if not references:
        return worst_exit(codes)
    options = Options(platforms=platforms, jobs=args.jobs)
    verdicts: list[Verdict] = []
    with LiveProgress(err) as progress:
        connected, unreachable = connect_all(inventory, progress, options.limits)
        try:
            for reference in references:
                try:
                    runs = verify_connected(reference, connected, options, progress)
                    verdicts.append(decide_runs(reference, inventory, runs, unreachable))
                except ConfigurationError as exc:
                    err.print(f"[red]error:[/] {escape(exc.diagnostics())}")
                    codes.append(EXIT_USAGE)
        finally:
            for item in connected:
                item.connection.close()
    if verdicts and args.report is not None:
        write_report_file(
            args.report, render_json(verdicts, as_list=len(args.references) > 1).encode()
        )
    human = err if args.json else out
    for verdict in verdicts:
        print_verdict(human, verdict)
    if args.json and verdicts:
        sys.stdout.write(render_json(verdicts, as_list=len(args.references) > 1))
        sys.stdout.flush()
    codes.extend(v.exit_code for v in verdicts)
    return worst_exit(codes)


def _lab(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tofu3.lab import manager  # noqa: PLC0415 - the lab is optional to every other command

    action = args.lab_command
    if action == "up":
        mode = manager.LabMode(args.mode) if args.mode else None
        state = manager.lab_up(mode=mode)
        err.print(f"lab up ({state.mode.value}): {', '.join(v.name for v in state.vantages)}")
        out.print(str(manager.lab_inventory()), soft_wrap=True)
        return 0
    if action == "down":
        for line in manager.lab_down():
            err.print(escape(line))
        return 0
    if action == "status":
        status = manager.lab_status()
        if status.mode is None:
            out.print(f"no lab in {escape(str(status.directory))}")
            return EXIT_INCONCLUSIVE
        health = "up" if status.up else "not fully up"
        out.print(f"lab {health} ({status.mode.value}) in {escape(str(status.directory))}")
        for process in status.processes:
            alive = "[green]running[/]" if process.alive else "[red]gone[/]"
            where = escape(", ".join(process.endpoints))
            out.print(
                f"  {process.kind:<8} {escape(process.name):<6} pid {process.pid:<8} "
                f"{alive}  {where}"
            )
        return 0 if status.up else EXIT_INCONCLUSIVE
    if action == "inventory":
        out.print(str(manager.lab_inventory()), soft_wrap=True)
        return 0
    if action == "tamper":
        kind = None if args.kind == "none" else args.kind
        manager.lab_tamper(args.vantage, kind)
        what = "honest again" if kind is None else f"now served a tampered {kind}"
        err.print(f"vantage {escape(args.vantage)}: {what}")
        return 0
    raise AssertionError(f"unhandled lab action {action!r}")


if __name__ == "__main__":
    sys.exit(main())
