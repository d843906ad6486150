"""Fixed costs on this machine that every run pays, measured before the runs so the report
can say where time goes: a new SSH connection, one more command on an open connection (each
directly and through a far vantage's forwarder), and tofu3's own start-up.

A command on an open connection is what tofu3 pays per request (it opens one connection per
vantage and runs one command per request on it). Much of that is the vantage user's login
shell: sshd runs every command as ``$SHELL -c COMMAND``, and bash, started by sshd, reads
~/.bashrc first (the lab, like any vantage, lets it). The bare baseline pays it once per
vantage, tofu3 once per command. Through a far link, each command also pays the round trips
of opening a channel and running it.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import ssh_argv, ssh_options
from bench.measure import RunFailed, run_command
from bench.processes import Children
from bench.stage import say
from tofu3.inventory import Vantage

PROBES = 5
"""Runs of each probe; the median is kept."""
PROBE_TIMEOUT = 120.0
TOO_SLOW = 5.0
"""Seconds of one SSH command beyond which the bench refuses to measure."""
MASTER_START_TIMEOUT = 20.0
_LOGIN_SHELL = 'getent passwd "$(id -un)" | cut -d: -f7'


@dataclass(frozen=True)
class SshCost:
    """``ssh vantage true`` on one path: a new connection and one more command on an open one."""

    connection_seconds: float  # connect, authenticate, run, close
    command_seconds: float  # over an open (ControlMaster) connection

    def text(self) -> str:
        """``N ms on a new connection, N ms on an open one``."""
        return (
            f"{self.connection_seconds * 1000:.0f} ms on a new connection, "
            f"{self.command_seconds * 1000:.0f} ms on an open one"
        )


@dataclass(frozen=True)
class Overheads:
    """What SSH (directly and through a far link), and one tofu3 start, cost here."""

    login_shell: str
    direct: SshCost
    far: SshCost | None  # through the far vantage's forwarder, when there is one
    far_round_trip_ms: float
    tofu3_start_seconds: float  # ``python -m tofu3 --version``

    def notes(self) -> list[str]:
        """Lines for the report."""
        lines = [
            f"ssh:     `ssh vantage true` takes {self.direct.text()} (the vantage user's login "
            f"shell, {self.login_shell}, with its rc files, as for tofu3 and the baseline alike)",
        ]
        if self.far is not None:
            lines.append(
                f"ssh far: through a far link ({self.far_round_trip_ms:g} ms round trip) it "
                f"takes {self.far.text()}"
            )
        lines.append(
            f"start:   `python -m tofu3 --version` takes {self.tofu3_start_seconds * 1000:.0f} ms "
            "(interpreter and imports, part of every tofu3 run)"
        )
        return lines


def measure_overheads(
    children: Children,
    env: dict[str, str],
    vantage: Vantage,
    known_hosts: Path,
    workdir: Path,
    *,
    far: Vantage | None = None,
    far_round_trip_ms: float = 0.0,
) -> Overheads:
    """Measure each fixed cost (medians of PROBES); ``far`` is the same vantage as the
    inventory of the far case has it (through its forwarder). RunFailed when one SSH command
    is so slow that nothing else would be measured."""
    shell = _login_shell(children, env, vantage, known_hosts, workdir)
    direct = _ssh_cost(children, env, vantage, known_hosts, "")
    far_cost = None
    if far is not None:
        far_cost = _ssh_cost(children, env, far, known_hosts, "through the far link, ")
    start_seconds = statistics.median(
        run_command(children, [sys.executable, "-m", "tofu3", "--version"], env, PROBE_TIMEOUT)
        for _ in range(PROBES)
    )
    say(f"`python -m tofu3 --version`: {start_seconds * 1000:.0f} ms")
    return Overheads(shell, direct, far_cost, far_round_trip_ms, start_seconds)


def _ssh_cost(
    children: Children, env: dict[str, str], vantage: Vantage, known_hosts: Path, where: str
) -> SshCost:
    new = [
        run_command(children, ssh_argv(vantage, known_hosts, "true"), env, PROBE_TIMEOUT)
        for _ in range(PROBES)
    ]
    connection_seconds = statistics.median(new)
    say(f"`ssh vantage true`, {where}new connection: {connection_seconds * 1000:.0f} ms")
    command_seconds = _command_on_open_connection(children, env, vantage, known_hosts)
    say(f"`ssh vantage true`, {where}open connection: {command_seconds * 1000:.0f} ms")
    return SshCost(connection_seconds, command_seconds)


def _login_shell(
    children: Children, env: dict[str, str], vantage: Vantage, known_hosts: Path, workdir: Path
) -> str:
    """The vantage user's login shell; fails fast when one SSH command is pathologically slow."""
    out = workdir / "login-shell.out"
    started = time.perf_counter()
    with out.open("wb") as stdout:
        process = children.start(
            ssh_argv(vantage, known_hosts, _LOGIN_SHELL), env=env, stdout=stdout
        )
        (finished,) = children.wait([process], PROBE_TIMEOUT)
    seconds = finished.ended_at - started
    if seconds > TOO_SLOW:
        raise RunFailed(
            f"one SSH command takes {seconds:.1f} s on this machine: the numbers would measure "
            "that, not tofu3. Look at the login shell's start-up files (~/.bashrc): a stale "
            "~/.pyenv/shims/.pyenv-shim lock, say, makes every `pyenv init` wait 60 s."
        )
    text = out.read_text(encoding="utf-8", errors="replace").strip()
    if finished.exit_code != 0 or not text:
        raise RunFailed(f"cannot read the login shell on {vantage.name}: {text[-300:]}")
    return text.splitlines()[-1]


def _command_on_open_connection(
    children: Children, env: dict[str, str], vantage: Vantage, known_hosts: Path
) -> float:
    """Median seconds of ``ssh vantage true`` multiplexed over one open connection (an
    OpenSSH ControlMaster, ended by pid afterwards): the cost of one more command."""
    # A short directory of its own: a unix socket path must stay under ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="t3b-"))
    socket = directory / "cm"
    options = ssh_options(vantage, known_hosts)
    master = children.start(
        ["ssh", *options, "-M", "-N", "-o", f"ControlPath={socket}", vantage.host], env=env
    )
    try:
        deadline = time.monotonic() + MASTER_START_TIMEOUT
        while not socket.exists():
            if master.poll() is not None or time.monotonic() > deadline:
                raise RunFailed(f"the ssh ControlMaster to {vantage.name} did not start")
            time.sleep(0.05)
        argv = ["ssh", *options, "-o", "ControlMaster=no", "-o", f"ControlPath={socket}"]
        return statistics.median(
            run_command(children, [*argv, vantage.host, "true"], env, PROBE_TIMEOUT)
            for _ in range(PROBES)
        )
    finally:
        children.end(master)
        shutil.rmtree(directory, ignore_errors=True)
