"""The SSH half of the seam: one paramiko connection per vantage, commands with stdin,
bounded output and deadlines.

Everything paramiko or a socket can raise becomes a tofu3 error here; nothing above this
module imports paramiko.
"""

from __future__ import annotations

import base64
import ipaddress
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from tofu3.errors import (
    ConfigurationError,
    HostKeyError,
    RemoteTimeout,
    TransportError,
    VantageUnreachable,
)
from tofu3.inventory import Vantage
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.jump import log_in, no_delay, open_route, paramiko_host_key_name
from tofu3.remote.known_hosts import (
    RecordingRejectPolicy,
    fingerprint,
    key_line,
    known_host_keys,
)
from tofu3.remote.ssh_config import SshTarget, load_ssh_config, resolve_vantage

_READ_CHUNK = 65536
# Seconds to let paramiko notice that a connection died, when a command ended without status.
_LOST_CONNECTION_GRACE = 1.0


@dataclass(frozen=True)
class CommandResult:
    """What one remote command produced."""

    exit_status: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False


class SshConnection:
    """An open SSH connection to one vantage."""

    def __init__(self, vantage: Vantage, client: paramiko.SSHClient, limits: Limits) -> None:
        self.vantage = vantage
        self._client = client
        self._limits = limits
        transport = client.get_transport()
        key = transport.get_remote_server_key() if transport is not None else None
        self.host_key_fingerprint = fingerprint(key) if key is not None else ""
        self.peer = _peer(transport.sock if transport is not None else None)
        if transport is not None:
            no_delay(transport.sock)

    @classmethod
    def connect(
        cls, vantage: Vantage, limits: Limits = DEFAULT_LIMITS, target: SshTarget | None = None
    ) -> SshConnection:
        """Connect with strict host-key checking: the pinned key, else known_hosts; never
        auto-add. Raises HostKeyError (unknown or changed key), VantageUnreachable.
        ``target``: the vantage already resolved through ~/.ssh/config (else done here)."""
        client = paramiko.SSHClient()
        policy = RecordingRejectPolicy()
        client.set_missing_host_key_policy(policy)
        # host may be a ~/.ssh/config alias (HostName, Port, User, IdentityFile, ProxyCommand,
        # ProxyJump); the inventory's own values win over the config's.
        if target is None:
            target = resolve_vantage(vantage, load_ssh_config())
        name = paramiko_host_key_name(target)
        try:
            if vantage.host_key is not None:
                key_type, data = vantage.host_key.split(" ", 1)
                pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
                client.get_host_keys().add(name, key_type, pinned)
            else:
                # Looked up as ssh does: under HostKeyAlias or [HostName]:Port, never the alias.
                for known in known_host_keys(target.known_hosts_files, target.known_hosts_name):
                    client.get_host_keys().add(name, known.get_name(), known)
        except (paramiko.SSHException, ValueError, OSError) as exc:
            raise ConfigurationError(
                f"vantage {vantage.name!r}: cannot use its host key: {exc}"
            ) from None
        sock = open_route(target, vantage.name, limits)  # None: straight to hostname:port
        try:
            log_in(client, target, sock, limits)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"vantage {vantage.name!r} ({vantage.address}) offered host key "
                f"{fingerprint(exc.key)}, which does not match the pinned or "
                f"known key {fingerprint(exc.expected_key)}: refusing to connect "
                "(someone may be intercepting; if the host was reinstalled, pin its new key)",
                vantage=vantage.name,
            ) from None
        except paramiko.SSHException as exc:
            cause = _handshake_failure(client, exc, limits)
            client.close()
            if policy.offered is not None:
                key = policy.offered
                raise HostKeyError(
                    f"vantage {vantage.name!r} ({vantage.address}) has an unknown host key "
                    f"{fingerprint(key)} ({key.get_name()}).\n"
                    "Check that fingerprint out of band (on the vantage: "
                    "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then pin it in the "
                    f"inventory under vantage {vantage.name!r}:\n"
                    f'    host_key: "{key_line(key)}"',
                    vantage=vantage.name,
                ) from None
            if isinstance(exc, paramiko.PasswordRequiredException):
                raise ConfigurationError(
                    f"vantage {vantage.name!r}: identity file {', '.join(target.identity_files)} "
                    "needs a passphrase; load it into ssh-agent"
                ) from None
            raise _unreachable(vantage, cause) from None
        except (OSError, EOFError) as exc:
            client.close()
            raise _unreachable(vantage, exc) from None
        return cls(vantage, client, limits)

    def run(
        self,
        command: str,
        stdin: bytes = b"",
        *,
        timeout: float,
        stdout_cap: int,
        on_stderr: Callable[[bytes], None] | None = None,
        close_stdin: bool = True,
        idle_timeout: float | None = None,
    ) -> CommandResult:
        """Run ``command`` (a POSIX sh command line with nothing secret in it) with ``stdin``.

        stdout and stderr are drained together so neither can block the other; stdout is
        capped (reading stops and the channel closes past ``stdout_cap``), stderr is capped
        too. Raises RemoteTimeout past ``timeout`` seconds, when the vantage does not start
        the command within the SSH connect timeout, or (with ``idle_timeout``) when nothing
        at all comes back for that long; TransportError if the connection fails or is lost.
        With ``close_stdin`` false, stdin stays open until the command ends and the channel
        closes: the remote side uses that to notice when the coordinator is gone.
        """
        deadline = time.monotonic() + timeout
        try:
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise VantageUnreachable(f"vantage {self.vantage.name!r}: connection lost")
            channel = transport.open_session(timeout=self._limits.ssh_connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise VantageUnreachable(
                f"vantage {self.vantage.name!r}: cannot open a session: {exc}"
            ) from None
        # paramiko waits for the answer to an exec request without a timeout: a vantage that
        # froze after opening the session would hold this thread for ever. Closing the
        # channel from a timer ends that wait.
        stalled = threading.Event()

        def give_up() -> None:
            stalled.set()
            channel.close()

        guard = threading.Timer(self._limits.ssh_connect_timeout, give_up)
        guard.daemon = True
        try:
            guard.start()
            try:
                channel.exec_command(command)
                if stdin:
                    channel.sendall(stdin)
            finally:
                guard.cancel()
            if close_stdin:
                channel.shutdown_write()
            result = self._drain(
                channel, deadline, timeout, stdout_cap, on_stderr, idle_timeout=idle_timeout
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if stalled.is_set():
                raise RemoteTimeout(
                    f"vantage {self.vantage.name!r}: did not start a command within "
                    f"{self._limits.ssh_connect_timeout:.0f} s"
                ) from None
            raise TransportError(
                f"vantage {self.vantage.name!r}: connection failed during a command: {exc}"
            ) from None
        finally:
            channel.close()
        if result.exit_status == -1 and not result.stdout_truncated:
            # No exit status: the command did not end normally. If the connection went away
            # (the vantage was killed, rebooted or cut off), say so rather than "no output";
            # paramiko closes the channels a moment before it marks the transport inactive.
            transport.join(_LOST_CONNECTION_GRACE)
            if not transport.is_active():
                raise TransportError(
                    f"vantage {self.vantage.name!r}: the SSH connection was lost during a command"
                )
        return result

    def _drain(
        self,
        channel: paramiko.Channel,
        deadline: float,
        timeout: float,
        stdout_cap: int,
        on_stderr: Callable[[bytes], None] | None,
        *,
        idle_timeout: float | None,
    ) -> CommandResult:
        stdout = bytearray()
        stderr = bytearray()
        stderr_cap = self._limits.stderr_bytes
        last_heard = time.monotonic()
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                raise RemoteTimeout(
                    f"vantage {self.vantage.name!r}: command did not finish within {timeout:.0f} s"
                )
            if idle_timeout is not None and now - last_heard > idle_timeout:
                raise RemoteTimeout(
                    f"vantage {self.vantage.name!r}: nothing came back for {idle_timeout:.0f} s "
                    "(the vantage froze, or the connection to it is gone)"
                )
            readable, _, _ = select.select([channel], [], [], min(remaining, 1.0))
            progressed = False
            while channel.recv_ready():
                chunk = channel.recv(_READ_CHUNK)
                if not chunk:
                    break
                progressed = True
                stdout += chunk
                if len(stdout) > stdout_cap:
                    return CommandResult(-1, bytes(stdout[: stdout_cap + 1]), bytes(stderr), True)
            while channel.recv_stderr_ready():
                chunk = channel.recv_stderr(_READ_CHUNK)
                if not chunk:
                    break
                progressed = True
                if len(stderr) < stderr_cap:
                    stderr += chunk[: stderr_cap - len(stderr)]
                if on_stderr is not None:
                    on_stderr(chunk)
            if progressed:
                last_heard = time.monotonic()
            if (
                not progressed
                and channel.exit_status_ready()
                and not channel.recv_ready()
                and not channel.recv_stderr_ready()
                and (channel.eof_received or channel.closed)
            ):
                return CommandResult(channel.recv_exit_status(), bytes(stdout), bytes(stderr))
            if not readable and channel.closed and not progressed:
                return CommandResult(channel.recv_exit_status(), bytes(stdout), bytes(stderr))

    def close(self) -> None:
        """Close the connection (and with it every channel still open)."""
        self._client.close()


def _handshake_failure(
    client: paramiko.SSHClient, exc: paramiko.SSHException, limits: Limits
) -> BaseException:
    """What really ended a failed connect. When the banner or the key exchange does not
    finish in time, paramiko either says it could not read the banner or goes on to
    authenticate and fails with "No existing session" (keeping the real reason, if it has
    one, in the transport): both are a vantage that hung, and are said the same way."""
    cause: BaseException = exc
    if str(exc) == "No existing session":
        transport = client.get_transport()
        saved = transport.get_exception() if transport is not None else None
        cause = saved if saved is not None else TimeoutError()
    if isinstance(cause, TimeoutError) or str(cause) == "Error reading SSH protocol banner":
        return TimeoutError(
            f"no SSH handshake (banner and key exchange) within {limits.ssh_connect_timeout:g} s"
        )
    return cause


def _peer(sock: object) -> tuple[str, int] | None:
    """The address and port a direct connection reached, as the kernel saw it (so two names
    for one host compare equal); None when the connection goes through a proxy or jump."""
    if not isinstance(sock, socket.socket):
        return None
    try:
        host, port = sock.getpeername()[:2]
        address = ipaddress.ip_address(str(host).partition("%")[0])
    except (OSError, ValueError):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address), int(port)


def _unreachable(vantage: Vantage, exc: BaseException) -> VantageUnreachable:
    if isinstance(exc, socket.timeout | TimeoutError):
        detail = str(exc)
        reason = f"timed out: {detail}" if detail and detail != "timed out" else "timed out"
    elif isinstance(exc, paramiko.AuthenticationException) and "timeout" in str(exc).lower():
        reason = "timed out during authentication"
    elif isinstance(exc, paramiko.AuthenticationException):
        reason = f"authentication failed as {vantage.user or 'the current user'}"
    elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reason = "connection refused"
    else:
        reason = str(exc) or type(exc).__name__
    return VantageUnreachable(f"vantage {vantage.name!r} ({vantage.address}): {reason}")
