"""A vantage on this machine: a VantageSession over a LocalStream, against the local https
registry (local_https.py), and PATHs made of symlinks to chosen tools."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.unit.local_stream import LocalStream
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.port import FetchRequest, FirstRequest
from tofu3.remote.session import VantageSession

BUSYBOX = "/usr/bin/busybox"
# What the session's program runs, besides the shell's builtins.
PROGRAM_TOOLS = (
    "sh",
    "curl",
    "cat",
    "grep",
    "head",
    "mkdir",
    "mkfifo",
    "rm",
    "sleep",
    "uname",
    "wc",
)
HASH_TOOLS = ("openssl", "sha256sum", "sha512sum", "shasum")


@dataclass
class Vantage:
    """An open local session and its stream."""

    session: VantageSession
    stream: LocalStream

    @property
    def directory(self) -> Path:
        """The session's working directory."""
        return Path(self.session.facts.directory)


@contextlib.contextmanager
def local_vantage(
    home: Path,
    *,
    curl_args: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    login_shell: str = "/bin/sh",
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
    prefetch: Sequence[FetchRequest] = (),
    open_session: bool = True,
) -> Iterator[Vantage]:
    """A session to a vantage that is this machine, opened (unless ``open_session`` is
    False) and, at the end, closed: the shell ends and every process of it is gone."""
    stream = LocalStream(home, login_shell=login_shell, env=env, wrapper=wrapper)
    session = VantageSession(stream, "local", curl_args=curl_args, limits=limits)
    try:
        if open_session:
            session.open([FirstRequest(item) for item in prefetch])
        yield Vantage(session, stream)
    finally:
        session.close()
        stream.end()


def tool_dir(directory: Path, tools: Sequence[str] = PROGRAM_TOOLS + HASH_TOOLS) -> Path:
    """``directory`` made a PATH holding symlinks to the real ``tools`` only."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed for this test"
        (directory / tool).symlink_to(found)
    return directory


def busybox_dir(directory: Path) -> Path:
    """A PATH as on Alpine with curl added: every busybox applet (its sh, sha256sum, ...)
    and curl, and nothing else (no openssl, no coreutils, no bash)."""
    directory.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        (directory / applet).symlink_to(BUSYBOX)
    curl = shutil.which("curl")
    assert curl is not None
    (directory / "curl").symlink_to(curl)
    return directory


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def vantage_in(
    tmp_path: Path,
    *,
    curl_args: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    login_shell: str = "/bin/sh",
    env: Mapping[str, str] | None = None,
    prefetch: Sequence[FetchRequest] = (),
    open_session: bool = True,
) -> Iterator[Vantage]:
    """``local_vantage`` with a home and a TMPDIR of its own under ``tmp_path``; once the
    session has ended, nothing may be left in that TMPDIR."""
    home = tmp_path / "home"
    tmp = tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    with local_vantage(
        home,
        curl_args=curl_args,
        limits=limits,
        login_shell=login_shell,
        env={"TMPDIR": str(tmp), **(env or {})},
        prefetch=prefetch,
        open_session=open_session,
    ) as vantage:
        yield vantage
    left = sorted(p.name for p in tmp.iterdir())
    assert not left, f"the session left {left} in its TMPDIR"
