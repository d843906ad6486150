"""A token server for the CNCF distribution registry's ``auth: token`` mode, as Docker Hub's
auth.docker.io or a docker_auth deployment plays it: HTTPS with a certificate from the lab
CA, HTTP Basic credentials checked, and a JWT signed with ES256 whose key the registry trusts
through its ``rootcertbundle``.

distribution 2.8 (Debian's docker-registry) verifies a token (registry/auth/token/token.go):
``iss`` among its trusted issuers, ``aud`` its service, ``exp``/``nbf`` with 60 s leeway, and
the signing key found by the header's ``kid``, read as a libtrust fingerprint of one of the
root bundle's public keys. The signature is JWS ES256: r and s, 32 bytes each.

It runs in a thread of the test process; ``stop()`` shuts it down and joins the thread.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tofu3.lab.pki import issue_server_cert

ISSUER = "tofu3-test-token-issuer"
SERVICE = "tofu3-test-registry"
TOKEN_LIFETIME = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's fingerprint of a key: SHA-256 of its DER SubjectPublicKeyInfo, first 240
    bits, base32, in twelve groups of four joined by ':'."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class Signer:
    """The token-signing key and the self-signed certificate the registry trusts."""

    key: ec.EllipticCurvePrivateKey
    cert_path: Path

    @classmethod
    def create(cls, directory: Path) -> Signer:
        """A new P-256 key and its certificate, written to ``directory/token-signer.pem``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tofu3 test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = directory / "token-signer.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, path)

    def token(self, subject: str, repository: str | None) -> str:
        """A pull token for ``repository`` (none for a scope-less request)."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": libtrust_key_id(self.key.public_key())}
        access = [{"type": "repository", "name": repository, "actions": ["pull"]}]
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access if repository else [],
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        der = self.key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass
class TokenServer:
    """A running token server: its realm URL, what it was asked, and how to stop it."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    signer: Signer
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The port it listens on (127.0.0.1)."""
        return int(self.server.server_address[1])

    @property
    def realm(self) -> str:
        """The realm the registry's challenge names."""
        return f"https://localhost:{self.port}/token"

    def stop(self) -> None:
        """Stop serving and join the thread. Idempotent."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=10)
        self.server.server_close()


def start_token_server(
    directory: Path, *, ca_cert: Path, ca_key: Path, username: str, password: str
) -> TokenServer:
    """Serve tokens on a free loopback port for ``username``/``password`` (Basic auth)."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = issue_server_cert(
        directory,
        ca_cert=ca_cert,
        ca_key=ca_key,
        names=["localhost"],
        ips=["127.0.0.1"],
        stem="token-server",
    )
    signer = Signer.create(directory)
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            authorization = self.headers.get("Authorization")
            seen.append({"path": url.path, "query": query, "authorized": authorization is not None})
            if url.path != "/token":
                self._answer(404, {"error": "not found"})
                return
            if authorization != expected:
                self._answer(401, {"error": "bad or missing credentials"}, challenge=True)
                return
            repository = None
            for scope in query.get("scope", []):
                parts = scope.split(":")
                if len(parts) == 3 and parts[0] == "repository" and "pull" in parts[2]:
                    repository = parts[1]
            token = signer.token(username, repository)
            self._answer(200, {"token": token, "expires_in": TOKEN_LIFETIME})

        def _answer(self, status: int, body: dict[str, Any], challenge: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if challenge:
                self.send_header("WWW-Authenticate", 'Basic realm="tofu3 test tokens"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: nothing secret is logged, and nothing at all."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="token-server", daemon=True)
    thread.start()
    return TokenServer(server, thread, signer, seen)


def token_auth_section(token_server: TokenServer) -> dict[str, Any]:
    """The registry config's ``auth`` section for ``token_server``."""
    return {
        "token": {
            "realm": token_server.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(token_server.signer.cert_path),
        }
    }
