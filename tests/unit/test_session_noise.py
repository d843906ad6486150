"""What a vantage's login shell prints around the session is noise: an rc file's greeting,
its fake markers and forged frames (it cannot know the nonce), and a background job it leaves
printing on stdout and stderr while the jobs run never change a body or a digest. A frame
that such output broke into is refused as garbled (inconclusive), never read otherwise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.local_https import BLOB, MANIFEST, LocalRegistry, registry
from tests.unit.local_vantage import Vantage, vantage_in, wait_for
from tofu3.digest import digest_bytes
from tofu3.errors import SessionGarbled
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry"]  # a fixture, imported for pytest

GUESSED = "0" * 32
# What the rc files print, on stdout and on stderr: chatter, escape sequences, a long line,
# tofu3's own markers (a write-out, frames for a guessed nonce, a marker cut short).
_LINES = [
    "rc-noise: welcome to the vantage",
    "\x1b[1;31mrc-noise: Last login: yesterday\x1b[0m",
    "rc-noise: " + "x" * 3000,
    'TOFU3-WO-0 {"http_code": 500, "exitcode": 0, "size_download": 1}',
    f"TOFU3:{GUESSED}:0:probe:8:-",
    "curl=curl",
    f"TOFU3:{GUESSED}:0:end:0:ok",
    f"TOFU3:{GUESSED}:1:b0:5:-",
    "evil!",
    f"TOFU3:{GUESSED}:1:end:0:0",
]
_SH_NOISE = "".join(f"printf '%s\\n' '{line}'; printf '%s\\n' '{line}' >&2\n" for line in _LINES)
# Last, a marker with no end of line: the probe's frame comes right after it.
_SH_NOISE += "printf 'TOFU3:'; printf 'TOFU3:' >&2\n"


def _rc_environment(shell: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The login shell and the environment that make it read a noisy rc file."""
    rc = tmp_path / "rc"
    rc.mkdir()
    script = rc / "noise.sh"
    script.write_text(_SH_NOISE, encoding="utf-8")
    if shell == "bash":
        return "/bin/bash", {"BASH_ENV": str(script)}
    if shell == "zsh":
        (rc / ".zshenv").write_text(_SH_NOISE, encoding="utf-8")
        return "/usr/bin/zsh", {"ZDOTDIR": str(rc)}
    if shell == "fish":
        (rc / "fish").mkdir()
        (rc / "fish" / "config.fish").write_text(f"/bin/sh {script}\n", encoding="utf-8")
        return "/usr/bin/fish", {"XDG_CONFIG_HOME": str(rc)}
    assert shell == "tcsh"
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / ".tcshrc").write_text(f"/bin/sh {script}\n", encoding="utf-8")
    return "/usr/bin/tcsh", {}


def _level(vantage: Vantage, registry: LocalRegistry) -> None:
    """A level of manifests and one of blobs, each exactly as served."""
    items = [
        FetchRequest(Request(registry.url(path)), 4096, f"manifest {n}")
        for n, path in enumerate(["/manifest", "/missing", "/manifest"])
    ]
    responses = vantage.session.fetch(items, jobs=2)
    assert [r.connection.status for r in responses] == [200, 404, 200]
    assert [responses[0].body, responses[2].body] == [MANIFEST, MANIFEST]
    assert responses[0].connection.header("docker-content-digest") == digest_bytes(MANIFEST)
    blobs = [
        BlobRequest(Request(registry.url("/blob")), "sha256", "blob a"),
        BlobRequest(Request(registry.url("/to-cdn")), "sha512", "blob b"),
    ]
    downloads = vantage.session.download(blobs, jobs=2)
    assert [d.digest for d in downloads] == [
        digest_bytes(BLOB),
        f"sha512:{hashlib.sha512(BLOB).hexdigest()}",
    ]
    assert [d.connection.size for d in downloads] == [len(BLOB)] * 2
    assert [d.connection.status for d in downloads] == [200, 200]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "tcsh"])
def test_an_rc_file_that_prints_on_stdout_and_stderr_changes_nothing(
    registry: LocalRegistry, tmp_path: Path, shell: str
) -> None:
    login_shell, env = _rc_environment(shell, tmp_path)

    with vantage_in(
        tmp_path, curl_args=registry.curl_args, login_shell=login_shell, env=env
    ) as vantage:
        _level(vantage, registry)
        _level(vantage, registry)
        stdout, stderr = bytes(vantage.stream.stdout), bytes(vantage.stream.stderr)

    # The control: the rc file did run, and printed before the session's program did.
    assert stdout.index(b"rc-noise: welcome") < stdout.index(b"TOFU3:" + b"TOFU3:")
    assert b"rc-noise: welcome" in stderr
    assert stdout.count(f"TOFU3:{GUESSED}:1:end:0:0".encode()) == 1


def test_a_background_job_of_the_rc_file_printing_while_jobs_run_changes_no_body_or_digest(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # The rc file leaves a job printing on both streams every 0.1 s until told to stop. Its
    # lines land before and between the session's frames (and, were they to land in the
    # middle of one, the job would be refused as garbled and run again): every answer is
    # exact.
    stop, stopped = tmp_path / "stop", tmp_path / "stopped"
    rc = tmp_path / "rc.sh"
    printer = (
        f"i=0; while [ ! -e '{stop}' ]; do"
        ' echo "bg-noise $i"; echo "bg-noise $i TOFU3-WO-0 {}" >&2;'
        f' echo "TOFU3:{GUESSED}:$i:end:0:0"; i=$((i + 1)); sleep 0.1;'
        f" done; : >'{stopped}'"
    )
    rc.write_text(f"{_SH_NOISE}({printer}) &\n", encoding="utf-8")
    exact = garbled = 0

    with vantage_in(
        tmp_path, curl_args=registry.curl_args, login_shell="/bin/bash", env={"BASH_ENV": str(rc)}
    ) as vantage:
        for _ in range(6):
            try:
                _level(vantage, registry)
                exact += 1
            except SessionGarbled:
                garbled += 1
        during = len(vantage.stream.stdout)
        stop.touch()
        wait_for(stopped.exists, "the rc file's background job to stop")
        # Quiet again: the session is still in step, and the next levels are exact.
        _level(vantage, registry)
        stdout = bytes(vantage.stream.stdout)
        nonce = vantage.session._nonce

    first_job = stdout.index(f"TOFU3:{nonce}:1:".encode())
    assert stdout.count(b"bg-noise", first_job, during) >= 3  # it printed during the jobs
    # Each job's frames go out in one write, and a job broken into is run again: the noise
    # changes no answer.
    assert (exact, garbled) == (6, 0)
