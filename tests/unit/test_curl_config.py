"""The curl half of the seam, against the real local curl: no ssh, no network beyond loopback.

Where a vantage runs ``exec sh -s`` over ssh and reads the session's program and its jobs on
stdin, these tests run the very same command line in a local login shell (LocalStream) with
the very same stdin, through the real VantageSession. The server is a small https server on
127.0.0.1 (local_https.py), because the config tofu3 renders refuses anything but https (one
of the promises tested here). The config itself is tested as text, without curl.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.local_https import (
    BLOB,
    MANIFEST,
    OCI_MANIFEST_TYPE,
    LocalRegistry,
    SeenRequest,
    closed_port,
    registry,
    seen,
)
from tests.unit.local_vantage import (
    HASH_TOOLS,
    PROGRAM_TOOLS,
    Vantage,
    tool_dir,
    vantage_in,
    wait_for,
)
from tofu3.digest import digest_bytes
from tofu3.errors import (
    CurlFailed,
    InventoryError,
    ProtocolViolation,
    ResponseTooLarge,
    TransportError,
    VantageRefused,
    WorkingDirectoryUnavailable,
)
from tofu3.inventory import load_inventory_text
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote import session_script
from tofu3.remote.batch import facts_by_index, parallel_meter_bytes
from tofu3.remote.curl import facts_from, meter_size, redact_url, render_config
from tofu3.remote.port import TOKEN_SLOT, BlobRequest, FetchRequest, Request, Response
from tofu3.remote.probe import VantageFacts, parse_probe

__all__ = ["registry", "seen"]  # fixtures, imported for pytest

SECRET = "djE6c2VjcmV0LXB1bGwtdG9rZW4tbm90LWZvci1hcmd2"


def _config(request: Request, *, blob: bool = False) -> str:
    return render_config(request, limits=DEFAULT_LIMITS, max_time=60, blob=blob)


def _authorized(url: str) -> Request:
    return Request(url, headers=[("Authorization", f"Bearer {SECRET}")])


def _fetch(vantage: Vantage, request: Request, *, cap: int = 4096, what: str = "m") -> Response:
    (response,) = vantage.session.fetch([FetchRequest(request, cap, what)], jobs=1)
    return response


# --- The config: what goes to curl's stdin ------------------------------------------------------


def test_the_authorization_header_goes_only_into_the_config() -> None:
    config = _config(_authorized("https://ghcr.io/v2/homebrew/core/wget/manifests/1.24.5"))

    assert f'header = "Authorization: Bearer {SECRET}"' in config.splitlines()
    # The one command line of a session is a fixed word list: the config (and the token in
    # it) can only ever travel on stdin, inside a job line.
    assert session_script.COMMAND == "exec sh -s"
    line = session_script.fetch_job(1, 1, 4096, config)
    assert line.startswith(b"tofu3_f 1 1 4096 '")
    assert SECRET.encode() in line


def test_every_curl_the_program_runs_has_q_first_and_its_config_on_stdin() -> None:
    # -q first: curl reads ~/.curlrc unless -q is the very first argument.
    program = session_script.program("0" * 32, "name").decode()
    runs = [line.strip() for line in program.splitlines() if re.search(r"\bcurl -", line)]

    transfers = [run for run in runs if "curl --version </dev/null" not in run]
    # Every job's curl: a download job's, and the one fetch and chain jobs share.
    assert len(transfers) == 2
    for run in transfers:
        # The job's config (a word of the job line) is curl's stdin, its stdout the
        # write-out's file or FIFO; nothing else is on its line.
        pattern = r"""printf '%s' "\$[14]" \| curl -q -K - (>"\$1\.wo"|>&7 7>&-) &"""
        assert re.fullmatch(pattern, run), run
    assert TOKEN_SLOT in program


@pytest.mark.parametrize("blob", [False, True])
def test_the_config_allows_only_https_even_after_redirects(blob: bool) -> None:
    lines = _config(Request("https://ghcr.io/v2/"), blob=blob).splitlines()

    assert 'proto = "=https"' in lines
    assert 'proto-redir = "=https"' in lines
    assert "location" in lines
    assert f"max-redirs = {DEFAULT_LIMITS.max_redirects}" in lines
    assert not any("location-trusted" in line for line in lines)
    assert not any(line.startswith(("retry", "insecure", "-k")) for line in lines)


def test_a_request_that_must_not_follow_redirects_has_no_location() -> None:
    lines = _config(Request("https://ghcr.io/v2/", follow_redirects=False)).splitlines()

    assert "location" not in lines
    assert not any(line.startswith("max-redirs") for line in lines)


def test_small_responses_are_capped_and_blobs_show_the_meter() -> None:
    small = _config(Request("https://ghcr.io/v2/")).splitlines()
    blob = _config(Request("https://ghcr.io/v2/"), blob=True).splitlines()

    assert f"max-filesize = {DEFAULT_LIMITS.manifest_bytes}" in small
    assert "silent" in small
    assert "silent" not in blob  # the progress meter is how progress is seen
    assert f"speed-time = {DEFAULT_LIMITS.blob_stall_seconds}" in blob


def test_quotes_and_backslashes_are_escaped_in_config_strings() -> None:
    config = _config(Request('https://r.example/a"b\\c', headers=[("X-Test", 'x"y\\z')]))

    assert 'url = "https://r.example/a\\"b\\\\c"' in config.splitlines()
    assert 'header = "X-Test: x\\"y\\\\z"' in config.splitlines()


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(Request("https://ghcr.io/v2/\nurl = https://evil.example/"), id="url-newline"),
        pytest.param(Request("https://ghcr.io/v2/\r"), id="url-carriage-return"),
        pytest.param(Request("https://ghcr.io/\x00"), id="url-nul"),
        pytest.param(Request("https://ghcr.io/\x7f"), id="url-delete"),
        pytest.param(
            Request("https://ghcr.io/v2/", headers=[("Authorization", "Bearer x\r\nX-Evil: 1")]),
            id="header-crlf",
        ),
        pytest.param(
            Request("https://ghcr.io/v2/", headers=[("Accept", 'x"\ninsecure\n')]),
            id="header-config-injection",
        ),
    ],
)
def test_values_with_control_characters_are_refused(request_: Request) -> None:
    with pytest.raises(ProtocolViolation, match="control characters"):
        _config(request_)


# --- Small responses, through the real curl ------------------------------------------------------


@pytest.fixture
def vantage(registry: LocalRegistry, tmp_path: Path) -> Iterator[Vantage]:
    """An open session to this machine as a vantage, with the lab's curl_args."""
    with vantage_in(tmp_path, curl_args=registry.curl_args) as opened:
        yield opened


def test_real_curl_fetch_reports_facts_tofu3_can_parse(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    response = _fetch(vantage, _authorized(registry.url("/manifest")), what="manifest")

    assert response.body == MANIFEST  # the body, byte for byte, and nothing else
    connection = response.connection
    assert connection.status == 200
    assert connection.remote_ip == "127.0.0.1"
    assert connection.size == len(MANIFEST)
    assert connection.redirects == 0
    assert connection.content_type == OCI_MANIFEST_TYPE
    assert connection.header("Docker-Content-Digest") == digest_bytes(MANIFEST)
    assert connection.url_effective == registry.url("/manifest")
    assert list(vantage.directory.iterdir()) == []  # the job took its files with it


def test_the_token_travels_on_stdin_and_never_on_a_command_line(
    vantage: Vantage, registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    _fetch(vantage, _authorized(registry.url("/manifest")), what="manifest")

    # The only command line: the login shell's, with the session's fixed word list.
    assert vantage.stream.argv == ["/bin/sh", "-c", "exec sh -s"]
    assert vantage.stream.process.args == ["/bin/sh", "-c", "exec sh -s"]
    assert SECRET.encode() in vantage.stream.sent
    assert SECRET.encode() not in vantage.stream.stdout + vantage.stream.stderr
    assert [s.authorization for s in seen] == [f"Bearer {SECRET}"]


def test_real_curl_reads_escaped_config_strings_back_intact(
    vantage: Vantage, registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    # Both quotings at once: curl's config string, inside the shell's single-quoted word.
    tricky = "a\"b\\c 'd' $(e) `f` ${g} !h \\'"

    _fetch(vantage, Request(registry.url("/manifest"), headers=[("X-Test", tricky)]))

    assert [s.x_test for s in seen] == [tricky]


def test_extra_curl_args_cannot_run_shell_commands_on_the_vantage(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    agent = f"$(touch {marker})`touch {marker}`;touch {marker}';touch {marker};'"
    args = [*registry.curl_args, "--user-agent", agent]

    with vantage_in(tmp_path, curl_args=args) as vantage:
        _fetch(vantage, Request(registry.url("/manifest")), what="manifest")

    assert not marker.exists()
    assert [s.user_agent for s in seen] == [agent]


def test_a_404_is_reported_as_a_status_not_a_curl_failure(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    response = _fetch(vantage, Request(registry.url("/nope")), what="manifest")

    assert response.connection.status == 404
    assert b"MANIFEST_UNKNOWN" in response.body


def test_a_refused_connection_is_a_curl_failure_with_its_exit_code(vantage: Vantage) -> None:
    with pytest.raises(CurlFailed, match="ping") as raised:
        _fetch(vantage, Request(f"https://127.0.0.1:{closed_port()}/v2/"), what="ping")

    assert raised.value.exit_code == 7  # CURLE_COULDNT_CONNECT
    assert "connect" in str(raised.value).lower()
    assert list(vantage.directory.iterdir()) == []


def test_a_redirect_to_plain_http_is_refused_by_curl(
    vantage: Vantage, registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    with pytest.raises(ProtocolViolation, match="not https"):
        _fetch(vantage, _authorized(registry.url("/to-http")), cap=1024, what="manifest")
    assert len(seen) == 1  # nothing was sent in the clear


def test_a_curlrc_on_the_vantage_cannot_turn_off_tls_checks(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".curlrc").write_text("insecure\n")
    # No --cacert: the server's CA is unknown, as a MITM's would be.
    request = Request(registry.url("/manifest", host="127.0.0.1"))

    with vantage_in(tmp_path) as vantage, pytest.raises(CurlFailed) as raised:
        _fetch(vantage, request)

    assert raised.value.exit_code == 60  # CURLE_PEER_FAILED_VERIFICATION
    # The control: the same program without -q lets that ~/.curlrc switch the check off.
    program = session_script._PROGRAM
    assert program.count("curl -q -K -") == 2
    monkeypatch.setattr(session_script, "_PROGRAM", program.replace("curl -q -K -", "curl -K -"))
    with vantage_in(tmp_path) as vantage:
        assert _fetch(vantage, request).body == MANIFEST


def test_a_response_over_the_cap_is_refused_by_curl_itself(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    limits = Limits(manifest_bytes=1000)

    with (
        vantage_in(tmp_path, curl_args=registry.curl_args, limits=limits) as vantage,
        pytest.raises(ResponseTooLarge, match="size cap"),
    ):
        _fetch(vantage, Request(registry.url("/blob")), cap=1000, what="manifest")


def test_a_response_over_the_callers_cap_is_refused(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    with pytest.raises(ResponseTooLarge, match="manifest"):
        _fetch(vantage, Request(registry.url("/manifest")), cap=len(MANIFEST) - 1, what="manifest")


def test_the_first_exchange_brings_back_the_requests_known_up_front(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    ping = FetchRequest(_authorized(registry.url("/nope")), 4096, "ping")

    with vantage_in(tmp_path, curl_args=registry.curl_args, prefetch=[ping]) as vantage:
        assert vantage.session.round_trips == 1
        (response,) = vantage.session.fetch([ping], jobs=1)
        assert vantage.session.round_trips == 1  # kept from the first exchange
        assert response.connection.status == 404
        _fetch(vantage, ping.request)
        assert vantage.session.round_trips == 2  # asked again: a new job


# --- Blob downloads: hashed on the vantage -------------------------------------------------------


def _download(
    vantage: Vantage, request: Request, algorithm: str = "sha256", progress: list[int] | None = None
) -> tuple[str, int, int, int, str]:
    (download,) = vantage.session.download(
        [BlobRequest(request, algorithm, "blob")],
        jobs=1,
        on_progress=None if progress is None else progress.append,
    )
    connection = download.connection
    return (
        download.digest,
        connection.size,
        connection.status,
        connection.redirects,
        connection.url_effective,
    )


def test_a_good_download_yields_the_right_sha256_size_and_status(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    digest, size, status, redirects, url = _download(vantage, Request(registry.url("/blob")))

    assert digest == digest_bytes(BLOB)
    assert (size, status, redirects, url) == (len(BLOB), 200, 0, registry.url("/blob"))
    assert list(vantage.directory.iterdir()) == []


def test_a_refused_download_is_curls_failure_though_the_hasher_succeeded(
    vantage: Vantage,
) -> None:
    # The hasher of a blob curl never wrote hashes nothing and succeeds; curl's own exit
    # code for the transfer is what tells the coordinator the download failed.
    with pytest.raises(CurlFailed, match="blob") as raised:
        _download(vantage, Request(f"https://127.0.0.1:{closed_port()}/blob"))

    assert raised.value.exit_code == 7
    assert list(vantage.directory.iterdir()) == []


def test_a_redirect_to_the_cdn_drops_the_token_and_the_signed_query_is_not_kept(
    vantage: Vantage, registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    # The CDN must never see the registry token; the signed CDN URL must never be reported.
    digest, _, status, redirects, url = _download(vantage, _authorized(registry.url("/to-cdn")))

    assert digest == digest_bytes(BLOB)
    assert [(s.host.split(":")[0], s.authorization) for s in seen] == [
        ("registry.test", f"Bearer {SECRET}"),
        ("cdn.test", None),
    ]
    assert (status, redirects) == (200, 1)
    assert url == registry.url("/blob", host="cdn.test")


@pytest.mark.parametrize(
    ("hash_tool", "algorithm"),
    [
        ("sha256sum", "sha256"),
        ("sha256sum", "sha512"),
        ("shasum", "sha256"),
        ("shasum", "sha512"),
        ("openssl", "sha256"),
        ("openssl", "sha512"),
    ],
)
def test_every_hash_tool_yields_the_digest_of_the_bytes_served(
    registry: LocalRegistry, tmp_path: Path, hash_tool: str, algorithm: str
) -> None:
    # Each tool is the one the probe picks when those it prefers are not on the PATH.
    without = {
        "openssl": (),
        "sha256sum": ("openssl",),
        "shasum": ("openssl", "sha256sum", "sha512sum"),
    }[hash_tool]
    tools = [t for t in PROGRAM_TOOLS + HASH_TOOLS if t not in without]
    path = tool_dir(tmp_path / "bin", tools)
    progress: list[int] = []

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        assert vantage.session.facts.hash_tool == hash_tool
        digest, size, status, _, _ = _download(
            vantage, Request(registry.url("/blob")), algorithm, progress
        )

    assert digest == digest_bytes(BLOB, algorithm)
    assert (size, status) == (len(BLOB), 200)
    assert progress[-1] == len(BLOB)


def test_the_real_progress_meter_gives_the_bytes_received(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    progress: list[int] = []

    _download(vantage, Request(registry.url("/blob")), progress=progress)

    def metered() -> list[int]:
        updates = re.split(r"[\r\n]", vantage.stream.stderr.decode())
        return [n for n in map(parallel_meter_bytes, updates) if n is not None]

    # curl's last meter update may come after the job's end frame (another pipe).
    wait_for(lambda: len(BLOB) in metered(), "curl's final meter update")
    assert metered()[-1] == len(BLOB)
    assert progress == sorted(progress)
    assert progress[-1] == len(BLOB)


# --- Parsing curl's write-out --------------------------------------------------------------------


def test_markers_a_server_writes_into_a_header_are_not_taken_for_curls_own(
    vantage: Vantage, registry: LocalRegistry
) -> None:
    response = _fetch(vantage, Request(registry.url("/marker-in-header")), what="manifest")

    assert response.connection.status == 200
    assert response.body == MANIFEST
    assert (response.connection.header("x-fake") or "").startswith("TOFU3-WO ")
    assert (response.connection.header("x-fake-level") or "").startswith("TOFU3-WO-0 ")


def test_a_report_without_any_write_out_gives_no_transfer() -> None:
    # curl that could not start a transfer (or its config) says so on stderr only, which
    # is never read: the session then reports the transfer as unaccounted for.
    assert facts_by_index("curl: (6) Could not resolve host: ghcr.io\n", 1, "ams") == {}


def test_a_garbled_write_out_yields_no_connection() -> None:
    assert facts_from("{not json\nTOFU3-HDR {}\nTOFU3-END\n") == (None, None, "")
    with pytest.raises(TransportError, match="garbled"):
        facts_by_index("\nTOFU3-WO-0 {not json\nTOFU3-HDR {}\nTOFU3-END\n", 1, "ams")


def test_a_transfer_reported_twice_or_out_of_range_is_garbled() -> None:
    one = '\nTOFU3-WO-{n} {{"http_code": 200, "exitcode": 0}}\nTOFU3-HDR {{}}\nTOFU3-END\n'

    with pytest.raises(TransportError, match="garbled"):
        facts_by_index(one.format(n=0) + one.format(n=0), 2, "ams")
    with pytest.raises(TransportError, match="garbled"):
        facts_by_index(one.format(n=2), 2, "ams")


def test_the_last_value_of_a_repeated_header_wins() -> None:
    text = (
        '{"http_code": 200, "exitcode": 0, "remote_ip": "192.0.2.1"}\n'
        'TOFU3-HDR {"content-type": ["a", "b"]}\nTOFU3-END\n'
    )

    connection, exit_code, message = facts_from(text)

    assert connection is not None
    assert (connection.status, connection.remote_ip, exit_code, message) == (
        200,
        "192.0.2.1",
        0,
        "",
    )
    assert connection.header("Content-Type") == "b"


def test_redact_url_drops_query_and_fragment() -> None:
    url = "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:ab?se=1&sig=SECRET#x"

    assert redact_url(url) == "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:ab"


@pytest.mark.parametrize(
    ("number", "unit", "expected"),
    [
        ("1575", "k", 1575 * 1024),
        ("14.5", "M", int(14.5 * 1024**2)),
        ("50016", "", 50016),
        ("0", "", 0),
        ("1.5", "G", int(1.5 * 1024**3)),
    ],
)
def test_meter_sizes_are_read_in_curls_units(number: str, unit: str, expected: int) -> None:
    assert meter_size(number, unit) == expected


# --- The probe -----------------------------------------------------------------------------------

PROBE_DEBIAN_12 = (
    "curl=curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.11 zlib/1.2.13\n"
    "hash=sha256sum\n"
    "dir=/tmp/tofu3-0123\n"
    "tried=,TMPDIR(unset)\n"
    "system=Linux x86_64"
)


def test_a_debian_12_vantage_is_accepted() -> None:
    facts = parse_probe(PROBE_DEBIAN_12, "ams")

    assert facts == VantageFacts(
        curl_version="7.88.1",
        hash_tool="sha256sum",
        system="Linux x86_64",
        directory="/tmp/tofu3-0123",
    )


@pytest.mark.parametrize("version", ["7.82.0", "7.81.0", "7.29.0", "7.82"])
def test_a_curl_that_can_forward_credentials_on_redirect_is_refused(version: str) -> None:
    output = PROBE_DEBIAN_12.replace("curl 7.88.1", f"curl {version}")

    with pytest.raises(VantageRefused, match=re.escape(f"curl {version}")) as raised:
        parse_probe(output, "ams")
    assert "7.83.0" in str(raised.value)
    assert raised.value.vantage == "ams"


@pytest.mark.parametrize("version", ["7.83.0", "8.5.0", "8.11.1-DEV"])
def test_curl_7_83_and_later_is_accepted(version: str) -> None:
    output = PROBE_DEBIAN_12.replace("curl 7.88.1", f"curl {version}")

    assert parse_probe(output, "ams").curl_version == version.removesuffix("-DEV")


def test_a_vantage_without_curl_is_refused() -> None:
    output = re.sub(r"(?m)^curl=.*$", "curl=", PROBE_DEBIAN_12)

    with pytest.raises(VantageRefused, match="curl not found"):
        parse_probe(output, "ams")


def test_a_vantage_without_a_hash_tool_is_refused() -> None:
    output = PROBE_DEBIAN_12.replace("hash=sha256sum", "hash=")

    with pytest.raises(VantageRefused, match="no sha256sum, shasum or openssl"):
        parse_probe(output, "ams")


def test_an_unknown_hash_tool_is_not_trusted() -> None:
    output = PROBE_DEBIAN_12.replace("hash=sha256sum", "hash=md5sum")

    with pytest.raises(VantageRefused):
        parse_probe(output, "ams")


def test_a_vantage_without_a_working_directory_is_refused_naming_what_was_tried() -> None:
    output = PROBE_DEBIAN_12.replace("dir=/tmp/tofu3-0123", "dir=").replace(
        "tried=,TMPDIR(unset)", "tried=,TMPDIR(unset),/tmp,/var/tmp,/home/u/.cache"
    )

    with pytest.raises(WorkingDirectoryUnavailable) as raised:
        parse_probe(output, "ams")

    assert "tried $TMPDIR (unset), /tmp, /var/tmp, /home/u/.cache;" in str(raised.value)
    assert isinstance(raised.value, TransportError)  # inconclusive, not the artifact's fault


@pytest.mark.parametrize(("algorithm", "bits"), [("sha256", "256"), ("sha512", "512")])
def test_the_hashers_word_for_each_algorithm(algorithm: str, bits: str) -> None:
    assert parse_probe(PROBE_DEBIAN_12, "ams").hash_bits(algorithm) == bits


def test_an_unknown_algorithm_has_no_hasher() -> None:
    with pytest.raises(ValueError, match="md5"):
        parse_probe(PROBE_DEBIAN_12, "ams").hash_bits("md5")


def test_the_probe_runs_here_and_finds_this_curl(vantage: Vantage, tmp_path: Path) -> None:
    facts = vantage.session.facts

    local = subprocess.run(["curl", "--version"], capture_output=True, check=True, text=True)
    assert local.stdout.startswith(f"curl {facts.curl_version}")
    assert facts.hash_tool in ("sha256sum", "shasum", "openssl")
    assert facts.system == f"{os.uname().sysname} {os.uname().machine}"
    assert Path(facts.directory).parent == tmp_path / "tmp"
    assert Path(facts.directory).stat().st_mode & 0o777 == 0o700
    assert re.fullmatch(r"tofu3-[0-9a-f]{32}", Path(facts.directory).name)


# --- curl_args from the inventory, against the real curl ---------------------------------------


def _inventory_curl_args(args: list[str]) -> tuple[str, ...] | None:
    """The tor vantage's curl_args after loading, or None when the inventory refuses them."""
    quoted = ", ".join(f'"{a}"' for a in args)
    text = (
        "vantages:\n"
        "  - {name: a, host: 10.0.0.1}\n"
        "  - {name: b, host: 10.0.0.2}\n"
        f"  - {{name: tor, host: 10.0.0.3, curl_args: [{quoted}]}}\n"
    )
    try:
        return load_inventory_text(text).vantages[2].curl_args
    except InventoryError:
        return None


@pytest.mark.parametrize("flag", ["-k", "--insecure", "-sk", "--proxy-insecure"])
def test_curl_args_cannot_turn_off_tls_checks(flag: str) -> None:
    assert _inventory_curl_args([flag]) is None


def test_an_abbreviated_insecure_cannot_turn_off_tls_checks(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    args = _inventory_curl_args(["--insec"])
    if args is None:
        return  # refused at load time: the promise holds
    # Accepted: run it the way a vantage would, against a server whose CA it does not know.
    with vantage_in(tmp_path, curl_args=args) as vantage, pytest.raises(TransportError):
        _fetch(vantage, Request(registry.url("/manifest", host="127.0.0.1")))
