"""The road to a vantage: directly, through a ProxyCommand, or through ProxyJump hosts.

paramiko has no ProxyJump. Here it is built as OpenSSH builds it: log in to the jump host
(itself reached by its own route), open a ``direct-tcpip`` channel from it to the next host,
and run the next SSH session inside that channel. A jump host is checked as strictly as a
vantage: its key must be in known_hosts (under its HostKeyAlias or [HostName]:Port) and is
never added; an unknown or different key stops the connection. A jump host has no place in
the inventory, so it cannot be pinned there.

Everything paramiko or a socket raises here becomes a tofu3 error.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import paramiko

from tofu3.errors import HostKeyError, VantageUnreachable
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.known_hosts import (
    RecordingRejectPolicy,
    fingerprint,
    key_line,
    known_host_keys,
)
from tofu3.remote.ssh_config import SshTarget

_PROXY_STOP_SECONDS = 5.0


@dataclass(frozen=True)
class OfferedHostKey:
    """The host key a server offered, and what known_hosts says about it."""

    key_line: str  # "ssh-ed25519 AAAA..."
    fingerprint: str  # "SHA256:..."
    known_hosts: str  # "agrees", "unknown" or "differs"


def paramiko_host_key_name(target: SshTarget) -> str:
    """The name paramiko looks host keys up under when given ``target``'s address: bare on
    port 22, else ``[host]:port`` (an IPv6 host unbracketed inside)."""
    host = target.hostname.strip("[]")
    return host if target.port == 22 else f"[{host}]:{target.port}"


def log_in(client: paramiko.SSHClient, target: SshTarget, sock: Any, limits: Limits) -> None:
    """``client.connect`` to ``target`` (over ``sock`` when it is routed) with tofu3's
    timeouts and keys: the target's identity files, else the default ones, and ssh-agent."""
    identity = list(target.identity_files) or None
    client.connect(
        hostname=target.hostname,
        port=target.port,
        username=target.user,
        # paramiko takes a list of files (its docs say so; the stub says str).
        key_filename=cast("str | None", identity),
        look_for_keys=identity is None,
        allow_agent=True,
        sock=sock,
        timeout=limits.ssh_connect_timeout,
        banner_timeout=limits.ssh_connect_timeout,
        auth_timeout=limits.ssh_auth_timeout,
        channel_timeout=limits.ssh_connect_timeout,
    )


def open_route(target: SshTarget, vantage: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """A socket-like connection to ``target`` when it is reached through a ProxyCommand or
    jump hosts (for paramiko's ``sock=``), or None when it is reached directly by TCP."""
    if target.proxy_command is not None:
        return _ShellProxy(target.proxy_command, vantage)
    if target.jump is not None:
        return _through_jump(target, vantage, limits)
    return None


def offered_host_key(
    target: SshTarget, vantage: str, limits: Limits = DEFAULT_LIMITS
) -> OfferedHostKey:
    """The host key ``target`` offers, learnt by key exchange alone: no login, nothing
    trusted, nothing written. Jump hosts on the way are checked strictly as always."""
    try:
        sock = open_route(target, vantage, limits) or socket.create_connection(
            (target.hostname, target.port), timeout=limits.ssh_connect_timeout
        )
    except OSError as exc:
        raise _unreachable(vantage, target, exc) from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = limits.ssh_connect_timeout
        transport.start_client(timeout=limits.ssh_connect_timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise _unreachable(vantage, target, exc) from None
    finally:
        transport.close()
    known = known_host_keys(target.known_hosts_files, target.known_hosts_name)
    if not known:
        agreement = "unknown"
    elif any(k == key for k in known):
        agreement = "agrees"
    else:
        agreement = "differs"
    return OfferedHostKey(key_line(key), fingerprint(key), agreement)


def connect_jump(hop: SshTarget, vantage: str, limits: Limits) -> paramiko.SSHClient:
    """A logged-in connection to a jump host, its key checked against known_hosts."""
    client = paramiko.SSHClient()
    policy = RecordingRejectPolicy()
    client.set_missing_host_key_policy(policy)
    name = paramiko_host_key_name(hop)
    for key in known_host_keys(hop.known_hosts_files, hop.known_hosts_name):
        client.get_host_keys().add(name, key.get_name(), key)
    sock = open_route(hop, vantage, limits)
    try:
        log_in(client, hop, sock, limits)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(
            f"vantage {vantage!r}: jump host {hop.alias!r} ({hop.known_hosts_name}) offered "
            f"host key {fingerprint(exc.key)}, which does not match the key known_hosts has "
            f"for it ({fingerprint(exc.expected_key)}): refusing to connect (someone may be "
            "intercepting; if the host was reinstalled, replace its known_hosts line)",
            vantage=vantage,
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        if policy.offered is not None:
            _unknown_jump_key(hop, vantage, policy.offered)
        raise _unreachable(vantage, hop, exc, jump=True) from None
    return client


def no_delay(sock: object) -> None:
    """Turn off Nagle's algorithm, as OpenSSH does: every command is a few small messages
    (open a channel, exec, stdin), each waiting for the answer to the one before, and with
    Nagle and delayed ACKs each of those waits up to 40 ms more."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _through_jump(target: SshTarget, vantage: str, limits: Limits) -> _JumpProxy:
    assert target.jump is not None  # noqa: S101 - the caller checked
    hop = target.jump
    client = connect_jump(hop, vantage, limits)
    try:
        transport = client.get_transport()
        if transport is None:
            raise paramiko.SSHException("the jump connection closed")
        no_delay(transport.sock)
        channel = transport.open_channel(
            "direct-tcpip",
            (target.hostname, target.port),
            ("127.0.0.1", 0),
            timeout=limits.ssh_connect_timeout,
        )
    except paramiko.ChannelException as exc:
        client.close()
        raise VantageUnreachable(
            f"vantage {vantage!r}: jump host {hop.alias!r} could not open a connection to "
            f"{target.hostname}:{target.port} ({exc.text}; does its sshd allow TCP forwarding?)"
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise _unreachable(vantage, hop, exc, jump=True) from None
    return _JumpProxy(channel, client, hop.alias)


class _JumpProxy(paramiko.ProxyCommand):
    """A direct-tcpip channel through a jump host, as paramiko's socket-like ``sock``.

    ProxyCommand is paramiko's type for a socket-like object that is not a socket; here no
    process runs: what OpenSSH does with ``ssh -W`` is done in-process with a channel. Closing
    it closes the channel and the jump host's connection (and, through that, its own route).
    """

    def __init__(self, channel: paramiko.Channel, jump: paramiko.SSHClient, alias: str) -> None:
        # ProxyCommand.__init__ would start a process; this proxy has none.
        self.cmd = ["jump", alias]
        self.timeout = None
        self._channel = channel
        self._jump = jump

    def send(self, content: Any) -> int:
        """Send on the channel; returns how many bytes went."""
        return self._channel.send(content)

    def recv(self, size: int) -> bytes:
        """Read up to ``size`` bytes from the channel (b"" at its end)."""
        return self._channel.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        """Set the channel's read timeout (paramiko polls with it)."""
        self.timeout = timeout
        self._channel.settimeout(timeout)

    def close(self) -> None:
        """Close the channel and the jump host's connection. Closing a channel sends a
        message, which fails when the road beyond is already gone (a chain closes from both
        ends at once); the connection is closed all the same."""
        try:
            self._channel.close()
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            self._jump.close()

    @property
    def closed(self) -> bool:
        """Whether the channel is closed."""
        return bool(self._channel.closed)


class _ShellProxy(paramiko.ProxyCommand):
    """A ProxyCommand run as ssh runs it: by ``sh -c`` (paramiko's own splits the command into
    words and runs it without a shell), its stderr passed through, its end of output read as
    the connection's end (paramiko's would poll a dead command until a timeout), and ended and
    reaped on close. The command comes from the user's own ssh_config."""

    def __init__(self, command: str, vantage: str) -> None:
        # Not ProxyCommand.__init__: it would run the command without a shell.
        self.cmd = ["/bin/sh", "-c", f"exec {command}"]
        self.timeout = None
        try:
            self.process = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            raise VantageUnreachable(
                f"vantage {vantage!r}: cannot start its ProxyCommand: {exc}"
            ) from None

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of the command's output; b"" once it has ended."""
        stdout = self.process.stdout
        assert stdout is not None  # noqa: S101 - Popen was given stdout=PIPE
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError()
            readable, _, _ = select.select([stdout], [], [], remaining)
            if readable:
                try:
                    return os.read(stdout.fileno(), size)
                except OSError as exc:
                    raise paramiko.ProxyCommandFailure(" ".join(self.cmd), str(exc)) from None

    def close(self) -> None:
        """End the command (SIGTERM, then SIGKILL) and reap it."""
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_PROXY_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def _unknown_jump_key(hop: SshTarget, vantage: str, key: paramiko.PKey) -> NoReturn:
    files = ", ".join(str(path) for path in hop.known_hosts_files[:1]) or "known_hosts"
    raise HostKeyError(
        f"vantage {vantage!r}: jump host {hop.alias!r} ({hop.known_hosts_name}) has an unknown "
        f"host key {fingerprint(key)} ({key.get_name()}).\n"
        "tofu3 checks jump hosts against known_hosts and never adds a key. Check that "
        "fingerprint out of band (on the jump host: ssh-keygen -lf "
        f"/etc/ssh/ssh_host_*_key.pub), then add this line to {files}:\n"
        f"    {hop.known_hosts_name} {key_line(key)}",
        vantage=vantage,
    )


def _unreachable(
    vantage: str, target: SshTarget, exc: BaseException, *, jump: bool = False
) -> VantageUnreachable:
    if isinstance(exc, socket.timeout | TimeoutError):
        reason = "timed out"
    elif isinstance(exc, paramiko.AuthenticationException):
        reason = f"authentication failed as {target.user or 'the current user'}"
    elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        reason = "connection refused"
    else:
        reason = str(exc) or type(exc).__name__
    what = f"jump host {target.alias!r}" if jump else target.describe()
    return VantageUnreachable(f"vantage {vantage!r}: {what}: {reason}")
