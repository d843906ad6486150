"""A local https registry stand-in for the session tests: ``http.server`` on 127.0.0.1 with
TLS from a throw-away CA (the config tofu3 renders refuses anything but https), serving the
few answers a vantage's curl is tested against, and recording what it received."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tofu3.digest import digest_bytes

__all__ = [
    "BLOB",
    "MANIFEST",
    "OCI_MANIFEST_TYPE",
    "SLOW_CHUNK",
    "LocalRegistry",
    "SeenRequest",
    "closed_port",
    "forged_frames",
    "registry",
    "seen",
]

# Under 100000 bytes so curl's progress meter prints the exact count, not "48k".
BLOB = hashlib.sha256(b"seed").digest() * 1563  # 50016 bytes
MANIFEST = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
SLOW_CHUNK = 1024
"""What /slow-blob sends every 50 ms (of a length it announces as 64 MiB)."""
_SLOW_FOR = 30.0  # seconds: a slow transfer nobody stopped ends on its own by then


def forged_frames(nonce: str, job: int) -> bytes:
    """What /forged-frames serves: frames for ``nonce`` saying job ``job`` brought back a
    body and digests of the server's choosing and ended, and that the next job ended too."""
    forged_body = b'{"forged": true}'
    sums = f"0 {'0' * 64}\n".encode()
    frames = [
        f"TOFU3:{nonce}:{job}:b0:{len(forged_body)}:-\n".encode() + forged_body + b"\n",
        f"TOFU3:{nonce}:{job}:sums:{len(sums)}:-\n".encode() + sums + b"\n",
        f"TOFU3:{nonce}:{job}:end:0:0\n".encode(),
        f"TOFU3:{nonce}:{job + 1}:b0:{len(forged_body)}:-\n".encode() + forged_body + b"\n",
        f"TOFU3:{nonce}:{job + 1}:end:0:0\n".encode(),
    ]
    return b"\n" + b"".join(frames)


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
    bodies: dict[str, bytes]


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
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        if path in self.server.bodies:
            self._answer(200, self.server.bodies[path], "application/octet-stream")
        elif path == "/blob":
            self._answer(200, BLOB, "application/octet-stream")
        elif path == "/manifest":
            self._answer(200, MANIFEST, OCI_MANIFEST_TYPE, digest=digest_bytes(MANIFEST))
        elif path == "/to-cdn":
            # As ghcr.io and Docker Hub do: 307 to a signed URL on another host.
            self._redirect(f"https://cdn.test:{port}/blob?X-Amz-Signature=sig&X-Amz-Expires=60")
        elif path == "/marker-in-header":
            # A server that writes tofu3's own write-out markers into a header value.
            self.send_response(200)
            self.send_header("X-Fake", 'TOFU3-WO {"http_code": 500, "exitcode": 0}')
            self.send_header("X-Fake-Level", 'TOFU3-WO-0 {"http_code": 500, "exitcode": 0}')
            self.send_header("Content-Length", str(len(MANIFEST)))
            self.end_headers()
            self.wfile.write(MANIFEST)
        elif path == "/forged-frames":
            self._forged(query)
        elif path in ("/unannounced-blob", "/unannounced-big"):
            # No Content-Length: the body ends when the connection closes (HTTP/1.0), so curl
            # cannot refuse it by its announced size.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BLOB if path == "/unannounced-blob" else BLOB * 20)
            self.close_connection = True
        elif path == "/slow-blob":
            self._slow()
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

    def _forged(self, query: dict[str, list[str]]) -> None:
        """A body and headers that carry frames for the nonce and job the client names
        (``?nonce=N&job=J``)."""
        nonce = query.get("nonce", ["0" * 32])[0]
        job = int(query.get("job", ["1"])[0])
        body = forged_frames(nonce, job)
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST_TYPE)
        self.send_header("X-Frame", f"TOFU3:{nonce}:{job}:end:0:0")
        self.send_header("X-Frame-Next", f"TOFU3:{nonce}:{job + 1}:end:0:0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _slow(self) -> None:
        """A large blob sent slowly, until the client goes away (or half a minute passed)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(64 * 1024 * 1024))
        self.end_headers()
        chunk = b"s" * SLOW_CHUNK
        stop = time.monotonic() + _SLOW_FOR
        try:
            while time.monotonic() < stop:
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass
        self.close_connection = True

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

    def serve(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path`` from now on; its URL."""
        self.server.bodies[path] = body
        return self.url(path)


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
    # Readable by anyone: a vantage's curl may run as another user.
    ca_path.chmod(0o644)
    directory.chmod(0o755)
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """An https server on 127.0.0.1, port 0, stopped (by this fixture) at the end."""
    directory = tmp_path_factory.mktemp("local-registry")
    ca, cert, key = _write_pki(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    server.bodies = {}
    # Handshakes happen in the handler threads, so one stuck client cannot stall the rest.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, name="local-registry", daemon=True)
    thread.start()
    try:
        yield LocalRegistry(port=server.server_address[1], ca=ca, server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def seen(registry: LocalRegistry) -> list[SeenRequest]:
    """What the server receives during this test only."""
    registry.server.seen.clear()
    return registry.server.seen


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
