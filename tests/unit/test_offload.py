"""CPU work on a buffer: small blocks and a part's CRC on the event loop, large blocks and MD5 in a thread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from aiouploader.checksums import digest
from aiouploader.config import S3Config
from aiouploader.offload import OFF_LOOP_THRESHOLD, off_loop
from aiouploader.s3 import MIN_PART_SIZE, ObjectWriter

from .memory_store import MemoryStore

MiB = 1024**2


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to its threads."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def threads() -> AsyncIterator[CountingExecutor]:
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    yield executor
    executor.shutdown()


def writer(content_md5: bool) -> tuple[MemoryStore, ObjectWriter]:
    store = MemoryStore(S3Config(part_size=MIN_PART_SIZE, parts_in_flight=2, content_md5=content_md5))
    target = ObjectWriter(store, store.config, "bucket", "key", content_type="application/octet-stream", metadata={})
    return store, target


async def test_a_block_under_the_threshold_is_hashed_on_the_loop(threads: CountingExecutor) -> None:
    block = os.urandom(MiB)
    assert await off_loop(lambda data: digest("sha256", data), block) == digest("sha256", block)
    assert threads.submitted == 0


async def test_a_block_of_the_threshold_is_hashed_in_a_thread(threads: CountingExecutor) -> None:
    block = os.urandom(OFF_LOOP_THRESHOLD)
    assert await off_loop(lambda data: digest("sha256", data), block) == digest("sha256", block)
    assert threads.submitted == 1


@pytest.mark.parametrize(("content_md5", "in_threads"), [(False, 0), (True, 3)])
async def test_a_part_s_crc32c_is_computed_on_the_loop_and_its_md5_in_a_thread(
    threads: CountingExecutor, content_md5: bool, in_threads: int
) -> None:
    store, target = writer(content_md5)
    body = os.urandom(3 * MIN_PART_SIZE)
    for start in range(0, len(body), MiB):
        await target.write(body[start : start + MiB])
    await target.complete()
    assert store.objects["bucket", "key"].body == body
    assert threads.submitted == in_threads
