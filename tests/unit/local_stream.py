"""A ByteStream that runs the session's command line in a local login shell instead of over
ssh: the same program, the same stdin, real sh and real curl, no paramiko. The process gets
its own session, as sshd gives it; every process is ended by pid at close."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from tofu3.remote.session_script import COMMAND


class LocalStream:
    """``LOGIN_SHELL -c 'exec sh -s'`` as a ByteStream."""

    def __init__(
        self,
        home: Path,
        *,
        login_shell: str = "/bin/sh",
        env: Mapping[str, str] | None = None,
    ) -> None:
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        environment.update(env or {})
        self.process = subprocess.Popen(
            [login_shell, "-c", COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=home,
            start_new_session=True,
        )
        self.sent = bytearray()
        self._chunks: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._open = 2
        self._readers = [
            threading.Thread(target=self._pump, args=(0,), daemon=True),
            threading.Thread(target=self._pump, args=(1,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, which: int) -> None:
        pipe = self.process.stdout if which == 0 else self.process.stderr
        assert pipe is not None
        while True:
            data = os.read(pipe.fileno(), 65536)
            self._chunks.put((which, data))
            if not data:
                return

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.sent += data
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except BrokenPipeError:
            pass

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        out, err = bytearray(), bytearray()
        try:
            which, data = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return (b"", b"") if self._open else None
        while True:
            if not data:
                self._open -= 1
            (out if which == 0 else err).extend(data)
            try:
                which, data = self._chunks.get_nowait()
            except queue.Empty:
                break
        if not out and not err and not self._open:
            return None
        return bytes(out), bytes(err)

    def exit_status(self) -> int | None:
        return self.process.poll()

    def close(self) -> None:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass

    def end(self) -> None:
        """Close stdin, wait for the shell to end, and end its session's processes."""
        self.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()
