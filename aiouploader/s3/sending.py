"""Request bodies sent to S3: in slices of one buffer, and given up once S3 stops taking them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

UNWATCHED = 32 * 1024
"""A body this small goes to the socket's buffer in one write: only S3's answer is awaited, within read_timeout."""


class Body:
    """A request body that aiohttp sends in slices of one buffer, copying nothing.

    Given ``bytes``, botocore wraps them in a BytesIO that aiohttp copies; a
    whole buffer written at once is copied again into the socket transport
    for the part the kernel does not take. Slices keep that copy small.
    botocore needs ``read`` to accept the object, ``len`` for Content-Length
    and ``seek`` to rewind before a retry: each retry iterates afresh.
    """

    SLICE = 256 * 1024

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer
        self.sending = False
        """A pass over the slices is under way (a retry starts another)."""
        self.progress = time.monotonic()
        """When the last slice was asked for: the one before it was taken."""

    def __len__(self) -> int:
        return len(self._buffer)

    def read(self, size: int = -1) -> bytes:
        return bytes(self._buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        view = memoryview(self._buffer)
        self.sending = True
        for start in range(0, len(view), self.SLICE):
            self.progress = time.monotonic()
            yield view[start : start + self.SLICE]
        self.sending = False


async def watched_call(call: Awaitable[Any], body: Body, read_timeout: float) -> Any:
    """``call``, failed with a timeout once S3 takes none of ``body`` for ``read_timeout`` seconds.

    aiohttp bounds the wait for the response but not the sending of the
    body: an S3 that stops reading it would hold the upload forever.
    """
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=read_timeout / 4)
            if done:
                return task.result()
            if body.sending and time.monotonic() - body.progress > read_timeout:
                raise TimeoutError
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # seen: when the caller was cancelled it has no use for this outcome
