"""Every process the bench starts, known by its pid and ended by its pid.

Each child runs in a session of its own, so a Ctrl-C at the terminal reaches only the bench,
which then ends what it started (SIGTERM, then SIGKILL) and reaps it. Children are waited for
with a pidfd, so a run's wall time ends the moment the child exits, and reaped with
``os.wait4``. (A child's peak RSS is read by bench/rss_probe.py instead: see why there.)
"""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STOP_TIMEOUT = 10.0
"""Seconds a child has to exit after SIGTERM, and again after SIGKILL."""


class ChildTimeout(Exception):
    """A child ran longer than it was given; it has been ended."""


@dataclass(frozen=True)
class Finished:
    """A reaped child: its exit code, when it exited, and its own resource usage."""

    exit_code: int
    ended_at: float  # time.perf_counter() when its exit was seen
    usage: resource.struct_rusage


class Children:
    """The bench's child processes. ``end_all`` ends every one still running, by pid."""

    def __init__(self) -> None:
        self._running: dict[int, subprocess.Popen[bytes]] = {}

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        stdin: IO[bytes] | int | None = subprocess.DEVNULL,
        stdout: IO[bytes] | int | None = subprocess.DEVNULL,
        stderr: IO[bytes] | int | None = subprocess.DEVNULL,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session and remember it until it is reaped."""
        process = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        self._running[process.pid] = process
        return process

    def wait(self, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[Finished]:
        """Wait until every one of ``processes`` has exited (ending them all after ``timeout``
        seconds, with ChildTimeout) and reap each with ``os.wait4``."""
        deadline = time.perf_counter() + timeout
        poller = select.poll()
        pidfds: dict[int, subprocess.Popen[bytes]] = {}
        ended: dict[int, float] = {}
        try:
            for process in processes:
                fd = os.pidfd_open(process.pid)
                pidfds[fd] = process
                poller.register(fd, select.POLLIN)
            while len(ended) < len(pidfds):
                left = deadline - time.perf_counter()
                if left <= 0:
                    for process in processes:
                        self.end(process)
                    raise ChildTimeout(
                        f"{len(pidfds) - len(ended)} process(es) ran over {timeout}s"
                    )
                for fd, _ in poller.poll(max(1, int(left * 1000))):
                    if fd not in ended:
                        ended[fd] = time.perf_counter()
                        poller.unregister(fd)
        finally:
            for fd in pidfds:
                os.close(fd)
        return [self._reap(process, ended[fd]) for fd, process in pidfds.items()]

    def _reap(self, process: subprocess.Popen[bytes], ended_at: float) -> Finished:
        _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code  # reaped here, so Popen must not wait for it again
        self._running.pop(process.pid, None)
        return Finished(exit_code=code, ended_at=ended_at, usage=usage)

    def end(self, process: subprocess.Popen[bytes]) -> None:
        """End one child by its pid: SIGTERM, then SIGKILL if it lingers; reap it."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self._running.pop(process.pid, None)

    def end_all(self) -> list[int]:
        """End every child still running; return their pids."""
        pids = list(self._running)
        for process in list(self._running.values()):
            self.end(process)
        return pids
