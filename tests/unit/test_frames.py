"""Frames (tofu3/remote/frames.py): results come back among whatever else a vantage's shell
prints, and only the session's own frames, whole and unbroken, are read as results.

The FrameReader is tested on its own (pure); then the real program over a LocalStream shows
that a body another process's output broke into is refused as garbled, and that frames a
server writes into a body or a header are only ever bytes of that body or header."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.local_https import BLOB, MANIFEST, LocalRegistry, forged_frames, registry
from tests.unit.local_vantage import vantage_in
from tofu3.digest import digest_bytes
from tofu3.errors import ResponseTooLarge, SessionGarbled, TransportError
from tofu3.limits import DEFAULT_LIMITS
from tofu3.remote import session_script
from tofu3.remote.frames import FrameReader, Job, Part
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry"]  # a fixture, imported for pytest

NONCE = "0123456789abcdef" * 2
OTHER = "fedcba9876543210" * 2


def frame(
    job: int, name: str, body: bytes | None, *, nonce: str = NONCE, hashed: bool = True
) -> bytes:
    """A frame as the program prints it."""
    if body is None:
        return f"TOFU3:{nonce}:{job}:{name}:-1:-\n".encode()
    extra = hashlib.sha256(body).hexdigest() if hashed else "-"
    return f"TOFU3:{nonce}:{job}:{name}:{len(body)}:{extra}\n".encode() + body + b"\n"


def end(job: int, status: str = "0", *, nonce: str = NONCE) -> bytes:
    return f"TOFU3:{nonce}:{job}:end:0:{status}\n".encode()


# A probe and two jobs: bodies with newlines, a marker-like text, an empty body, no body.
STREAM = (
    frame(0, "probe", b"curl=curl 8.5.0\nhash=openssl\ndir=/tmp/x", hashed=False)
    + end(0, "ok")
    + frame(1, "wo", b'\nTOFU3-WO-0 {"http_code":200}\nTOFU3-HDR {}\nTOFU3-END\n')
    + frame(1, "b0", b"TOFU3:\n\n" + MANIFEST + b"\n")
    + frame(1, "b1", b"")
    + frame(1, "b2", None)
    + end(1, "0")
    + frame(2, "sums", b"0 " + b"a" * 64 + b"\n")
    + end(2, "7")
)


def _read(*chunks: bytes, max_part: int = 1 << 20) -> FrameReader:
    reader = FrameReader(NONCE, max_part=max_part)
    for chunk in chunks:
        reader.feed(chunk)
    return reader


EXPECTED = _read(STREAM).jobs


def test_the_reference_stream_reads_as_written() -> None:
    assert set(EXPECTED) == {0, 1, 2}
    assert EXPECTED[0].status == "ok"
    assert EXPECTED[1].parts["b0"] == Part(
        "b0",
        b"TOFU3:\n\n" + MANIFEST + b"\n",
        hashlib.sha256(b"TOFU3:\n\n" + MANIFEST + b"\n").hexdigest(),
    )
    assert EXPECTED[1].parts["b1"].body == b""
    assert EXPECTED[1].parts["b2"].body is None
    assert all(part.intact for job in EXPECTED.values() for part in job.parts.values())
    assert (EXPECTED[1].status, EXPECTED[2].status) == ("0", "7")


def test_frames_split_at_every_byte_boundary_read_the_same() -> None:
    for cut in range(len(STREAM) + 1):
        reader = _read(STREAM[:cut], STREAM[cut:])
        assert reader.jobs == EXPECTED, f"split at byte {cut}"
        assert reader.noise_total == 0


def test_frames_fed_one_byte_at_a_time_read_the_same() -> None:
    reader = _read(*(STREAM[i : i + 1] for i in range(len(STREAM))))

    assert reader.jobs == EXPECTED
    assert reader.noise_total == 0


NOISE = [
    b"Welcome to the vantage!\n",
    b"\x1b[1;31mLast login: yesterday\x1b[0m\r\n",
    b"TOFU3:\n",  # a marker with no nonce
    b"TOFU3:" + OTHER.encode() + b":1:end:0:0\n",  # another session's (a guessed nonce)
    b"TOFU3:" + NONCE[:-1].encode() + b":1:end:0:0\n",  # a nonce one digit short
    b"TOFU3:" + NONCE.encode() + b"0:1:end:0:0\n",  # the nonce as a prefix of another
    b"TOFU3:" + NONCE.encode() + b":1:b0:99999999999999:-\n",  # a header that is not one
    b"TOFU3:" + NONCE.encode() + b":x:end:0:0\n",
    b'TOFU3-WO-0 {"http_code": 500}\n',
    b"x" * 5000 + b"\n",
    b"no newline at the end",
]


def test_noise_around_frames_is_kept_as_noise_and_changes_nothing() -> None:
    frames = [
        frame(0, "probe", b"curl=curl 8.5.0\nhash=openssl\ndir=/tmp/x", hashed=False)
        + end(0, "ok"),
        frame(1, "wo", b'\nTOFU3-WO-0 {"http_code":200}\nTOFU3-HDR {}\nTOFU3-END\n'),
        frame(1, "b0", b"TOFU3:\n\n" + MANIFEST + b"\n"),
        frame(1, "b1", b"") + frame(1, "b2", None) + end(1, "0"),
        frame(2, "sums", b"0 " + b"a" * 64 + b"\n") + end(2, "7"),
    ]
    noisy = b"".join(NOISE) + b"".join(f + b"".join(NOISE) for f in frames)

    for cut in range(0, len(noisy) + 1, 97):
        reader = _read(noisy[:cut], noisy[cut:])
        assert reader.jobs == EXPECTED, f"split at byte {cut}"
        assert reader.noise_total > 0
    assert b"Welcome to the vantage!" in _read(noisy).take_noise()


def test_noise_is_kept_only_up_to_a_few_kib() -> None:
    reader = _read(b"chatter\n" * 10_000 + STREAM)

    assert reader.jobs == EXPECTED
    assert len(reader.take_noise()) <= 4096
    assert reader.noise_total >= 80_000
    assert reader.take_noise() == b""


def _broken(body: bytes, noise: bytes, at: int, *, hashed: bool = True) -> Job:
    """A job whose body ``noise`` broke into at byte ``at`` (as another process's write
    landing between the program's writes would), followed by a sound frame and the end."""
    whole = frame(1, "b0", body, hashed=hashed)
    header = len(whole) - len(body) - 1
    spoiled = whole[: header + at] + noise + whole[header + at :]
    reader = _read(spoiled + frame(1, "b1", MANIFEST) + end(1))
    return reader.jobs[1]


@pytest.mark.parametrize(
    ("noise", "at"),
    [
        pytest.param(b"\n", 0, id="one-newline-before"),  # it still ends in a newline
        pytest.param(b"noise from a background job\n", 0, id="a-line-before"),
        pytest.param(b"noise\n", 10, id="a-line-within"),
        pytest.param(b"x", 19, id="a-byte-before-its-last"),
    ],
)
def test_a_body_broken_into_by_other_output_is_not_intact(noise: bytes, at: int) -> None:
    body = b"0123456789abcdefghi\n"  # ending in a newline, as a manifest may

    job = _broken(body, noise, at)

    assert not job.parts["b0"].intact
    # The reader is back in step: the next frame and the job's end are read.
    assert job.parts["b1"] == Part("b1", MANIFEST, hashlib.sha256(MANIFEST).hexdigest())
    assert job.status == "0"


def test_a_part_without_a_digest_is_intact_only_if_it_ends_where_its_header_said() -> None:
    assert not _broken(b"abc\n", b"noise", 0, hashed=False).parts["b0"].intact
    # The one case only a digest catches: noise that keeps the end where it was.
    assert _broken(b"abc\n", b"\n", 0, hashed=False).parts["b0"].intact
    assert not _broken(b"abc\n", b"\n", 0, hashed=True).parts["b0"].intact


def test_an_oversized_part_is_dropped_and_the_frames_after_it_still_read() -> None:
    big = frame(1, "b0", b"y" * 100)
    stream = frame(1, "wo", b"report") + big + frame(1, "b1", b"small") + end(1)

    for cut in range(len(stream) + 1):
        job = _read(stream[:cut], stream[cut:], max_part=50).jobs[1]
        assert job.oversized == "b0", f"split at byte {cut}"
        assert "b0" not in job.parts
        assert job.parts["b1"].body == b"small"
        assert job.parts["wo"].body == b"report"
        assert job.status == "0"


def test_only_the_first_oversized_part_is_named() -> None:
    stream = frame(1, "b0", b"y" * 100) + frame(1, "b1", b"z" * 100) + end(1)

    assert _read(stream, max_part=50).jobs[1].oversized == "b0"


def test_a_header_line_too_long_to_be_one_is_noise_however_the_bytes_are_split() -> None:
    stream = b"TOFU3:" + NONCE.encode() + b":" + b"1" * 400 + STREAM

    for cut in range(0, len(stream) + 1, 7):
        reader = _read(stream[:cut], stream[cut:])
        assert reader.jobs == EXPECTED, f"split at byte {cut}"
        assert reader.noise_total > 400


def test_a_frame_of_another_nonce_is_never_read() -> None:
    forged = frame(1, "b0", b"forged", nonce=OTHER) + end(1, "0", nonce=OTHER)

    reader = _read(forged + STREAM)

    assert reader.jobs == EXPECTED
    assert reader.noise_total == len(forged)


# --- The real program: a body broken into is garbled, a server's frames are its bytes --------


def _emit_noise(monkeypatch: pytest.MonkeyPatch, part: str, noise: str) -> None:
    """Make the program print ``noise`` between a part's header and its bytes: what an rc
    file's background job printing at that moment would do."""
    program = session_script._PROGRAM
    emit = '    cat "$3" >>"$o"\n    echo >>"$o"\n'
    assert program.count(emit) == 1
    spoiled = program.replace(emit, f'    if [ "$2" = {part} ]; then {noise} >>"$o"; fi\n' + emit)
    monkeypatch.setattr(session_script, "_PROGRAM", spoiled)


@pytest.mark.parametrize("part", ["wo", "b0"])
@pytest.mark.parametrize("noise", ["echo", "echo interloper"], ids=["newline", "line"])
def test_a_fetched_part_broken_into_is_refused_as_garbled(
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    noise: str,
) -> None:
    _emit_noise(monkeypatch, part, noise)
    url = registry.serve("/ends-in-a-newline", b'{"schemaVersion": 2}\n')

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args) as vantage,
        pytest.raises(SessionGarbled, match="garbled"),
    ):
        vantage.session.fetch([FetchRequest(Request(url), 4096, "manifest")], jobs=1)


@pytest.mark.parametrize("part", ["wo", "sums"])
@pytest.mark.parametrize("noise", ["echo", "echo interloper"], ids=["newline", "line"])
def test_a_download_report_broken_into_is_refused_as_garbled(
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    noise: str,
) -> None:
    _emit_noise(monkeypatch, part, noise)

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args) as vantage,
        pytest.raises(SessionGarbled, match="garbled"),
    ):
        vantage.session.download(
            [BlobRequest(Request(registry.url("/blob")), "sha256", "blob")], jobs=1
        )


@pytest.mark.parametrize("nonce", ["guessed", "leaked"])
def test_a_frame_a_server_forges_in_a_body_or_header_is_never_taken_for_a_real_one(
    registry: LocalRegistry, tmp_path: Path, nonce: str
) -> None:
    # The forged frames claim job 1 and 2 have ended with a body of their own. Even with
    # the session's very nonce (as if it had leaked), they are bytes of a body or header:
    # a frame's length says where its bytes end, and nothing the server sends is read
    # outside the frame its transfer's output came back in.
    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        used = OTHER if nonce == "guessed" else vantage.session._nonce
        url = registry.url(f"/forged-frames?nonce={used}&job=1")
        (forged,) = vantage.session.fetch([FetchRequest(Request(url), 4096, "manifest")], jobs=1)
        (manifest,) = vantage.session.fetch(
            [FetchRequest(Request(registry.url("/manifest")), 4096, "manifest")], jobs=1
        )
        url = registry.url(f"/forged-frames?nonce={used}&job=3")
        (download,) = vantage.session.download(
            [BlobRequest(Request(url), "sha256", "blob")], jobs=1
        )
        (blob,) = vantage.session.download(
            [BlobRequest(Request(registry.url("/blob")), "sha256", "blob")], jobs=1
        )

    assert forged.connection.status == 200
    assert forged.body == forged_frames(used, 1)  # byte for byte, frames and all
    assert forged.connection.header("x-frame") == f"TOFU3:{used}:1:end:0:0"
    assert manifest.body == MANIFEST
    assert download.digest == digest_bytes(forged_frames(used, 3))
    assert download.connection.header("x-frame-next") == f"TOFU3:{used}:4:end:0:0"
    assert blob.digest == digest_bytes(BLOB)


def test_a_part_over_the_readers_limit_is_refused_as_too_large_not_read(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # The reader keeps at most a level's worth of bytes (plus 1 MiB) of one part.
    limits = replace(DEFAULT_LIMITS, level_manifest_bytes=1000)
    url = registry.serve("/two-mib", BLOB * 42)

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args, limits=limits) as vantage,
        pytest.raises(ResponseTooLarge, match="manifest"),
    ):
        vantage.session.fetch([FetchRequest(Request(url), 4 << 20, "manifest")], jobs=1)


def test_frames_are_a_transport_matter() -> None:
    # A garbled frame says nothing about the artifact: it is inconclusive.
    assert issubclass(SessionGarbled, TransportError)


def test_a_job_broken_into_once_is_run_again_and_gives_the_exact_body(
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Noise lands in the first job's body only (job 1): the second run of it is clean.
    program = session_script._PROGRAM
    emit = '    cat "$3" >>"$o"\n    echo >>"$o"\n'
    spoiled = program.replace(
        emit, '    if [ "$1" = 1 ] && [ "$2" = b0 ]; then echo interloper >>"$o"; fi\n' + emit
    )
    monkeypatch.setattr(session_script, "_PROGRAM", spoiled)
    body = b'{"schemaVersion": 2}\n'
    url = registry.serve("/broken-into-once", body)

    with (
        caplog.at_level("INFO", logger="tofu3"),
        vantage_in(tmp_path, curl_args=registry.curl_args) as vantage,
    ):
        (response,) = vantage.session.fetch([FetchRequest(Request(url), 4096, "manifest")], jobs=1)

    assert response.body == body
    assert any("running the job again" in record.message for record in caplog.records)


def test_what_follows_a_broken_header_is_counted_never_kept_for_the_log() -> None:
    # Another process's output broke a header: the body after it (a token response, say)
    # is noise now, and must not reach -v.
    reader = FrameReader("n" * 32, max_part=1 << 20)
    reader.feed(b"TOFU3:" + b"n" * 32 + b":2:b0:4X9:" + b"-\n" + b'{"token":"s3cret"}\n')
    reader.feed(b"TOFU3:" + b"n" * 32 + b":2:end:0:0\n")

    assert b"s3cret" not in reader.take_noise()
    assert reader.noise_withheld > 0
    assert reader.job(2).status == "0" and "b0" not in reader.job(2).parts


def test_a_body_whose_header_was_broken_into_is_garbled_never_an_empty_answer(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body's frame header is lost (say, broken into by a background printer): the part
    # is missing altogether, which must not pass for an empty body.
    program = session_script._PROGRAM
    header = """    printf 'TOFU3:%s:%s:%s:%s:%s\\n' "$N" "$1" "$2" "$n" "$h" >>"$o"\n"""
    assert program.count(header) == 1
    spoiled = program.replace(
        header,
        '    if [ "$2" = b0 ]; then echo "TOFU3:$N:broken" >>"$o"; else\n' + header + "    fi\n",
    )
    monkeypatch.setattr(session_script, "_PROGRAM", spoiled)

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args) as vantage,
        pytest.raises(SessionGarbled, match="garbled"),
    ):
        vantage.session.fetch([FetchRequest(Request(registry.url("/manifest")), 4096, "m")], jobs=1)
