"""A ByteStream that runs the session's command line in a local login shell instead of over
ssh: the same program, the same stdin, real sh and real curl, no paramiko. The process gets
its own session, as sshd gives it; whatever of that session still runs after the shell ended
(an rc file's background job, say) is ended by pid at ``end``.

Everything sent and received is kept, so a test can say exactly what went to stdin and what
came back, and the process tree below the shell can be read from /proc while a job runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tofu3.remote.session_script import COMMAND


@dataclass(frozen=True)
class LocalProcess:
    """One process of a LocalStream's tree, as /proc showed it."""

    pid: int
    start_ticks: int  # with the pid, tells this process from a later one with its pid
    name: str
    argv: bytes
    environ: bytes


def _stat(pid: int) -> tuple[int, int, int, str] | None:
    """(ppid, session id, start time, state) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; what follows is fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3]), int(fields[19]), fields[0]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def running(process: LocalProcess) -> bool:
    """Whether ``process`` (that very one, not a later one with its pid) still runs."""
    stat = _stat(process.pid)
    return stat is not None and stat[2] == process.start_ticks and stat[3] not in ("Z", "X")


class LocalStream:
    """``LOGIN_SHELL -c 'exec sh -s'`` as a ByteStream; ``wrapper`` (``unshare ...``) runs
    before it when given."""

    def __init__(
        self,
        home: Path,
        *,
        login_shell: str = "/bin/sh",
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        environment.update(env or {})
        self.argv = [login_shell, "-c", COMMAND]
        """What the shell was started with: the login shell and the session's command line."""
        self.process = subprocess.Popen(
            [*wrapper, *self.argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=home,
            start_new_session=True,
        )
        self.sent = bytearray()
        """Everything written to the shell's stdin."""
        self.stdout = bytearray()
        """Everything the shell and its processes wrote to stdout, read or not yet."""
        self.stderr = bytearray()
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
            try:
                data = os.read(pipe.fileno(), 65536)
            except OSError:
                data = b""
            (self.stdout if which == 0 else self.stderr).extend(data)
            self._chunks.put((which, data))
            if not data:
                return

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.sent += data
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
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
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    # -- for the tests --------------------------------------------------------------------

    def tree(self) -> list[LocalProcess]:
        """The shell and every process below it now (children whose parent ended are
        reparented, and are found by ``session_processes`` instead)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None:
                    children.setdefault(stat[0], []).append(int(entry.name))
        found: list[LocalProcess] = []
        todo = [self.process.pid]
        while todo:
            pid = todo.pop()
            process = self._process(pid)
            if process is not None:
                found.append(process)
            todo.extend(children.get(pid, []))
        return found

    def session_processes(self) -> list[LocalProcess]:
        """Every process still in the shell's session (its sid), whoever its parent now is."""
        found: list[LocalProcess] = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None and stat[1] == self.process.pid:
                    process = self._process(int(entry.name))
                    if process is not None and running(process):
                        found.append(process)
        return found

    @staticmethod
    def _process(pid: int) -> LocalProcess | None:
        stat = _stat(pid)
        if stat is None:
            return None
        return LocalProcess(
            pid=pid,
            start_ticks=stat[2],
            name=_read(f"/proc/{pid}/comm").decode(errors="replace").strip(),
            argv=_read(f"/proc/{pid}/cmdline"),
            environ=_read(f"/proc/{pid}/environ"),
        )

    def end(self) -> None:
        """Close stdin, wait for the shell to end, and end what is left of its session."""
        self.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        deadline = time.monotonic() + 5
        while (left := self.session_processes()) and time.monotonic() < deadline:
            for process in left:
                if running(process):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(process.pid, signal.SIGKILL)
            time.sleep(0.02)
        for reader in self._readers:
            reader.join(timeout=5)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()
