"""The request body in blocks, read within its deadlines."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from .errors import BadRequest, RequestTimeout

Read = Callable[[], Awaitable[bytes]]
"""Returns the next piece of the body, ``b""`` at its end."""


async def blocks(
    read: Read, block_size: int, idle_timeout: float, total_timeout: float = math.inf
) -> AsyncIterator[bytes]:
    """The body in blocks of at least ``block_size`` bytes (the last may be shorter).

    Raises :class:`RequestTimeout` when the client sends nothing for
    ``idle_timeout`` seconds, or has not sent it all after ``total_timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(min(idle_timeout, deadline - loop.time())):
                chunk = await read()
        except TimeoutError:
            if loop.time() >= deadline:
                raise RequestTimeout(
                    f"The client did not send the whole body within {total_timeout:g} seconds; the upload was aborted."
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
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size >= block_size:
            yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks, size = [], 0
    if chunks:
        yield b"".join(chunks)
