"""The benchmark (bench/) runs end to end at small sizes, prints every measurement and every
figure, and leaves nothing running, also when interrupted. Speed itself is measured by the
benchmark and never asserted here: a timed assertion on a shared machine tests the machine.

What "nothing running" means: no process whose environment carries this test's mark (every
process the bench starts inherits it: tofu3, ssh, the latency proxy, the registry, the lab's
sshd and their per-connection children), no process whose command line names the test's
directory (the vantages' curl, which sshd starts with an environment of its own), and no
session on the bench's vantages (SSH_CONNECTION names their address and port).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from bench import report

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MARK_VARIABLE = "TOFU3_BENCH_TEST_MARK"
BENCH_TIMEOUT = 900.0
"""Seconds ``bench.run --quick`` may take on a busy machine (it usually takes about one
minute)."""
INTERRUPT_TIMEOUT = 120.0
"""Seconds the bench has to clean up and exit after Ctrl-C."""
SETTLE_TIMEOUT = 15.0
"""Seconds processes have to go away after the bench exits (sshd ends sessions lazily)."""
VANTAGES_LINE = re.compile(r"lab vantages: (.*)")
VANTAGE_ENDPOINT = re.compile(r"(\d+\.\d+\.\d+\.\d+):(\d+)")


def bench_command(tmp_path: Path) -> list[str]:
    """``python -m bench.run --quick`` with its working directory under ``tmp_path``."""
    return [sys.executable, "-m", "bench.run", "--quick", "--tmp", str(tmp_path)]


def bench_environment(mark: str) -> dict[str, str]:
    """This environment, with the mark every process the bench starts will inherit."""
    return {**os.environ, MARK_VARIABLE: mark}


def vantage_endpoints(stderr: str) -> set[tuple[str, str]]:
    """The (address, port) of every lab vantage the bench said it started."""
    found = VANTAGES_LINE.search(stderr)
    assert found, f"the bench did not say which vantages it started:\n{stderr}"
    return set(VANTAGE_ENDPOINT.findall(found.group(1)))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def processes_left(mark: str, directory: Path, vantages: set[tuple[str, str]]) -> list[str]:
    """Every process still running that the bench started (see the module docstring)."""
    left = []
    needle = str(directory).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        environ = _read(proc / "environ").split(b"\0")
        cmdline = _read(proc / "cmdline")
        stat = _read(proc / "stat")
        if not cmdline or b") Z " in stat:
            continue  # a kernel thread, or a zombie that its parent will reap
        sessions = {
            tuple(entry.decode(errors="replace").split()[2:4])
            for entry in environ
            if entry.startswith(b"SSH_CONNECTION=")
        }
        if (
            f"{MARK_VARIABLE}={mark}".encode() in environ
            or needle in cmdline
            or sessions & vantages
        ):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            left.append(f"{proc.name}: {command}")
    return left


def assert_nothing_left(mark: str, directory: Path, vantages: set[tuple[str, str]]) -> None:
    """Nothing the bench started is running (allowing sshd a moment to end sessions), and its
    working directory is gone."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (left := processes_left(mark, directory, vantages)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "processes left running by the bench:\n" + "\n".join(left)
    assert not list(directory.glob("tofu3-bench-*")), "the bench left its working directory"


def test_quick_bench_prints_every_measurement_and_figure_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    mark = secrets.token_hex(8)
    result = subprocess.run(
        bench_command(tmp_path),
        cwd=REPO,
        env=bench_environment(mark),
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"the bench failed:\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    prefixes = ("machine:", "kernel:", "curl:", "openssh:", "far:", "turns:", "ssh:", "ssh far:")
    for prefix in (*prefixes, "start:"):
        assert any(line.startswith(prefix) for line in lines), f"no {prefix!r} line"
    for label in report.MEASUREMENTS:
        row = re.compile(re.escape(label) + r"\s+2\s+[\d.]+ (s|MiB)\s+[\d.]+ \1\s+[\d.]+ \1$")
        assert any(row.match(line) for line in lines), f"no measurement row {label!r}"
    for label in report.FIGURES:
        row = re.compile(re.escape(label) + r"\s+[\d.]+( MiB)?\s+(<= [\d.]+( MiB)?|none)\s+")
        matching = [line for line in lines if row.match(line)]
        assert matching, f"no figure row {label!r}:\n{result.stdout}"
        assert matching[0].split()[-1] in ("PASS", "FAIL", "info")
    assert_nothing_left(mark, tmp_path, vantage_endpoints(result.stderr))


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_ctrl_c_during_a_run_ends_everything_the_bench_started(tmp_path: Path) -> None:
    mark = secrets.token_hex(8)
    bench = subprocess.Popen(
        bench_command(tmp_path),
        cwd=REPO,
        env=bench_environment(mark),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bench.stderr is not None
    said: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(bench.stderr, said), daemon=True).start()
    stderr = ""
    try:
        deadline = time.monotonic() + BENCH_TIMEOUT
        # The first measured round has begun: tofu3 and ssh sessions are running.
        while "warm-up" not in stderr:
            assert time.monotonic() < deadline, f"the bench never got to its runs:\n{stderr}"
            assert bench.poll() is None, f"the bench exited early:\n{stderr}"
            try:
                stderr += said.get(timeout=1.0)
            except queue.Empty:
                continue
        time.sleep(0.5)
        bench.send_signal(signal.SIGINT)  # what Ctrl-C sends it (its children have own sessions)
        code = bench.wait(timeout=INTERRUPT_TIMEOUT)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    while not said.empty():
        stderr += said.get()
    assert code == 130, f"exit status {code} after Ctrl-C:\n{stderr}"
    assert "interrupted" in stderr
    assert_nothing_left(mark, tmp_path, vantage_endpoints(stderr))
