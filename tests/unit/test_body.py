"""The body in blocks: the idle and total deadlines bound the reads, and only the reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from aiouploader.body import Read, blocks
from aiouploader.errors import RequestTimeout


def reads(pieces: list[bytes | None]) -> Read:
    """Each call returns the next piece; ``None`` is a read that waits for ever."""
    left: Iterator[bytes | None] = iter(pieces)

    async def read() -> bytes:
        piece = next(left, b"")
        if piece is None:
            await asyncio.Event().wait()
        return piece or b""

    return read


async def test_pieces_are_joined_into_blocks_of_at_least_the_block_size() -> None:
    got = [block async for block in blocks(reads([b"ab", b"cd", b"efg", b"h"]), 4, 60)]
    assert got == [b"abcd", b"efgh"]


async def test_a_read_that_waits_past_the_idle_timeout_is_a_request_timeout() -> None:
    with pytest.raises(RequestTimeout, match=r"no body bytes for 0\.05 seconds"):
        async for _ in blocks(reads([b"ab", None]), 1, 0.05):
            pass
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_body_not_sent_within_the_total_timeout_is_a_request_timeout() -> None:
    with pytest.raises(RequestTimeout, match=r"whole body within 0\.05 seconds"):
        async for _ in blocks(reads([b"ab", None]), 1, 60, 0.05):
            pass


async def test_time_spent_between_reads_does_not_count_as_idle() -> None:
    got = []
    async for block in blocks(reads([b"ab", b"cd"]), 1, 0.05):
        await asyncio.sleep(0.2)
        got.append(block)
    assert got == [b"ab", b"cd"]


async def test_a_read_after_a_long_wait_between_reads_still_has_its_idle_deadline() -> None:
    with pytest.raises(RequestTimeout):
        async for _ in blocks(reads([b"ab", None]), 1, 0.05):
            await asyncio.sleep(0.2)


async def test_cancelling_the_task_during_a_read_is_a_cancellation_not_a_timeout() -> None:
    async def consume() -> None:
        async for _ in blocks(reads([None]), 1, 60):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
