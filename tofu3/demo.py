"""``tofu3 demo``: the whole story on the local lab, in about a minute.

lab up -> an honest verification (ACCEPTED) -> the lab registry starts serving one vantage a
different layer -> the same verification (REJECTED, naming the layer and the vantage) ->
lab down.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from tofu3.inventory import load_inventory
from tofu3.lab import manager
from tofu3.reference import parse_reference
from tofu3.report.terminal import LiveProgress, print_verdict
from tofu3.verdict import Verdict, VerdictKind
from tofu3.verify import verify

DEMO_REFERENCE = "ghcr.io/homebrew/core/wget:1.24.5"
TAMPERED_VANTAGE = "sgp"


def demo_dir() -> Path:
    """The demo's own lab, beside the user's: the demo never tampers with a lab in use."""
    lab = manager.lab_dir()
    return lab.with_name(f"{lab.name}-demo")


def _verify(out: Console, err: Console, directory: Path) -> Verdict:
    inventory = load_inventory(manager.lab_inventory(directory))
    with LiveProgress(err) as progress:
        verdict = verify(parse_reference(DEMO_REFERENCE), inventory, progress=progress)
    print_verdict(out, verdict)
    return verdict


def run_demo(out: Console, err: Console, mode: str | None = None) -> int:
    """Run the demo; 0 when the lab behaved as the story says (accepted, then rejected)."""
    out.print(Rule("1. lab up: three sshd vantages and a registry that behaves like ghcr.io"))
    directory = demo_dir()
    state = manager.lab_up(directory, mode=manager.LabMode(mode) if mode else None)
    try:
        out.print(f"mode {state.mode.value}; inventory: {manager.lab_inventory(directory)}")
        out.print(Rule(f"2. tofu3 verify {DEMO_REFERENCE}: every vantage honest"))
        honest = _verify(out, err, directory)
        out.print(Rule(f"3. tofu3 lab tamper {TAMPERED_VANTAGE} blob: one path now lies"))
        manager.lab_tamper(TAMPERED_VANTAGE, "blob", directory)
        out.print(f"the lab registry now serves {TAMPERED_VANTAGE} altered layer bytes")
        out.print(Rule(f"4. tofu3 verify {DEMO_REFERENCE} again"))
        tampered = _verify(out, err, directory)
    finally:
        out.print(Rule("5. lab down"))
        for line in manager.lab_down(directory):
            err.print(line)
    as_told = honest.kind is VerdictKind.ACCEPTED and tampered.kind is VerdictKind.REJECTED
    if as_told:
        out.print("[bold]demo done:[/] the honest run was accepted, the tampered one rejected.")
        return 0
    out.print("[red]demo failed:[/] the verdicts were not accepted-then-rejected")
    return 1
