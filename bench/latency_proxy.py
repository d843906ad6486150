"""A TCP proxy that adds latency to one direction: ``python -m bench.latency_proxy``.

It listens on ``--listen`` (default 127.0.0.1, a free port), and for every connection it
accepts it opens one to ``--upstream`` at once. Then:

- every chunk of bytes the client sends (a TLS ClientHello, the client's handshake finish, an
  HTTP request) is forwarded to the upstream ``--delay-ms`` milliseconds after the proxy read
  it. Each chunk is delayed by the same amount from its own arrival, in order; delays do not
  add up across chunks, so the client->server direction behaves like a link with that much
  one-way latency and unlimited bandwidth. The client's end of stream (FIN) is delayed too;
- bytes the upstream sends back are forwarded at once.

So every request, and every TLS handshake flight from the client, is answered ``--delay-ms``
later than without the proxy: a round trip gains that much. What is not delayed: the TCP
handshake between client and proxy (the proxy accepts locally at once) and the proxy's own
connection to the upstream (opened at accept, in parallel with the client's first flight).

It prints ``LISTENING <port>`` on stdout once it accepts connections, and runs until SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

CHUNK_BYTES = 64 * 1024


async def _forward_delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(CHUNK_BYTES)
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


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy reader to writer as it comes; pass on the end of stream."""
    while data := await reader.read(CHUNK_BYTES):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class LatencyProxy:
    """The proxy's state: where to connect, how long to hold client bytes."""

    def __init__(self, upstream_host: str, upstream_port: int, delay: float) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._delay = delay

    async def handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        """One client connection: pair it with an upstream connection until both ends close."""
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _forward_delayed(client_reader, upstream_writer, self._delay),
                _forward(upstream_reader, client_writer),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # one side went away: close both
        finally:
            for writer in (upstream_writer, client_writer):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


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
    parser.add_argument("--delay-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    proxy = LatencyProxy(args.upstream[0], args.upstream[1], args.delay_ms / 1000.0)
    asyncio.run(serve(args.listen[0], args.listen[1], proxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
