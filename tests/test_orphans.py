"""The orphan sweep: a killed server's multipart upload is aborted once stale; others' uploads are left."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from aiouploader.testing import MakeProxy, S3Server

from .serving import serve

MiB = 1024**2
TTL = 4


async def test_a_killed_servers_upload_is_swept_and_others_are_left(rclone_server: S3Server, tmp_path: Path) -> None:
    bucket = rclone_server.create_bucket()
    s3 = rclone_server.client
    first = serve(tmp_path, rclone_server, bucket, prefix="raw/", s3_settings="orphan_ttl = 0")

    async def trickle() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        while True:
            await asyncio.sleep(0.2)
            yield b"t" * 1024

    async def upload() -> None:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.put(first.url + "/u/killed.bin", data=trickle()) as response:
                    await response.read()
            except aiohttp.ClientError:
                pass

    outside = s3.create_multipart_upload(Bucket=bucket, Key="elsewhere/theirs.bin")["UploadId"]
    uploading = asyncio.create_task(upload())
    try:
        deadline = time.monotonic() + 20
        while not [
            u for u in await asyncio.to_thread(rclone_server.multipart_uploads, bucket) if u["Key"] == "raw/killed.bin"
        ]:
            assert time.monotonic() < deadline, "the upload never started a multipart upload"
            await asyncio.sleep(0.1)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        await uploading
    finally:
        first.stop()
    assert {u["Key"] for u in rclone_server.multipart_uploads(bucket)} == {"raw/killed.bin", "elsewhere/theirs.bin"}

    await asyncio.sleep(TTL + 0.5)
    fresh = s3.create_multipart_upload(Bucket=bucket, Key="raw/fresh.bin")["UploadId"]
    second = serve(tmp_path, rclone_server, bucket, prefix="raw/", s3_settings=f"orphan_ttl = {TTL}")
    try:
        deadline = time.monotonic() + 20
        while "raw/killed.bin" in {u["Key"] for u in rclone_server.multipart_uploads(bucket)}:
            assert time.monotonic() < deadline, "the orphan was not swept"
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as session, session.get(second.url + "/metrics") as response:
            assert "aiouploader_orphan_uploads_aborted_total 1.0" in await response.text()
    finally:
        second.stop()
    left = {u["UploadId"] for u in rclone_server.multipart_uploads(bucket)}
    assert left == {outside, fresh}
    assert "aborting the orphaned multipart upload" in second.log.read_text()


async def test_the_sweep_aborts_only_stale_uploads_under_the_route_prefixes(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3 = s3_server.client
    stale = s3.create_multipart_upload(Bucket=bucket, Key="raw/stale.bin")["UploadId"]
    outside = s3.create_multipart_upload(Bucket=bucket, Key="other/stale.bin")["UploadId"]
    await asyncio.sleep(1.2)
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "prefix": "raw/", "plugins": []}], s3={"orphan_ttl": 1}
    )
    deadline = time.monotonic() + 10
    while True:
        async with proxy.session.get(proxy("/metrics")) as response:
            counted = "aiouploader_orphan_uploads_aborted_total 1.0" in await response.text()
        if counted and stale not in {u["UploadId"] for u in s3_server.multipart_uploads(bucket)}:
            break
        assert time.monotonic() < deadline, "the stale upload was not swept and counted"
        await asyncio.sleep(0.1)
    assert {u["UploadId"] for u in s3_server.multipart_uploads(bucket)} == {outside}
