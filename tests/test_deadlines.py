"""A client that trickles its body is cut off: idle and total deadlines end in 408 and leave nothing."""

from __future__ import annotations

import asyncio

from aiouploader.testing import MakeProxy, S3Server


async def trickle(proxy_url: str, every: float, pieces: int) -> bytes:
    host, port = proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"PUT /u/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(pieces):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(every)
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            return head + await reader.readexactly(length)
    finally:
        writer.close()


async def test_a_trickling_client_hits_the_total_deadline(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket}], server={"body_idle_timeout": 1, "body_timeout": 1.5}
    )
    answer = await trickle(proxy.url, every=0.2, pieces=12)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer and b"within 1.5 seconds" in answer
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


async def test_a_stalled_client_hits_the_idle_deadline(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket}], server={"body_idle_timeout": 0.5})
    answer = await trickle(proxy.url, every=1.5, pieces=2)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"no body bytes for 0.5 seconds" in answer
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []
