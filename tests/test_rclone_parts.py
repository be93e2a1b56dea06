"""A long multipart upload to `rclone serve s3`, with parts in flight and a short read timeout.

rclone writes a multipart upload's parts into one stream, in order. With its
default reorder buffer, a part that arrives while an earlier one is being
written is buffered and answered at once, and the request whose part was
next goes on writing every buffered part that follows before it answers. A
client that keeps parts in flight keeps that request from answering until
the upload ends: past ``read_timeout`` it is sent again, and the completion
then races the parts still being written, which rclone refuses
(``InvalidPart``). The fixture's rclone runs with
``--multipart-streaming-buffer-limit 1``, which buffers no part: each part
waits for its turn and is answered once it is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from aiouploader.testing import MakeProxy, S3Server

MiB = 1024**2
PARTS = 48


async def chunks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
async def test_an_upload_longer_than_read_timeout_with_parts_in_flight_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    # The upload lasts longer than read_timeout: no single part takes that long.
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["checksum"]}],
        s3={"part_size": "5MiB", "parts_in_flight": 2, "read_timeout": 1},
    )
    block = os.urandom(5 * MiB)
    size = PARTS * len(block)
    timeout = aiohttp.ClientTimeout(total=300)
    headers = {"Content-Length": str(size)}
    async with proxy.session.put(
        proxy("/u/long"), data=chunks(block, PARTS), headers=headers, timeout=timeout
    ) as response:
        assert response.status == 201, await response.text()
        assert (await response.json())["size"] == size
    stored = s3_server.get(bucket, "long")
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(block * PARTS).hexdigest()
    assert s3_server.multipart_uploads(bucket) == []
