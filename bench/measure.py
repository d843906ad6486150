"""One timed run of each kind: ``tofu3 verify`` (progress off, or drawn on a pseudo-terminal)
and the bare baseline. Each returns what was measured, or raises if the run did not do what
it claims to measure (tofu3 did not accept, the baseline printed other hashes)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.baseline import BareSession, printed
from bench.processes import Children

REPO = Path(__file__).resolve().parents[1]
"""Where ``python -m bench.rss_probe`` and ``python -m tofu3`` are run from."""
TOFU3_TIMEOUT = 1800.0
"""Seconds one ``tofu3 verify`` may take (the 1 GiB image on a busy machine)."""
BARE_TIMEOUT = 1800.0
"""Seconds the three bare sessions together may take."""
PTY_COLUMNS, PTY_ROWS = 120, 40


class RunFailed(Exception):
    """A run did not do what the bench measures."""


@dataclass(frozen=True)
class Tofu3Run:
    """One ``tofu3 verify``: wall seconds, the coordinator's CPU seconds (user + system, from
    ``wait4``), its own peak RSS, and how many bytes of progress it drew (0 unless on a
    terminal)."""

    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    progress_bytes: int


def tofu3_argv(reference: str, inventory: Path) -> list[str]:
    """``python -m tofu3 verify REF -i INVENTORY --json`` with this interpreter."""
    return [sys.executable, "-m", "tofu3", "verify", reference, "-i", str(inventory), "--json"]


def run_tofu3(
    children: Children,
    argv: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    *,
    terminal: bool,
    peak_rss: bool = False,
) -> Tofu3Run:
    """Run tofu3 and time it from start to exit. With ``terminal`` its stderr is a
    pseudo-terminal (so it draws live progress) that a thread keeps draining; otherwise
    stderr is a file. The JSON report goes to a file either way. With ``peak_rss`` it runs
    under bench/rss_probe.py, which reads tofu3's own peak RSS with ``os.wait4``; otherwise
    ``peak_rss_bytes`` is 0 (the bench's own size would leak into the figure)."""
    out_path, err_path = workdir / "tofu3.out", workdir / "tofu3.err"
    rss_path = workdir / "tofu3.rss"
    rss_path.unlink(missing_ok=True)
    if peak_rss:
        argv = [sys.executable, "-m", "bench.rss_probe", str(rss_path), "--", *argv]
    drained = [0]
    drain: threading.Thread | None = None
    with out_path.open("wb") as out, err_path.open("wb") as err_file:
        if terminal:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLUMNS, 0, 0))
            try:
                started = time.perf_counter()
                process = children.start(argv, env=env, stdout=out, stderr=slave, cwd=REPO)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            drain = threading.Thread(target=_drain, args=(master, err_file, drained), daemon=True)
            drain.start()
        else:
            started = time.perf_counter()
            process = children.start(argv, env=env, stdout=out, stderr=err_file, cwd=REPO)
        (finished,) = children.wait([process], TOFU3_TIMEOUT)
        if drain is not None:
            drain.join(timeout=10)
    if finished.exit_code != 0:
        tail = err_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RunFailed(f"tofu3 verify exited {finished.exit_code} (0 = accepted):\n{tail}")
    return Tofu3Run(
        seconds=finished.ended_at - started,
        # Under rss_probe: the probe's CPU and tofu3's together (the bench does not use it).
        cpu_seconds=finished.usage.ru_utime + finished.usage.ru_stime,
        peak_rss_bytes=_recorded_rss(rss_path) if peak_rss else 0,
        progress_bytes=drained[0],
    )


def _recorded_rss(path: Path) -> int:
    """Bytes of peak RSS that bench/rss_probe.py recorded."""
    try:
        kib, _ = path.read_text(encoding="ascii").split()
        return int(kib) * 1024
    except (OSError, ValueError) as error:
        raise RunFailed(f"bench/rss_probe.py recorded no peak RSS in {path}: {error}") from error


def _drain(master: int, sink: IO[bytes], count: list[int]) -> None:
    """Read the pseudo-terminal until the child closes it; count (and keep) what it drew."""
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError as error:
                if error.errno == errno.EIO:  # every holder of the other end has closed it
                    return
                raise
            if not data:
                return
            count[0] += len(data)
            sink.write(data)
    finally:
        os.close(master)


def run_bare(
    children: Children, sessions: Sequence[BareSession], env: Mapping[str, str], workdir: Path
) -> float:
    """Run every session in parallel; the seconds until the last one ends. Raises RunFailed
    unless each exits 0 and prints exactly the expected hashes on stdout (stderr, where a
    login shell's rc files may complain, is kept apart and shown only on failure)."""
    processes: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as files:
        prepared = []
        for session in sessions:
            stem = workdir / f"bare-{session.vantage}"
            script = stem.with_suffix(".sh")
            script.write_text(session.script, encoding="utf-8")
            prepared.append(
                (
                    session,
                    files.enter_context(script.open("rb")),
                    files.enter_context(stem.with_suffix(".out").open("wb")),
                    files.enter_context(stem.with_suffix(".err").open("wb")),
                )
            )
        started = time.perf_counter()
        for session, stdin, stdout, stderr in prepared:
            processes.append(
                children.start(session.argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr)
            )
        finished = children.wait(processes, BARE_TIMEOUT)
    for session, result in zip(sessions, finished, strict=True):
        stem = workdir / f"bare-{session.vantage}"
        text = stem.with_suffix(".out").read_text(encoding="utf-8", errors="replace")
        if result.exit_code != 0 or printed(text) != session.expected:
            errors = stem.with_suffix(".err").read_text(encoding="utf-8", errors="replace")
            raise RunFailed(
                f"bare session on {session.vantage} exited {result.exit_code} and printed:\n"
                f"{text[-2000:]}\n{errors[-1000:]}\nexpected: {' '.join(session.expected)}"
            )
    return max(result.ended_at for result in finished) - started


def run_command(
    children: Children, argv: Sequence[str], env: Mapping[str, str], timeout: float
) -> float:
    """Seconds of one command that must exit 0 (``ssh vantage true``, say)."""
    started = time.perf_counter()
    process = children.start(argv, env=env)
    (finished,) = children.wait([process], timeout)
    if finished.exit_code != 0:
        raise RunFailed(f"{' '.join(argv)} exited {finished.exit_code}")
    return finished.ended_at - started


class Runner:
    """Timed runs with one set of children, environment and working directory."""

    def __init__(self, children: Children, env: Mapping[str, str], workdir: Path) -> None:
        self.children = children
        self.env = env
        self.workdir = workdir

    def tofu3(self, reference: str, inventory: Path) -> Tofu3Run:
        """One ``tofu3 verify`` with progress off (stderr is a file)."""
        return run_tofu3(
            self.children, tofu3_argv(reference, inventory), self.env, self.workdir, terminal=False
        )

    def tofu3_with_progress(self, reference: str, inventory: Path) -> Tofu3Run:
        """One ``tofu3 verify`` drawing live progress on a pseudo-terminal."""
        run = run_tofu3(
            self.children, tofu3_argv(reference, inventory), self.env, self.workdir, terminal=True
        )
        if run.progress_bytes == 0:
            raise RunFailed("tofu3 drew no progress on the pseudo-terminal")
        return run

    def peak_rss_mib(self, reference: str, inventory: Path) -> float:
        """The coordinator's own peak RSS, in MiB, in one ``tofu3 verify``."""
        run = run_tofu3(
            self.children,
            tofu3_argv(reference, inventory),
            self.env,
            self.workdir,
            terminal=False,
            peak_rss=True,
        )
        return run.peak_rss_bytes / (1024 * 1024)

    def bare(self, sessions: Sequence[BareSession]) -> float:
        """Seconds of one bare baseline run."""
        return run_bare(self.children, sessions, self.env, self.workdir)
