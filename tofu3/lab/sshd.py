"""Lab vantages: real OpenSSH ``sshd`` daemons, one per vantage, each with its own host key.

A vantage here is what a user's own machine is in production: an SSH server the coordinator logs
in to and runs the system ``curl`` on. The lab starts the distribution's ``/usr/sbin/sshd`` with
a private configuration, so it works as an ordinary user (an unprivileged sshd can log in only
the user it runs as) and as root (CI), on loopback or inside a network namespace.

The processes the lab starts are ended by pid, and only after checking that the pid still
names the process that was started (its start time in ``/proc``), so a recycled pid is never
signalled.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tofu3.lab.errors import LabError
from tofu3.lab.netns import exec_prefix

SSHD = Path("/usr/sbin/sshd")
"""sshd re-executes itself for each connection, so it must be started by an absolute path."""

PRIVSEP_DIR = Path("/run/sshd")
"""Where a root sshd chroots its unprivileged pre-authentication child."""

START_TIMEOUT = 10.0
"""Seconds a new sshd has to accept a connection and send its banner."""

STOP_TIMEOUT = 5.0
"""Seconds a process has to exit after SIGTERM before it gets SIGKILL."""

HOST_KEY_NAME = "ssh_host_ed25519_key"
CLIENT_KEY_NAME = "client_ed25519"

# Popen objects of the daemons this process started. The daemons are meant to outlive the
# function that starts them (``tofu3 lab up`` exits and leaves them running), so the objects
# are kept here: dropping them would warn that a child is still running, and keeping them lets
# end_process reap its own children.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ClientKey:
    """The lab's one SSH client key, authorised on every lab vantage."""

    private_key: Path
    public_key: str  # "ssh-ed25519 AAAA... comment"


@dataclass(frozen=True)
class SshdVantage:
    """A running lab sshd."""

    name: str
    address: str
    port: int
    pid: int
    start_ticks: int | None  # the process's start time, to tell it from a later one on its pid
    host_public_key: str  # "ssh-ed25519 AAAA...", ready to pin in an inventory
    directory: Path
    netns: str | None = None
    log_path: Path = field(default=Path(), compare=False)

    def stop(self) -> bool:
        """End this sshd (SIGTERM, then SIGKILL). Returns whether it was still running."""
        return end_process(self.pid, self.start_ticks)


def current_user() -> str:
    """The name of the user this process runs as: the only user a lab sshd lets in."""
    return pwd.getpwuid(os.geteuid()).pw_name


def generate_key(path: Path, comment: str) -> str:
    """Make an ed25519 key pair at ``path`` unless one is there; return the public key line.

    Keys are kept between runs so that host-key pins in an inventory stay valid after the lab
    is stopped and started again.
    """
    public = path.with_name(path.name + ".pub")
    if not (path.exists() and public.exists()):
        path.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        # An empty passphrase (-N '') is not a secret: the lab's keys are unencrypted on purpose.
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LabError(f"ssh-keygen could not make {path}: {result.stderr.strip()}")
    return public.read_text(encoding="utf-8").strip()


def ensure_client_key(directory: Path) -> ClientKey:
    """The lab client key in ``directory`` (made on first use)."""
    path = directory / CLIENT_KEY_NAME
    return ClientKey(private_key=path, public_key=generate_key(path, "tofu3-lab-client"))


def free_port(address: str) -> int:
    """A TCP port that is free on ``address`` now (the kernel's pick for port 0)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            raise LabError(f"cannot bind a port on {address}: {error}") from error
        port: int = probe.getsockname()[1]
        return port


def _sshd_config(
    directory: Path,
    listen: str,
    user: str,
    path_prefix: Path | None,
    *,
    forwarding: bool = False,
    extra_config: Sequence[str] = (),
) -> str:
    # Nothing is inherited from /etc/ssh/sshd_config: sshd reads only the file given with -f.
    lines = [
        f"ListenAddress {listen}",
        f"HostKey {directory / HOST_KEY_NAME}",
        f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The lab directory may sit under a group-writable path (CI workspaces, /tmp).
        "StrictModes no",
        # CI runs the lab as root; keys only, as for any other user.
        "PermitRootLogin prohibit-password",
        f"AllowUsers {user}",
        "LogLevel VERBOSE",
        # A vantage runs curl and nothing else: no tunnels or forwarded agents into the lab.
        "AllowTcpForwarding local" if forwarding else "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "PrintMotd no",
    ]
    # The login shell runs its rc files for every session, as on a real vantage: nothing is
    # set here that would let the lab skip them.
    if path_prefix is not None:
        # Tests put wrappers in front of the vantage's tools (a logging or an old curl).
        lines.append(f"SetEnv PATH={path_prefix}:/usr/local/bin:/usr/bin:/bin")
    lines += extra_config
    return "\n".join(lines) + "\n"


def start_vantage(
    directory: Path,
    name: str,
    address: str,
    port: int,
    client_public_key: str,
    *,
    netns: str | None = None,
    path_prefix: Path | None = None,
    allow_forwarding: bool = False,
    user: str | None = None,
    extra_config: Sequence[str] = (),
    command_prefix: Sequence[str] = (),
) -> SshdVantage:
    """Start an sshd vantage listening on ``address:port`` and wait until it answers.

    ``directory`` holds this vantage's files (host key, configuration, pid file, log); it is
    created if missing. ``client_public_key`` is the one key allowed to log in. With ``netns``
    the daemon runs inside that network namespace (root only; see :mod:`tofu3.lab.netns`).
    With ``path_prefix`` the sessions' PATH starts with that directory (a test hook). With
    ``allow_forwarding`` it lets the client open direct-tcpip channels: a jump host (a test hook).
    Test hooks for vantages built like real ones (a root sshd only): ``user`` is the one user let
    in instead of the current one, ``extra_config`` are sshd_config lines appended as they are
    (``MaxSessions 1``), and ``command_prefix`` is a command the daemon is started under, which
    must end by exec'ing the words that follow it (``unshare --mount ...``).
    """
    # Everything below lands in sshd_config or authorized_keys, one setting per line.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as error:
        raise LabError(f"vantage {name}: not an IP address: {address!r}") from error
    if not 0 < port < 65536:
        raise LabError(f"vantage {name}: not a TCP port: {port}")
    if not client_public_key.strip() or "\n" in client_public_key.strip():
        raise LabError(f"vantage {name}: the client public key must be one line")
    if user is not None and (not user or len(user.split()) != 1 or user != user.strip()):
        raise LabError(f"vantage {name}: not a user name: {user!r}")
    if any("\n" in line for line in extra_config):
        raise LabError(f"vantage {name}: extra sshd_config lines must be one line each")
    address = str(ip)  # canonical, as sshd will log it
    listen = f"[{address}]:{port}" if ip.version == 6 else f"{address}:{port}"

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    host_key = generate_key(directory / HOST_KEY_NAME, f"tofu3-lab-{name}")
    # "restrict" forbids forwarding, agent, X11 and pty for this key: it may only run commands.
    (directory / "authorized_keys").write_text(
        f"{'restrict,port-forwarding' if allow_forwarding else 'restrict'} "
        f"{client_public_key.strip()}\n",
        encoding="utf-8",
    )
    config = directory / "sshd_config"
    config.write_text(
        _sshd_config(
            directory,
            listen,
            user or current_user(),
            path_prefix,
            forwarding=allow_forwarding,
            extra_config=extra_config,
        ),
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        # A root sshd refuses to start without its privilege-separation directory.
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    command = [*command_prefix, str(SSHD), "-D", "-e", "-f", str(config)]
    if netns is not None:
        command = [*exec_prefix(netns), *command]
    log_path = directory / "sshd.log"
    with log_path.open("ab") as log:
        log_start = log.tell()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session, so a Ctrl-C meant for the CLI does not reach the lab daemons.
                start_new_session=True,
            )
        except OSError as error:
            raise LabError(f"cannot start {SSHD} for vantage {name}: {error}") from error
    _CHILDREN[process.pid] = process
    vantage = SshdVantage(
        name=name,
        address=address,
        port=port,
        pid=process.pid,
        start_ticks=process_start_ticks(process.pid),
        host_public_key=" ".join(host_key.split()[:2]),
        directory=directory,
        netns=netns,
        log_path=log_path,
    )
    try:
        _wait_until_listening(process, log_path, log_start, address, port)
    except LabError as error:
        vantage.stop()
        raise LabError(f"vantage {name}: {error}\n{_tail(log_path, log_start)}") from error
    except BaseException:
        vantage.stop()  # interrupted while waiting: leave nothing running
        raise
    return vantage


def _wait_until_listening(
    process: subprocess.Popen[bytes], log_path: Path, log_start: int, address: str, port: int
) -> None:
    # A banner alone could come from another daemon already on that port (this one then
    # fails to bind and exits a moment later), so sshd must also have logged that it listens.
    listening = f"Server listening on {address} port {port}.".encode()
    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"sshd exited with status {process.returncode} before it was ready")
        if listening in _read_from(log_path, log_start):
            try:
                with socket.create_connection((address, port), timeout=1.0) as connection:
                    banner = connection.recv(256)
                if banner.startswith(b"SSH-"):
                    return
                last_error = f"unexpected banner {banner[:40]!r}"
            except OSError as error:
                last_error = str(error)
        else:
            last_error = "it has not said it is listening"
        time.sleep(0.05)
    raise LabError(f"sshd on {address}:{port} not ready after {START_TIMEOUT:.0f} s: {last_error}")


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return b""


def _tail(path: Path, offset: int, lines: int = 20) -> str:
    text = _read_from(path, offset).decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Process bookkeeping, shared by every daemon the lab starts (sshd here, the registry too).


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # Field 2 (the command name) may itself hold spaces and parentheses: count from its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :]
    return rest[:1] or None


def process_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` is running and (when ``start_ticks`` is known) is the same process."""
    if pid <= 0:
        return False
    _reap(pid)
    if Path("/proc/self/stat").exists():
        state = _proc_state(pid)
        if state is None or state in "ZX":
            return False
        return start_ticks is None or process_start_ticks(pid) == start_ticks
    # Without /proc the pid is all there is to go on.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    # A child of this process that has exited stays a zombie until waited for.
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def end_process(pid: int, start_ticks: int | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """End the process ``pid`` (SIGTERM, wait, then SIGKILL) if it is still the one started.

    Returns whether it was running. Raises LabError if it survives SIGKILL.
    """
    if pid == os.getpid():
        raise LabError("refusing to signal this process itself")
    if not process_alive(pid, start_ticks):
        _CHILDREN.pop(pid, None)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError as error:
            raise LabError(f"not allowed to signal pid {pid}: {error}") from error
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_alive(pid, start_ticks):
                _CHILDREN.pop(pid, None)
                return True
            time.sleep(0.02)
    if process_alive(pid, start_ticks):
        raise LabError(f"pid {pid} did not exit after SIGKILL")
    _CHILDREN.pop(pid, None)
    return True
