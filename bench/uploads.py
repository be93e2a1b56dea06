"""The clients: ``curl -T`` processes, one streamed PUT without a file, and many small PUTs at once (to the HTTP API,
or to the S3 API for (j))."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from aiouploader.sizes import format_size

from .configurations import S3_API_ACCESS_KEY, S3_API_BUCKET, S3_API_SECRET_KEY, MiB
from .errors import BenchError
from .processes import log_tail
from .workspace import Workspace


def curl_many(ws: Workspace, uploads: list[tuple[str, Path]], server_log: Path) -> list[dict[str, Any]]:
    """Run one ``curl -T`` per upload, all at once; return the servers' JSON answers."""
    total = sum(path.stat().st_size for _, path in uploads)
    max_time = int(60 + total / (2 * MiB))  # a floor of 2 MiB/s, so a stall cannot hang the run
    started = []
    for i, (url, path) in enumerate(uploads):
        out = ws.work / "logs" / f"curl-{uuid.uuid4().hex[:8]}-{i}.json"
        argv = [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            str(max_time),
            "-H",
            "Content-Type: application/octet-stream",
            "-o",
            str(out),
            "-w",
            "%{http_code}",
            "-T",
            str(path),
            url,
        ]
        proc = ws.procs.start(argv, log=out.with_suffix(".err"), pipes=True)
        started.append((proc, out, url))
    answers, errors = [], []
    for proc, out, url in started:
        try:
            code, _ = proc.communicate(timeout=max_time + 30)
        except subprocess.TimeoutExpired:
            errors.append(f"curl {url}: no end after {max_time + 30}s")
            continue
        finally:
            ws.procs.stop(proc)
        body = out.read_text(errors="replace") if out.exists() else ""
        if proc.returncode != 0 or code.decode() != "201":
            err = out.with_suffix(".err").read_text(errors="replace").strip()
            errors.append(f"curl {url}: exit {proc.returncode}, HTTP {code.decode() or '-'}: {body[:300]} {err}")
            continue
        answers.append(json.loads(body))
        out.unlink()
    if errors:
        raise BenchError("; ".join(errors[:3]) + f"\n{log_tail(server_log)}")
    return answers


async def stream(url: str, size: int) -> None:
    """PUT ``size`` bytes with a Content-Length, as ``curl -T`` does, made as they are sent (no file)."""
    block = os.urandom(MiB)

    async def body() -> AsyncIterator[bytes]:
        left = size
        while left:
            yield block[: min(left, MiB)]
            left -= min(left, MiB)

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    timeout = aiohttp.ClientTimeout(total=60 + size / (2 * MiB))
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.put(url, data=body(), headers=headers) as response,
    ):
        text = await response.read()
    if response.status != 201:
        raise BenchError(f"HTTP {response.status} for {format_size(size)}: {text[:300]!r}")


async def small_puts(url_for: Callable[[str], str], body: bytes, prefix: str, count: int, clients: int) -> float:
    """PUT ``body`` at ``prefix-0`` .. ``prefix-<count-1>`` from ``clients`` concurrent clients; the seconds taken."""
    numbers = iter(range(count))
    failures: list[str] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in numbers:
            async with session.put(
                url_for(f"{prefix}-{i}"), data=body, headers={"Content-Type": "application/octet-stream"}
            ) as response:
                text = await response.read()
                if response.status != 201:
                    failures.append(f"HTTP {response.status}: {text[:200]!r}")
                    return

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        async with asyncio.timeout(60 + count / 5):
            await asyncio.gather(*(worker(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
    if failures:
        raise BenchError(f"{len(failures)} small uploads failed, e.g. {failures[0]}")
    return seconds


async def small_s3_api_puts(endpoint: str, body: bytes, prefix: str, count: int, clients: int) -> float:
    """PutObject ``body`` at ``prefix-0`` .. ``prefix-<count-1>`` through the S3 API at ``endpoint`` from ``clients``
    concurrent tasks sharing one aiobotocore client with its default settings; the seconds taken."""
    numbers = iter(range(count))
    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=clients, retries={"max_attempts": 1})
    client = get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_API_ACCESS_KEY,
        aws_secret_access_key=S3_API_SECRET_KEY,
        config=config,
    )

    async def worker(s3: Any) -> None:
        for i in numbers:
            await s3.put_object(Bucket=S3_API_BUCKET, Key=f"{prefix}-{i}", Body=body)

    async with client as s3:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(60 + count / 5):
                await asyncio.gather(*(worker(s3) for _ in range(clients)))
        except Exception as exc:
            raise BenchError(f"small uploads through the S3 API failed: {type(exc).__name__}: {exc}") from None
        return time.perf_counter() - started
