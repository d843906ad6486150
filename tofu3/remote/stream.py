"""The byte stream a session runs over: stdin to the vantage's shell, its stdout and stderr
back. Over SSH it is one exec channel (ChannelStream); the unit tests run the same program in
a local shell through the same interface."""

from __future__ import annotations

import contextlib
import select
import threading
from typing import Protocol

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

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

    def __init__(self, channel: paramiko.Channel, vantage: str, timeout: float) -> None:
        self._channel = channel
        self._vantage = vantage
        self._timeout = timeout
        self._exec_pending = True

    @classmethod
    def start(
        cls, transport: paramiko.Transport, command: str, vantage: str, timeout: float
    ) -> ChannelStream:
        """Open a session channel and ask it to exec ``command`` (nothing secret in it). The
        answer to the exec request is awaited after the first ``send``: the first bytes for
        stdin go out in the same flight as the request (the server handles a channel's
        messages in order), which saves a round trip per vantage."""
        try:
            channel = transport.open_session(timeout=timeout)
            request = Message()
            request.add_byte(cMSG_CHANNEL_REQUEST)
            request.add_int(channel.remote_chanid)
            request.add_string("exec")
            request.add_boolean(True)
            request.add_string(command)
            # What Channel.exec_command does, without its wait for the answer.
            channel._event_pending()  # type: ignore[attr-defined]
            transport._send_user_message(request)  # type: ignore[attr-defined]
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise VantageUnreachable(f"vantage {vantage!r}: cannot open a session: {exc}") from None
        return cls(channel, vantage, timeout)

    def send(self, data: bytes) -> None:
        """Write to stdin; a closed channel is a lost connection. The first send then waits
        for the server's answer to the exec request."""
        try:
            self._channel.sendall(data)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if self._exec_pending:
                self._exec_pending = False
                self._started()
            raise TransportError(
                f"vantage {self._vantage!r}: the SSH session was lost: {exc or 'closed'}"
            ) from None
        if self._exec_pending:
            self._exec_pending = False
            self._started()

    def _started(self) -> None:
        """Wait for the answer to the exec request. paramiko would wait for it for ever: a
        vantage that froze after opening the session would hold this thread, so a timer
        closes the channel, which ends the wait."""
        channel = self._channel
        stalled = threading.Event()

        def give_up() -> None:
            stalled.set()
            channel.close()

        guard = threading.Timer(self._timeout, give_up)
        guard.daemon = True
        guard.start()
        try:
            channel._wait_for_event()  # type: ignore[attr-defined]
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            if stalled.is_set():
                raise RemoteTimeout(
                    f"vantage {self._vantage!r}: did not start a session within "
                    f"{self._timeout:.0f} s"
                ) from None
            raise TransportError(
                f"vantage {self._vantage!r}: the session did not start: {exc}"
            ) from None
        finally:
            guard.cancel()

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
