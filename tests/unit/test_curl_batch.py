"""A level of the tree in one job (tofu3/remote/batch.py, session.py), run by the real sh and
the real curl in parallel mode against a local https server: bodies and digests come back
exact and in order, failures name their item, secrets stay on stdin, nothing is left behind."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.local_https import (
    BLOB,
    MANIFEST,
    LocalRegistry,
    SeenRequest,
    closed_port,
    registry,
    seen,
)
from tests.unit.local_stream import LocalStream
from tests.unit.local_vantage import HASH_TOOLS, PROGRAM_TOOLS, tool_dir, vantage_in
from tofu3.digest import digest_bytes
from tofu3.errors import CurlFailed, ResponseTooLarge, TransportError
from tofu3.limits import DEFAULT_LIMITS
from tofu3.remote import session, session_script
from tofu3.remote.batch import (
    StderrSplitter,
    batch_config,
    config_lines,
    parallel_meter_bytes,
)
from tofu3.remote.frames import FrameReader, Job
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry", "seen"]  # fixtures, imported for pytest

_TOKEN = "Bearer s3cr3t-level-token"


def _job_lines(sent: bytes | bytearray, kind: str) -> list[tuple[int, int]]:
    """(job, count) of every ``tofu3_f``/``tofu3_d`` line that went to stdin."""
    return [
        (int(m.group(1)), int(m.group(2)))
        for m in re.finditer(rf"(?m)^{kind} (\d+) (\d+) ".encode(), sent)
    ]


def test_a_level_of_manifests_comes_back_exact_in_order_with_each_status(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    items = [
        FetchRequest(Request(registry.url(path), [("Authorization", _TOKEN)]), 4096, what)
        for path, what in [
            ("/manifest", "manifest a"),
            ("/missing", "manifest b"),
            ("/manifest", "manifest c"),
        ]
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        responses = vantage.session.fetch(items, jobs=2)
        assert list(vantage.directory.iterdir()) == []

    assert [r.connection.status for r in responses] == [200, 404, 200]
    assert responses[0].body == MANIFEST
    assert responses[2].body == MANIFEST
    assert b"MANIFEST_UNKNOWN" in responses[1].body
    assert responses[0].connection.header("docker-content-digest") == digest_bytes(MANIFEST)
    assert _job_lines(vantage.stream.sent, "tofu3_f") == [(1, 3)]  # one job for the level
    assert vantage.stream.argv[-1] == "exec sh -s"
    assert _TOKEN.encode() in vantage.stream.sent


def test_a_level_of_blobs_is_hashed_on_the_vantage_and_redirects_drop_the_token(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    progress: list[int] = []
    items = [
        BlobRequest(Request(registry.url(path), [("Authorization", _TOKEN)]), algorithm, what)
        for path, algorithm, what in [
            ("/blob", "sha256", "blob a"),
            ("/to-cdn", "sha512", "blob b"),
            ("/blob", "sha256", "blob c"),
        ]
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        assert vantage.session.facts.hash_tool == "openssl"
        downloads = vantage.session.download(items, jobs=2, on_progress=progress.append)
        assert list(vantage.directory.iterdir()) == []

    assert [d.digest for d in downloads] == [
        digest_bytes(BLOB),
        f"sha512:{hashlib.sha512(BLOB).hexdigest()}",
        digest_bytes(BLOB),
    ]
    assert [d.connection.size for d in downloads] == [len(BLOB)] * 3
    assert downloads[1].connection.redirects == 1
    assert downloads[1].connection.url_effective.startswith("https://cdn.test:")
    assert "Signature" not in downloads[1].connection.url_effective
    cdn = [r for r in seen if r.host.startswith("cdn.test")]
    assert cdn
    assert all(r.authorization is None for r in cdn)
    assert progress[-1] == 3 * len(BLOB)
    assert _job_lines(vantage.stream.sent, "tofu3_d") == [(1, 3)]


def test_a_failed_transfer_names_its_item_and_the_level_still_ends(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    items = [
        BlobRequest(Request(registry.url("/blob")), "sha256", "blob a"),
        BlobRequest(Request(f"https://127.0.0.1:{closed_port()}/blob"), "sha256", "blob b"),
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        with pytest.raises(CurlFailed, match="blob b") as raised:
            vantage.session.download(items, jobs=2)
        assert list(vantage.directory.iterdir()) == []
        # The session is still in step: the next level runs.
        (again,) = vantage.session.download(items[:1], jobs=1)

    assert raised.value.exit_code == 7  # connection refused: its FIFO was never opened
    assert again.digest == digest_bytes(BLOB)


def test_a_manifest_over_the_cap_is_refused(registry: LocalRegistry, tmp_path: Path) -> None:
    items = [
        FetchRequest(Request(registry.url("/manifest")), len(MANIFEST), "manifest a"),
        FetchRequest(Request(registry.url("/blob")), len(MANIFEST), "manifest b"),
    ]

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args) as vantage,
        pytest.raises(ResponseTooLarge, match="manifest b"),
    ):
        vantage.session.fetch(items, jobs=2)


def test_a_manifest_with_no_announced_length_over_the_cap_is_refused(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    items = [
        FetchRequest(Request(registry.url("/manifest")), len(MANIFEST), "manifest a"),
        FetchRequest(Request(registry.url("/unannounced-blob")), len(MANIFEST), "manifest b"),
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        with pytest.raises(ResponseTooLarge, match="manifest b"):
            vantage.session.fetch(items, jobs=2)
        assert list(vantage.directory.iterdir()) == []


def _run_job(stream: LocalStream, reader: FrameReader, line: bytes, number: int) -> Job:
    stream.send(line)
    deadline = time.monotonic() + 30
    while (job := reader.jobs.get(number)) is None or job.status is None:
        assert time.monotonic() < deadline, f"job {number} did not end"
        chunk = stream.receive(1.0)
        assert chunk is not None, "the shell ended"
        reader.feed(chunk[0])
    return job


def test_curl_cannot_write_a_manifest_file_much_over_the_cap(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # curl before 8.4 ignores max-filesize for a body sent without a length: the shell's file
    # size limit is what keeps a server from filling the vantage's disk. curl's write-out
    # (bigger than this cap) is not subject to it, or the job's report would be cut short.
    cap = 1000
    nonce = "5" * 32
    config = batch_config(
        [Request(registry.url("/unannounced-big"))],
        extra_args=registry.curl_args,
        limits=DEFAULT_LIMITS,
        jobs=1,
        blob=False,
        cap=cap,
        prefix="1.",
    )
    stream = LocalStream(tmp_path, env={"TMPDIR": str(tmp_path)})
    reader = FrameReader(nonce, max_part=1 << 24)
    try:
        probe = _run_job(stream, reader, session_script.program(nonce, "6" * 32), 0)
        job = _run_job(stream, reader, session_script.fetch_job(1, 1, cap, config), 1)
    finally:
        stream.end()

    body = job.parts["b0"].body
    assert body is not None
    assert cap < len(body) <= cap + 1024 < len(BLOB)
    report = job.parts["wo"]
    assert report.intact and report.body is not None and len(report.body) > cap + 1024
    assert b'"exitcode":23' in report.body  # curl's write failed, it was not killed
    assert job.status == "23"
    assert b"dir=" + str(tmp_path).encode() in (probe.parts["probe"].body or b"")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tofu3-")] == []


def test_a_level_whose_manifests_are_too_large_together_is_refused(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    limits = replace(DEFAULT_LIMITS, level_manifest_bytes=len(MANIFEST) * 2)
    items = [FetchRequest(Request(registry.url("/manifest")), 4096, f"manifest {n}") for n in "abc"]

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args, limits=limits) as vantage,
        pytest.raises(ResponseTooLarge, match="3 manifests of one level"),
    ):
        vantage.session.fetch(items, jobs=2)


def test_markers_a_server_writes_into_a_header_are_not_taken_for_curls_own(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    items = [
        FetchRequest(Request(registry.url("/marker-in-header")), 4096, "manifest a"),
        FetchRequest(Request(registry.url("/manifest")), 4096, "manifest b"),
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        responses = vantage.session.fetch(items, jobs=2)

    assert [r.connection.status for r in responses] == [200, 200]
    assert [r.body for r in responses] == [MANIFEST, MANIFEST]


def test_an_empty_level_runs_nothing(registry: LocalRegistry, tmp_path: Path) -> None:
    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        sent = bytes(vantage.stream.sent)

        assert vantage.session.fetch([], jobs=2) == []
        assert vantage.session.download([], jobs=2) == []
        assert vantage.stream.sent == sent
        assert vantage.session.round_trips == 1


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
        prefix="7.",
    )

    assert lines == ('ipv4\ncacert = "/etc/lab/ca.pem"\nproxy = "http://proxy:3128"\ntcp-nodelay\n')
    assert config.startswith("parallel\nparallel-immediate\nparallel-max = 4\n")
    assert config.count(lines) == 2
    assert 'output = "7.0"' in config  # relative to the session's working directory
    assert 'output = "7.1"' in config
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
def test_a_curl_that_never_runs_is_reported_by_name_and_nothing_hangs(
    registry: LocalRegistry, blob: bool, tmp_path: Path
) -> None:
    # curl gone from the vantage after the probe: no transfer starts, so no FIFO is ever
    # opened by curl, and every hasher (and the write-out's reader) must still end.
    path = tool_dir(tmp_path / "bin")

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        (path / "curl").unlink()
        what = "blob a" if blob else "manifest a"
        with pytest.raises(TransportError, match=f"{what}: curl not found"):
            if blob:
                vantage.session.download(
                    [BlobRequest(Request(registry.url("/blob")), "sha256", "blob a")], jobs=2
                )
            else:
                vantage.session.fetch(
                    [FetchRequest(Request(registry.url("/manifest")), 4096, "manifest a")],
                    jobs=2,
                )
        assert list(vantage.directory.iterdir()) == []


def test_a_marker_after_a_carriage_return_does_not_start_a_line() -> None:
    splitter = StderrSplitter(4096, None)

    splitter.feed(b'curl: (8) weird\rTOFU3-WO-1 {"http_code": 200}\n')
    splitter.feed(b"\nTOFU3-WO-0 {}\n")

    text = splitter.text()
    assert [m.group(1) for m in re.finditer(r"(?m)^TOFU3-WO-(\d+) ", text)] == ["0"]


def test_meter_updates_become_progress_and_an_error_after_one_is_kept() -> None:
    progress: list[int] = []
    splitter = StderrSplitter(4096, progress.append)

    splitter.feed(b"--  --  1024k     0     2     2  --:--:--  0:00:01 --:--:--  900k\r")
    splitter.feed(b" 50 --  2048k     0     2     2  0:00:02  0:00:01  0:00:01  900k")
    splitter.feed(b"curl: (56) Recv failure: Connection reset by peer\n")

    assert progress == [1024 * 1024, 2048 * 1024]
    assert splitter.text() == "curl: (56) Recv failure: Connection reset by peer\n"


def test_a_level_of_many_blobs_is_split_into_jobs_in_order(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "BLOBS_PER_JOB", 2)
    progress: list[int] = []
    items = [BlobRequest(Request(registry.url("/blob")), "sha256", f"blob {n}") for n in range(5)]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        downloads = vantage.session.download(items, jobs=2, on_progress=progress.append)

    assert _job_lines(vantage.stream.sent, "tofu3_d") == [(1, 2), (2, 2), (3, 1)]
    assert [d.digest for d in downloads] == [digest_bytes(BLOB)] * 5
    assert progress == sorted(progress)
    assert progress[-1] == 5 * len(BLOB)


def test_a_job_hashes_at_most_64_blobs(registry: LocalRegistry, tmp_path: Path) -> None:
    # Each blob of a job has a hasher waiting on its FIFO: 65 blobs are two jobs.
    assert session.BLOBS_PER_JOB == 64
    blobs = [hashlib.sha256(str(n).encode()).digest() * (n + 1) for n in range(65)]
    items = [
        BlobRequest(Request(registry.serve(f"/many/{n}", data)), "sha256", f"blob {n}")
        for n, data in enumerate(blobs)
    ]

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        downloads = vantage.session.download(items, jobs=8)

    assert _job_lines(vantage.stream.sent, "tofu3_d") == [(1, 64), (2, 1)]
    assert [d.digest for d in downloads] == [digest_bytes(data) for data in blobs]


def test_a_hasher_that_opens_its_fifo_after_curl_ended_still_ends(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy vantage: the hasher reaches its open() of the FIFO only after curl has already
    # given up (connection refused) and the first release pass is over. Without the
    # periodic release it would wait for a writer for ever.
    program = session_script._PROGRAM
    prompt = 'openssl) openssl dgst -sha"$1" <"$2" >"$2.sum" 2>/dev/null & ;;'
    late = 'openssl) (sleep 0.6; exec openssl dgst -sha"$1" <"$2") >"$2.sum" 2>/dev/null & ;;'
    assert program.count(prompt) == 1
    monkeypatch.setattr(session_script, "_PROGRAM", program.replace(prompt, late))
    limits = replace(DEFAULT_LIMITS, blob_timeout=20)
    item = BlobRequest(Request(f"https://127.0.0.1:{closed_port()}/b"), "sha256", "blob a")

    with vantage_in(tmp_path, curl_args=registry.curl_args, limits=limits) as vantage:
        assert vantage.session.facts.hash_tool == "openssl"
        with pytest.raises(CurlFailed, match="blob a") as raised:
            vantage.session.download([item], jobs=1)
        assert list(vantage.directory.iterdir()) == []

    assert raised.value.exit_code == 7


def test_the_tools_a_level_needs_are_the_ones_listed(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # The PATH the other tests build holds every tool the program runs: a level of each
    # kind works with those alone.
    path = tool_dir(tmp_path / "bin", PROGRAM_TOOLS + HASH_TOOLS)

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        (response,) = vantage.session.fetch(
            [FetchRequest(Request(registry.url("/manifest")), 4096, "m")], jobs=1
        )
        (download,) = vantage.session.download(
            [BlobRequest(Request(registry.url("/blob")), "sha512", "b")], jobs=1
        )

    assert response.body == MANIFEST
    assert download.digest == digest_bytes(BLOB, "sha512")
