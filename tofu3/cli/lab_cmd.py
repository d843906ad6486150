"""``tofu3 lab up|down|status|inventory|tamper|latency`` and ``tofu3 demo``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from tofu3.cli.common import EXIT_INCONCLUSIVE
from tofu3.errors import ConfigurationError
from tofu3.lab.latency import LATENCY_FILE, MAX_DELAY_MS, parse_delay, read_delay_ms
from tofu3.lab.tamper import DESCRIPTIONS, TAMPER_KINDS


def register(commands: Any) -> None:
    """Add the lab and demo commands."""
    lab = commands.add_parser("lab", help="a local three-vantage lab (no root, no network)")
    lab.set_defaults(handler=run_lab)
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the lab (idempotent)")
    up.add_argument(
        "--mode",
        choices=["loopback", "netns"],
        default=None,
        help="loopback (default without root) or netns (default as root)",
    )
    actions.add_parser("down", help="stop exactly what the lab started")
    actions.add_parser("status", help="show the lab's processes")
    actions.add_parser("inventory", help="print the path of the lab's inventory")
    tamper = actions.add_parser(
        "tamper",
        help="make the lab registry lie to one vantage, or to all",
        description="Make the lab registry lie to one vantage, or to every vantage ('all'), "
        "until told otherwise. Kinds:\n\n"
        + "\n".join(f"  {mode.value:<17} {text}" for mode, text in DESCRIPTIONS.items())
        + f"\n  {'none':<17} honest again",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tamper.add_argument("vantage", help="vantage name (ams, sfo or sgp), or 'all'")
    tamper.add_argument(
        "kind",
        choices=[*TAMPER_KINDS, "none"],
        metavar="KIND",
        help=f"one of: {', '.join(TAMPER_KINDS)}, none",
    )
    latency = actions.add_parser(
        "latency",
        help="make the lab registry wait before every response (a slow network)",
        description="Make the lab registry (its token service and CDN too) wait DELAY before "
        "every response it sends, until told otherwise: a slow network, to watch what it does "
        "to a verification. 'off' (or 0) makes it fast again; 'lab up' starts it fast.",
    )
    latency.add_argument(
        "delay", metavar="DELAY", help=f"e.g. 100ms or 0.25s (at most {MAX_DELAY_MS} ms), or off"
    )

    demo = commands.add_parser(
        "demo", help="lab up, verify (accepted), tamper, verify (rejected), lab down"
    )
    demo.add_argument("--mode", choices=["loopback", "netns"], default=None)
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 demo``."""
    from tofu3.demo import run_demo as demo  # noqa: PLC0415 - only the demo needs it

    code: int = demo(out, err, mode=args.mode)
    return code


def run_lab(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 lab ACTION``."""
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
        try:
            delay_ms = read_delay_ms(status.directory / LATENCY_FILE)
        except (OSError, ValueError):
            delay_ms = 0
        if delay_ms:
            out.print(f"  latency  the registry waits {delay_ms} ms before every response")
        for process in status.processes:
            alive = "[green]running[/]" if process.alive else "[red]gone[/]"
            where = escape(", ".join(process.endpoints))
            out.print(
                f"  {process.kind:<8} {escape(process.name):<8} pid {process.pid:<8} "
                f"{alive}  {where}",
                soft_wrap=True,
            )
        return 0 if status.up else EXIT_INCONCLUSIVE
    if action == "inventory":
        out.print(str(manager.lab_inventory()), soft_wrap=True)
        return 0
    if action == "tamper":
        kind = None if args.kind == "none" else args.kind
        manager.lab_tamper(args.vantage, kind)
        who = "every vantage" if args.vantage in ("all", "*") else f"vantage {args.vantage}"
        what = "honest again" if kind is None else f"now served a tampered {kind}"
        err.print(f"{escape(who)}: {what}")
        return 0
    if action == "latency":
        try:
            delay_ms = parse_delay(args.delay)
        except ValueError as exc:
            raise ConfigurationError(f"lab latency: {exc}") from None
        manager.lab_latency(delay_ms)
        if delay_ms:
            err.print(f"the lab registry now waits {delay_ms} ms before every response")
        else:
            err.print("the lab registry answers at once again")
        return 0
    raise AssertionError(f"unhandled lab action {action!r}")
