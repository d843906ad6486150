"""The SSH half of the seam: one paramiko connection per vantage, strict host-key checking,
and the one session (session.py) that runs on it.

Everything paramiko or a socket can raise becomes a tofu3 error here; nothing above this
module imports paramiko.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from collections.abc import Sequence

import paramiko

from tofu3.errors import (
    ConfigurationError,
    HostKeyError,
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
from tofu3.remote.session import VantageSession
from tofu3.remote.session_script import COMMAND
from tofu3.remote.ssh_config import SshTarget, load_ssh_config, resolve_vantage
from tofu3.remote.stream import ChannelStream


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

    def start_session(self, curl_args: Sequence[str] = ()) -> VantageSession:
        """Open this connection's one session (``exec sh -s``); closing the session closes
        the connection. Raises VantageUnreachable, RemoteTimeout, TransportError."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise VantageUnreachable(f"vantage {self.vantage.name!r}: connection lost")
        stream = ChannelStream.start(
            transport, COMMAND, self.vantage.name, self._limits.ssh_connect_timeout
        )
        return VantageSession(
            stream,
            self.vantage.name,
            curl_args=curl_args,
            limits=self._limits,
            host_key_fingerprint=self.host_key_fingerprint,
            on_close=self.close,
        )

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
