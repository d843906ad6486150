"""The terminal view: live progress on stderr, then the artifacts x vantages table and a
one-line verdict."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

from rich.box import SIMPLE
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tofu3.digest import short
from tofu3.observation import ArtifactKind
from tofu3.oci.manifest import ANNOTATION_BOTTLE_DIGEST
from tofu3.verdict import Artifact, Severity, Verdict, VerdictKind

_MAX_FINDINGS_SHOWN = 12
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
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not self._live,
            # curl's meter reports twice a second: redrawing more often shows nothing new, and
            # takes CPU from the downloads when vantages share a machine (the lab).
            refresh_per_second=4,
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


def _reference_digest(artifact: Artifact) -> str | None:
    """The digest a row is judged against: the descriptor's, else what most vantages saw."""
    expected = {o.expected.digest for o in artifact.observations.values() if o.expected.digest}
    if len(expected) == 1:
        return next(iter(expected))
    counts = Counter(o.digest for o in artifact.observations.values())
    return counts.most_common(1)[0][0] if counts else None


def _cell(artifact: Artifact, vantage: str, reference: str | None) -> str:
    obs = artifact.observations.get(vantage)
    if obs is None:
        return "[dim]-[/]"
    good = obs.digest == reference and (obs.expected.size is None or obs.size == obs.expected.size)
    if good:
        return "[green]✓[/]"
    return f"[red]✗ {short(obs.digest)}[/]"


def _label(artifact: Artifact) -> str:
    if artifact.key == "root":
        return artifact.kind.value
    parent, _, leaf = artifact.key.rpartition("/")
    if artifact.kind in (ArtifactKind.CONFIG, ArtifactKind.LAYER) and parent:
        return f"  └ {leaf}"
    return artifact.key


def render_table(verdict: Verdict) -> Table:
    """Artifacts x vantages: the digest each row is judged against, and per vantage a mark
    (✓ same bytes; ✗ with the digest that vantage saw instead)."""
    names = [run.name for run in verdict.runs]
    table = Table(title=escape(verdict.reference.original), title_justify="left", box=SIMPLE)
    table.add_column("artifact", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("digest", no_wrap=True)
    for name in names:
        table.add_column(escape(name), no_wrap=True)
    for artifact in verdict.artifacts:
        reference = _reference_digest(artifact)
        size = "" if artifact.size is None else f"{artifact.size:,}"
        table.add_row(
            escape(_label(artifact)),
            size,
            short(reference) if reference else "",
            *[_cell(artifact, n, reference) for n in names],
        )
    return table


def verdict_line(verdict: Verdict) -> str:
    """One line saying what was decided, and what to use from now on."""
    style = _STYLE[verdict.kind]
    head = f"[{style}]{verdict.kind.value.upper()}[/] {escape(verdict.reference.original)}"
    completed = sum(1 for run in verdict.runs if run.completed)
    if verdict.kind is VerdictKind.ACCEPTED:
        return (
            f"{head}: {completed}/{len(verdict.runs)} vantages agree on "
            f"{len(verdict.artifacts)} artifacts; use {escape(verdict.pinned_reference or '')}"
        )
    first = next(
        (f for f in verdict.findings if f.severity is Severity.CRITICAL),
        next(iter(verdict.findings), None),
    )
    reason = escape(first.message) if first else "see the findings"
    more = len(verdict.findings) - 1
    suffix = "" if more <= 0 else f" (and {more} more finding{'s' if more > 1 else ''})"
    return f"{head}: {reason}{suffix}"


def bottle_lines(verdict: Verdict) -> list[str]:
    """For each Homebrew bottle: the layer digest beside the index's sh.brew.bottle.digest
    (the sha256 Homebrew's formula pins), flagged when they differ."""
    by_key = {artifact.key: artifact for artifact in verdict.artifacts}
    lines: list[str] = []
    for artifact in verdict.artifacts:
        if artifact.kind is not ArtifactKind.MANIFEST or not artifact.observations:
            continue
        annotations = next(iter(artifact.observations.values())).annotations
        claimed = annotations.get(ANNOTATION_BOTTLE_DIGEST)
        layer = by_key.get(f"{artifact.key}/layer[0]")
        if claimed is None or layer is None or layer.digest is None:
            continue
        sha256 = layer.digest.removeprefix("sha256:")
        if claimed == sha256:
            lines.append(
                f"  bottle {escape(artifact.key)}: sha256 {sha256} "
                "[green]✓[/] = sh.brew.bottle.digest"
            )
        else:
            lines.append(
                f"  bottle {escape(artifact.key)}: layer sha256 {sha256} [red]✗ DIFFERS[/] "
                f"from sh.brew.bottle.digest {escape(claimed[:80])}"
            )
    return lines


def print_verdict(console: Console, verdict: Verdict) -> None:
    """Table, bottle checksums, findings, verdict line."""
    console.print(render_table(verdict))
    for line in bottle_lines(verdict):
        console.print(line, soft_wrap=True)
    for finding in verdict.findings[:_MAX_FINDINGS_SHOWN]:
        colour = "red" if finding.severity is Severity.CRITICAL else "yellow"
        console.print(
            f"[{colour}]{finding.severity.value.upper()} {finding.code}[/] "
            f"{escape(finding.message)}",
            soft_wrap=True,
        )
    hidden = len(verdict.findings) - _MAX_FINDINGS_SHOWN
    if hidden > 0:
        console.print(f"... and {hidden} more findings (all of them are in --json/--report)")
    # soft_wrap: the pinned reference must stay on one line to be copied.
    console.print(verdict_line(verdict), soft_wrap=True)


def print_summary(console: Console, verdicts: Sequence[Verdict]) -> None:
    """One line per reference after a batch, and the counts."""
    table = Table(title="summary", title_justify="left", box=SIMPLE)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reference", overflow="fold")
    table.add_column("use", overflow="fold")
    for verdict in verdicts:
        style = _STYLE[verdict.kind]
        table.add_row(
            f"[{style}]{verdict.kind.value.upper()}[/]",
            escape(verdict.reference.original),
            escape(verdict.pinned_reference or ""),
        )
    console.print(table)
    counts = Counter(v.kind for v in verdicts)
    console.print(
        ", ".join(f"{counts.get(kind, 0)} {kind.value}" for kind in VerdictKind)
        + f" of {len(verdicts)} references"
    )
