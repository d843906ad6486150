"""A TCP proxy that adds latency to either direction or both: ``python -m bench.latency_proxy``.

It listens on ``--listen`` (default 127.0.0.1, a free port), and for every connection it
accepts it opens one to ``--upstream`` at once. Then:

- every chunk of bytes the client sends (a TLS ClientHello, an HTTP request, an SSH packet) is
  forwarded to the upstream ``--delay-ms`` milliseconds after the proxy read it;
- every chunk the upstream sends back is forwarded to the client ``--reply-delay-ms``
  milliseconds after the proxy read it (default 0: at once).

Each chunk is delayed by the same amount from its own arrival, in order; delays do not add up
across chunks, so each direction behaves like a link with that much one-way latency and
unlimited bandwidth. The end of stream (FIN) is delayed like the bytes before it. Both sockets
have TCP_NODELAY, so the proxy adds no Nagle wait of its own.

Two uses in the bench: in front of the registry, ``--delay-ms 100`` (or 20) alone, so every
request, and every TLS handshake flight from the client, is answered that much later; and in
front of each vantage's sshd, ``--delay-ms 40 --reply-delay-ms 40``, a far vantage at an 80 ms
round trip. What is not delayed: the TCP handshake between client and proxy (the proxy accepts
locally at once) and the proxy's own connection to the upstream (opened at accept, in parallel
with the client's first flight).

With ``--log FILE`` it appends one line per event, times from ``time.monotonic()`` (the
clock the bench's ``time.perf_counter()`` also reads on Linux)::

    open ID T
    up ID T BYTES        (a chunk read from the client)
    down ID T BYTES      (a chunk read from the upstream)
    close ID T

``turns`` below counts, from such a log, how many times a client spoke again after the server
had answered: every round trip the client waits for is one turn (one turn may also be a
message the client would have sent anyway).

It prints ``LISTENING <port>`` on stdout once it accepts connections, and runs until SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

CHUNK_BYTES = 64 * 1024

Note = Callable[[str, int], None]
"""Records one chunk: its direction ("up" or "down") and its size."""


def _no_note(direction: str, size: int) -> None:
    pass


async def _forward_delayed(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    note: Note,
    direction: str,
) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it was read (at once when
    ``delay`` is 0); pass on the end of stream as late."""
    if delay <= 0:
        while data := await reader.read(CHUNK_BYTES):
            note(direction, len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if data:
                note(direction, len(data))
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def write() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read(), write())


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY on the socket under ``writer`` (asyncio sets it too; said here so the
    proxy does not depend on that)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LatencyProxy:
    """The proxy's state: where to connect, how long to hold each direction's bytes, and
    where to log (None: nowhere)."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        delay: float,
        reply_delay: float = 0.0,
        log: TextIO | None = None,
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._delay = delay
        self._reply_delay = reply_delay
        self._log = log
        self._ids = itertools.count(1)

    def _write(self, event: str, number: int, *rest: int) -> None:
        """One log line: EVENT ID T [BYTES], T from the loop's clock (time.monotonic)."""
        if self._log is not None:
            when = asyncio.get_running_loop().time()
            self._log.write(" ".join([event, str(number), f"{when:.6f}", *map(str, rest)]) + "\n")
            self._log.flush()

    async def handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        """One client connection: pair it with an upstream connection until both ends close."""
        number = next(self._ids)
        self._write("open", number)
        _no_delay(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            self._write("close", number)
            return
        _no_delay(upstream_writer)

        def note(direction: str, size: int) -> None:
            self._write(direction, number, size)

        chosen = note if self._log is not None else _no_note
        try:
            await asyncio.gather(
                _forward_delayed(client_reader, upstream_writer, self._delay, chosen, "up"),
                _forward_delayed(upstream_reader, client_writer, self._reply_delay, chosen, "down"),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # one side went away: close both
        finally:
            for writer in (upstream_writer, client_writer):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            self._write("close", number)


@dataclass(frozen=True)
class Connection:
    """One proxied connection as its log tells it."""

    number: int
    opened: float  # time.monotonic() at accept
    closed: float | None  # None while it is open
    turns: int  # times the client sent after the server had (see the module docstring)
    up_bytes: int
    down_bytes: int


def connections(lines: Iterable[str]) -> list[Connection]:
    """Every connection in a ``--log`` file's lines, in the order they were opened."""
    opened: dict[int, float] = {}
    closed: dict[int, float] = {}
    turns: dict[int, int] = {}
    last: dict[int, str] = {}
    sizes: dict[tuple[int, str], int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or not fields[1].isdigit():
            continue  # a line cut short while being written
        event, number, when = fields[0], int(fields[1]), float(fields[2])
        if event == "open":
            opened[number] = when
            turns[number] = 0
        elif event == "close":
            closed[number] = when
        elif event in ("up", "down") and len(fields) == 4:
            if event == "up" and last.get(number) != "up":
                turns[number] = turns.get(number, 0) + 1
            last[number] = event
            key = (number, event)
            sizes[key] = sizes.get(key, 0) + int(fields[3])
    return [
        Connection(
            number=number,
            opened=when,
            closed=closed.get(number),
            turns=turns.get(number, 0),
            up_bytes=sizes.get((number, "up"), 0),
            down_bytes=sizes.get((number, "down"), 0),
        )
        for number, when in sorted(opened.items())
    ]


async def serve(listen_host: str, listen_port: int, proxy: LatencyProxy) -> None:
    """Accept connections until SIGTERM or SIGINT."""
    server = await asyncio.start_server(proxy.handle, listen_host, listen_port)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the proxy."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__)
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0))
    parser.add_argument("--upstream", type=_host_port, required=True)
    parser.add_argument(
        "--delay-ms", type=float, default=100.0, help="client->server delay (default 100)"
    )
    parser.add_argument(
        "--reply-delay-ms", type=float, default=0.0, help="server->client delay (default 0)"
    )
    parser.add_argument("--log", default=None, help="append one line per event to this file")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "a", encoding="utf-8")) if args.log else None
        proxy = LatencyProxy(
            args.upstream[0],
            args.upstream[1],
            args.delay_ms / 1000.0,
            args.reply_delay_ms / 1000.0,
            log,
        )
        asyncio.run(serve(args.listen[0], args.listen[1], proxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
