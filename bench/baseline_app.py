"""Configurations (d) and (i) of the benchmark: the usual workaround, for comparison.

A Starlette app under uvicorn: ``request.stream()`` → a bounded queue → a
thread running boto3's ``upload_fileobj`` with ``TransferConfig(use_threads=False)``
on a file-like object that reads from the queue. ``use_threads=False`` means
s3transfer sends one part at a time (the in-flight setting does not apply).

Run by ``bench/run.py``::

    BENCH_S3_ENDPOINT=http://127.0.0.1:PORT BENCH_BUCKET=bench \\
        python -m uvicorn baseline_app:app --app-dir bench --port 8000

``PUT /uploads/<key>`` stores the body at ``<key>`` and answers 201 with
``{"key", "size"}``. For (d) the boto3 client has the same S3 settings as
aiouploader's (path addressing, no payload signing, checksums only where S3
requires them); for (i), ``BENCH_BOTO_DEFAULTS=1``, it has boto3's defaults.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ENDPOINT = os.environ.get("BENCH_S3_ENDPOINT")
BUCKET = os.environ.get("BENCH_BUCKET", "bench")
PART_SIZE = int(os.environ.get("BENCH_PART_SIZE", str(8 * 1024**2)))
BLOCK_SIZE = 1024**2
QUEUE_BLOCKS = 8
"""The queue holds at most this many blocks of ``BLOCK_SIZE``: the request's back-pressure."""

TUNED = Config(
    s3={"addressing_style": "path", "payload_signing_enabled": False},
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    max_pool_connections=64,
    retries={"mode": "standard", "max_attempts": 5},
)
DEFAULTS = Config(s3={"addressing_style": "path"}, max_pool_connections=64)
"""boto3's defaults, as the workaround is usually written (path addressing for a local S3 server,
and a pool for the 16 concurrent uploads): payload signing over http, CRC32 where S3 supports it."""
client = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    config=DEFAULTS if os.environ.get("BENCH_BOTO_DEFAULTS") else TUNED,
)
transfer_config = TransferConfig(use_threads=False, multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)
_EOF = object()


class QueueReader:
    """A file-like object whose ``read`` takes blocks from a queue the event loop fills."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._space = asyncio.Semaphore(QUEUE_BLOCKS)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False
        self.done: asyncio.Future[None] = loop.create_future()

    # -- the event loop's side
    async def put(self, item: Any) -> None:
        if self._space.locked():
            acquire = asyncio.ensure_future(self._space.acquire())
            either: set[asyncio.Future[Any]] = {acquire, self.done}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not acquire.done():
                acquire.cancel()
                await self.done  # the upload thread failed: raise its error
                raise RuntimeError("the upload thread stopped reading")
        else:
            await self._space.acquire()
        self._queue.put(item)

    # -- the upload thread's side
    def _get(self) -> Any:
        item = self._queue.get()
        self._loop.call_soon_threadsafe(self._space.release)
        return item

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or self._pending_size < size):
            item = self._get()
            if item is _EOF:
                self._eof = True
            elif isinstance(item, BaseException):
                raise item
            else:
                self._pending.append(item)
                self._pending_size += len(item)
        data = b"".join(self._pending)
        if size < 0 or size >= len(data):
            self._pending, self._pending_size = [], 0
            return data
        rest = data[size:]
        self._pending, self._pending_size = [rest], len(rest)
        return data[:size]

    def run(self, key: str) -> None:
        """The thread: upload everything ``read`` returns, then settle ``done``."""
        try:
            client.upload_fileobj(self, BUCKET, key, Config=transfer_config)
        except BaseException as exc:
            self._loop.call_soon_threadsafe(_settle, self.done, exc)
        else:
            self._loop.call_soon_threadsafe(_settle, self.done, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


async def put(request: Request) -> JSONResponse:
    key = request.path_params["key"]
    reader = QueueReader(asyncio.get_running_loop())
    threading.Thread(target=reader.run, args=(key,), daemon=True).start()
    size = 0
    block: list[bytes] = []
    block_size = 0
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            size += len(chunk)
            block.append(chunk)
            block_size += len(chunk)
            if block_size >= BLOCK_SIZE:
                await reader.put(b"".join(block))
                block, block_size = [], 0
        if block:
            await reader.put(b"".join(block))
        await reader.put(_EOF)
    except BaseException as exc:
        reader._queue.put(ClientDisconnect() if isinstance(exc, asyncio.CancelledError) else exc)
        reader._queue.put(_EOF)
        if not isinstance(exc, ClientDisconnect):
            raise
        return JSONResponse({"error": "client disconnected"}, status_code=400)
    try:
        await reader.done
    except Exception as exc:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=502)
    return JSONResponse({"key": key, "size": size}, status_code=201)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz), Route("/uploads/{key:path}", put, methods=["PUT"])])
