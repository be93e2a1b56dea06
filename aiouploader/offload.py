"""CPU-bound work on a buffer: on the event loop when the buffer is small, in a worker thread when it is not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from typing import TypeVar

T = TypeVar("T")
B = TypeVar("B", bound=Sized)

OFF_LOOP_THRESHOLD = 256 * 1024
"""Bytes from which hashing or encrypting a buffer runs in a thread: below it, the hop costs more than it saves."""


async def off_loop(func: Callable[[B], T], data: B) -> T:
    """``func(data)``, in a worker thread when ``data`` holds :data:`OFF_LOOP_THRESHOLD` bytes or more."""
    if len(data) >= OFF_LOOP_THRESHOLD:
        return await asyncio.to_thread(func, data)
    return func(data)
