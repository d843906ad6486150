"""The lab registry process: three HTTPS listeners standing in for ghcr.io and Docker Hub.

Run it as ``python -m tofu3.lab.registry --dir DIR --registry ADDR:PORT --auth ADDR:PORT
--cdn ADDR:PORT`` (port 0 picks a free port), or from Python with :func:`start_registry`.
It presents DIR/server.pem (see :mod:`tofu3.lab.pki`), logs to DIR/registry.log, reads
DIR/tamper.json on every request, and once listening writes DIR/registry-ports.json:

    {"registry": [ADDR, PORT], "auth": [ADDR, PORT], "cdn": [ADDR, PORT],
     "pid": PID, "start_ticks": TICKS}

SIGTERM (or SIGINT) stops it cleanly with status 0. What it answers is in
:mod:`tofu3.lab.registry_http`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType, MappingProxyType, TracebackType
from typing import Any, NamedTuple

from tofu3.atomic import write_atomic
from tofu3.lab.content import build_alt_store, build_store
from tofu3.lab.errors import LabError
from tofu3.lab.lies import build_deep_store
from tofu3.lab.pki import ensure_pki
from tofu3.lab.registry_http import LOG_FILE, LabHandler, LabState, RequestLog, Role
from tofu3.lab.sshd import STOP_TIMEOUT, end_process, process_start_ticks
from tofu3.lab.tokens import CdnSigner, TokenBook

PORTS_FILE = "registry-ports.json"
STDERR_FILE = "registry-stderr.log"
START_TIMEOUT = 15.0
"""Seconds a new registry process has to write its ports file and accept connections."""

POLL_INTERVAL = 0.1
"""Seconds between checks for a stop request (bounds how long SIGTERM takes)."""

HANDSHAKE_TIMEOUT = 15.0
"""Seconds a client has to finish the TLS handshake."""

Address = tuple[str, int]


class LabServer(ThreadingHTTPServer):
    """One listener: TLS, a thread per connection, and the role it plays."""

    daemon_threads = True
    # SO_REUSEADDR lets a lab restart while its old connections sit in TIME_WAIT (the fixed
    # :443 of a namespace lab); Linux still refuses a port another server listens on, so a
    # leftover lab on the port is still an error.
    allow_reuse_address = True

    def __init__(self, address: Address, role: Role, state: LabState, tls: ssl.SSLContext):
        self.role = role
        self.state = state
        self.tls = tls
        super().__init__(address, LabHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake in the connection's own thread, so a slow client cannot stall accept()."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLEOFError, ConnectionError, TimeoutError):
            return  # a port probe or a client that went away: nothing worth a log line
        except (ssl.SSLError, OSError) as error:
            # Worth keeping: this is what a vantage that does not trust the lab CA looks like.
            self.state.log.write(self.role.value, client_address[0], "tls", type(error).__name__)
            return
        try:
            LabHandler(connection, client_address, self)
        finally:
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-response is normal; anything else goes to stderr."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


CONTENTS = ("honest", "alt")
"""What a registry process serves as the truth: the lab's content, or (an impostor) the
alternative tree, consistent in itself."""


def serve(directory: Path, addresses: Mapping[Role, Address], content: str = "honest") -> int:
    """Run the three listeners until SIGTERM or SIGINT; returns the exit status."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(directory / "server.pem", directory / "server-key.pem")
    tls.set_alpn_protocols(["http/1.1"])  # no HTTP/2 here; say so rather than let curl guess
    honest, alternative = build_store(), build_alt_store()
    if content == "alt":
        honest, alternative = alternative, honest
    state = LabState(
        directory=directory,
        honest=honest,
        alternative=alternative,
        deep=build_deep_store(honest),
        tokens=TokenBook(),
        signer=CdnSigner(),
        log=RequestLog(directory / LOG_FILE),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    servers: dict[Role, LabServer] = {}
    for role, address in addresses.items():
        try:
            servers[role] = LabServer(address, role, state, tls)
        except OSError as error:
            for server in servers.values():
                server.server_close()
            print(
                f"cannot listen on {address[0]}:{address[1]} ({role.value}): {error}",
                file=sys.stderr,
            )
            return 1
    for server in servers.values():
        threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True).start()
    try:
        ports: dict[str, Any] = {
            role.value: [server.server_address[0], server.server_address[1]]
            for role, server in servers.items()
        }
        ports |= {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())}
        write_atomic(directory / PORTS_FILE, json.dumps(ports).encode())
        state.log.write("registry", "listening", json.dumps(ports, separators=(",", ":")))
        while not stop.wait(POLL_INTERVAL):
            pass
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        # Only a running registry has a ports file; a later start must not read a stale one.
        with contextlib.suppress(OSError):
            ports_path = directory / PORTS_FILE
            if json.loads(ports_path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                ports_path.unlink()
    state.log.write("registry", "stopped")
    return 0


def parse_address(text: str) -> Address:
    """``127.0.0.1:8443`` -> ("127.0.0.1", 8443); port 0 means any free port."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected ADDRESS:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tofu3.lab.registry``."""
    parser = argparse.ArgumentParser(prog="python -m tofu3.lab.registry", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="lab directory (certs, logs)")
    for role in Role:
        parser.add_argument(
            f"--{role.value}", type=parse_address, default=("127.0.0.1", 0), metavar="ADDR:PORT"
        )
    parser.add_argument(
        "--content", choices=CONTENTS, default="honest", help="what to serve as the truth"
    )
    args = parser.parse_args(argv)
    addresses = {role: getattr(args, role.value) for role in Role}
    return serve(args.dir.resolve(), addresses, args.content)


@dataclass(frozen=True)
class RegistryProcess:
    """A lab registry started by :func:`start_registry`."""

    directory: Path
    pid: int
    start_ticks: int | None
    ports: Mapping[str, Address]  # role ("registry", "auth", "cdn") -> (address, port)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def url(self, role: str = "registry") -> str:
        """``https://ADDR:PORT`` of one listener (an address, so send the Host header)."""
        address, port = self.ports[role]
        return f"https://{address}:{port}"

    @property
    def exit_status(self) -> int | None:
        """The exit status once it has ended (known only to the process that started it)."""
        return self._process.poll() if self._process is not None else None

    def stop(self) -> bool:
        """SIGTERM, wait, SIGKILL if need be. Returns whether it was still running."""
        if self._process is None:
            # Started by another process (``tofu3 lab down``): by pid, checked against reuse.
            return end_process(self.pid, self.start_ticks)
        # Our own child: its Popen cannot name a recycled pid, and it keeps the exit status.
        if self._process.poll() is not None:
            return False
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)
        return True

    def __enter__(self) -> RegistryProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_registry(
    directory: Path,
    registry: Address = ("127.0.0.1", 0),
    auth: Address = ("127.0.0.1", 0),
    cdn: Address = ("127.0.0.1", 0),
    timeout: float = START_TIMEOUT,
    *,
    content: str = "honest",
) -> RegistryProcess:
    """Start the lab registry as its own process and wait until every listener accepts.

    Makes the lab PKI in ``directory`` if it is not there. ``content`` "alt" makes an
    impostor: it serves the alternative tree as its truth. Raises LabError (having stopped
    the process) if it does not come up within ``timeout`` seconds.
    """
    if content not in CONTENTS:
        raise LabError(f"unknown registry content {content!r}")
    directory = directory.resolve()
    ensure_pki(directory)
    ports_path = directory / PORTS_FILE
    ports_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "tofu3.lab.registry", "--dir", str(directory)]
    for role, (host, port) in (("registry", registry), ("auth", auth), ("cdn", cdn)):
        command += [f"--{role}", f"{host}:{port}"]
    command += ["--content", content]
    with (directory / STDERR_FILE).open("ab") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            # Its own session: a Ctrl-C meant for the CLI must not reach the lab's daemons.
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise LabError(
                    f"the lab registry exited with status {process.returncode}:\n"
                    + _tail(directory / STDERR_FILE)
                )
            ports = read_ports(directory)
            if (
                ports is not None
                and ports.pid == process.pid
                and all(map(_accepts, ports.listeners.values()))
            ):
                return RegistryProcess(
                    directory,
                    process.pid,
                    process_start_ticks(process.pid),
                    ports.listeners,
                    process,
                )
            if time.monotonic() > deadline:
                raise LabError(f"the lab registry was not ready after {timeout:.0f} s")
            time.sleep(0.05)
    except BaseException:
        process.kill()
        process.wait(STOP_TIMEOUT)
        raise


class PortsFile(NamedTuple):
    """DIR/registry-ports.json: role -> (address, port) of each listener, and the pid."""

    listeners: Mapping[str, Address]
    pid: int


def read_ports(directory: Path) -> PortsFile | None:
    """What DIR/registry-ports.json says, or None if it is absent or unreadable."""
    try:
        data = json.loads((directory / PORTS_FILE).read_text(encoding="utf-8"))
        ports = {role.value: (str(data[role.value][0]), int(data[role.value][1])) for role in Role}
        return PortsFile(MappingProxyType(ports), int(data["pid"]))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _accepts(address: Address) -> bool:
    host, port = address
    # A listener on the wildcard address is reached through loopback.
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - compared, not bound
    try:
        with socket.create_connection((target, port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
