"""The memory budget: uploads reserve their bound when they start; beyond the budget, 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiouploader.testing import MakeProxy, S3Server


async def test_uploads_beyond_the_memory_budget_are_overloaded(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket}],
        s3={"part_size": "5MiB", "parts_in_flight": 1},
        upload={"block_size": "256KiB"},
        server={"max_buffered": "12MiB"},
    )
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first"
        await release.wait()
        yield b"last"

    async def put(key: str, body: object) -> tuple[int, str]:
        async with proxy.session.put(proxy(f"/u/{key}"), data=body) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After", "")

    streaming = asyncio.create_task(put("streaming", slow()))  # unknown length: reserves 5MiB x 2 + a block
    await asyncio.sleep(0.3)
    assert await put("another-stream", slow()) == (503, "1")
    assert (await put("small", b"x" * 1000))[0] == 201  # a known small length reserves only itself
    release.set()
    assert (await streaming)[0] == 201
    assert (await put("later", b"y"))[0] == 201
    assert s3_server.keys(bucket) == ["later", "small", "streaming"]
