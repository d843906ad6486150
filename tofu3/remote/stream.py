"""The byte stream a session runs over: stdin to the vantage's shell, its stdout and stderr
back. Over SSH it is one exec channel (ChannelStream); the unit tests run the same program in
a local shell through the same interface."""

from __future__ import annotations

import contextlib
import select
import threading
from typing import Protocol

import paramiko

from tofu3.errors import RemoteTimeout, TransportError, VantageUnreachable

_READ_CHUNK = 65536


class ByteStream(Protocol):
    """A running remote shell: what goes to its stdin, what comes back."""

    def send(self, data: bytes) -> None:
        """Write ``data`` to the shell's stdin."""

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        """Whatever stdout and stderr brought within ``timeout`` seconds (both may be empty);
        None once the stream has ended and nothing is left to read."""

    def exit_status(self) -> int | None:
        """The shell's exit status, once it is known."""

    def close(self) -> None:
        """End stdin (the shell's cue to clean up and exit) and close the stream."""


class ChannelStream:
    """One SSH exec channel as a ByteStream."""

    def __init__(self, channel: paramiko.Channel, vantage: str) -> None:
        self._channel = channel
        self._vantage = vantage

    @classmethod
    def start(
        cls, transport: paramiko.Transport, command: str, vantage: str, timeout: float
    ) -> ChannelStream:
        """Open a session channel and exec ``command`` (nothing secret in it)."""
        try:
            channel = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise VantageUnreachable(f"vantage {vantage!r}: cannot open a session: {exc}") from None
        # paramiko waits for the answer to an exec request without a timeout: a vantage that
        # froze after opening the session would hold this thread for ever. Closing the
        # channel from a timer ends that wait.
        stalled = threading.Event()

        def give_up() -> None:
            stalled.set()
            channel.close()

        guard = threading.Timer(timeout, give_up)
        guard.daemon = True
        guard.start()
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            if stalled.is_set():
                raise RemoteTimeout(
                    f"vantage {vantage!r}: did not start a session within {timeout:.0f} s"
                ) from None
            raise TransportError(f"vantage {vantage!r}: the session did not start: {exc}") from None
        finally:
            guard.cancel()
        return cls(channel, vantage)

    def send(self, data: bytes) -> None:
        """Write to stdin; a closed channel is a lost connection."""
        try:
            self._channel.sendall(data)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                f"vantage {self._vantage!r}: the SSH session was lost: {exc or 'closed'}"
            ) from None

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        """stdout and stderr as they come; None at the end."""
        channel = self._channel
        try:
            if not (channel.recv_ready() or channel.recv_stderr_ready()):
                select.select([channel], [], [], timeout)
            out = channel.recv(_READ_CHUNK) if channel.recv_ready() else b""
            err = channel.recv_stderr(_READ_CHUNK) if channel.recv_stderr_ready() else b""
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                f"vantage {self._vantage!r}: the SSH session was lost: {exc}"
            ) from None
        if out or err:
            return out, err
        if channel.closed or channel.eof_received or channel.exit_status_ready():
            return None
        return b"", b""

    def exit_status(self) -> int | None:
        """The exit status, if the shell has ended."""
        if self._channel.exit_status_ready():
            return self._channel.recv_exit_status()
        return None

    def close(self) -> None:
        """End stdin, then close the channel: the vantage's shell cleans up on its own."""
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self._channel.shutdown_write()
        self._channel.close()
