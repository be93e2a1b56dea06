"""CPU-bound work on a buffer: on the event loop when the buffer is small, in a worker thread when it is not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from typing import TypeVar

T = TypeVar("T")
B = TypeVar("B", bound=Sized)

OFF_LOOP_THRESHOLD = 4 * 1024 * 1024
"""Bytes from which hashing or encrypting a buffer runs in a thread. Below it the hop costs more CPU than it
saves: handing a 1 MiB block to a thread and back takes about a fifth of what hashing it with SHA-256 does, and a
block that size holds the loop for about a millisecond."""


async def off_loop(func: Callable[[B], T], data: B, size: int | None = None) -> T:
    """``func(data)``, in a worker thread when ``data`` holds :data:`OFF_LOOP_THRESHOLD` bytes or more (``size``
    bytes, where ``len(data)`` is not that: pieces of a body)."""
    if (len(data) if size is None else size) >= OFF_LOOP_THRESHOLD:
        return await asyncio.to_thread(func, data)
    return func(data)
