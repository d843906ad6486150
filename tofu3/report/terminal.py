"""The terminal view: live progress on stderr, then the artifacts x vantages table and a
one-line verdict."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tofu3.digest import short
from tofu3.verdict import Artifact, Severity, Verdict, VerdictKind

_STYLE = {
    VerdictKind.ACCEPTED: "bold green",
    VerdictKind.REJECTED: "bold red",
    VerdictKind.INCONCLUSIVE: "bold yellow",
}


class LiveProgress:
    """Per-vantage progress (step, blob, bytes) drawn with rich on stderr. On a non-terminal
    it prints one plain line per finished vantage instead."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = console.is_terminal and not console.no_color
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[vantage]:<10}"),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
            disable=not self._live,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, traceback)

    def _task(self, vantage: str) -> TaskID:
        with self._lock:
            if vantage not in self._tasks:
                self._tasks[vantage] = self._progress.add_task(
                    "starting", vantage=vantage, total=None
                )
            return self._tasks[vantage]

    def step(self, vantage: str, text: str) -> None:
        """Show the vantage's current step."""
        self._progress.update(self._task(vantage), description=text)

    def transfer(self, vantage: str, label: str, done: int, total: int | None) -> None:
        """Show bytes received so far."""
        self._progress.update(
            self._task(vantage), description=f"blobs ({short(label)})", completed=done, total=total
        )

    def finished(self, vantage: str, ok: bool, text: str) -> None:
        """Mark the vantage done."""
        self._progress.update(self._task(vantage), description="done" if ok else "failed")
        mark = "[green]ok[/]" if ok else "[red]failed[/]"
        self._console.print(f"  {escape(vantage)}: {mark} {escape(text) if not ok else ''}")


def _cell(artifact: Artifact, vantage: str) -> str:
    obs = artifact.observations.get(vantage)
    if obs is None:
        return "[dim]-[/]"
    good = artifact.agreed and (obs.expected.digest is None or obs.digest == obs.expected.digest)
    if obs.expected.size is not None and obs.size != obs.expected.size:
        good = False
    mark = "[green]✓[/]" if good else "[red]✗[/]"
    return f"{mark} {short(obs.digest)}"


def render_table(verdict: Verdict) -> Table:
    """Artifacts x vantages, with each vantage's digest and an agreement mark."""
    names = [run.name for run in verdict.runs]
    table = Table(title=escape(verdict.reference.original), title_justify="left")
    table.add_column("artifact", overflow="fold")
    table.add_column("size", justify="right")
    for name in names:
        table.add_column(escape(name))
    for artifact in verdict.artifacts:
        label = artifact.kind.value if artifact.key == "root" else artifact.key
        size = "" if artifact.size is None else f"{artifact.size:,}"
        table.add_row(escape(label), size, *[_cell(artifact, n) for n in names])
    return table


def verdict_line(verdict: Verdict) -> str:
    """One line saying what was decided, and what to use from now on."""
    style = _STYLE[verdict.kind]
    head = f"[{style}]{verdict.kind.value.upper()}[/] {escape(verdict.reference.original)}"
    completed = sum(1 for run in verdict.runs if run.completed)
    if verdict.kind is VerdictKind.ACCEPTED:
        return (
            f"{head}: {completed}/{len(verdict.runs)} vantages agree on "
            f"{len(verdict.artifacts)} artifacts. Use from now on:\n  "
            f"{escape(verdict.pinned_reference or '')}"
        )
    first = next(
        (f for f in verdict.findings if f.severity is Severity.CRITICAL),
        next(iter(verdict.findings), None),
    )
    reason = escape(first.message) if first else "see the findings"
    return f"{head}: {reason}"


def print_verdict(console: Console, verdict: Verdict) -> None:
    """Table, findings, verdict line."""
    console.print(render_table(verdict))
    for finding in verdict.findings:
        colour = "red" if finding.severity is Severity.CRITICAL else "yellow"
        console.print(
            f"[{colour}]{finding.severity.value.upper()} {finding.code}[/] "
            f"{escape(finding.message)}"
        )
    console.print(verdict_line(verdict))
