"""The curl half of the seam, against the real local curl: no ssh, no network beyond loopback.

Where a vantage runs a command over ssh, these tests run the very same command line in a local
``sh -c`` (LocalShell, an SshConnection without paramiko) with the very same stdin, kept open
as the ssh channel keeps it. The server is a small ``http.server`` on 127.0.0.1 with TLS from a
throw-away CA, because the config tofu3 renders refuses anything but https (one of the
promises tested here).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tofu3.digest import digest_bytes
from tofu3.errors import (
    CurlFailed,
    InventoryError,
    ProtocolViolation,
    ResponseTooLarge,
    VantageRefused,
)
from tofu3.inventory import Vantage, load_inventory_text
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.curl import (
    Curl,
    Request,
    download_command,
    fetch_command,
    meter_bytes,
    parse_facts,
    redact_url,
    render_config,
)
from tofu3.remote.probe import VantageFacts, parse_probe, probe
from tofu3.remote.ssh import CommandResult, SshConnection

SECRET = "djE6c2VjcmV0LXB1bGwtdG9rZW4tbm90LWZvci1hcmd2"
# Under 100000 bytes so curl's progress meter prints the exact count, not "48k".
BLOB = hashlib.sha256(b"seed").digest() * 1563  # 50016 bytes
MANIFEST = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")


# --- A local https registry stand-in ----------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    """What the server received: enough to tell whether a secret travelled."""

    host: str
    path: str
    authorization: str | None
    x_test: str | None
    user_agent: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[SeenRequest]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append(
            SeenRequest(
                host=self.headers.get("Host", ""),
                path=self.path,
                authorization=self.headers.get("Authorization"),
                x_test=self.headers.get("X-Test"),
                user_agent=self.headers.get("User-Agent"),
            )
        )
        port = self.server.server_address[1]
        path = self.path.split("?", 1)[0]
        if path == "/blob":
            self._answer(200, BLOB, "application/octet-stream")
        elif path == "/manifest":
            self._answer(200, MANIFEST, OCI_MANIFEST_TYPE, digest=digest_bytes(MANIFEST))
        elif path == "/to-cdn":
            # As ghcr.io and Docker Hub do: 307 to a signed URL on another host.
            self._redirect(f"https://cdn.test:{port}/blob?X-Amz-Signature=sig&X-Amz-Expires=60")
        elif path == "/marker-in-header":
            # A server that writes tofu3's own markers into a header value.
            self.send_response(200)
            self.send_header("X-Fake", 'TOFU3-WO {"http_code": 500, "exitcode": 0}')
            self.send_header("X-Fake-Level", 'TOFU3-WO-0 {"http_code": 500, "exitcode": 0}')
            self.send_header("Content-Length", str(len(MANIFEST)))
            self.end_headers()
            self.wfile.write(MANIFEST)
        elif path == "/unannounced-blob":
            # No Content-Length: the body ends when the connection closes (HTTP/1.0), so curl
            # cannot refuse it by its announced size.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BLOB)
            self.close_connection = True
        elif path == "/to-http":
            self._redirect(f"http://127.0.0.1:{port}/blob")
        else:
            self._answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")

    def _answer(self, status: int, body: bytes, content_type: str, digest: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on what was seen, not on the log."""


@dataclass(frozen=True)
class LocalRegistry:
    """The running server and what a vantage needs to reach it by name."""

    port: int
    ca: Path
    home: Path
    server: _Server

    def url(self, path: str, host: str = "registry.test") -> str:
        return f"https://{host}:{self.port}{path}"

    @property
    def curl_args(self) -> list[str]:
        """What a lab inventory gives a vantage: trust the CA, map the names to loopback."""
        return [
            "--cacert",
            str(self.ca),
            "--resolve",
            f"registry.test:{self.port}:127.0.0.1",
            "--resolve",
            f"cdn.test:{self.port}:127.0.0.1",
        ]

    @property
    def seen(self) -> list[SeenRequest]:
        return self.server.seen


def _write_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for registry.test, cdn.test and 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tofu3 unit-test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("registry.test"),
        x509.DNSName("cdn.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """An https server on 127.0.0.1, port 0, stopped (by this fixture) at the end."""
    directory = tmp_path_factory.mktemp("local-registry")
    ca, cert, key = _write_pki(directory)
    home = directory / "home"
    home.mkdir()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    # Handshakes happen in the handler threads, so one stuck client cannot stall the rest.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, name="local-registry", daemon=True)
    thread.start()
    try:
        yield LocalRegistry(port=server.server_address[1], ca=ca, home=home, server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def seen(registry: LocalRegistry) -> list[SeenRequest]:
    """What the server receives during this test only."""
    registry.server.seen.clear()
    return registry.server.seen


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Call:
    """One command a LocalShell ran: what went in and what came out."""

    command: str
    stdin: bytes
    result: CommandResult


class LocalShell(SshConnection):
    """An SshConnection whose commands run in a local ``sh -c`` instead of over ssh.

    Like the ssh channel: the command line is run by a shell, stdin is written and (when the
    caller asks, as curl commands do) kept open until the command ends. The process gets its
    own session, as sshd gives it, so a remote-side ``kill 0`` stays inside it. The
    environment is bare, so no proxy variable or real ~/.curlrc takes part.
    """

    def __init__(self, home: Path) -> None:  # no paramiko client: nothing to connect
        self.vantage = Vantage(name="local", host="127.0.0.1")
        self.host_key_fingerprint = ""
        self.home = home
        self.calls: list[Call] = []

    def run(
        self,
        command: str,
        stdin: bytes = b"",
        *,
        timeout: float,
        stdout_cap: int,
        on_stderr: Callable[[bytes], None] | None = None,
        close_stdin: bool = True,
        idle_timeout: float | None = None,
    ) -> CommandResult:
        del idle_timeout  # a local process does not freeze the way a remote vantage can
        process = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)},
            start_new_session=True,
        )
        assert process.stdin and process.stdout and process.stderr
        stdout_pipe, stderr_pipe = process.stdout, process.stderr
        out: list[bytes] = []
        err: list[bytes] = []
        readers = [
            threading.Thread(target=lambda: out.append(stdout_pipe.read())),
            threading.Thread(target=lambda: err.append(stderr_pipe.read())),
        ]
        for reader in readers:
            reader.start()
        try:
            process.stdin.write(stdin)
            process.stdin.flush()
            if close_stdin:
                process.stdin.close()
            process.wait(timeout=min(timeout, 60))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            if not process.stdin.closed:
                process.stdin.close()
            for reader in readers:
                reader.join(timeout=10)
            process.stdout.close()
            process.stderr.close()
        stdout, stderr = b"".join(out), b"".join(err)
        if on_stderr is not None:
            on_stderr(stderr)
        result = CommandResult(
            exit_status=process.returncode,
            stdout=stdout[:stdout_cap],
            stderr=stderr,
            stdout_truncated=len(stdout) > stdout_cap,
        )
        self.calls.append(Call(command, stdin, result))
        return result


def _facts(hash_tool: str = "sha256sum") -> VantageFacts:
    return VantageFacts(curl_version="7.88.1", hash_tool=hash_tool, system="Linux x86_64")


def _curl(
    registry: LocalRegistry,
    hash_tool: str = "sha256sum",
    limits: Limits = DEFAULT_LIMITS,
    extra_args: Sequence[str] | None = None,
    home: Path | None = None,
) -> tuple[Curl, LocalShell]:
    shell = LocalShell(home or registry.home)
    args = registry.curl_args if extra_args is None else extra_args
    return Curl(shell, _facts(hash_tool), args, limits), shell


def _config(request: Request, *, blob: bool = False) -> str:
    return render_config(request, limits=DEFAULT_LIMITS, max_time=60, blob=blob)


def _authorized(url: str) -> Request:
    return Request(url, headers=[("Authorization", f"Bearer {SECRET}")])


# --- The config: what goes to curl's stdin ------------------------------------------------------


def test_the_authorization_header_goes_only_into_the_config() -> None:
    config = _config(_authorized("https://ghcr.io/v2/homebrew/core/wget/manifests/1.24.5"))

    assert f'header = "Authorization: Bearer {SECRET}"' in config.splitlines()
    for command in (fetch_command([]), download_command([], "sha256sum")):
        assert SECRET not in command
        assert "Authorization" not in command


@pytest.mark.parametrize(
    "command",
    [fetch_command(["--proxy", "socks5h://x"]), download_command(["-4"], "sha256sum")],
    ids=["fetch", "download"],
)
def test_remote_commands_run_curl_with_q_first_and_its_config_on_stdin(command: str) -> None:
    # -q first: curl reads ~/.curlrc unless -q is the very first argument.
    assert command.count("curl") >= 1
    assert command.count("curl") == command.count("curl -q -K -")


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


def test_real_curl_fetch_reports_facts_tofu3_can_parse(
    registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    curl, shell = _curl(registry)

    response = curl.fetch(_authorized(registry.url("/manifest")), cap=4096, what="manifest")

    assert response.body == MANIFEST  # the body, byte for byte, and nothing else
    connection = response.connection
    assert connection.status == 200
    assert connection.remote_ip == "127.0.0.1"
    assert connection.size == len(MANIFEST)
    assert connection.redirects == 0
    assert connection.content_type == OCI_MANIFEST_TYPE
    assert connection.header("Docker-Content-Digest") == digest_bytes(MANIFEST)
    assert connection.url_effective == registry.url("/manifest")
    [call] = shell.calls
    assert parse_facts(call.result.stderr)[1:] == (0, "")


def test_the_token_travels_on_stdin_and_never_on_a_command_line(
    registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    curl, shell = _curl(registry)

    curl.fetch(_authorized(registry.url("/manifest")), cap=4096, what="manifest")

    [call] = shell.calls
    assert SECRET.encode() in call.stdin
    assert SECRET not in call.command
    assert [s.authorization for s in seen] == [f"Bearer {SECRET}"]


def test_real_curl_reads_escaped_config_strings_back_intact(
    registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    curl, _ = _curl(registry)

    curl.fetch(
        Request(registry.url("/manifest"), headers=[("X-Test", 'a"b\\c')]), cap=4096, what="m"
    )

    assert [s.x_test for s in seen] == ['a"b\\c']


def test_extra_curl_args_cannot_run_shell_commands_on_the_vantage(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    agent = f"$(touch {marker})`touch {marker}`;touch {marker}"
    curl, _ = _curl(registry, extra_args=[*registry.curl_args, "--user-agent", agent])

    curl.fetch(Request(registry.url("/manifest")), cap=4096, what="manifest")

    assert not marker.exists()
    assert [s.user_agent for s in seen] == [agent]


def test_a_404_is_reported_as_a_status_not_a_curl_failure(registry: LocalRegistry) -> None:
    curl, _ = _curl(registry)

    response = curl.fetch(Request(registry.url("/nope")), cap=4096, what="manifest")

    assert response.connection.status == 404


def test_a_refused_connection_is_a_curl_failure_with_its_exit_code(registry: LocalRegistry) -> None:
    curl, shell = _curl(registry)

    with pytest.raises(CurlFailed) as raised:
        curl.fetch(Request(f"https://127.0.0.1:{_closed_port()}/v2/"), cap=4096, what="ping")

    assert raised.value.exit_code == 7  # CURLE_COULDNT_CONNECT
    connection, exit_code, message = parse_facts(shell.calls[-1].result.stderr)
    assert exit_code == 7
    assert connection is not None
    assert connection.status == 0
    assert "connect" in message.lower()


def test_a_redirect_to_plain_http_is_refused_by_curl(
    registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    curl, _ = _curl(registry)

    with pytest.raises(ProtocolViolation, match="not https"):
        curl.fetch(_authorized(registry.url("/to-http")), cap=1024, what="manifest")
    assert len(seen) == 1  # nothing was sent in the clear


def test_a_curlrc_on_the_vantage_cannot_turn_off_tls_checks(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    (tmp_path / ".curlrc").write_text("insecure\n")
    # No --cacert: the server's CA is unknown, as a MITM's would be.
    curl, shell = _curl(registry, extra_args=[], home=tmp_path)

    with pytest.raises(CurlFailed) as raised:
        curl.fetch(Request(registry.url("/manifest", host="127.0.0.1")), cap=4096, what="m")

    assert raised.value.exit_code == 60  # CURLE_PEER_FAILED_VERIFICATION
    # The control: the same command without -q lets that ~/.curlrc switch the check off.
    [call] = shell.calls
    assert call.command.count("curl -q -K -") == 1
    without_q = shell.run(
        call.command.replace("curl -q -K -", "curl -K -"),
        call.stdin,
        timeout=60,
        stdout_cap=4096,
        close_stdin=False,
    )
    assert parse_facts(without_q.stderr)[1] == 0
    assert without_q.stdout == MANIFEST


def test_a_response_over_the_cap_is_refused_by_curl_itself(registry: LocalRegistry) -> None:
    curl, _ = _curl(registry, limits=Limits(manifest_bytes=1000))

    with pytest.raises(ResponseTooLarge):
        curl.fetch(Request(registry.url("/blob")), cap=1000, what="manifest")


def test_a_response_over_the_callers_cap_is_refused(registry: LocalRegistry) -> None:
    curl, _ = _curl(registry)

    with pytest.raises(ResponseTooLarge):
        curl.fetch(Request(registry.url("/manifest")), cap=len(MANIFEST) - 1, what="manifest")


# --- Blob downloads: hashed on the vantage, curl's exit status captured in POSIX sh --------------


def test_a_good_download_prints_curl_exit_zero_and_the_right_sha256(
    registry: LocalRegistry,
) -> None:
    curl, shell = _curl(registry)

    download = curl.download_digest(Request(registry.url("/blob")), algorithm="sha256", what="b")

    assert download.digest == digest_bytes(BLOB)
    [call] = shell.calls
    lines = call.result.stdout.decode().splitlines()
    assert lines[0].split()[0] == hashlib.sha256(BLOB).hexdigest()
    assert lines[-1] == "TOFU3-CURL-EXIT 0"
    assert call.result.exit_status == 0


def test_a_refused_download_prints_curls_failure_though_the_hasher_succeeded(
    registry: LocalRegistry,
) -> None:
    # Without pipefail, `curl | sha256sum` succeeds with the hash of nothing; the captured
    # status is what tells the coordinator the download failed.
    curl, shell = _curl(registry)

    with pytest.raises(CurlFailed) as raised:
        curl.download_digest(
            Request(f"https://127.0.0.1:{_closed_port()}/blob"), algorithm="sha256", what="blob"
        )

    assert raised.value.exit_code == 7
    [call] = shell.calls
    lines = call.result.stdout.decode().splitlines()
    assert lines[0].split()[0] == EMPTY_SHA256
    assert lines[-1] == "TOFU3-CURL-EXIT 7"
    assert call.result.exit_status == 0


def test_a_redirect_to_the_cdn_drops_the_token_and_the_signed_query_is_not_kept(
    registry: LocalRegistry, seen: list[SeenRequest]
) -> None:
    # The CDN must never see the registry token; the signed CDN URL must never be reported.
    curl, _ = _curl(registry)

    download = curl.download_digest(
        _authorized(registry.url("/to-cdn")), algorithm="sha256", what="blob"
    )

    assert download.digest == digest_bytes(BLOB)
    assert [(s.host.split(":")[0], s.authorization) for s in seen] == [
        ("registry.test", f"Bearer {SECRET}"),
        ("cdn.test", None),
    ]
    connection = download.connection
    assert (connection.status, connection.redirects) == (200, 1)
    assert connection.url_effective == registry.url("/blob", host="cdn.test")


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
    registry: LocalRegistry, hash_tool: str, algorithm: str
) -> None:
    if shutil.which(hash_tool) is None:
        pytest.skip(f"{hash_tool} is not installed here")
    curl, _ = _curl(registry, hash_tool)
    progress: list[int] = []

    download = curl.download_digest(
        Request(registry.url("/blob")),
        algorithm=algorithm,
        what="blob",
        on_progress=progress.append,
    )

    assert download.digest == digest_bytes(BLOB, algorithm)
    assert download.connection.size == len(BLOB)
    assert download.connection.status == 200
    assert progress[-1] == len(BLOB)


def test_real_progress_meter_output_gives_the_bytes_received(registry: LocalRegistry) -> None:
    curl, shell = _curl(registry)

    curl.download_digest(Request(registry.url("/blob")), algorithm="sha256", what="blob")

    assert meter_bytes(shell.calls[-1].result.stderr.decode()) == len(BLOB)


# --- Parsing curl's write-out and meter ----------------------------------------------------------


def test_markers_a_server_writes_into_a_header_are_not_taken_for_curls_own(
    registry: LocalRegistry,
) -> None:
    curl, _ = _curl(registry)

    response = curl.fetch(Request(registry.url("/marker-in-header")), cap=4096, what="manifest")

    assert response.connection.status == 200
    assert response.body == MANIFEST
    assert (response.connection.header("x-fake") or "").startswith("TOFU3-WO ")


def test_stderr_without_the_write_out_yields_only_the_error_line() -> None:
    stderr = b"some noise\ncurl: (6) Could not resolve host: ghcr.io\n"

    assert parse_facts(stderr) == (None, None, "curl: (6) Could not resolve host: ghcr.io")


def test_a_garbled_write_out_yields_no_connection() -> None:
    stderr = b"curl: (56) Recv failure\nTOFU3-WO {not json\nTOFU3-HDR {}\nTOFU3-END\n"

    connection, exit_code, message = parse_facts(stderr)

    assert (connection, exit_code) == (None, None)
    assert message == "curl: (56) Recv failure"


def test_the_last_write_out_wins() -> None:
    # A body that happened to contain the marker comes first on stderr only if curl wrote it;
    # tofu3 reads the last one, which is curl's own.
    stderr = (
        b'TOFU3-WO {"http_code": 999, "exitcode": 0}\n'
        b'TOFU3-WO {"http_code": 200, "exitcode": 0, "remote_ip": "192.0.2.1"}\n'
        b'TOFU3-HDR {"content-type": ["a", "b"]}\nTOFU3-END\n'
    )

    connection, exit_code, _ = parse_facts(stderr)

    assert connection is not None
    assert (connection.status, connection.remote_ip, exit_code) == (200, "192.0.2.1", 0)
    assert connection.header("Content-Type") == "b"


def test_redact_url_drops_query_and_fragment() -> None:
    url = "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:ab?se=1&sig=SECRET#x"

    assert redact_url(url) == "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:ab"


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (
            "100 1575k  100 1575k    0     0  1234k      0  0:00:01  0:00:01 --:--:-- 1234k",
            1575 * 1024,
        ),
        (
            " 45 3328k   45 1520k    0     0   987k      0  0:00:03  0:00:01  0:00:02  987k",
            1520 * 1024,
        ),
        (
            "100 1575k  100 1575k    0     0  1234k      0  0:00:01  0:00:01 --:--:-- 1234k\r"
            " 12  120M   12 14.5M    0     0  5120k      0  0:00:24  0:00:02  0:00:22 5120k",
            int(14.5 * 1024**2),
        ),
        (
            "  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0",
            0,
        ),
        ("100 50016  100 50016    0     0  3252k      0 --:--:-- --:--:-- --:--:-- 3256k", 50016),
        ("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current", None),
        ("", None),
        ("curl: (7) Failed to connect", None),
    ],
)
def test_meter_bytes_reads_the_last_progress_update(chunk: str, expected: int | None) -> None:
    assert meter_bytes(chunk) == expected


# --- The probe -----------------------------------------------------------------------------------

PROBE_DEBIAN_12 = (
    "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.11 zlib/1.2.13\n"
    "TOFU3-HASH sha256sum\n"
    "Linux x86_64\n"
)


def test_a_debian_12_vantage_is_accepted() -> None:
    facts = parse_probe(PROBE_DEBIAN_12, "ams")

    assert facts == VantageFacts(
        curl_version="7.88.1", hash_tool="sha256sum", system="Linux x86_64"
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
    with pytest.raises(VantageRefused, match="curl not found"):
        parse_probe("TOFU3-HASH sha256sum\nLinux x86_64\n", "ams")


def test_a_vantage_without_a_hash_tool_is_refused() -> None:
    output = PROBE_DEBIAN_12.replace("TOFU3-HASH sha256sum\n", "")

    with pytest.raises(VantageRefused, match="no sha256sum, shasum or openssl"):
        parse_probe(output, "ams")


def test_an_unknown_hash_tool_is_not_trusted() -> None:
    output = PROBE_DEBIAN_12.replace("TOFU3-HASH sha256sum", "TOFU3-HASH md5sum")

    with pytest.raises(VantageRefused):
        parse_probe(output, "ams")


@pytest.mark.parametrize(
    ("hash_tool", "algorithm", "command"),
    [
        ("sha256sum", "sha256", "sha256sum"),
        ("sha256sum", "sha512", "sha512sum"),
        ("shasum", "sha256", "shasum -a 256"),
        ("shasum", "sha512", "shasum -a 512"),
        ("openssl", "sha256", "openssl dgst -sha256"),
        ("openssl", "sha512", "openssl dgst -sha512"),
    ],
)
def test_hash_commands_for_each_tool(hash_tool: str, algorithm: str, command: str) -> None:
    output = PROBE_DEBIAN_12.replace("TOFU3-HASH sha256sum", f"TOFU3-HASH {hash_tool}")

    assert parse_probe(output, "ams").hash_command(algorithm) == command


def test_the_probe_runs_here_and_finds_this_curl(tmp_path: Path) -> None:
    facts = probe(LocalShell(tmp_path))

    local = subprocess.run(["curl", "--version"], capture_output=True, check=True, text=True)
    assert local.stdout.startswith(f"curl {facts.curl_version}")
    assert facts.hash_tool in ("sha256sum", "shasum", "openssl")
    assert facts.system == f"{os.uname().sysname} {os.uname().machine}"


# --- curl_args from the inventory, against the real curl ---------------------------------------


def _inventory_curl_args(args: Sequence[str]) -> tuple[str, ...] | None:
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


def test_an_abbreviated_insecure_cannot_turn_off_tls_checks(registry: LocalRegistry) -> None:
    args = _inventory_curl_args(["--insec"])
    if args is None:
        return  # refused at load time: the promise holds
    # Accepted: run it the way a vantage would, against a server whose CA it does not know.
    curl, _ = _curl(registry, extra_args=args)

    with pytest.raises(CurlFailed):
        curl.fetch(Request(registry.url("/manifest", host="127.0.0.1")), cap=4096, what="m")
