"""``tofu3 history REF``: what the ledger remembers of a reference.

With a tag (``wget:1.24.5``), that tag's entries; with a digest, the entries that saw it;
with neither (``ghcr.io/homebrew/core/wget``), every entry of the repository. Oldest first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.box import SIMPLE
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tofu3.cli.common import EXIT_ACCEPTED
from tofu3.ledger.policy import TAG_MOVED
from tofu3.ledger.store import Entry, Ledger
from tofu3.release.url import parse_target


def register(commands: Any) -> None:
    """Add ``history``."""
    history = commands.add_parser("history", help="list the recorded verifications of REF")
    history.set_defaults(handler=run)
    history.add_argument("reference", metavar="REF", help="e.g. ghcr.io/homebrew/core/wget:1.24.5")
    history.add_argument("--json", action="store_true", help="print the entries as JSON")
    history.add_argument(
        "-i",
        "--inventory",
        type=Path,
        metavar="FILE",
        help="show the ledger verifications with this inventory went to (a lab's own ledger "
        "for the lab inventory; the user's ledger otherwise)",
    )


def _note(entry: Entry) -> str:
    if entry.tag_move_accepted:
        return "tag move accepted"
    if TAG_MOVED in entry.findings:
        return "TAG_MOVED"
    return ", ".join(dict.fromkeys(entry.findings))


def _as_json(entry: Entry) -> dict[str, Any]:
    return {
        "verified_at": entry.verified_at,
        "reference": entry.reference,
        "repository": entry.repository,
        "tag": entry.tag,
        "digest": entry.digest,
        "pinned_digest": entry.pinned_digest,
        "verdict": entry.verdict,
        "tag_move_accepted": entry.tag_move_accepted,
        "vantages": [{"name": n, "host": h, "ok": ok} for n, h, ok in entry.vantages],
        "vantage_digests": dict(entry.vantage_digests),
        "findings": list(entry.findings),
        "report_sha256": entry.report_sha256,
        "tofu3_version": entry.tofu3_version,
    }


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Print the entries (a table, or JSON with --json)."""
    reference = parse_target(args.reference)
    with Ledger.open_default(args.inventory) as ledger:
        entries = ledger.history(reference.name, tag=reference.tag, digest=reference.digest)
        where = ledger.path
    if args.json:
        sys.stdout.write(json.dumps([_as_json(e) for e in entries], indent=2) + "\n")
        return EXIT_ACCEPTED
    if not entries:
        err.print(f"no verification of {escape(args.reference)} is recorded in {where}")
        return EXIT_ACCEPTED
    table = Table(title=escape(reference.name), title_justify="left", box=SIMPLE)
    for column in ("verified at", "tag", "verdict", "digest", "vantages", "note", "report"):
        table.add_column(column, no_wrap=column != "note")
    for entry in entries:
        finished = sum(1 for _, _, ok in entry.vantages if ok)
        table.add_row(
            entry.verified_at,
            escape(entry.tag or ""),
            entry.verdict,
            entry.digest or "-",
            f"{finished}/{len(entry.vantages)}",
            escape(_note(entry)),
            entry.report_sha256[:12],
        )
    out.print(table)
    return EXIT_ACCEPTED
