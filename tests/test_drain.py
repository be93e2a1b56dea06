"""SIGTERM drains: readiness and new uploads answer 503, uploads in flight get the grace, the rest abort."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from aiouploader.testing import S3Server

from .serving import serve

MiB = 1024**2
GRACE = 3


async def put(url: str, body: AsyncIterator[bytes]) -> int | str:
    """The status of a PUT, or ``"cut"`` when the server closed the connection instead."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.put(url, data=body) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError:
            return "cut"


async def wait_for_multipart(s3: S3Server, bucket: str) -> None:
    deadline = time.monotonic() + 20
    while not await asyncio.to_thread(s3.multipart_uploads, bucket):
        assert time.monotonic() < deadline, "the slow upload never started a multipart upload"
        await asyncio.sleep(0.1)


async def test_sigterm_lets_quick_uploads_finish_and_aborts_slow_ones(rclone_server: S3Server, tmp_path: Path) -> None:
    bucket = rclone_server.create_bucket()
    served = serve(tmp_path, rclone_server, bucket, server=f"shutdown_grace = {GRACE}")
    terminated = asyncio.Event()

    async def quick_body() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        await terminated.wait()
        await asyncio.sleep(0.5)
        yield b"b" * 1000

    async def slow_body() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        while True:
            await asyncio.sleep(0.2)
            yield b"s" * 1024

    try:
        slow = asyncio.create_task(put(served.url + "/u/slow", slow_body()))
        quick = asyncio.create_task(put(served.url + "/u/quick", quick_body()))
        await wait_for_multipart(rclone_server, bucket)
        served.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        terminated.set()
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as session:
            async with session.get(served.url + "/readyz") as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "draining"
            async with session.put(served.url + "/u/late", data=b"late") as response:
                assert response.status == 503
                assert response.headers["Retry-After"]
                assert (await response.json())["error"]["code"] == "draining"
        assert await quick == 201
        assert await slow == "cut"
        assert await asyncio.to_thread(served.process.wait, 30) == 0
        assert time.monotonic() - signalled < GRACE + 15
    finally:
        served.stop()
    assert rclone_server.multipart_uploads(bucket) == []
    assert rclone_server.keys(bucket) == ["quick"]
    log = served.log.read_text()
    assert "drained: 1 uploads cancelled" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [line["outcome"] for line in lines if line.get("path") == "/u/slow"] == ["cancelled"]


async def test_sigterm_with_nothing_in_flight_exits_at_once(rclone_server: S3Server, tmp_path: Path) -> None:
    served = serve(tmp_path, rclone_server, rclone_server.create_bucket(), server="shutdown_grace = 120")
    try:
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.process.wait, 90) == 0
        assert time.monotonic() - started < 60  # well within the grace: it did not wait for it
    finally:
        served.stop()


async def test_a_second_signal_ends_the_grace_at_once(rclone_server: S3Server, tmp_path: Path) -> None:
    bucket = rclone_server.create_bucket()
    served = serve(tmp_path, rclone_server, bucket, server="shutdown_grace = 60")

    async def slow_body() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        while True:
            await asyncio.sleep(0.2)
            yield b"s" * 1024

    try:
        slow = asyncio.create_task(put(served.url + "/u/slow", slow_body()))
        await wait_for_multipart(rclone_server, bucket)
        served.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert served.process.poll() is None
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.process.wait, 30) == 0
        assert time.monotonic() - started < 15
        assert await slow == "cut"
    finally:
        served.stop()
    assert rclone_server.multipart_uploads(bucket) == []
