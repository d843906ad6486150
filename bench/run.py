"""``python -m bench.run [--runs N] [--quick]``: the performance benchmark of issue #6.

In one run, on this machine: a loopback lab (three real sshd vantages), the CNCF distribution
registry with a lab-CA certificate, and images pushed into it. Then, medians of N runs each:

1. the large image: ``tofu3 verify --json`` against the bare baseline (bench/baseline.py), and
   tofu3 again with live progress drawn on a pseudo-terminal;
2. the Homebrew-shaped index with 100 ms added to every registry response
   (bench/latency_proxy.py): tofu3 (default --jobs) against the bare sequential baseline;
3. the same index from far vantages: every SSH link through a forwarder adding 40 ms each
   way (80 ms round trip), and 20 ms added to every registry response; tofu3 against the bare
   sequential baseline, both through the same forwarders;
4. the coordinator's own peak RSS for the small and the huge image.

The report goes to stdout, progress to stderr. Everything the bench starts is ended by pid at
the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench import report
from bench.baseline import OPENSSL, bare_sessions, known_hosts_text
from bench.images import Artifact, MiB, push_homebrew_index, push_random_image
from bench.links import FarLinks, LinkUse
from bench.measure import REPO, RunFailed, Runner
from bench.overheads import measure_overheads
from bench.processes import Children, ChildTimeout
from bench.report import Figure, Series
from bench.stage import Stage, say
from tests.integration.distribution import DOCKER_REGISTRY, DistributionRegistry
from tofu3.inventory import load_inventory
from tofu3.lab.errors import LabError

DELAY_MS = 100.0
"""Milliseconds the latency proxy adds to every registry response (the index case)."""
FAR_SSH_ONE_WAY_MS = 40.0
"""Milliseconds each far link adds in each direction: an 80 ms SSH round trip."""
FAR_REGISTRY_DELAY_MS = 20.0
"""Milliseconds added to every registry response in the far case."""

# Targets from issue #6.
LARGE_RATIO_LIMIT = 1.05
LATENCY_RATIO_LIMIT = 0.60
FAR_RATIO_LIMIT = 0.90
RSS_LIMIT_MIB = 100.0
RSS_RATIO_LIMIT = 1.10

Steps = list[tuple[str, Callable[[], dict[str, float]]]]
"""Named steps of one group; each run of a step yields one value per measurement label."""


@dataclass(frozen=True)
class ImageSize:
    """An image of ``layers`` random layers of ``layer_bytes`` each."""

    layers: int
    layer_bytes: int

    def __str__(self) -> str:
        return (
            f"{self.layers} x {size_text(self.layer_bytes)} = "
            f"{size_text(self.layers * self.layer_bytes)}"
        )


@dataclass(frozen=True)
class Sizes:
    """The three images of one bench run."""

    large: ImageSize  # tofu3 against the bare baseline, progress on and off
    small: ImageSize  # peak RSS
    huge: ImageSize  # peak RSS


FULL = Sizes(
    large=ImageSize(4, 64 * MiB),
    small=ImageSize(4, 10 * MiB // 4),
    huge=ImageSize(4, 256 * MiB),
)
QUICK = Sizes(
    large=ImageSize(4, 2 * MiB),
    small=ImageSize(4, 256 * 1024),
    huge=ImageSize(4, 16 * MiB),
)


def size_text(n: int) -> str:
    """``268435456`` -> ``256 MiB``."""
    if n >= 1024 * MiB and n % (1024 * MiB) == 0:
        return f"{n // (1024 * MiB)} GiB"
    if n >= MiB:
        return f"{n / MiB:.4g} MiB"
    return f"{n / 1024:.4g} KiB"


class Terminated(BaseException):
    """SIGTERM: unwind like Ctrl-C, so everything started is ended."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def rounds(runs: int, name: str, steps: Steps) -> Iterator[dict[str, float]]:
    """Run ``steps`` ``runs`` times, interleaved and in a rotating order (so drift on a noisy
    machine, and the order itself, weigh on every step alike); yield each step's values."""
    for index in range(runs):
        shift = index % len(steps)
        for step_name, step in steps[shift:] + steps[:shift]:
            values = step()
            shown = ", ".join(f"{label}: {value:.2f}" for label, value in values.items())
            say(f"{name} run {index + 1}/{runs}, {step_name}: {shown}")
            yield values


def collect(runs: int, name: str, steps: Steps) -> dict[str, list[float]]:
    """Every measurement's values over ``runs`` interleaved rounds."""
    collected: dict[str, list[float]] = {}
    for values in rounds(runs, name, steps):
        for label, value in values.items():
            collected.setdefault(label, []).append(value)
    return collected


def push_all(
    registry: DistributionRegistry, ca_cert: Path, sizes: Sizes
) -> tuple[Artifact, Artifact, Artifact, Artifact]:
    """Push the large, small and huge images and the wget-shaped index."""
    started = time.perf_counter()
    images = [
        push_random_image(
            registry,
            ca_cert,
            f"bench/{name}",
            "1",
            layers=size.layers,
            layer_bytes=size.layer_bytes,
            seed=seed,
        )
        for seed, (name, size) in enumerate(
            (("large", sizes.large), ("small", sizes.small), ("huge", sizes.huge)), start=1
        )
    ]
    index = push_homebrew_index(registry, ca_cert, "homebrew/core/wget", seed=4)
    say(f"pushed 3 images and the index in {time.perf_counter() - started:.1f} s")
    return images[0], images[1], images[2], index


def measure(stage: Stage, sizes: Sizes, runs: int) -> tuple[list[str], list[Series], list[Figure]]:
    """Set everything up, take every measurement, and return the report's parts."""
    lab = stage.start_lab()
    registry = stage.start_registry(lab)
    large, small, huge, index = push_all(registry, lab.ca_cert, sizes)
    upstream = ("127.0.0.1", registry.port)
    proxy_port = stage.start_proxy(upstream, DELAY_MS)
    far_proxy_port = stage.start_proxy(upstream, FAR_REGISTRY_DELAY_MS)
    far_links = stage.start_far_links(lab, FAR_SSH_ONE_WAY_MS)
    direct = stage.inventory(lab, "direct.yaml", registry.host, registry.port)
    delayed = stage.inventory(lab, "delayed.yaml", registry.host, proxy_port)
    far = stage.inventory(lab, "far.yaml", registry.host, far_proxy_port, far_links)
    vantages = load_inventory(direct).vantages
    far_vantages = load_inventory(far).vantages
    # One file for both: each sshd's pinned key under its own address and under its
    # forwarder's, so `ssh -p FORWARDER_PORT` checks the host key as strictly.
    known_hosts = stage.workdir / "known_hosts"
    known_hosts.write_text(known_hosts_text([*vantages, *far_vantages]), encoding="utf-8")
    bare_large = bare_sessions(vantages, known_hosts, registry.host, large)
    bare_large_openssl = bare_sessions(vantages, known_hosts, registry.host, large, OPENSSL)
    # The delayed inventory differs only in where curl connects: same vantages, same keys.
    bare_index = bare_sessions(load_inventory(delayed).vantages, known_hosts, registry.host, index)
    bare_far = bare_sessions(far_vantages, known_hosts, registry.host, index)
    run = Runner(stage.children, stage.env, stage.workdir)

    def ref(artifact: Artifact) -> str:
        return artifact.reference(registry.host)

    overheads = measure_overheads(
        stage.children,
        stage.env,
        vantages[0],
        known_hosts,
        stage.workdir,
        far=far_vantages[0],
        far_round_trip_ms=2 * FAR_SSH_ONE_WAY_MS,
    )
    say("warm-up (not counted): one bare and one tofu3 run on the large image")
    run.bare(bare_large)
    run.tofu3(ref(large), direct)

    def large_off() -> dict[str, float]:
        done = run.tofu3(ref(large), direct)
        return {report.TOFU3_LARGE: done.seconds, report.CPU_LARGE: done.cpu_seconds}

    def large_on() -> dict[str, float]:
        done = run.tofu3_with_progress(ref(large), direct)
        return {
            report.TOFU3_LARGE_PROGRESS: done.seconds,
            report.CPU_LARGE_PROGRESS: done.cpu_seconds,
        }

    got = collect(
        runs,
        "large",
        [
            ("tofu3", large_off),
            ("bare", lambda: {report.BARE_LARGE: run.bare(bare_large)}),
            (
                "bare with openssl",
                lambda: {report.BARE_LARGE_OPENSSL: run.bare(bare_large_openssl)},
            ),
            ("tofu3 with progress", large_on),
        ],
    )
    got |= collect(
        runs,
        "latency",
        [
            ("tofu3", lambda: {report.TOFU3_INDEX_LATENCY: run.tofu3(ref(index), delayed).seconds}),
            ("bare", lambda: {report.BARE_INDEX_LATENCY: run.bare(bare_index)}),
        ],
    )
    far_use: dict[str, list[LinkUse]] = {"tofu3": [], "bare": []}

    def on_far_links(kind: str, label: str, action: Callable[[], float]) -> dict[str, float]:
        started = time.perf_counter()
        seconds = action()
        far_use[kind] += far_links.used_since(started)
        return {label: seconds}

    got |= collect(
        runs,
        "far",
        [
            (
                "tofu3",
                lambda: on_far_links(
                    "tofu3", report.TOFU3_INDEX_FAR, lambda: run.tofu3(ref(index), far).seconds
                ),
            ),
            (
                "bare",
                lambda: on_far_links("bare", report.BARE_INDEX_FAR, lambda: run.bare(bare_far)),
            ),
        ],
    )
    got |= collect(
        runs,
        "rss",
        [
            ("small", lambda: {report.RSS_SMALL: run.peak_rss_mib(ref(small), direct)}),
            ("huge", lambda: {report.RSS_HUGE: run.peak_rss_mib(ref(huge), direct)}),
        ],
    )
    in_mib = (report.RSS_SMALL, report.RSS_HUGE)
    series = {
        label: Series(label, "MiB" if label in in_mib else "s", tuple(values))
        for label, values in got.items()
    }
    notes = [
        f"images:  large {sizes.large}; small {sizes.small}; huge {sizes.huge}; "
        f"wget-shaped index: 7 platforms, {len(index.downloads)} manifests and blobs, "
        f"{size_text(index.blob_bytes)} of blobs",
        f"runs:    {runs} of each, interleaved in rotating order after one warm-up; "
        "medians; 3 loopback sshd vantages",
        f"latency: +{DELAY_MS:g} ms on every client->server chunk to the registry "
        "(bench/latency_proxy.py)",
        f"far:     every SSH link through a forwarder, +{FAR_SSH_ONE_WAY_MS:g} ms each way "
        f"({2 * FAR_SSH_ONE_WAY_MS:g} ms round trip; bench/latency_proxy.py, one per vantage), "
        f"and +{FAR_REGISTRY_DELAY_MS:g} ms on every registry response",
        turns_note(far_links, far_use),
        *overheads.notes(),
    ]
    return notes, [series[label] for label in report.MEASUREMENTS], figures(series)


def turns_note(links: FarLinks, use: dict[str, list[LinkUse]]) -> str:
    """The far case's SSH connections and turns per vantage and run, tofu3 and the bare
    baseline (medians; a turn is the client speaking again after the server had, so every
    round trip it waited for is one)."""

    def median_of(kind: str) -> str:
        used = use[kind]
        if not used:
            return "none"
        turns = statistics.median(u.turns for u in used)
        connections = statistics.median(u.connections for u in used)
        return f"{turns:g} turns over {connections:g} connection(s)"

    return (
        f"turns:   on each far link per run (medians over {len(links.links)} vantages and the "
        f"runs): tofu3 {median_of('tofu3')}, bare {median_of('bare')}"
    )


def figures(series: dict[str, Series]) -> list[Figure]:
    """Every figure the issue sets a target for, the large image against a baseline that
    hashes as tofu3 does, and the progress ratios."""
    return [
        report.ratio(
            report.RATIO_LARGE,
            series[report.TOFU3_LARGE],
            series[report.BARE_LARGE],
            LARGE_RATIO_LIMIT,
        ),
        # No target: how much of the large-image figure is tofu3's choice of hash tool.
        report.ratio(
            report.RATIO_LARGE_OPENSSL,
            series[report.TOFU3_LARGE],
            series[report.BARE_LARGE_OPENSSL],
            None,
        ),
        report.ratio(
            report.RATIO_LATENCY,
            series[report.TOFU3_INDEX_LATENCY],
            series[report.BARE_INDEX_LATENCY],
            LATENCY_RATIO_LIMIT,
        ),
        report.ratio(
            report.RATIO_FAR,
            series[report.TOFU3_INDEX_FAR],
            series[report.BARE_INDEX_FAR],
            FAR_RATIO_LIMIT,
        ),
        Figure(report.FIGURE_RSS_SMALL, series[report.RSS_SMALL].median, "MiB", RSS_LIMIT_MIB),
        Figure(report.FIGURE_RSS_HUGE, series[report.RSS_HUGE].median, "MiB", RSS_LIMIT_MIB),
        report.ratio(
            report.RATIO_RSS, series[report.RSS_HUGE], series[report.RSS_SMALL], RSS_RATIO_LIMIT
        ),
        report.ratio(
            report.RATIO_PROGRESS,
            series[report.TOFU3_LARGE_PROGRESS],
            series[report.TOFU3_LARGE],
            None,
        ),
        report.ratio(
            report.RATIO_PROGRESS_CPU,
            series[report.CPU_LARGE_PROGRESS],
            series[report.CPU_LARGE],
            None,
        ),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="tofu3 performance benchmark (issue #6)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs of each (default 5)")
    parser.add_argument("--quick", action="store_true", help="small images, 2 runs: a smoke test")
    parser.add_argument(
        "--tmp", type=Path, default=None, help="where to make the working directory"
    )
    parser.add_argument(
        "--large-layer-mib",
        type=int,
        default=None,
        help="MiB per layer of the large image (default 64; 2 with --quick)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs, inventories)"
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.large_layer_mib is not None and args.large_layer_mib < 1:
        parser.error("--large-layer-mib must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the report. Exit 0 when everything was measured (whether or
    not the targets hold), 1 when a run failed, 130 when interrupted."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.large_layer_mib is not None:
        sizes = dataclasses.replace(sizes, large=ImageSize(4, args.large_layer_mib * MiB))
    runs = args.runs or (2 if args.quick else 5)
    signal.signal(signal.SIGTERM, _on_sigterm)
    machine = report.describe_machine(DOCKER_REGISTRY)
    revision = report.tofu3_revision(REPO)
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="tofu3-bench-", dir=args.tmp))
    say(f"working directory {workdir}")
    children = Children()
    stack = contextlib.ExitStack()
    if not args.keep:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    try:
        stage = Stage(workdir, children, stack)
        notes, series, figures_ = measure(stage, sizes, runs)
    except (KeyboardInterrupt, Terminated):
        say("interrupted: ending everything the bench started")
        return 130
    except (RunFailed, ChildTimeout, LabError) as error:
        say(f"failed: {error}")
        return 1
    finally:
        # Nothing may interrupt the clean-up: runs and sessions first (by pid), then the
        # proxy, the registry and the lab, then the working directory.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ended = children.end_all()
        if ended:
            say(f"ended by pid: {', '.join(map(str, ended))}")
        stack.close()
    notes.insert(0, f"tofu3:   {revision}")
    notes.append(
        f"load:    1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    sys.stdout.write(report.render(machine, notes, series, figures_))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
