"""Request bodies sent to S3: in slices of one buffer, and given up once S3 stops taking them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from ..checksums import Data

Pieces = Sequence[Data]
"""A request body as the blocks it was written in, end to end: sent as they are, never joined."""

UNWATCHED = 32 * 1024
"""A body this small goes to the socket's buffer in one write: only S3's answer is awaited, within read_timeout."""


def size_of(pieces: Pieces) -> int:
    return sum(len(piece) for piece in pieces)


class Body:
    """A request body that aiohttp sends in slices of its pieces, copying none a slice long or longer.

    Given ``bytes``, botocore wraps them in a BytesIO that aiohttp copies; a
    whole buffer written at once is copied again into the socket transport
    for the part the kernel does not take. Slices keep that copy small.
    botocore needs ``read`` to accept the object, ``len`` for Content-Length
    and ``seek`` to rewind before a retry: each retry iterates afresh.
    """

    SLICE = 256 * 1024

    def __init__(self, pieces: Pieces) -> None:
        self._pieces = pieces
        self._size = size_of(pieces)
        self.sending = False
        """A pass over the slices is under way (a retry starts another)."""
        self.progress = time.monotonic()
        """When the last slice was asked for: the one before it was taken."""

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        return b"".join(self._pieces)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        self.sending = True
        for view in self._slices():
            self.progress = time.monotonic()
            yield view
        self.sending = False

    def _slices(self) -> Iterator[memoryview]:
        """The pieces cut in slices of :data:`SLICE`; pieces smaller than that (a small ``block_size``) joined
        until they make one, so that a part of small blocks is not sent in thousands of writes."""
        small: list[Data] = []
        held = 0
        for piece in self._pieces:
            if len(piece) < self.SLICE:
                small.append(piece)
                held += len(piece)
                if held >= self.SLICE:
                    yield memoryview(b"".join(small))
                    small, held = [], 0
                continue
            if small:
                yield memoryview(b"".join(small))
                small, held = [], 0
            view = memoryview(piece)
            for start in range(0, len(view), self.SLICE):
                yield view[start : start + self.SLICE]
        if small:
            yield memoryview(b"".join(small))


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
