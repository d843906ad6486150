"""Helpers for the attack scenarios: run a verification and read its JSON report, watch the
lab's logs, stand in for vantages that hang, and end exactly the processes a test started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import yaml

from tests.integration.conftest import CLI_TIMEOUT, CliResult, Lab, run_cli
from tofu3.lab.sshd import (
    SshdVantage,
    end_process,
    ensure_client_key,
    free_port,
    generate_key,
    process_start_ticks,
    start_vantage,
)


@dataclass(frozen=True)
class Verification:
    """One ``tofu3 verify --json`` run: its exit status, report and how long it took."""

    result: CliResult
    report: dict[str, Any]
    seconds: float

    @property
    def code(self) -> int:
        return self.result.code

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])

    def findings(self, code: str | None = None) -> list[dict[str, Any]]:
        """The report's findings, or those with ``code``."""
        found: list[dict[str, Any]] = self.report["findings"]
        return [f for f in found if code is None or f["code"] == code]

    def blamed(self, code: str) -> set[str | None]:
        """The vantages findings with ``code`` name."""
        return {f["vantage"] for f in self.findings(code)}

    def vantage(self, name: str) -> dict[str, Any]:
        """The report's entry for vantage ``name``."""
        entry: dict[str, Any] = next(v for v in self.report["vantages"] if v["name"] == name)
        return entry

    def artifact(self, key: str) -> dict[str, Any]:
        """The report's artifact ``key``."""
        entry: dict[str, Any] = next(a for a in self.report["artifacts"] if a["key"] == key)
        return entry


def verify(lab_dir: Path, reference: str, inventory: Path, *args: str) -> Verification:
    """Run ``tofu3 verify REF -i INVENTORY --json ARGS`` and parse the report it printed."""
    start = time.monotonic()
    result = run_cli(["verify", reference, "-i", str(inventory), "--json", *args], lab_dir=lab_dir)
    seconds = time.monotonic() - start
    assert result.stdout.strip(), f"no report (exit {result.code}): {result.stderr[-2000:]}"
    return Verification(result, result.json(), seconds)


@dataclass(frozen=True)
class AttackLab(Lab):
    """A loopback lab for the attack scenarios; ``tamper(vantage, kind)`` takes "all" too."""

    def verify(self, reference: str, *args: str, inventory: Path | None = None) -> Verification:
        return verify(self.directory, reference, inventory or self.inventory, *args)

    def registry_log(self) -> list[str]:
        """The lab registry's request log, one line per response."""
        return (self.directory / "registry.log").read_text(encoding="utf-8").splitlines()

    def sshd_log_count(self, needle: str) -> int:
        """How many lines with ``needle`` the lab's sshd vantages have logged so far, all
        together: "Accepted publickey" for each login, "Starting session" for each command."""
        return sum(
            (self.directory / "vantages" / v.name / "sshd.log")
            .read_text(encoding="utf-8", errors="replace")
            .count(needle)
            for v in self.state.vantages
        )

    def edited_inventory(self, path: Path, name: str, **changes: object) -> Path:
        """A copy of the lab inventory with vantage ``name``'s keys changed."""
        document = yaml.safe_load(self.inventory.read_text())
        for vantage in document["vantages"]:
            if vantage["name"] == name:
                vantage.update(changes)
        path.write_text(yaml.safe_dump(document))
        return path


@contextmanager
def replacement_vantage(
    lab: AttackLab, name: str, directory: Path
) -> Iterator[tuple[Path, SshdVantage]]:
    """A fresh sshd standing in for lab vantage ``name`` (so a test may freeze or kill it
    without harming the module's lab), and an inventory that uses it. Its curl keeps the lab
    vantage's source address, so the lab's tamper switches for ``name`` still apply."""
    client = ensure_client_key(lab.directory)
    index = [v.name for v in lab.state.vantages].index(name)
    address = f"127.0.0.{41 + index}"
    vantage = start_vantage(directory / name, name, address, free_port(address), client.public_key)
    try:
        inventory = lab.edited_inventory(
            directory / "inventory.yaml",
            name,
            host=address,
            port=vantage.port,
            host_key=vantage.host_public_key,
        )
        yield inventory, vantage
    finally:
        for pid, ticks in descendants(vantage.pid):
            end_process(pid, ticks)
        vantage.stop()


def descendants(pid: int) -> list[tuple[int, int | None]]:
    """Every living descendant of ``pid`` (children first found first), with start times."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[tuple[int, int | None]] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append((child, process_start_ticks(child)))
        queue.extend(children.get(child, []))
    return found


def command_of(pid: int) -> str:
    """The command line of ``pid`` as ps shows it (sshd retitles itself: "sshd: root@notty")."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def wait_for_log_line(path: Path, *needles: str, after: int = 0, timeout: float = 60.0) -> str:
    """The first line of ``path`` past its first ``after`` lines that holds every needle,
    waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for line in path.read_text(encoding="utf-8").splitlines()[after:]:
                if all(needle in line for needle in needles):
                    return line
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no line with {needles} in {path} after {timeout:.0f} s")


def start_verify(
    lab_dir: Path, reference: str, inventory: Path, *args: str
) -> subprocess.Popen[str]:
    """``tofu3 verify --json`` started in the background; the caller waits for it."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "TOFU3_LAB_DIR": str(lab_dir)}
    # -X faulthandler: SIGABRT makes it print every thread's stack (see wait_until_held).
    command = [sys.executable, "-X", "faulthandler", "-m", "tofu3", "verify", reference]
    return subprocess.Popen(
        [*command, "-i", str(inventory), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def wait_until_held(lab: AttackLab, process: subprocess.Popen[str], after: int) -> None:
    """Wait until the lab's CDN holds a layer half-sent (the "stall" switch) for the
    verification ``process``; if that never happens, end it and say what it printed."""
    try:
        wait_for_log_line(lab.directory / "registry.log", " cdn ", " holding ", after=after)
    except AssertionError as error:
        process.send_signal(signal.SIGABRT)  # where it waits, on stderr; then it ends
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        raise AssertionError(f"{error}; verify printed:\n{stderr[-8000:]}") from None


def finish(process: subprocess.Popen[str]) -> CliResult:
    """Wait for a background verification; kill it (by its pid) if it overruns."""
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return CliResult(process.returncode, stdout, stderr)


def signal_all(processes: Sequence[tuple[int, int | None]], sig: signal.Signals) -> None:
    """Send ``sig`` to each process that is still the one recorded (pid and start time)."""
    for pid, ticks in processes:
        if ticks is not None and process_start_ticks(pid) == ticks:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)


class SilentListener:
    """A TCP listener that accepts connections and never says anything: a vantage that
    hangs before the SSH banner."""

    def __init__(self, address: str) -> None:
        self._socket = socket.create_server((address, 0))
        self.address = address
        self.port: int = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


class _HangAtAuth(paramiko.ServerInterface):
    def __init__(self, release: threading.Event) -> None:
        self._release = release

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # The vantage takes the key and then never decides.
        self._release.wait(120)
        return paramiko.common.AUTH_FAILED


class HangAtAuthServer:
    """An SSH server with a host key of its own that completes the key exchange and then
    never answers the login: a vantage that hangs at authentication."""

    def __init__(self, address: str, directory: Path) -> None:
        key_path = directory / "hang_host_ed25519"
        self.host_key = " ".join(generate_key(key_path, "tofu3-test-hang").split()[:2])
        self._key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
        self._release = threading.Event()
        self._socket = socket.create_server((address, 0))
        self.address = address
        self.port: int = self._socket.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(self._key)
            self._transports.append(transport)
            try:
                transport.start_server(server=_HangAtAuth(self._release))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def close(self) -> None:
        self._release.set()
        self._socket.close()
        for transport in self._transports:
            transport.close()


class TcpRelay:
    """A TCP port that passes every connection on to ``target``: another road to the same
    machine (a port forward, a second address), which an inventory cannot tell apart."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self._socket = socket.create_server((address, 0))
        self.address = address
        self.port: int = self._socket.getsockname()[1]
        self._target = target
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inbound, _ = self._socket.accept()
                outbound = socket.create_connection(self._target, timeout=10)
            except OSError:
                return
            self._open += [inbound, outbound]
            for source, sink in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._socket.close()
        for connection in self._open:
            connection.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
