"""boto3 talking to an aiohttp server over TLS: the layer sees requests exactly as aiohttp receives them.

The handler here is a stand-in for the listener to come: ``request.raw_path`` split at
``?``, ``request.headers``, and the body read as it arrives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.config import Config
from botocore.exceptions import ClientError
from yarl import URL

from aiouploader.s3api import ChunkedDecoder, PayloadMode, PayloadSha256, S3Error, verify_request
from tests.s3api_clients import AKID, KEYS, SECRET
from tests.test_tls import self_signed

Seen = list[Any]
SEEN = web.AppKey("seen", list)


async def verifying_handler(request: web.Request) -> web.Response:
    seen: Seen = request.app[SEEN]
    path, _, query = request.raw_path.partition("?")
    try:
        verified = verify_request(request.method, path, query, request.headers, KEYS.get, dt.datetime.now(dt.UTC))
        received = bytearray()
        if verified.payload_mode.streaming:
            decoder = ChunkedDecoder.for_request(verified, request.headers)
            async for piece in request.content.iter_any():
                received += decoder.feed(piece)
            decoder.finish()
        else:
            check = PayloadSha256(verified.payload_sha256) if verified.payload_sha256 else None
            async for piece in request.content.iter_any():
                received += piece
                if check is not None:
                    check.update(piece)
            if check is not None:
                check.verify()
    except S3Error as error:
        seen.append(error)
        body = f"<Error><Code>{error.code}</Code><Message>{error.message}</Message></Error>"
        # the body may be unread: the connection cannot carry another request
        return web.Response(
            status=error.status, text=body, content_type="application/xml", headers={"Connection": "close"}
        )
    seen.append((request.method, unquote(path), verified.payload_mode, bytes(received)))
    return web.Response(headers={"ETag": '"etag"'})


class Server:
    def __init__(self, endpoint: str, cert: Path, seen: Seen) -> None:
        self.endpoint, self.cert, self.seen = endpoint, cert, seen
        self.clients: list[Any] = []

    def client(self, secret: str = SECRET) -> Any:
        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            verify=str(self.cert),
            aws_access_key_id=AKID,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        self.clients.append(s3)
        return s3


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app[SEEN] = []
    app.router.add_route("*", "/{tail:.*}", verifying_handler)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server(ssl=context)
    running = Server(f"https://127.0.0.1:{test_server.port}", cert, app[SEEN])
    try:
        yield running
    finally:
        for s3 in running.clients:
            s3.close()
        await test_server.close()


async def test_a_boto3_put_object_arrives_verified_and_decoded(server: Server) -> None:
    payload = bytes(range(256)) * 12_000 + b"tail"
    s3 = server.client()
    await asyncio.to_thread(
        s3.put_object, Bucket="bucket", Key="dir/ä b+c (1)~*.txt", Body=io.BytesIO(payload), ChecksumAlgorithm="SHA256"
    )
    assert server.seen == [("PUT", "/bucket/dir/ä b+c (1)~*.txt", PayloadMode.STREAMING_UNSIGNED_TRAILER, payload)]


async def test_a_boto3_request_with_the_wrong_secret_gets_signature_does_not_match(
    server: Server,
) -> None:
    s3 = server.client(secret="not-the-secret")
    with pytest.raises(ClientError) as raised:
        await asyncio.to_thread(s3.get_object, Bucket="bucket", Key="key")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert [type(e).__name__ for e in server.seen] == ["SignatureDoesNotMatch"]


async def test_a_presigned_url_is_verified_as_aiohttp_sends_it(server: Server) -> None:
    s3 = server.client()
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "bucket", "Key": "a b/ü+c"}, ExpiresIn=60)
    context = ssl.create_default_context(cafile=str(server.cert))
    async with aiohttp.ClientSession() as session:
        async with session.put(URL(url, encoded=True), data=b"presigned", ssl=context) as response:
            assert response.status == 200
        async with session.put(URL(url.replace("bucket/a", "bucket/b"), encoded=True), data=b"x", ssl=context) as bad:
            assert bad.status == 403
    assert server.seen[0] == ("PUT", "/bucket/a b/ü+c", PayloadMode.UNSIGNED, b"presigned")
    assert type(server.seen[1]).__name__ == "SignatureDoesNotMatch"
