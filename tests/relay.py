"""A fault-injecting TCP relay for tests: put it between a client and a server on loopback.

Every connection to the relay opens one to the target, and bytes are pumped both
ways. Faults apply per connection, to the client→server direction unless said
otherwise, and may be changed while the relay runs (the attributes are read for
every chunk):

* ``flip_at``: flip the byte at this offset of the raw stream;
* ``flip_body_at``: flip the byte at this offset of every HTTP/1.1 request body
  longer than that (bodies framed by ``Content-Length``; the relay stops looking
  at a connection that sends a chunked body);
* ``delay``: seconds to wait before passing on each chunk, in both directions;
* ``close_after``: pass on this many bytes, then cut both sides of the connection;
* ``stall_after``: once this many bytes went client→server through the relay (all
  connections together), every connection that has more to pass on stalls: its bytes are
  read and dropped, nothing more is passed on in either direction, so the peer sees a
  connection that takes its bytes and never answers. Set it to ``None`` to stop new stalls
  (connections already stalled stay so until their peer closes them);
* ``hold_after``: like ``stall_after``, but the stalled connections stop reading, so
  the sender's writes back up as when a peer stops taking bytes (TCP's window closes);
* ``reset_after``: pass on this many bytes, then reset both sides (RST, through
  ``SO_LINGER`` 0) instead of closing them;
* ``bandwidth``: at most this many bytes per second, in each direction of each connection;
* ``lose_response_to``: a test of a request line (e.g. ``lambda line: line.startswith("POST ")``):
  the first request that passes it goes through, and its response does not: the connection
  is cut when the response starts, then the fault is off;
* ``hold_response_to``: a test of a request line: every request that passes it goes through,
  and its response never comes: the connection stalls as with ``stall_after``;
* ``alter_response``: given the request line and a chunk of the response to it (a response's
  head comes in its first chunk), the chunk to pass on instead: e.g. a header's value changed;
* ``faulty_connections``: apply the faults to the first N connections only (``None``: all),
  e.g. to let a client's retry on a new connection succeed.

:attr:`Relay.requests` keeps the head (request line and headers) of every
HTTP/1.1 request that went through, for tests that check what a client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from types import TracebackType

HEADERS_END = b"\r\n\r\n"
MAX_HEADERS = 64 * 1024
READ_SIZE = 64 * 1024


def _flip(data: bytearray, index: int) -> None:
    data[index] ^= 0xFF


def reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s connection with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _RequestBodies:
    """Follows the HTTP/1.1 requests of one connection to know where each body lies."""

    def __init__(self, heads: list[str]) -> None:
        self._heads = heads
        self._head = bytearray()
        self._remaining = 0
        self._position = 0
        self._lost = False
        self.line = ""
        """The request line of the latest request."""

    def feed(self, data: bytearray, offset: int | None) -> int:
        """Follow ``data``; flip the byte at ``offset`` of each body in it (if given); return how many."""
        flipped = 0
        i = 0
        while i < len(data) and not self._lost:
            if self._remaining == 0:
                before = len(self._head)
                self._head += data[i:]
                end = self._head.find(HEADERS_END)
                if end < 0:
                    if len(self._head) > MAX_HEADERS:
                        self._lost = True
                    return flipped
                end += len(HEADERS_END)
                i += end - before
                self._start_body(bytes(self._head[:end]))
                self._head.clear()
                continue
            n = min(self._remaining, len(data) - i)
            if offset is not None and self._position <= offset < self._position + n:
                _flip(data, i + offset - self._position)
                flipped += 1
            self._position += n
            self._remaining -= n
            i += n
        return flipped

    def _start_body(self, head: bytes) -> None:
        self._heads.append(head.decode("latin-1"))
        self.line = self._heads[-1].split("\r\n", 1)[0]
        self._position = 0
        self._remaining = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._remaining = int(value.strip())
            elif name == b"transfer-encoding" and value.strip().lower() != b"identity":
                self._lost = True


class Relay:
    """``async with Relay(port, flip_body_at=1000) as relay:`` then connect to ``relay.url``."""

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        flip_at: int | None = None,
        flip_body_at: int | None = None,
        delay: float = 0.0,
        close_after: int | None = None,
        faulty_connections: int | None = None,
        stall_after: int | None = None,
        reset_after: int | None = None,
        bandwidth: float | None = None,
        hold_after: int | None = None,
        lose_response_to: Callable[[str], bool] | None = None,
        hold_response_to: Callable[[str], bool] | None = None,
        alter_response: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.alter_response = alter_response
        self.altered = 0
        """Response chunks ``alter_response`` changed so far."""
        self.lose_response_to = lose_response_to
        self.hold_response_to = hold_response_to
        self.stall_after = stall_after
        self.hold_after = hold_after
        self.reset_after = reset_after
        self.bandwidth = bandwidth
        self.stalled = 0
        """Connections stalled so far."""
        self.faults = 0
        """Connections stalled, reset or closed by a fault so far."""
        self.flip_at = flip_at
        self.flip_body_at = flip_body_at
        self.delay = delay
        self.close_after = close_after
        self.faulty_connections = faulty_connections
        self.connections = 0
        self.flipped = 0
        """Bytes flipped so far, over all connections."""
        self.bytes_up = 0
        self.bytes_down = 0
        self.requests: list[str] = []
        """The head of every HTTP/1.1 request seen, in order of arrival."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @classmethod
    def to_url(
        cls,
        url: str,
        *,
        flip_at: int | None = None,
        flip_body_at: int | None = None,
        delay: float = 0.0,
        close_after: int | None = None,
        faulty_connections: int | None = None,
        stall_after: int | None = None,
        reset_after: int | None = None,
        bandwidth: float | None = None,
    ) -> Relay:
        """A relay to the ``host:port`` of an ``http://`` URL."""
        host, _, port = url.removeprefix("http://").split("/")[0].rpartition(":")
        return cls(
            int(port),
            host,
            flip_at=flip_at,
            flip_body_at=flip_body_at,
            delay=delay,
            close_after=close_after,
            faulty_connections=faulty_connections,
            stall_after=stall_after,
            reset_after=reset_after,
            bandwidth=bandwidth,
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        while self._tasks:  # a connection accepted meanwhile adds one
            for task in list(self._tasks):
                task.cancel()
            await asyncio.wait(set(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Relay:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._closing:  # no connection to S3 may outlive the relay
            client_writer.transport.abort()
            return
        self.connections += 1
        if self.hold_after is not None:  # small buffers, so that a held connection backs up soon
            sock = client_writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        faulty = self.faulty_connections is None or self.connections <= self.faulty_connections
        task = asyncio.create_task(self._relay(client_reader, client_writer, faulty))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: client_writer.close())  # also when cancelled before it ran

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, faulty: bool
    ) -> None:
        connecting = asyncio.ensure_future(asyncio.open_connection(*self.target))
        try:
            server_reader, server_writer = await asyncio.shield(connecting)
        except OSError:
            client_writer.transport.abort()
            client_writer.close()
            return
        except asyncio.CancelledError:  # the relay closes meanwhile: close what the connecting made
            client_writer.transport.abort()
            client_writer.close()
            with contextlib.suppress(Exception):
                _, made = await connecting
                made.transport.abort()
                made.close()
            raise
        writers = (client_writer, server_writer)
        stalled = asyncio.Event()
        bodies = _RequestBodies(self.requests)
        up = asyncio.create_task(
            self._pump(client_reader, server_writer, writers, bodies, upstream=True, faulty=faulty, stalled=stalled)
        )
        down = asyncio.create_task(
            self._pump(server_reader, client_writer, writers, bodies, upstream=False, faulty=faulty, stalled=stalled)
        )
        try:
            await asyncio.gather(up, down)
        finally:
            up.cancel()
            down.cancel()
            await asyncio.wait({up, down})
            for writer in writers:
                writer.transport.abort()
                writer.close()

    async def _throttle(self, size: int) -> None:
        if self.bandwidth:
            await asyncio.sleep(size / self.bandwidth)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        bodies: _RequestBodies,
        *,
        upstream: bool,
        faulty: bool,
        stalled: asyncio.Event,
    ) -> None:
        passed = 0
        try:
            while True:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    if stalled.is_set():  # the peer gave up on a stalled connection: close both sides
                        for side in both:
                            side.transport.abort()
                        return
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if stalled.is_set():
                    continue  # taken and dropped
                if faulty and self.delay:
                    await asyncio.sleep(self.delay)
                data = bytearray(chunk)
                if upstream:
                    flips = bodies.feed(data, self.flip_body_at if faulty else None)
                    if faulty and self.flip_at is not None and passed <= self.flip_at < passed + len(data):
                        _flip(data, self.flip_at - passed)
                        flips += 1
                    self.flipped += flips
                    if faulty and self.stall_after is not None and self.bytes_up + len(data) >= self.stall_after:
                        keep = max(0, self.stall_after - self.bytes_up)
                        self.bytes_up += keep
                        writer.write(bytes(data[:keep]))
                        stalled.set()
                        self.stalled += 1
                        self.faults += 1
                        continue
                    if faulty and self.hold_after is not None and self.bytes_up + len(data) >= self.hold_after:
                        keep = max(0, self.hold_after - self.bytes_up)
                        self.bytes_up += keep
                        writer.write(bytes(data[:keep]))
                        stalled.set()
                        self.stalled += 1
                        self.faults += 1
                        await asyncio.Event().wait()  # read no more, until the relay closes
                    if faulty and self.reset_after is not None and passed + len(data) >= self.reset_after:
                        self.bytes_up += self.reset_after - passed
                        writer.write(bytes(data[: self.reset_after - passed]))
                        with contextlib.suppress(ConnectionError):
                            await writer.drain()
                        self.faults += 1
                        for side in both:
                            reset(side)
                        return
                    if faulty and self.close_after is not None and passed + len(data) >= self.close_after:
                        self.bytes_up += self.close_after - passed
                        writer.write(bytes(data[: self.close_after - passed]))
                        self.faults += 1
                        both[0].transport.abort()
                        writer.close()
                        with contextlib.suppress(ConnectionError):
                            await writer.wait_closed()  # the bytes passed on are flushed first
                        return
                    self.bytes_up += len(data)
                else:
                    lose = self.lose_response_to
                    if faulty and lose is not None and lose(bodies.line):
                        self.lose_response_to = None
                        self.faults += 1
                        for side in both:
                            side.transport.abort()
                        return
                    hold = self.hold_response_to
                    if faulty and hold is not None and hold(bodies.line):
                        stalled.set()
                        self.stalled += 1
                        self.faults += 1
                        continue
                    alter = self.alter_response
                    if faulty and alter is not None and (altered := alter(bodies.line, bytes(data))) != data:
                        data = bytearray(altered)
                        self.altered += 1
                    self.bytes_down += len(data)
                passed += len(data)
                writer.write(bytes(data))
                await writer.drain()
                if faulty:
                    await self._throttle(len(data))
        except ConnectionError:
            for side in both:
                side.transport.abort()
