"""What a session starts on a vantage ends with it, and nothing it starts carries a secret
where another user could read it.

The shell runs below a sentinel parent in its process group, as dropbear's session process
is: closing stdin in the middle of a slow transfer ends curl, the hashers and every other
process the session started (checked by pid in /proc) within seconds, and removes the working
directory, without a signal to that parent or to the group; a TERM that comes just as a job
starts its processes leaves none of them waiting for ever. While a job runs, no process of
the session has the token in its argv or its environment, and no file holds it."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.local_https import LocalRegistry, registry
from tests.unit.local_stream import LocalProcess, running
from tests.unit.local_vantage import Vantage, local_vantage, vantage_in, wait_for
from tofu3.errors import RemoteTimeout, TransportError
from tofu3.limits import DEFAULT_LIMITS
from tofu3.remote import session_script
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry"]  # a fixture, imported for pytest

_TOKEN = "Bearer pr0c-visible-s3cret-t0ken"
# A parent that notes every signal it gets and passes on the shell's exit status.
_PARENT = """
import signal, subprocess, sys
log = open(sys.argv[1], "a")
def note(number, frame):
    log.write(signal.Signals(number).name + "\\n")
    log.flush()
for each in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(each, note)
sys.exit(subprocess.Popen(sys.argv[2:]).wait())
"""
# What each kind of job runs while its transfer is under way.
_WORKERS = {"download": {"curl", "openssl"}, "fetch": {"curl", "cat"}}


@pytest.fixture
def signals(tmp_path: Path) -> Path:
    return tmp_path / "signals-to-the-parent"


@pytest.fixture
def vantage(registry: LocalRegistry, tmp_path: Path, signals: Path) -> Iterator[Vantage]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    with local_vantage(
        home,
        curl_args=registry.curl_args,
        env={"TMPDIR": str(tmp)},
        wrapper=[sys.executable, "-c", _PARENT, str(signals)],
    ) as opened:
        yield opened
    assert list(tmp.iterdir()) == []
    assert opened.stream.process.returncode is not None
    assert opened.stream.process.returncode >= 0  # the parent was not killed


def _start(
    vantage: Vantage, registry: LocalRegistry, kind: str, fetch: FetchRequest | None = None
) -> Callable[[], object]:
    """Start a slow transfer of ``kind`` (or ``fetch``) in a thread; a function that joins
    it and gives its outcome (the exception it raised, or its result)."""
    request = Request(registry.url("/slow-blob"), [("Authorization", _TOKEN)])
    outcome: list[object] = []

    def run() -> None:
        try:
            if kind == "download":
                outcome.append(
                    vantage.session.download([BlobRequest(request, "sha256", "slow blob")], jobs=1)
                )
            else:
                item = fetch or FetchRequest(request, 128 << 20, "slow body")
                outcome.append(vantage.session.fetch([item], jobs=1))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name=f"slow-{kind}", daemon=True)
    thread.start()

    def join() -> object:
        thread.join(timeout=15)
        assert not thread.is_alive(), "the session's call did not return"
        return outcome[0]

    return join


def _while_running(vantage: Vantage, kind: str) -> list[LocalProcess]:
    """Every look at every process below the parent, taken until the job's workers all run
    (a process forked as ``sh`` shows its own name once it has exec'd)."""
    looks: list[LocalProcess] = []

    def ready() -> bool:
        tree = vantage.stream.tree()
        looks.extend(tree)
        return _WORKERS[kind] <= {p.name for p in tree}

    wait_for(ready, f"the {kind}'s curl and its helpers to run")
    return looks


def _latest(looks: list[LocalProcess]) -> dict[tuple[int, int], LocalProcess]:
    return {(p.pid, p.start_ticks): p for p in looks}


@pytest.mark.parametrize("kind", ["download", "fetch"])
def test_closing_the_session_mid_transfer_ends_every_process_it_started(
    vantage: Vantage, registry: LocalRegistry, signals: Path, kind: str
) -> None:
    join = _start(vantage, registry, kind)
    seen = _latest(_while_running(vantage, kind))
    directory = vantage.directory
    started = [p for p in seen.values() if p.pid != vantage.stream.process.pid]
    assert _WORKERS[kind] | {"sh"} <= {p.name for p in started}

    closed = time.monotonic()
    vantage.session.close()  # stdin ends, as when the coordinator goes away
    wait_for(
        lambda: not any(running(p) for p in started),
        "every process the session started to end",
        timeout=5,
    )
    wait_for(lambda: not directory.exists(), "the working directory to be removed", timeout=5)
    took = time.monotonic() - closed

    assert isinstance(join(), TransportError)  # the transfer was cut short, inconclusively
    assert took < 5
    assert not signals.exists() or signals.read_text() == ""  # the parent was not signalled


def test_nothing_in_the_program_signals_its_process_group_or_its_parent() -> None:
    program = session_script.program("0" * 32, "name").decode()

    for forbidden in ("kill -TERM 0", "kill 0", "kill -- -", "kill -KILL 0", "kill -9 0"):
        assert forbidden not in program
    assert "PPID" not in program
    # Every kill names only pids the program took from $! itself (its own children), or
    # the processes below one of those, as /proc tells them.
    own = set(re.findall(r"\b(\w+)=\$!", program)) | set(re.findall(r'\b(\w+)="\$\1 \$!"', program))
    assert own == {"J", "c", "w", "r", "p"}
    kills = re.findall(r"\bkill\b([^;\n']*)", program)
    assert len(kills) >= 5
    for kill in kills:
        words = kill.replace("2>/dev/null", "").replace("$(tofu3_tree ", "$(tofu3_tree_").split()
        operands = [w for w in words if not re.fullmatch(r"-[A-Z]+", w)]
        assert operands, kill
        for word in operands:
            match = re.fullmatch(r'"?\$(\w+)"?|\$\(tofu3_tree_"\$(\w+)"\)', word)
            assert match is not None, kill
            assert (match.group(1) or match.group(2)) in own, kill
    # The tree is the pid's descendants: processes whose parent is already in it.
    tree = program[program.index("tofu3_tree() {") : program.index("tofu3_bye() {")]
    assert 'q=" $1 "' in tree
    assert '*" $2 "*) case $q in *" $p "*) ;; *) q="$q$p " more=1' in tree


@pytest.mark.parametrize("kind", ["download", "fetch"])
def test_no_token_is_in_any_process_argv_or_environment_or_file_during_a_job(
    vantage: Vantage, registry: LocalRegistry, kind: str
) -> None:
    join = _start(vantage, registry, kind)
    looks = _while_running(vantage, kind)
    # Look a while longer, as the transfer goes on.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        looks.extend(vantage.stream.tree())
        time.sleep(0.05)
    files = {path.name: path.read_bytes() for path in vantage.directory.iterdir() if path.is_file()}
    vantage.session.close()
    join()

    token = _TOKEN.encode()
    for process in looks:
        assert token not in process.argv, (process.name, process.argv)
        assert token not in process.environ, process.name
    (curl,) = [p for p in _latest(looks).values() if p.name == "curl"]
    assert curl.argv == b"curl\0-q\0-K\0-\0"
    assert all(token not in data for data in files.values()), sorted(files)
    # The controls: /proc was read, and the token did go to the vantage (on stdin).
    assert any(b"HOME=" in p.environ for p in looks)
    assert token in vantage.stream.sent


@pytest.mark.parametrize("window", ["after-cat", "after-curl"])
def test_a_term_that_comes_as_a_fetch_job_starts_its_processes_leaves_none_behind(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    # The job's TERM (the session ending) may come as it starts the write-out's reader and
    # curl, before it has noted their pids: here a helper sends it at just that moment.
    # Neither may be left waiting for ever for the other (on the FIFO between them).
    program = session_script._PROGRAM
    started = {"after-cat": '  cat <&9 >"$1.wo" 7>&- 9<&- &\n', "after-curl": ">&7 7>&- &\n"}
    assert program.count(started[window]) == 1
    helper = "  sh -c 'kill -TERM $PPID'\n"
    monkeypatch.setattr(
        session_script, "_PROGRAM", program.replace(started[window], started[window] + helper)
    )
    request = FetchRequest(Request(registry.url("/manifest")), 4096, "manifest")

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        join = _start(vantage, registry, "fetch", request)
        # The job has begun (its write-out file is made as its reader starts) ...
        wait_for((vantage.directory / "1.wo").exists, "the job to start")
        # ... and ended with everything it started, wherever those were reparented.
        wait_for(
            lambda: (
                [p.pid for p in vantage.stream.session_processes()] == [vantage.stream.process.pid]
            ),
            "the job and everything it started to end",
            timeout=5,
        )
        vantage.session.close()  # and the shell removes the job's files with its directory
        assert isinstance(join(), TransportError)


def test_a_job_that_runs_out_of_time_is_ended_and_the_session_goes_on(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # A transfer kept alive a few bytes at a time outlasts its deadline: the job is ended on
    # the vantage (curl and its hasher too), and the next job on the same session works.
    limits = replace(DEFAULT_LIMITS, blob_timeout=2.0)
    slow = BlobRequest(
        Request(registry.url("/slow-blob"), [("Authorization", _TOKEN)]), "sha256", "slow blob"
    )
    with vantage_in(tmp_path, curl_args=registry.curl_args, limits=limits) as vantage:
        with pytest.raises(RemoteTimeout):
            vantage.session.download([slow], jobs=1)
        wait_for(
            lambda: not {"curl", "openssl", "sha256sum"} & {p.name for p in vantage.stream.tree()},
            "the timed-out job's curl and hasher to end",
        )
        manifest = FetchRequest(Request(registry.url("/manifest")), 4096, "manifest")
        (response,) = vantage.session.fetch([manifest], jobs=1)
    assert response.connection.status == 200
