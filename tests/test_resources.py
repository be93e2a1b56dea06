"""The no-disk rule and the memory bound, measured on a real server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiouploader.age import generate_identity
from aiouploader.service import IDLE_BEFORE_GIVING_BACK
from aiouploader.testing import MakeProxy, S3Server

from .serving import mapped_files, minor_faults, rss, serve

MiB = 1024**2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_watching: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watching or event != "open":
        return
    path, mode, flags = args
    writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
    if writes:
        _watching[-1].append(f"{path} ({mode or flags})")


sys.addaudithook(_audit)


@contextmanager
def file_writes() -> Iterator[list[str]]:
    """Every file this process opens for writing inside the block."""
    writes: list[str] = []
    _watching.append(writes)
    try:
        yield writes
    finally:
        _watching.remove(writes)


def test_the_watch_sees_file_writes(tmp_path: Path) -> None:
    with file_writes() as writes:
        with open(tmp_path / "probe", "w") as file:
            file.write("x")
        os.close(os.open(tmp_path / "probe2", os.O_CREAT | os.O_WRONLY))
        with open(tmp_path / "probe") as file:
            file.read()
    assert [Path(w.split(" ")[0]).name for w in writes] == ["probe", "probe2"]


async def test_serving_uploads_opens_no_file_for_writing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["size_limit", "checksum", "virus_scan"]}],
        s3={"part_size": "5MiB", "parts_in_flight": 2},
    )
    bodies = {"small": os.urandom(10), "multipart": os.urandom(12 * MiB)}
    form = aiohttp.FormData()
    form.add_field("f", os.urandom(6 * MiB), filename="big.bin")
    with file_writes() as writes:
        for key, body in bodies.items():
            async with proxy.session.put(proxy(f"/u/{key}"), data=body) as response:
                assert response.status == 201
            async with proxy.session.get(proxy(f"/u/{key}")) as response:
                assert await response.read() == body
        async with proxy.session.post(proxy("/u/"), data=form) as response:
            assert response.status == 201
    assert writes == []


@pytest.fixture
def server_process(rclone_server: S3Server, tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    """aiouploader in its own process with the default part size and parts in flight."""
    bucket = rclone_server.create_bucket()
    served = serve(tmp_path, rclone_server, bucket, plugins=("size_limit", "checksum"), part_size="8MiB")
    try:
        yield served.url, served.process.pid, bucket
    finally:
        served.stop()


async def test_memory_stays_bounded_over_a_1gib_stream(
    server_process: tuple[str, int, str], rclone_server: S3Server
) -> None:
    url, pid, bucket = server_process
    part_size, in_flight = 8 * MiB, 4
    block = os.urandom(MiB)
    total = 1024 * MiB
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/readyz") as response:
            assert response.status == 200
        async with session.put(url + "/u/warm-up", data=os.urandom(3 * part_size)) as response:
            assert response.status == 201
        await asyncio.sleep(IDLE_BEFORE_GIVING_BACK + 0.5)  # the idle server has given freed memory back
        baseline = rss(pid)
        peak = early_peak = baseline
        sent = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            nonlocal early_peak
            for i in range(total // MiB):
                if i == total // MiB // 4:
                    early_peak = peak
                sent.update(block)
                yield block

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss(pid))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        try:
            async with session.put(url + "/u/big", data=body(), timeout=aiohttp.ClientTimeout(total=600)) as response:
                result = await response.json()
                assert response.status == 201, result
        finally:
            sampler.cancel()
    elapsed = time.monotonic() - started
    assert result["size"] == total and result["checksums"]["sha256"] == sent.hexdigest()
    assert rclone_server.client.head_object(Bucket=bucket, Key="big")["ContentLength"] == total
    print(
        f"1 GiB in {elapsed:.1f}s; RSS {baseline / MiB:.0f} MiB idle -> peak {early_peak / MiB:.0f} MiB "
        f"over the first 256 MiB -> {peak / MiB:.0f} MiB over 1 GiB"
    )
    # Flat: the last 768 MiB add no more than the heap's fluctuation (a few blocks).
    assert peak - early_peak < 10 * MiB, f"grew by {(peak - early_peak) / MiB:.1f} MiB after the first 256 MiB"
    # Bounded: the upload's buffers, part_size x (in_flight + 1) + a block, plus the process's working set for
    # receiving and sending (read buffers, heap, the interpreter's arenas), which the idle server gives back:
    # 9 to 16 MiB in runs on the 2-core development machine.
    buffers = part_size * (in_flight + 1) + MiB
    assert peak - baseline < buffers + 20 * MiB, f"grew by {(peak - baseline) / MiB:.0f} MiB"


async def test_uploads_cut_by_their_clients_give_their_memory_back(
    server_process: tuple[str, int, str], rclone_server: S3Server
) -> None:
    url, pid, bucket = server_process
    host, port = url.removeprefix("http://").split(":")
    chunk = os.urandom(MiB)
    async with aiohttp.ClientSession() as session, session.put(url + "/u/warm-up", data=chunk) as response:
        assert response.status == 201
    await asyncio.sleep(IDLE_BEFORE_GIVING_BACK + 0.5)
    baseline = rss(pid)
    for i in range(12):  # one at a time: each is aborted when its client goes away after 3 parts of 8 MiB
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"PUT /u/cut-{i} HTTP/1.1\r\nHost: t\r\nContent-Length: {64 * MiB}\r\n\r\n".encode())
        for _ in range(26):
            writer.write(chunk)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # until the server has let go of the upload
            await asyncio.sleep(0.05)
            if not rclone_server.multipart_uploads(bucket):
                break
    await asyncio.sleep(IDLE_BEFORE_GIVING_BACK + 0.5)
    grown = rss(pid) - baseline
    # A cut upload that kept even one 8 MiB part would leave 96 MiB behind; glibc's arenas alone vary by up to
    # about 13 MiB over such runs (counted in-process, no session, writer or part buffer survives them).
    assert grown < 16 * MiB, f"12 cut uploads left {grown / MiB:.1f} MiB behind"
    assert rclone_server.keys(bucket) == ["warm-up"]


async def test_socket_reads_reuse_memory_instead_of_faulting_in_fresh_pages(
    server_process: tuple[str, int, str],
) -> None:
    """``serve`` tunes glibc so that the body's reads come from the heap (about 0.25
    faults per page of body, mostly new part buffers). With the mmap threshold at
    the 256 KiB of a socket read, every read was mapped and faulted in afresh:
    3.5 faults per page."""
    url, pid, _bucket = server_process
    total = 512 * MiB
    block = os.urandom(MiB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(total // MiB):
            yield block

    async with aiohttp.ClientSession() as session:
        async with session.put(url + "/u/warm-up", data=os.urandom(3 * 8 * MiB)) as response:
            assert response.status == 201
        before = minor_faults(pid)
        async with session.put(url + "/u/faults", data=body(), timeout=aiohttp.ClientTimeout(total=600)) as response:
            assert response.status == 201, await response.text()
    per_page = (minor_faults(pid) - before) / (total / os.sysconf("SC_PAGE_SIZE"))
    print(f"{per_page:.2f} page faults per page of body")
    assert per_page < 1


@pytest.mark.parametrize("plugins", [("size_limit", "checksum", "virus_scan"), ("checksum", "encryption")])
async def test_cryptography_is_loaded_only_by_a_server_that_encrypts(
    rclone_server: S3Server, tmp_path: Path, plugins: tuple[str, ...]
) -> None:
    """cryptography (about 6 MiB of a server's memory) is mapped into the process only when a route encrypts."""
    env = {
        **os.environ,
        "AIOUPLOADER_PLUGINS__ENCRYPTION__RECIPIENTS": f'["{generate_identity()[1]}"]',
    }
    served = serve(tmp_path, rclone_server, rclone_server.create_bucket(), plugins=plugins, env=env)
    try:
        async with aiohttp.ClientSession() as session, session.put(served.url + "/u/k", data=os.urandom(6 * MiB)) as r:
            assert r.status == 201, await r.text()
        mapped = mapped_files(served.process.pid)
    finally:
        served.stop()
    assert any("/cryptography/" in path for path in mapped) == ("encryption" in plugins)
