"""/readyz follows S3: 503 while the S3 server is down, 200 again once it is back."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp

from aiouploader.service import READY_CACHE_SECONDS
from aiouploader.testing import MakeProxy, S3Server, start_rclone

from .serving import serve


async def status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def test_readiness_flips_when_the_s3_server_stops_and_starts(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    root.mkdir()
    s3 = start_rclone(root)
    port = int(s3.endpoint_url.rsplit(":", 1)[1])
    bucket = s3.create_bucket()
    served = serve(tmp_path, s3, bucket)
    try:
        assert await status(served.url + "/readyz") == 200
        s3.process.terminate()
        s3.process.wait(10)
        await asyncio.sleep(READY_CACHE_SECONDS + 0.5)
        assert await status(served.url + "/readyz") == 503
        assert await status(served.url + "/healthz") == 200
        s3 = start_rclone(root, port)
        await asyncio.sleep(READY_CACHE_SECONDS + 0.5)
        assert await status(served.url + "/readyz") == 200
    finally:
        served.stop()
        s3.process.terminate()
        s3.process.wait(10)
        shutil.rmtree(root, ignore_errors=True)


async def test_readiness_names_a_missing_bucket(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket}, {"path": "/v", "bucket": "no-such-bucket-here"}])
    async with proxy.session.get(proxy("/readyz")) as response:
        assert response.status == 503
        message = (await response.json())["error"]["message"]
    assert "no-such-bucket-here" in message and "no such bucket" in message, message
