"""A small HTTPS server for release files, run on a thread of the test process: it answers
by Host header and path, so one listener stands in for several hosts (a release page that
redirects to a CDN host, as GitHub release assets do). Its certificate comes from the lab
CA; vantages reach it with curl ``--connect-to``, the coordinator with tofu3's own.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tofu3.lab.pki import issue_server_cert

LOOPBACK = "127.0.0.1"
HTTPS_PORT = 443


ANY_PATH = "*"


@dataclass(frozen=True)
class Route:
    """What one host and path (or ANY_PATH) answer: bytes, a redirect, or bytes made from
    the request's path and query (a man in the middle passing on altered bytes)."""

    body: bytes | None = None
    redirect: str | None = None
    make: Callable[[str, str], bytes] | None = None


@dataclass(frozen=True)
class Seen:
    """One request the server answered."""

    client: str
    host: str
    path: str
    query: str
    status: int
    authorization: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: Mapping[tuple[str, str], Route]
    seen: list[Seen]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0

    @property
    def files(self) -> _Server:
        server: _Server = self.server  # type: ignore[assignment]
        return server

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").lower().partition(":")[0]
        url = urlsplit(self.path)
        routes = self.files.routes
        route = routes.get((host, url.path)) or routes.get((host, ANY_PATH))
        status = 404 if route is None else (302 if route.redirect else 200)
        with self.files.lock:
            self.files.seen.append(
                Seen(
                    self.client_address[0],
                    host,
                    url.path,
                    url.query,
                    status,
                    "Authorization" in self.headers,
                )
            )
        body = b"not found\n" if route is None or route.body is None else route.body
        if route is not None and route.make is not None:
            body = route.make(url.path, url.query)
        self.send_response(status)
        if route is not None and route.redirect:
            self.send_header("Location", route.redirect)
            body = b""
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on ``seen`` instead."""


class FileServer:
    """One running server; ``stop()`` ends its thread."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The loopback port it listens on."""
        return int(self._server.server_address[1])

    @property
    def seen(self) -> list[Seen]:
        """Every request answered so far."""
        with self._server.lock:
            return list(self._server.seen)

    def connect_to(self, hosts: Sequence[str]) -> list[str]:
        """curl (and tofu3 fetch) options that send ``hosts`` on port 443 here."""
        args: list[str] = []
        for host in hosts:
            args += ["--connect-to", f"{host}:{HTTPS_PORT}:{LOOPBACK}:{self.port}"]
        return args

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


def start_file_server(
    directory: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    routes: Mapping[tuple[str, str], Route],
    stem: str,
) -> FileServer:
    """Serve ``routes`` ({(host, path): Route}) over HTTPS on a free loopback port, with a
    certificate the lab CA issued for every host in them (and for 127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    hosts = sorted({host for host, _ in routes})
    certificate = issue_server_cert(
        directory, ca_cert=ca_cert, ca_key=ca_key, names=hosts, ips=[LOOPBACK], stem=stem
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate.cert, certificate.key)
    server = _Server((LOOPBACK, 0), _Handler)
    server.routes = dict(routes)
    server.seen = []
    server.lock = threading.Lock()
    # The handshake happens on the handler's thread, not in accept().
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name=f"file-server-{stem}", daemon=True)
    thread.start()
    return FileServer(server, thread)
