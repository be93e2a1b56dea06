"""The memory budget: uploads reserve their bound when they start; beyond the budget, 503."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.app import READ_BUFFER
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, S3Server

from .raw import closed

MiB = 1024**2


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


async def test_a_length_that_needs_larger_parts_reserves_them(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket}],
        s3={"part_size": "5MiB", "parts_in_flight": 1},
        upload={"block_size": "256KiB"},
        server={"max_buffered": "64MiB"},
    )
    host, port = proxy.url.removeprefix("http://").split(":")

    async def claim(length: int) -> bytes:
        """The answer to a PUT whose headers claim ``length`` bytes, with Expect: 100-continue and no body."""
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                f"PUT /u/k HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            async with asyncio.timeout(5):
                return await reader.readuntil(b"\r\n\r\n")
        finally:
            await closed(writer)

    # 5 TiB needs parts of 525 MiB (S3 takes at most 10,000): two of them are more than the whole budget.
    answer = await claim(5 * 1024**4)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    # 200 GiB needs 21 MiB parts: 42 MiB for one such upload, so a second one must wait; a 1 GiB one fits.
    async with asyncio.timeout(10):
        held = asyncio.create_task(claim_and_hold(host, int(port), 200 * 1024**3))
        await asyncio.sleep(0.3)
        assert (await claim(200 * 1024**3)).startswith(b"HTTP/1.1 503")
        assert (await claim(1024**3)).startswith(b"HTTP/1.1 100")
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await held
    assert s3_server.keys(bucket) == []


async def claim_and_hold(host: str, port: int, length: int) -> None:
    """Start an upload of ``length`` bytes, send one byte of it, and hold on until cancelled."""
    _, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"PUT /u/held HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\nx".encode())
        await asyncio.Event().wait()
    finally:
        await closed(writer)


async def stalled_downloads(
    proxy_url: str, path: str, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """GETs whose clients read nothing, with small receive buffers: each holds its S3 connection."""
    host, port = proxy_url.removeprefix("http://").split(":")
    stalled = []
    for i in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Request-ID: slow-{i}\r\n\r\n".encode())
        stalled.append((reader, writer))
    return stalled


async def test_slow_downloads_never_hold_up_uploads_or_readiness(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """More readers than the upload side's S3 connections (32 with 2 parts in flight) hold theirs; uploads and
    /readyz still answer."""
    s3_server.client.put_object(Bucket=bucket, Key="big", Body=os.urandom(20 * 1024**2))
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket}], s3={"parts_in_flight": 2}, server={"body_idle_timeout": 120}
    )
    stalled = await stalled_downloads(proxy.url, "/u/big", 36)
    try:
        async with asyncio.timeout(30):  # without connections of their own, they hold everyone else's for 120 s
            heads = [await reader.readuntil(b"\r\n\r\n") for reader, _ in stalled]
            assert all(head.startswith(b"HTTP/1.1 200") for head in heads)
            async with proxy.session.put(proxy("/u/after"), data=b"uploaded") as response:
                assert response.status == 201
            async with proxy.session.get(proxy("/readyz")) as response:
                assert response.status == 200
        assert all(not reader.at_eof() for reader, _ in stalled)  # still being served
    finally:
        for _, writer in stalled:
            await closed(writer)
    assert s3_server.get(bucket, "after") == b"uploaded"


async def test_downloads_beyond_max_downloads_are_overloaded(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3_server.client.put_object(Bucket=bucket, Key="big", Body=os.urandom(20 * 1024**2))
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket}], server={"max_downloads": 2})
    stalled = await stalled_downloads(proxy.url, "/u/big", 2)
    try:
        for reader, _ in stalled:
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        for method in ("GET", "HEAD"):
            async with proxy.session.request(method, proxy("/u/big")) as response:
                assert (response.status, response.headers["Retry-After"]) == (503, "1")
                if method == "GET":
                    assert (await response.json())["error"]["code"] == "overloaded"
        async with proxy.session.put(proxy("/u/small"), data=b"x") as response:
            assert response.status == 201  # uploads are not downloads
    finally:
        for _, writer in stalled:
            await closed(writer)
    for _ in range(50):  # the server notices the closed connections
        async with proxy.session.get(proxy("/u/small")) as response:
            if response.status == 200:
                assert await response.read() == b"x"
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("downloads stayed overloaded after the others ended")


class _SizesStage(UploadStage):
    def __init__(self, sizes: list[int]) -> None:
        self._sizes = sizes

    async def feed(self, block: bytes) -> bytes:
        self._sizes.append(len(block))
        await asyncio.sleep(0.02)  # meanwhile the client goes on sending, and aiohttp buffers what it can
        return block


class BlockSizes:
    """Records the size of every block its stage is fed, taking its time over each."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _SizesStage(self.sizes)


async def test_a_slow_chain_gets_blocks_no_larger_than_block_size_and_what_aiohttp_buffers(
    make_proxy: MakeProxy, bucket: str
) -> None:
    """aiohttp stops reading the socket past twice ``READ_BUFFER`` and hands over all it holds in one piece: a block
    is its pieces up to ``block_size``, so it exceeds it by less than that and one more socket read (256 KiB)."""
    pm = make_plugin_manager()
    pm.register(recorder := BlockSizes(), name="sizes")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["sizes"]}], pm=pm)
    body = os.urandom(12 * MiB)
    async with proxy.session.put(proxy("/u/k"), data=body) as response:
        assert response.status == 201, await response.text()
    assert sum(recorder.sizes) == len(body)
    assert all(size >= MiB for size in recorder.sizes[:-1])
    assert max(recorder.sizes) < MiB + 2 * READ_BUFFER + 256 * 1024
