"""What the bench prints: the machine, every measurement (median of the runs, with the
spread), and every figure against its target in issue #6, PASS or FAIL."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024

# Row labels, fixed so a reader (and the smoke test) can find each line.
TOFU3_LARGE = "tofu3 verify, large image"
BARE_LARGE = "bare curl | sha256sum, large image"
BARE_LARGE_OPENSSL = "bare curl | openssl dgst, large image"
TOFU3_LARGE_PROGRESS = "tofu3 verify, large image, progress on a terminal"
TOFU3_INDEX_LATENCY = "tofu3 verify, wget-shaped index, +100 ms"
BARE_INDEX_LATENCY = "bare sequential, wget-shaped index, +100 ms"
TOFU3_INDEX_FAR = "tofu3 verify, wget-shaped index, far vantages"
BARE_INDEX_FAR = "bare sequential, wget-shaped index, far vantages"
CPU_LARGE = "coordinator CPU, large image"
CPU_LARGE_PROGRESS = "coordinator CPU, large image, progress on a terminal"
RSS_SMALL = "coordinator peak RSS, small image"
RSS_HUGE = "coordinator peak RSS, huge image"
MEASUREMENTS = (
    TOFU3_LARGE,
    BARE_LARGE,
    BARE_LARGE_OPENSSL,
    TOFU3_LARGE_PROGRESS,
    CPU_LARGE,
    CPU_LARGE_PROGRESS,
    TOFU3_INDEX_LATENCY,
    BARE_INDEX_LATENCY,
    TOFU3_INDEX_FAR,
    BARE_INDEX_FAR,
    RSS_SMALL,
    RSS_HUGE,
)

RATIO_LARGE = "tofu3 / bare, large image"
RATIO_LARGE_OPENSSL = "tofu3 / bare with openssl dgst, large"
RATIO_LATENCY = "tofu3 / bare sequential, index +100 ms"
RATIO_FAR = "tofu3 / bare sequential, index, far vantages"
FIGURE_RSS_SMALL = "peak RSS, small image"
FIGURE_RSS_HUGE = "peak RSS, huge image"
RATIO_RSS = "peak RSS huge / small"
RATIO_PROGRESS = "progress on / off, large image"
RATIO_PROGRESS_CPU = "progress on / off, coordinator CPU"
FIGURES = (
    RATIO_LARGE,
    RATIO_LARGE_OPENSSL,
    RATIO_LATENCY,
    RATIO_FAR,
    FIGURE_RSS_SMALL,
    FIGURE_RSS_HUGE,
    RATIO_RSS,
    RATIO_PROGRESS,
    RATIO_PROGRESS_CPU,
)


@dataclass(frozen=True)
class Series:
    """One measurement over several runs, in ``unit`` ("s" or "MiB")."""

    label: str
    unit: str
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of the runs."""
        return statistics.median(self.values)


@dataclass(frozen=True)
class Figure:
    """A figure the issue sets a target for: ``value`` must be at most ``limit`` (None: no
    target, reported for information)."""

    label: str
    value: float
    unit: str  # "" for a ratio, "MiB"
    limit: float | None

    @property
    def verdict(self) -> str:
        """PASS, FAIL, or "info" when there is no target."""
        if self.limit is None:
            return "info"
        return "PASS" if self.value <= self.limit else "FAIL"


def ratio(label: str, numerator: Series, denominator: Series, limit: float | None) -> Figure:
    """The ratio of two medians."""
    return Figure(label, numerator.median / denominator.median, "", limit)


@dataclass(frozen=True)
class Machine:
    """Where the numbers were taken."""

    cores: int
    cpu_model: str
    kernel: str
    curl: str
    openssh: str
    python: str
    registry: str

    def lines(self) -> list[str]:
        """The machine block of the report."""
        return [
            f"machine: {self.cores} cores, {self.cpu_model}",
            f"kernel:  {self.kernel}",
            f"curl:    {self.curl}",
            f"openssh: {self.openssh}",
            f"python:  {self.python}",
            f"registry: {self.registry}",
        ]


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def tofu3_revision(repo: Path) -> str:
    """The commit the measured tofu3 is at, and whether tofu3/ has uncommitted changes."""
    commit = _first_line(["git", "-C", str(repo), "log", "-1", "--format=%h %s"])
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "tofu3"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    return commit + (" (plus uncommitted changes in tofu3/)" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(registry_binary: Path) -> Machine:
    """Cores, CPU model, kernel, and the versions of the tools the numbers depend on."""
    uname = platform.uname()
    curl = _first_line(["curl", "--version"]).split()
    return Machine(
        cores=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        kernel=f"{uname.system} {uname.release} {uname.machine}",
        curl=" ".join(curl[:2]) if curl else "unknown",
        openssh=_first_line(["ssh", "-V"]),
        python=platform.python_version(),
        registry=_first_line([str(registry_binary), "--version"]),
    )


def _amount(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:8.2f} s"
    if unit == "MiB":
        return f"{value:6.1f} MiB"
    return f"{value:8.2f}"


def render(
    machine: Machine,
    notes: Sequence[str],
    series: Sequence[Series],
    figures: Sequence[Figure],
) -> str:
    """The whole report: machine, notes, measurements table, targets table."""
    width = max(len(s.label) for s in series) + 2
    out = [*machine.lines(), *notes, ""]
    out.append(f"{'measurement':<{width}}{'runs':>4}  {'median':>12}  {'min':>12}  {'max':>12}")
    for s in series:
        out.append(
            f"{s.label:<{width}}{len(s.values):>4}  {_amount(s.median, s.unit):>12}  "
            f"{_amount(min(s.values), s.unit):>12}  {_amount(max(s.values), s.unit):>12}"
        )
    out.append("")
    fwidth = max(len(f.label) for f in figures) + 2
    out.append(f"{'figure':<{fwidth}}{'value':>12}  {'target':>14}  result")
    for f in figures:
        target = "none" if f.limit is None else f"<= {_amount(f.limit, f.unit).strip()}"
        out.append(f"{f.label:<{fwidth}}{_amount(f.value, f.unit):>12}  {target:>14}  {f.verdict}")
    return "\n".join(out) + "\n"
