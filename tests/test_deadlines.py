"""A client that trickles its body is cut off: idle and total deadlines end in 408 and leave nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest

from aiouploader.logs import RequestIds
from aiouploader.testing import MakeProxy, S3Server

from .raw import closed

CUT_0 = "request stalled-0: response cut mid-stream: the client took nothing for 1 seconds"
STALLED = 8
"""Downloads that stop reading: as many as ``server.max_downloads`` lets in."""


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


async def test_downloads_their_clients_stop_reading_are_cut_and_free_their_s3_connections(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIds())  # as on the server's own log handler
    size = 20 * 1024**2
    s3_server.client.put_object(Bucket=bucket, Key="big", Body=os.urandom(size))
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket}], server={"body_idle_timeout": 1, "max_downloads": STALLED}
    )
    host, port = proxy.url.removeprefix("http://").split(":")
    stalled = []
    try:
        for i in range(STALLED):  # every download slot, each holding an S3 connection
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            reader, writer = await asyncio.open_connection(sock=sock)
            head = f"GET /u/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Request-ID: stalled-{i}\r\n\r\n"
            writer.write(head.encode())
            stalled.append((reader, writer))
        async with asyncio.timeout(15):  # the stalled downloads are cut after 1 s: uploads go on
            async with proxy.session.put(proxy("/u/after"), data=b"uploaded") as response:
                assert response.status == 201
            for _ in range(50):  # until the server has given up on the first one
                if CUT_0 in caplog.messages:
                    break
                await asyncio.sleep(0.1)
            received = await stalled[0][0].read(-1)  # what the server sent before it gave up, then the end
            for _, writer in stalled:
                await closed(writer)
            for _ in range(50):  # the cut downloads gave their slots back
                async with proxy.session.get(proxy("/u/after")) as response:
                    status, body = response.status, await response.read()
                if status != 503:
                    break
                await asyncio.sleep(0.1)
            assert (status, body) == (200, b"uploaded")
    finally:
        for _, writer in stalled:
            await closed(writer)
    assert received.startswith(b"HTTP/1.1 200") and len(received) < size
    (cut,) = [record for record in caplog.records if record.getMessage() == CUT_0]
    assert cut.__dict__.get("request_id") == "stalled-0"  # every record made while serving a request has its id
