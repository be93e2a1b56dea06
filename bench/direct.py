"""Configuration (a) of the benchmark: aioboto3 straight to S3 from memory, no HTTP hop.

Started by ``bench/run.py`` as a subprocess so that its CPU time and peak RSS
can be read from ``/proc`` like a server's. It speaks JSON lines: one command
on stdin, one answer on stdout.

    {"op": "load", "path": "/dev/shm/.../payload", "name": "big"}   keep a file's bytes in memory
    {"op": "put", "key": "k", "name": "warmup"}                      one PutObject
    {"op": "multipart", "keys": ["k1", ...], "name": "big"}         concurrent multipart uploads, one per key
    {"op": "small", "prefix": "k", "name": "small", "count": N, "concurrency": C}
    {"op": "quit"}

The multipart upload mirrors aiouploader's writer: same part size, at most
``parts_in_flight`` parts on their way per upload, one aiobotocore client with
the same settings (no payload signing, checksums only where S3 requires them;
the bench takes them from aiouploader and passes them as
``--client-config``, so that this process need not import aiouploader, whose
modules would count in its peak RSS), and none of the extra digests
aiouploader computes: this is the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig


async def multipart(client: Any, bucket: str, key: str, data: bytes, part_size: int, in_flight: int) -> None:
    upload_id = (await client.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
    slots = asyncio.Semaphore(in_flight)
    parts: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []

    async def send(number: int, body: bytes) -> None:
        try:
            response = await client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
        finally:
            slots.release()

    try:
        for number, offset in enumerate(range(0, len(data), part_size), start=1):
            await slots.acquire()
            tasks.append(asyncio.create_task(send(number, data[offset : offset + part_size])))
        await asyncio.gather(*tasks)
        parts.sort(key=lambda part: part["PartNumber"])
        await client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


async def small_worker(client: Any, bucket: str, prefix: str, data: bytes, numbers: Iterator[int]) -> None:
    """PutObject ``prefix-N`` for each N this worker takes from the shared ``numbers``."""
    for i in numbers:
        await client.put_object(Bucket=bucket, Key=f"{prefix}-{i}", Body=data)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--part-size", type=int, required=True)
    parser.add_argument("--parts-in-flight", type=int, required=True)
    parser.add_argument("--client-config", type=json.loads, required=True, help="AioConfig's arguments, as JSON")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    payloads: dict[str, bytes] = {}
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=args.endpoint, config=AioConfig(**args.client_config)) as client:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            op = command["op"]
            answer: dict[str, Any] = {"ok": True}
            try:
                started = time.perf_counter()
                if op == "quit":
                    return
                if op == "load":
                    payloads[command["name"]] = await asyncio.to_thread(Path(command["path"]).read_bytes)
                elif op == "put":
                    await client.put_object(Bucket=args.bucket, Key=command["key"], Body=payloads[command["name"]])
                elif op == "multipart":
                    data = payloads[command["name"]]
                    keys = command["keys"]
                    await asyncio.gather(
                        *(
                            multipart(client, args.bucket, key, data, args.part_size, args.parts_in_flight)
                            for key in keys
                        )
                    )
                    answer["bytes"] = len(data) * len(keys)
                elif op == "small":
                    count = command["count"]
                    numbers = iter(range(count))
                    await asyncio.gather(
                        *(
                            small_worker(client, args.bucket, command["prefix"], payloads[command["name"]], numbers)
                            for _ in range(command["concurrency"])
                        )
                    )
                    answer["count"] = count
                else:
                    raise ValueError(f"unknown op {op!r}")
                answer["seconds"] = time.perf_counter() - started
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
