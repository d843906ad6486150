"""An HTTP CONNECT proxy on a thread of the test process, for tools that cannot take curl's
``--connect-to`` (skopeo): with ``HTTPS_PROXY`` pointing here, a tunnel to ``ghcr.io:443`` is
opened to the lab registry instead, with no change to DNS or /etc/hosts. TLS runs end to end
through the tunnel, so the client still checks the certificate against the real name.
Targets it has no route for are refused (403): nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping

_HEAD_LIMIT = 16 * 1024
_CHUNK = 64 * 1024


class ConnectProxy:
    """A running proxy; ``stop()`` closes its listener and every tunnel."""

    def __init__(self, routes: Mapping[str, tuple[str, int]]) -> None:
        """``routes`` maps ``host:port`` (as CONNECT names it) to the (address, port) to use."""
        self._routes = {target.lower(): where for target, where in routes.items()}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.targets: list[str] = []
        self._thread = threading.Thread(target=self._accept, name="connect-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The value for HTTPS_PROXY."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def stop(self) -> None:
        """Close the listener and every open tunnel; wait for the accept thread."""
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._thread.join(timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self._sockets.append(client)
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = rest.partition(" ")[0].lower()
        with self._lock:
            self.targets.append(target)
        where = self._routes.get(target)
        if method != "CONNECT" or where is None:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        upstream = socket.create_connection(where, timeout=30)
        with self._lock:
            self._sockets.append(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
