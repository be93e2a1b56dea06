"""Streaming asyncio client for clamd's ``zINSTREAM`` command.

Each block handed to :meth:`ScanSession.send` goes to clamd as it arrives, so an
upload is scanned without being held in memory or on disk by this process.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from typing import Literal, TypeAlias
from urllib.parse import urlsplit

Address: TypeAlias = tuple[Literal["tcp"], str, int] | tuple[Literal["unix"], str]

MAX_FRAME = 1 << 20
_MAX_REPLY = 4096
_TERMINATOR = struct.pack(">I", 0)
_FOUND = re.compile(rb"stream: ([\x21-\x7e]{1,200}) FOUND")
_LIMIT_MESSAGE = (
    "the stream was larger than clamd's StreamMaxLength, so clamd stopped reading and the upload cannot be scanned"
)


class ClamdError(Exception):
    """Base class for every error raised by this module."""


class ClamdUnavailable(ClamdError):
    """clamd could not be reached, went away, timed out or answered nonsense."""


class ClamdLimitExceeded(ClamdError):
    """clamd refused the stream because it exceeded its StreamMaxLength."""


def parse_address(address: str) -> Address:
    """Parse ``tcp://host:port`` or ``unix:///absolute/path``."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
        if not path.startswith("/") or path.endswith("/"):
            raise ValueError(
                f"invalid clamd address {address!r}: "
                "a unix socket needs the absolute path of the socket, as in unix:///run/clamav/clamd.ctl"
            )
        return ("unix", path)
    if address.startswith("tcp://"):
        parts = urlsplit(address)
        try:
            port = parts.port
        except ValueError:
            port = None
        if (
            not parts.hostname
            or port is None
            or port == 0
            or parts.username is not None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"invalid clamd address {address!r}: expected tcp://host:port "
                "with a port between 1 and 65535, as in tcp://127.0.0.1:3310"
            )
        return ("tcp", parts.hostname, port)
    raise ValueError(f"invalid clamd address {address!r}: expected tcp://host:port or unix:///path")


async def _connect(target: Address) -> socket.socket:
    loop = asyncio.get_running_loop()
    if target[0] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, target[1])
        except BaseException:
            sock.close()
            raise
        return sock
    _, host, port = target
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{host} did not resolve to any address")
    for family, type_, proto, _canonname, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


async def _read_reply(sock: socket.socket) -> bytes:
    """Read one NUL-terminated reply; what came before EOF if clamd hung up."""
    loop = asyncio.get_running_loop()
    reply = bytearray()
    while b"\0" not in reply and len(reply) < _MAX_REPLY:
        try:
            chunk = await loop.sock_recv(sock, _MAX_REPLY)
        except OSError:
            if reply:
                break
            raise
        if not chunk:
            break
        reply += chunk
    return bytes(reply.partition(b"\0")[0]).strip()


class ScanSession:
    """One ``zINSTREAM`` scan; every method raises :class:`ClamdError` subclasses."""

    def __init__(self, sock: socket.socket, address: str, timeout: float) -> None:
        self._sock: socket.socket | None = sock
        self._address = address
        self._timeout = timeout

    @classmethod
    async def open(cls, address: str, timeout: float) -> ScanSession:  # noqa: ASYNC109
        """Connect to clamd at ``address`` and start a stream scan."""
        target = parse_address(address)
        try:
            sock = await asyncio.wait_for(_connect(target), timeout)
        except TimeoutError as exc:
            raise ClamdUnavailable(f"timed out after {timeout}s connecting to clamd at {address}") from exc
        except OSError as exc:
            raise ClamdUnavailable(f"cannot connect to clamd at {address}: {exc}") from exc
        session = cls(sock, address, timeout)
        await session._write(b"zINSTREAM\0")
        return session

    async def send(self, data: bytes | memoryview) -> None:
        """Stream ``data`` to clamd in frames of at most :data:`MAX_FRAME` bytes."""
        view = memoryview(data).cast("B")
        for start in range(0, len(view), MAX_FRAME):
            frame = view[start : start + MAX_FRAME]
            await self._write(struct.pack(">I", len(frame)), frame)

    async def verdict(self) -> str | None:
        """End the stream; return the signature name if clamd found one, else None."""
        await self._write(_TERMINATOR)
        sock = self._open_socket()
        try:
            reply = await asyncio.wait_for(_read_reply(sock), self._timeout)
        except TimeoutError as exc:
            raise self._timed_out("waiting for the verdict") from exc
        except OSError as exc:
            raise self._lost(exc) from exc
        finally:
            self._drop()
        if not reply:
            raise self._lost(ConnectionError("clamd closed the connection"))
        if reply == b"stream: OK":
            return None
        if found := _FOUND.fullmatch(reply):
            return found[1].decode()
        raise self._refusal(reply)

    async def close(self) -> None:
        """Drop the connection; clamd then abandons the scan.  Idempotent."""
        self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _open_socket(self) -> socket.socket:
        if self._sock is None:
            raise ClamdUnavailable(f"scan session with clamd at {self._address} is closed")
        return self._sock

    async def _write(self, *parts: bytes | memoryview) -> None:
        sock = self._open_socket()
        loop = asyncio.get_running_loop()

        async def write_all() -> None:
            if _has_spoken(sock):
                raise ConnectionError("clamd closed the connection")
            for part in parts:
                await loop.sock_sendall(sock, part)

        try:
            await asyncio.wait_for(write_all(), self._timeout)
        except TimeoutError as exc:
            self._drop()
            raise self._timed_out("sending data") from exc
        except OSError as exc:
            raise await self._failure(sock, exc) from exc
        except BaseException:
            self._drop()
            raise

    async def _failure(self, sock: socket.socket, exc: OSError) -> ClamdError:
        """Explain a failed write, preferring clamd's own last word if it sent one."""
        try:
            reply = await asyncio.wait_for(_read_reply(sock), self._timeout)
        except (OSError, TimeoutError):
            reply = b""
        finally:
            self._drop()
        return self._refusal(reply) if reply else self._lost(exc)

    def _refusal(self, reply: bytes) -> ClamdError:
        if b"size limit exceeded" in reply:
            return ClamdLimitExceeded(_LIMIT_MESSAGE)
        return ClamdUnavailable(f"unexpected reply from clamd at {self._address}: {reply[:100]!r} ({len(reply)} bytes)")

    def _lost(self, exc: OSError) -> ClamdUnavailable:
        return ClamdUnavailable(f"lost connection to clamd at {self._address}: {exc}")

    def _timed_out(self, doing: str) -> ClamdUnavailable:
        return ClamdUnavailable(f"clamd at {self._address} did not respond within {self._timeout}s {doing}")


def _has_spoken(sock: socket.socket) -> bool:
    """Whether clamd has already replied or hung up, which it only does to refuse."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return True


async def ping(address: str, timeout: float) -> bool:  # noqa: ASYNC109
    """Whether clamd at ``address`` answers ``zPING`` within ``timeout``."""
    target = parse_address(address)

    async def exchange() -> bool:
        with await _connect(target) as sock:
            await asyncio.get_running_loop().sock_sendall(sock, b"zPING\0")
            return await _read_reply(sock) == b"PONG"

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError):
        return False
