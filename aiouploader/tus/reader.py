"""A PATCH's body as the upload session reads it: where the request ends, early or not, its segment ends."""

from __future__ import annotations

import asyncio

from ..body import Read
from ..config import ServerConfig
from ..errors import PayloadTooLarge
from .protocol import PatchChecksum


class PatchReader:
    """Reads one request's body for a resumable upload.

    A client that goes away, falls silent for ``server.body_idle_timeout`` or
    overruns ``server.body_timeout`` ends the body there, and so does ``stop``
    (the server's drain): the bytes read until
    then count, and the client resumes from the offset ``HEAD`` gives. Bytes
    beyond the upload's length end the upload (413).
    """

    def __init__(
        self,
        read: Read,
        server: ServerConfig,
        left: int | None,
        checksum: PatchChecksum | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._read = read
        self._stop = stop
        self._idle = server.body_idle_timeout
        self._deadline = asyncio.get_running_loop().time() + server.body_timeout
        self._left = left
        self._checksum = checksum
        self.cut = False
        """The request ended before its body did."""

    async def read(self) -> bytes:
        if self.cut:
            return b""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(self._idle, self._deadline - loop.time())):
                chunk = await self._read_unless_stopped()
        except (TimeoutError, ConnectionError, OSError, EOFError, ValueError):
            self.cut = True
            return b""
        except Exception as exc:
            if not type(exc).__module__.startswith("aiohttp"):
                raise
            self.cut = True
            return b""
        if self._left is not None:
            if len(chunk) > self._left:
                raise PayloadTooLarge("The PATCH sends more bytes than the upload's Upload-Length.")
            self._left -= len(chunk)
        if self._checksum is not None:
            self._checksum.update(chunk)
        return chunk

    async def _read_unless_stopped(self) -> bytes:
        if self._stop is None:
            return await self._read()
        if self._stop.is_set():
            raise EOFError
        reading = asyncio.ensure_future(self._read())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((reading, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not reading.done():
                reading.cancel()
        if not reading.done() or reading.cancelled():
            raise EOFError
        return reading.result()
