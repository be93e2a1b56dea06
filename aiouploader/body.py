"""The request body in blocks, read within its deadlines."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from .errors import BadRequest, RequestTimeout

Read = Callable[[], Awaitable[bytes]]
"""Returns the next piece of the body, ``b""`` at its end."""


class _Deadlines:
    """The idle and total deadlines of a body's reads, on one timer for the whole body.

    A read only notes when it began; the timer, when it comes due, cancels the read that has waited too long
    or sets itself again for the read now in progress. A timer per read cost a handle in the loop's heap and
    two awaits for each of the thousands of reads in a GiB.
    """

    def __init__(self, idle_timeout: float, total_timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._idle = idle_timeout
        self.end = self._loop.time() + total_timeout
        self._since: float | None = None
        """When the read in progress began; ``None`` between reads."""
        self._timer: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self.expired = False

    def reading(self) -> None:
        self._since = now = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(min(now + self._idle, self.end), self._due)

    def read(self) -> None:
        self._since = None

    def _due(self) -> None:
        self._timer = None
        if self._since is None or self._task is None:
            return  # between reads: the next read sets the timer again
        due = min(self._since + self._idle, self.end)
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._due)
            return
        self.expired = True
        self._cancelling = self._task.cancelling()
        self._task.cancel()

    def timed_out(self) -> bool:
        """Whether the read ended because a deadline passed (and not because the task is being cancelled)."""
        return self.expired and self._task is not None and self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def blocks(
    read: Read, block_size: int, idle_timeout: float, total_timeout: float = math.inf
) -> AsyncIterator[bytes]:
    """The body in blocks of at least ``block_size`` bytes (the last may be shorter).

    Raises :class:`RequestTimeout` when the client sends nothing for
    ``idle_timeout`` seconds, or has not sent it all after ``total_timeout``.
    """
    deadlines = _Deadlines(idle_timeout, total_timeout)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            deadlines.reading()
            try:
                chunk = await read()
                if deadlines.expired:
                    raise asyncio.CancelledError
            except asyncio.CancelledError:
                if not deadlines.timed_out():
                    raise
                if asyncio.get_running_loop().time() >= deadlines.end:
                    raise RequestTimeout(
                        f"The client did not send the whole body within {total_timeout:g} seconds; the upload was "
                        "aborted."
                    ) from None
                raise RequestTimeout(
                    f"The client sent no body bytes for {idle_timeout:g} seconds; the upload was aborted."
                ) from None
            except (ConnectionError, ValueError, OSError, EOFError) as exc:
                raise BadRequest(f"The request body could not be read to its end ({exc}).") from exc
            except Exception as exc:
                if type(exc).__module__.startswith("aiohttp"):
                    raise BadRequest(f"The request body could not be read to its end ({exc}).") from exc
                raise
            deadlines.read()
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size >= block_size:
                yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks, size = [], 0
    finally:
        deadlines.stop()
    if chunks:
        yield b"".join(chunks)
