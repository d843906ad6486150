"""``tofu3 inventory check`` and ``tofu3 inventory pin``.

check: exit 0 when every vantage is usable, 3 when some could not be reached (or could not
reach the registry), 2 when some need a fix (unknown host key, curl too old, bad ssh_config);
the worst of them in the order 3 > 2 > 0, as for ``verify``.

pin: exit 0 when every vantage without a ``host_key`` got one (or none lacked one), 3 when some
could not be reached, 2 when nothing could be written (no confirmation, a key that contradicts
known_hosts, a configuration error).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tofu3.atomic import write_atomic
from tofu3.cli.common import (
    EXIT_ACCEPTED,
    EXIT_INCONCLUSIVE,
    EXIT_USAGE,
    add_verbose_argument,
    print_error,
    worst_exit,
)
from tofu3.errors import ConfigurationError, InventoryError
from tofu3.inventory import find_inventory, load_inventory, load_inventory_text
from tofu3.inventory_edit import pin_host_keys
from tofu3.vantage_check import (
    DEFAULT_REGISTRY,
    InventoryCheck,
    PinCandidate,
    Problem,
    check_inventory,
    collect_host_keys,
)

CHECK_SCHEMA = "tofu3.inventory-check/v1"
_EXIT_FOR = {
    Problem.NONE: EXIT_ACCEPTED,
    Problem.CONFIGURATION: EXIT_USAGE,
    Problem.UNREACHABLE: EXIT_INCONCLUSIVE,
}


def register(commands: Any) -> None:
    """Add ``inventory check`` and ``inventory pin``."""
    inventory = commands.add_parser("inventory", help="check the vantages, pin their host keys")
    actions = inventory.add_subparsers(dest="inventory_command", required=True, metavar="ACTION")
    inventory_help = (
        "inventory file (default: $TOFU3_INVENTORY, ./inventory.yaml, "
        "~/.config/tofu3/inventory.yaml)"
    )
    check = actions.add_parser(
        "check",
        help="log in to every vantage; show its host key, curl, hash tool, registry reach",
    )
    check.set_defaults(handler=run_check)
    check.add_argument("-i", "--inventory", help=inventory_help)
    add_verbose_argument(check)
    check.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        metavar="HOST",
        help=f"the registry each vantage must reach (default {DEFAULT_REGISTRY})",
    )
    check.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout (only that)"
    )
    pin = actions.add_parser(
        "pin",
        help="show the host keys of vantages without host_key and write them into the "
        "inventory after confirmation",
    )
    pin.set_defaults(handler=run_pin)
    pin.add_argument("-i", "--inventory", help=inventory_help)
    pin.add_argument(
        "--yes",
        action="store_true",
        help="pin without asking (only after checking the fingerprints out of band)",
    )


def run_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 inventory check``."""
    path = find_inventory(args.inventory)
    inventory = load_inventory(path)
    err.print(f"checking {len(inventory.vantages)} vantages of {escape(str(path))}", soft_wrap=True)
    result = check_inventory(inventory, args.registry)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if args.json:
        sys.stdout.write(json.dumps(check_json(result, path), indent=2) + "\n")
        sys.stdout.flush()
    else:
        out.print(_check_table(result))
    for vantage in result.vantages:
        if vantage.message:
            print_error(err, vantage.message)
    usable = sum(vantage.usable for vantage in result.vantages)
    err.print(f"{usable} of {len(result.vantages)} vantages usable")
    return worst_exit([_EXIT_FOR[vantage.problem] for vantage in result.vantages])


def check_json(result: InventoryCheck, path: Path) -> dict[str, Any]:
    """The ``--json`` document of ``inventory check``."""
    return {
        "schema": CHECK_SCHEMA,
        "inventory": str(path),
        "registry": result.registry,
        "usable": all(vantage.usable for vantage in result.vantages),
        "vantages": [
            {
                "name": vantage.name,
                "route": vantage.route,
                "ok": vantage.usable,
                "problem": vantage.problem.value,
                "host_key_fingerprint": vantage.host_key_fingerprint or None,
                "curl_version": vantage.curl_version or None,
                "hash_tool": vantage.hash_tool or None,
                "system": vantage.system or None,
                "registry_status": vantage.registry_status,
                "error": vantage.message or None,
            }
            for vantage in result.vantages
        ],
        "warnings": list(result.warnings),
    }


def _check_table(result: InventoryCheck) -> Table:
    table = Table(
        title=f"registry: {result.registry}", title_justify="left", box=None, pad_edge=False
    )
    for column in ("VANTAGE", "ROUTE", "HOST KEY", "CURL", "HASH", "REGISTRY", "STATUS"):
        table.add_column(column, overflow="fold")
    for vantage in result.vantages:
        status = "[green]ok[/]" if vantage.usable else f"[red]{vantage.problem.value}[/]"
        reach = str(vantage.registry_status) if vantage.registry_status is not None else "-"
        table.add_row(
            escape(vantage.name),
            escape(vantage.route),
            vantage.host_key_fingerprint or "-",
            vantage.curl_version or "-",
            vantage.hash_tool or "-",
            reach,
            status,
        )
    return table


def run_pin(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 inventory pin``."""
    path = find_inventory(args.inventory).resolve()
    text = _read(path)
    inventory = load_inventory_text(text, source=str(path))
    if all(vantage.host_key is not None for vantage in inventory.vantages):
        err.print(f"every vantage in {escape(str(path))} already has a host_key")
        return EXIT_ACCEPTED
    unpinned = sum(vantage.host_key is None for vantage in inventory.vantages)
    err.print(f"asking {unpinned} vantage(s) without a host_key for their host key")
    candidates, warnings = collect_host_keys(inventory)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    codes = [_EXIT_FOR[candidate.problem] for candidate in candidates]
    for candidate in candidates:
        if candidate.message:
            print_error(err, candidate.message)
    keys = {
        c.name: c.offered.key_line for c in candidates if c.offered and c.problem is Problem.NONE
    }
    if not keys:
        err.print("nothing to pin")
        return worst_exit(codes)
    out.print(_pin_table([c for c in candidates if c.name in keys]))
    err.print(
        "Check each fingerprint out of band before trusting it: on the vantage, through its "
        "provider's console, run  ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub  (or the "
        "key type shown).",
        soft_wrap=True,
    )
    if not args.yes and not _confirmed(err, len(keys), path):
        return EXIT_USAGE
    new_text = pin_host_keys(text, keys, source=str(path))
    if _read(path) != text:
        raise InventoryError(f"{path} changed while tofu3 was pinning: nothing written")
    write_atomic(path, new_text.encode("utf-8"), stat.S_IMODE(os.stat(path).st_mode))
    err.print(
        f"pinned {len(keys)} host key(s) in {escape(str(path))}; "
        "`tofu3 inventory check` logs in with them",
        soft_wrap=True,
    )
    return worst_exit(codes)


def _pin_table(candidates: list[PinCandidate]) -> Table:
    table = Table(title="host keys to pin", title_justify="left", box=None, pad_edge=False)
    for column in ("VANTAGE", "ROUTE", "TYPE", "FINGERPRINT", "KNOWN_HOSTS"):
        table.add_column(column, overflow="fold")
    for candidate in candidates:
        assert candidate.offered is not None  # noqa: S101 - filtered by the caller
        key_type = candidate.offered.key_line.split(" ", 1)[0]
        known = {"agrees": "matches", "unknown": "absent"}.get(candidate.offered.known_hosts, "")
        table.add_row(
            escape(candidate.name),
            escape(candidate.route),
            key_type,
            candidate.offered.fingerprint,
            known,
        )
    return table


def _confirmed(err: Console, count: int, path: Path) -> bool:
    """Ask on the terminal; without one, refuse rather than pin unseen keys."""
    if not sys.stdin.isatty():
        print_error(
            err,
            "not pinning: no terminal to confirm on. Check the fingerprints above out of band, "
            "then run `tofu3 inventory pin --yes`",
        )
        return False
    try:
        answer = err.input(escape(f"Pin {count} host key(s) into {path}? [y/N] "))
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    err.print("nothing written")
    return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"inventory not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read inventory {path}: {exc}") from None
