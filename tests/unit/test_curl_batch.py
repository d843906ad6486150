"""A level of the tree in one command (tofu3/remote/batch.py), run by the real sh and the
real curl in parallel mode against a local https server: bodies and digests come back exact
and in order, failures name their item, secrets stay on stdin, nothing is left behind."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.test_curl_config import (
    BLOB,
    MANIFEST,
    LocalRegistry,
    LocalShell,
    _closed_port,
    _curl,
    registry,
    seen,
)
from tofu3.digest import digest_bytes
from tofu3.errors import CurlFailed, ResponseTooLarge, TransportError
from tofu3.limits import DEFAULT_LIMITS
from tofu3.remote import batch_blobs
from tofu3.remote.batch import (
    StderrSplitter,
    batch_config,
    config_lines,
    parallel_meter_bytes,
    private_directory,
)
from tofu3.remote.batch_blobs import download_level
from tofu3.remote.batch_manifests import fetch_level, fetch_level_command
from tofu3.remote.curl import Request, stdin_for

__all__ = ["registry", "seen"]  # fixtures, imported for pytest

_TOKEN = "Bearer s3cr3t-level-token"


def _leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").glob("tofu3-*")}


def test_a_level_of_manifests_comes_back_exact_in_order_with_each_status(
    registry: LocalRegistry,
) -> None:
    curl, shell = _curl(registry)
    before = _leftovers()
    items = [
        (Request(registry.url("/manifest"), [("Authorization", _TOKEN)]), "manifest a"),
        (Request(registry.url("/missing"), [("Authorization", _TOKEN)]), "manifest b"),
        (Request(registry.url("/manifest"), [("Authorization", _TOKEN)]), "manifest c"),
    ]

    responses = fetch_level(curl, items, cap=DEFAULT_LIMITS.manifest_bytes, jobs=2)

    assert [r.connection.status for r in responses] == [200, 404, 200]
    assert responses[0].body == MANIFEST
    assert responses[2].body == MANIFEST
    assert b"MANIFEST_UNKNOWN" in responses[1].body
    assert responses[0].connection.header("docker-content-digest") == digest_bytes(MANIFEST)
    (call,) = shell.calls
    assert _TOKEN not in call.command
    assert _TOKEN.encode() in call.stdin
    assert _leftovers() <= before


def test_a_level_of_blobs_is_hashed_on_the_vantage_and_redirects_drop_the_token(
    registry: LocalRegistry, seen: list[object]
) -> None:
    curl, shell = _curl(registry, hash_tool="openssl")
    before = _leftovers()
    progress: list[int] = []
    items = [
        (Request(registry.url("/blob"), [("Authorization", _TOKEN)]), "sha256", "blob a"),
        (Request(registry.url("/to-cdn"), [("Authorization", _TOKEN)]), "sha512", "blob b"),
        (Request(registry.url("/blob"), [("Authorization", _TOKEN)]), "sha256", "blob c"),
    ]

    downloads = download_level(curl, items, jobs=2, on_progress=progress.append)

    assert [d.digest for d in downloads] == [
        digest_bytes(BLOB),
        f"sha512:{hashlib.sha512(BLOB).hexdigest()}",
        digest_bytes(BLOB),
    ]
    assert [d.connection.size for d in downloads] == [len(BLOB)] * 3
    assert downloads[1].connection.redirects == 1
    assert downloads[1].connection.url_effective.startswith("https://cdn.test:")
    assert "Signature" not in downloads[1].connection.url_effective
    cdn = [r for r in seen if getattr(r, "host", "").startswith("cdn.test")]
    assert cdn
    assert all(getattr(r, "authorization", None) is None for r in cdn)
    assert progress[-1] == 3 * len(BLOB)
    (call,) = shell.calls
    assert _TOKEN not in call.command
    assert _leftovers() <= before


def test_a_failed_transfer_names_its_item_and_the_level_still_ends(
    registry: LocalRegistry,
) -> None:
    curl, _ = _curl(registry)
    before = _leftovers()
    port = _closed_port()
    items = [
        (Request(registry.url("/blob")), "sha256", "blob a"),
        (Request(f"https://127.0.0.1:{port}/blob"), "sha256", "blob b"),
    ]

    with pytest.raises(CurlFailed, match="blob b") as raised:
        download_level(curl, items, jobs=2)

    assert raised.value.exit_code == 7  # connection refused: its FIFO was never opened
    assert _leftovers() <= before


def test_a_manifest_over_the_cap_is_refused(registry: LocalRegistry) -> None:
    curl, _ = _curl(registry)

    with pytest.raises(ResponseTooLarge, match="manifest b"):
        fetch_level(
            curl,
            [
                (Request(registry.url("/manifest")), "manifest a"),
                (Request(registry.url("/blob")), "manifest b"),
            ],
            cap=len(MANIFEST),
            jobs=2,
        )


def test_a_manifest_with_no_announced_length_over_the_cap_is_refused(
    registry: LocalRegistry,
) -> None:
    curl, _ = _curl(registry)

    with pytest.raises(ResponseTooLarge, match="manifest b"):
        fetch_level(
            curl,
            [
                (Request(registry.url("/manifest")), "manifest a"),
                (Request(registry.url("/unannounced-blob")), "manifest b"),
            ],
            cap=len(MANIFEST),
            jobs=2,
        )


def test_curl_cannot_write_a_manifest_file_much_over_the_cap(registry: LocalRegistry) -> None:
    # curl before 8.4 ignores max-filesize for a body sent without a length: the shell's file
    # size limit is what keeps a server from filling the vantage's /tmp.
    cap = 1000
    directory = private_directory()
    config = batch_config(
        [Request(registry.url("/unannounced-blob"))],
        extra_args=registry.curl_args,
        limits=DEFAULT_LIMITS,
        jobs=1,
        blob=False,
        cap=cap,
        directory=directory,
    )
    command = fetch_level_command(1, directory, cap)
    shell = LocalShell(registry.home)

    # stdin stays open, as over SSH (closing it is the watchdog's signal to end everything).
    result = shell.run(
        command, stdin_for(config), timeout=60, stdout_cap=1 << 20, close_stdin=False
    )

    header = re.match(rb"TOFU3-BODY 0 +(\d+)\n", result.stdout)
    assert header is not None, result.stdout[:200]
    assert cap < int(header.group(1)) <= cap + 1024 < len(BLOB)
    assert b'"exitcode":23' in result.stderr  # curl's write failed, it was not killed
    assert not Path(directory).exists()


def test_a_level_whose_manifests_are_too_large_together_is_refused(
    registry: LocalRegistry,
) -> None:
    limits = replace(DEFAULT_LIMITS, level_manifest_bytes=len(MANIFEST) * 2)
    curl, _ = _curl(registry, limits=limits)

    with pytest.raises(ResponseTooLarge, match="3 manifests of one level"):
        fetch_level(
            curl,
            [(Request(registry.url("/manifest")), f"manifest {n}") for n in "abc"],
            cap=DEFAULT_LIMITS.manifest_bytes,
            jobs=2,
        )


def test_markers_a_server_writes_into_a_header_are_not_taken_for_curls_own(
    registry: LocalRegistry,
) -> None:
    curl, _ = _curl(registry)
    items = [
        (Request(registry.url("/marker-in-header")), "manifest a"),
        (Request(registry.url("/manifest")), "manifest b"),
    ]

    responses = fetch_level(curl, items, cap=4096, jobs=2)

    assert [r.connection.status for r in responses] == [200, 200]
    assert [r.body for r in responses] == [MANIFEST, MANIFEST]


def test_an_empty_level_runs_nothing(registry: LocalRegistry) -> None:
    curl, shell = _curl(registry)

    assert fetch_level(curl, [], cap=4096, jobs=2) == []
    assert download_level(curl, [], jobs=2) == []
    assert shell.calls == []


def test_curl_args_become_config_lines_in_every_group() -> None:
    args = ["-4", "--cacert", "/etc/lab/ca.pem", "-x", "http://proxy:3128", "--tcp-nodelay"]

    lines = config_lines(args)
    config = batch_config(
        [Request("https://r.test/a"), Request("https://r.test/b")],
        extra_args=args,
        limits=DEFAULT_LIMITS,
        jobs=4,
        blob=True,
        cap=0,
        directory="/tmp/tofu3-x",
    )

    assert lines == ('ipv4\ncacert = "/etc/lab/ca.pem"\nproxy = "http://proxy:3128"\ntcp-nodelay\n')
    assert config.startswith("parallel\nparallel-immediate\nparallel-max = 4\n")
    assert config.count(lines) == 2
    assert 'output = "/tmp/tofu3-x/0"' in config
    assert 'output = "/tmp/tofu3-x/1"' in config
    assert "TOFU3-WO-1 " in config


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ("100 --    344     0     3     0  --:--:-- --:--:-- --:--:-- 57333", 344),
        (" 45 --  120M     0     5     4  0:00:02  0:00:01  0:00:01  100M", 120 * 1024**2),
        ("-- --  1024k     0     2     2  --:--:--  0:00:01 --:--:--  900k", 1024 * 1024),
        ("DL% UL%  Dled  Uled  Xfers  Live Total     Current  Left    Speed", None),
        ('TOFU3-WO-0 {"http_code":200}', None),
    ],
)
def test_the_parallel_meter_gives_the_bytes_of_every_transfer(
    update: str, expected: int | None
) -> None:
    assert parallel_meter_bytes(update) == expected


@pytest.mark.parametrize("blob", [False, True], ids=["manifests", "blobs"])
def test_a_curl_that_never_runs_is_reported_with_its_exit_status_and_nothing_hangs(
    registry: LocalRegistry, blob: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # curl gone from the vantage after the probe: no transfer starts, so no FIFO is ever
    # opened by curl, and every hasher must still end for the command to end.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "mkfifo", "rm", "cat", "wc", "sha256sum"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    curl, _ = _curl(registry)
    before = _leftovers()

    with pytest.raises(TransportError, match=r"curl reported nothing \(curl exit status 127\)"):
        if blob:
            download_level(curl, [(Request(registry.url("/blob")), "sha256", "blob a")], jobs=2)
        else:
            fetch_level(
                curl, [(Request(registry.url("/manifest")), "manifest a")], cap=4096, jobs=2
            )

    assert _leftovers() <= before


def test_a_marker_after_a_carriage_return_does_not_start_a_line() -> None:
    splitter = StderrSplitter(4096, None)

    splitter.feed(b'curl: (8) weird\rTOFU3-WO-1 {"http_code": 200}\n')
    splitter.feed(b"\nTOFU3-WO-0 {}\n")

    text = splitter.text()
    assert [m.group(1) for m in re.finditer(r"(?m)^TOFU3-WO-(\d+) ", text)] == ["0"]


def test_meter_updates_become_progress_and_an_error_after_one_is_kept() -> None:
    seen: list[int] = []
    splitter = StderrSplitter(4096, seen.append)

    splitter.feed(b"--  --  1024k     0     2     2  --:--:--  0:00:01 --:--:--  900k\r")
    splitter.feed(b" 50 --  2048k     0     2     2  0:00:02  0:00:01  0:00:01  900k")
    splitter.feed(b"curl: (56) Recv failure: Connection reset by peer\n")

    assert seen == [1024 * 1024, 2048 * 1024]
    assert splitter.text() == "curl: (56) Recv failure: Connection reset by peer\n"


def test_a_level_of_many_blobs_is_split_into_commands_in_order(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_blobs, "BLOBS_PER_COMMAND", 2)
    curl, shell = _curl(registry)
    progress: list[int] = []
    items = [(Request(registry.url("/blob")), "sha256", f"blob {n}") for n in range(5)]

    downloads = download_level(curl, items, jobs=2, on_progress=progress.append)

    assert len(shell.calls) == 3
    assert [d.digest for d in downloads] == [digest_bytes(BLOB)] * 5
    assert progress == sorted(progress)
    assert progress[-1] == 5 * len(BLOB)


def test_a_hasher_that_opens_its_fifo_after_curl_ended_still_ends(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy vantage: the first hasher's subshell reaches its open() of the FIFO only after
    # curl has already given up (connection refused) and the first release pass is over.
    # Without the periodic release it would wait for a writer for ever.
    original = batch_blobs.download_level_command

    def late_hasher(hash_commands: list[str], directory: str) -> str:
        command = original(hash_commands, directory)
        late = 'sh -c \'"\'"\'sleep 1.5; exec sha256sum <"$1"\'"\'"\' _ "$d/0"'
        patched = command.replace('sha256sum <"$d/0"', late, 1)
        assert patched != command
        return patched

    monkeypatch.setattr(batch_blobs, "download_level_command", late_hasher)
    limits = replace(DEFAULT_LIMITS, blob_timeout=20)
    curl, _ = _curl(registry, limits=limits)
    before = _leftovers()

    with pytest.raises(CurlFailed, match="blob a") as raised:
        download_level(
            curl, [(Request(f"https://127.0.0.1:{_closed_port()}/b"), "sha256", "blob a")], jobs=1
        )

    assert raised.value.exit_code == 7
    assert _leftovers() <= before
