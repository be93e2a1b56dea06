"""Configuration (m) of the benchmark: the least a server does for (b)'s job, for comparison.

A plain asyncio protocol, no web framework and no plugins: it takes ``PUT
/uploads/<key>`` with a Content-Length, hashes the body with SHA-256 as
asyncio's socket reads bring it, joins the reads into parts of at least the
part size and sends each with its CRC32C, as (b) does, through one
aiobotocore client with (a)'s settings (aiouploader's), at most
``--parts-in-flight`` parts at once, the socket's reading paused while they
are all taken. A body smaller than a part is one PutObject. It answers
``201`` with the size and the SHA-256, and ``GET /healthz`` with ``200``.

Everything aiouploader does beyond that (the chain, limits, deadlines,
metrics, logs, errors, cleaning up after a failure) is left out: what it
spends per GiB is what receiving, hashing and storing cost on this machine.
Run by ``bench/run.py``, like ``direct.py`` it imports no aiouploader.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from crc32c import crc32c


def crc32c_header(data: bytes) -> str:
    return base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()


class Upload:
    """One request's body on its way to S3."""

    def __init__(self, server: Server, transport: asyncio.Transport, key: str, length: int) -> None:
        self.server, self.transport, self.key, self.length, self.left = server, transport, key, length, length
        self.sha256 = hashlib.sha256()
        self.chunks: list[bytes] = []
        self.size = 0
        self.number = 0
        self.upload_id: asyncio.Task[str] | None = None
        self.sending: set[asyncio.Task[dict[str, Any]]] = set()
        self.parts: list[asyncio.Task[dict[str, Any]]] = []
        self.done = asyncio.get_running_loop().create_future()

    def feed(self, data: bytes) -> bytes:
        """Takes the body's bytes from ``data``; returns what comes after the body."""
        body, rest = data[: self.left], data[self.left :]
        self.left -= len(body)
        self.sha256.update(body)
        self.chunks.append(body)
        self.size += len(body)
        if self.size >= self.server.part_size:
            self.send_part()
        if not self.left:
            asyncio.get_running_loop().create_task(self.finish())
        return rest

    def send_part(self) -> None:
        part = b"".join(self.chunks)
        self.chunks, self.size = [], 0
        if self.upload_id is None:
            self.upload_id = asyncio.get_running_loop().create_task(self.server.create(self.key))
        self.number += 1
        task = asyncio.get_running_loop().create_task(
            self.server.upload_part(self.key, self.upload_id, self.number, part)
        )
        self.parts.append(task)
        self.sending.add(task)
        task.add_done_callback(self.part_sent)
        if len(self.sending) >= self.server.parts_in_flight:
            self.transport.pause_reading()

    def part_sent(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self.sending.discard(task)
        if len(self.sending) < self.server.parts_in_flight and not self.transport.is_closing():
            self.transport.resume_reading()

    async def finish(self) -> None:
        try:
            if self.upload_id is None:
                await self.server.put(self.key, b"".join(self.chunks))
            else:
                if self.chunks:
                    self.send_part()
                parts = await asyncio.gather(*self.parts)
                await self.server.complete(self.key, await self.upload_id, parts)
            self.done.set_result(self.sha256.hexdigest())
        except Exception as exc:
            self.done.set_exception(exc)


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.head = b""
        self.upload: Upload | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.upload is not None:
            data = self.upload.feed(data)
            if self.upload.left:
                return
            asyncio.get_running_loop().create_task(self.answer(self.upload))
            self.upload = None
            if not data:
                return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        head, data = self.head.split(b"\r\n\r\n", 1)
        self.head = b""
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        if method == "GET" and path == "/healthz":
            self.respond(200, b"ok")
        elif method == "PUT" and path.startswith("/uploads/") and "content-length" in headers:
            if headers.get("expect", "").lower() == "100-continue":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            key, length = path.removeprefix("/uploads/"), int(headers["content-length"])
            self.upload = Upload(self.server, self.transport, key, length)
            self.data_received(data)
        else:
            self.respond(400, b"not a PUT with a Content-Length")
            self.transport.close()

    async def answer(self, upload: Upload) -> None:
        try:
            sha256 = await upload.done
        except Exception as exc:
            self.respond(502, str(exc).encode())
            self.transport.close()
            return
        self.respond(201, json.dumps({"key": upload.key, "size": upload.length, "sha256": sha256}).encode())

    def respond(self, status: int, body: bytes) -> None:
        self.transport.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n".encode()
            + body
        )


class Server:
    def __init__(self, client: Any, bucket: str, part_size: int, parts_in_flight: int) -> None:
        self.client, self.bucket, self.part_size, self.parts_in_flight = client, bucket, part_size, parts_in_flight

    async def create(self, key: str) -> str:
        answer = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32C")
        return str(answer["UploadId"])

    async def upload_part(self, key: str, upload_id: asyncio.Task[str], number: int, part: bytes) -> dict[str, Any]:
        checksum = crc32c_header(part)
        answer = await self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=await upload_id, PartNumber=number, Body=part, ChecksumCRC32C=checksum
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32C": checksum}

    async def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def put(self, key: str, body: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumCRC32C=crc32c_header(body))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--part-size", type=int, required=True)
    parser.add_argument("--parts-in-flight", type=int, required=True)
    parser.add_argument("--client-config", type=json.loads, required=True, help="AioConfig's arguments, as JSON")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    async with aioboto3.Session().client(
        "s3", endpoint_url=args.endpoint, config=AioConfig(**args.client_config)
    ) as client:
        server = Server(client, args.bucket, args.part_size, args.parts_in_flight)
        listening = await loop.create_server(lambda: Connection(server), "127.0.0.1", args.port)
        async with listening:
            await listening.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
