"""A fault matrix on both hops (client → aiouploader → S3), against moto and rclone.

Every fault hits an upload at its start, middle or end. After each case the
contract must hold: the object is absent or byte-identical to what the client
sent, and no multipart upload is left behind. A few cases also check that the
in-process proxy is back to its baseline of open files and asyncio tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from typing import Any

import aiohttp
import pytest

from aiouploader.service import SERVICE
from aiouploader.testing import MakeProxy, Proxy, S3Server, free_port

from .relay import Relay
from .test_metrics import scrape, value

KiB = 1024
MiB = 1024**2
PART = 5 * MiB
SIZE = 2 * PART + MiB  # three parts: 5MiB, 5MiB, 1MiB
S3_SETTINGS = {"part_size": "5MiB", "parts_in_flight": 2, "max_attempts": 2, "read_timeout": 2}
POSITIONS = ["start", "middle", "end"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def proxy_for(
    make_proxy: MakeProxy, bucket: str, endpoint_url: str | None = None, s3: dict[str, Any] | None = None
) -> Proxy:
    s3 = {**S3_SETTINGS, **(s3 or {})}
    if endpoint_url is not None:
        s3["endpoint_url"] = endpoint_url
    return await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["checksum"]}],
        s3=s3,
        upload={"block_size": "256KiB"},
        server={"body_idle_timeout": 1},
    )


async def put(proxy: Proxy, key: str, body: Any) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with proxy.session.put(proxy(f"/u/{key}"), data=body, timeout=timeout) as response:
        return response.status, await response.json()


def assert_contract(s3_server: S3Server, bucket: str, key: str, body: bytes, *, stored: bool | None) -> None:
    """The object is absent or identical (``stored`` says which, ``None``: either); no multipart upload."""
    keys = s3_server.keys(bucket)
    assert set(keys) <= {key}, keys
    if keys:
        assert stored is not False, f"{key} is visible after a failure"
        assert sha256(s3_server.get(bucket, key)) == sha256(body)
    else:
        assert stored is not True, f"{key} is missing after a success"
    assert s3_server.multipart_uploads(bucket) == []


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tasks() -> int:
    return len(asyncio.all_tasks())


async def back_to(baseline: tuple[int, int], slack_fds: int = 0, settle: float = 10.0) -> tuple[int, int]:
    """Wait until tasks and open files are back to ``baseline``; the last counts seen."""
    deadline = time.monotonic() + settle
    while True:
        now = (tasks(), fds())
        if (now[0] <= baseline[0] and now[1] <= baseline[1] + slack_fds) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


async def warm_up(proxy: Proxy, s3_server: S3Server, bucket: str) -> tuple[int, int]:
    """One successful upload, so connection pools are open, then the baseline of (tasks, fds)."""
    status, _ = await put(proxy, "warm-up", os.urandom(SIZE))
    assert status == 201
    s3_server.client.delete_object(Bucket=bucket, Key="warm-up")
    await proxy.session.close()  # the test's own client connections are not the proxy's
    proxy.session = aiohttp.ClientSession()
    await asyncio.sleep(0.2)
    return tasks(), fds()


# -- the S3 hop ---------------------------------------------------------------


@pytest.mark.parametrize("position, close_after", [("start", 64 * KiB), ("middle", PART // 2), ("end", PART - KiB)])
async def test_s3_connections_closed_early_are_retried(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, position: str, close_after: int
) -> None:
    body = os.urandom(SIZE)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(make_proxy, bucket, relay.url)
        assert (await put(proxy, "small", b"learns whether the bucket keeps tags"))[0] == 201
        s3_server.client.delete_object(Bucket=bucket, Key="small")
        relay.close_after, relay.faulty_connections = close_after, relay.connections + 2
        status, result = await put(proxy, "obj", body)
        assert status == 201, result
        assert relay.faults >= 1
    assert result["checksums"]["sha256"] == sha256(body)
    assert_contract(s3_server, bucket, "obj", body, stored=True)


# Like AWS S3, moto answers a repeated complete as the first; rclone answers NoSuchUpload (docs/operations.md).
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_lost_answer_to_the_completion_is_retried_and_the_upload_succeeds(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    body = os.urandom(SIZE)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.lose_response_to = lambda line: line.startswith("POST ") and "uploadId=" in line
        proxy = await proxy_for(make_proxy, bucket, relay.url)
        status, result = await put(proxy, "obj", body)
        assert relay.faults == 1
        completes = [head for head in relay.requests if head.startswith("POST ") and "uploadId=" in head]
    assert len(completes) == 2, completes  # botocore sent it again
    assert status == 201, result
    assert result["etag"] == s3_server.client.head_object(Bucket=bucket, Key="obj")["ETag"]
    assert_contract(s3_server, bucket, "obj", body, stored=True)


def is_complete(line: str) -> bool:
    return line.startswith("POST ") and "uploadId=" in line


def is_single_put(line: str) -> bool:
    return line.startswith("PUT ") and "uploadId=" not in line and "?tagging" not in line


@pytest.mark.parametrize("write, size", [(is_complete, SIZE), (is_single_put, 100 * KiB)], ids=["complete", "put"])
async def test_a_write_s3_made_without_answering_is_found_and_confirmed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, write: Any, size: int
) -> None:
    body = os.urandom(size)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.hold_response_to = write
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        status, result = await put(proxy, "obj", body)
        assert relay.faults >= 1
    if s3_server.kind == "rclone" and write is is_complete:
        # rclone's ETag of a completed multipart upload is the MD5 of the whole object: no telling it is ours.
        assert status in (502, 504), result
        assert "may have been stored" in result["error"]["message"]
        assert_contract(s3_server, bucket, "obj", body, stored=None)
        return
    assert status == 201, result
    assert result["etag"] == s3_server.client.head_object(Bucket=bucket, Key="obj")["ETag"]
    assert result["size"] == size and result["checksums"]["sha256"] == sha256(body)
    assert_contract(s3_server, bucket, "obj", body, stored=True)


@pytest.mark.parametrize("how", ["drops", "stops-reading"])
async def test_s3_stalling_on_a_small_put_is_a_504_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, how: str
) -> None:
    """A body small enough to go to the socket in one write is not watched: S3's silence still ends it."""
    body = os.urandom(4 * KiB)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        assert (await put(proxy, "warm-up", body))[0] == 201  # the bucket's tag support is learnt first
        s3_server.client.delete_object(Bucket=bucket, Key="warm-up")
        if how == "drops":
            relay.stall_after = relay.bytes_up + KiB
        else:
            relay.hold_after = relay.bytes_up + KiB
        started = time.monotonic()
        status, result = await put(proxy, "obj", body)
        assert relay.stalled >= 1
        relay.stall_after = relay.hold_after = None
    assert status == 504, result
    assert result["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 30
    assert_contract(s3_server, bucket, "obj", body, stored=False)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_unanswered_write_that_cannot_be_checked_is_not_said_to_have_stored_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    body = os.urandom(SIZE)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.hold_response_to = lambda line: is_complete(line) or line.startswith("HEAD ")
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        status, result = await put(proxy, "obj", body)
    assert status in (502, 504), result
    assert "nothing was stored" not in result["error"]["message"]
    assert "may have been stored" in result["error"]["message"]
    assert sha256(s3_server.get(bucket, "obj")) == sha256(body)  # it was
    assert s3_server.multipart_uploads(bucket) == []


STALL_AT = {"start": 64 * KiB, "middle": SIZE // 2, "end": SIZE - 64 * KiB}


@pytest.mark.parametrize(
    "position, how",
    [*((position, "drops") for position in POSITIONS), ("start", "stops-reading"), ("end", "stops-reading")],
)
async def test_s3_stalling_is_a_504_and_the_upload_is_aborted(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, position: str, how: str
) -> None:
    """S3 takes the bytes and never answers (``drops``), or stops taking them (``stops-reading``)."""
    body = os.urandom(SIZE)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        # read_timeout 1: each of botocore's attempts (max_attempts 2: three in all) waits that long.
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        check_resources = position == "middle"
        baseline = await warm_up(proxy, s3_server, bucket) if check_resources else (0, 0)
        if how == "drops":
            relay.stall_after = relay.bytes_up + STALL_AT[position]
        else:
            relay.hold_after = relay.bytes_up + STALL_AT[position]

        service = proxy.app[SERVICE]
        abort = service.s3.abort

        async def heal_then_abort(bucket: str, key: str, upload_id: str) -> None:
            """S3 stalls until the proxy gives up on the upload, then answers again (for the abort)."""
            relay.stall_after = relay.hold_after = None
            await abort(bucket, key, upload_id)

        service.s3.abort = heal_then_abort
        started = time.monotonic()
        status, result = await put(proxy, "obj", body)
        assert relay.stalled >= 1
        assert status == 504, result
        assert result["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - started < 30
        assert_contract(s3_server, bucket, "obj", body, stored=False)
        if check_resources:
            await proxy.session.close()
    if check_resources:
        # The relay is gone, so the proxy's pooled connections to it may linger until reused: some slack.
        now = await back_to(baseline, slack_fds=4)
        assert now[0] <= baseline[0], f"asyncio tasks: {baseline[0]} before, {now[0]} after"
        assert now[1] <= baseline[1] + 4, f"open files: {baseline[1]} before, {now[1]} after"


async def test_an_abort_s3_does_not_answer_is_retried_once_s3_is_back(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    body = os.urandom(SIZE)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        relay.stall_after = STALL_AT["middle"]  # S3 takes bytes and answers nothing, the abort included
        started = time.monotonic()
        status, result = await put(proxy, "obj", body)
        assert status == 504, result
        assert time.monotonic() - started < 20  # the answer does not wait for S3 to take the abort
        assert len(s3_server.multipart_uploads(bucket)) == 1
        relay.stall_after = None
        aborting = proxy.app[SERVICE].s3.aborting
        for _ in range(200):  # S3 drops the upload, then the background abort confirms it and ends
            if not s3_server.multipart_uploads(bucket) and not aborting:
                break
            await asyncio.sleep(0.1)
        assert_contract(s3_server, bucket, "obj", body, stored=False)
        assert not aborting


async def test_s3_unreachable_is_a_502_and_not_ready(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, f"http://127.0.0.1:{free_port()}")
    for size in (1000, SIZE):
        status, result = await put(proxy, "obj", os.urandom(size))
        assert status == 502, result
        assert result["error"]["code"] == "upstream_error"
    async with proxy.session.get(proxy("/readyz")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"]
    assert_contract(s3_server, bucket, "obj", b"", stored=False)


FLIP_AT = {"start": 4 * KiB, "middle": PART // 2, "end": PART - 1}  # past the completion's XML


# rclone verifies Content-MD5 but not the additional checksum: it needs s3.content_md5 = true. moto (5.2)
# verifies neither, but computes the object's checksum from what it stored: with the defaults, the comparison
# after completion catches the damage and removes the object.
@pytest.mark.parametrize("position", POSITIONS)
async def test_a_byte_flipped_towards_s3_is_detected_and_aborted(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, position: str
) -> None:
    body = os.urandom(SIZE)
    settings = {"content_md5": True} if s3_server.kind == "rclone" else {}
    async with Relay.to_url(s3_server.endpoint_url, flip_body_at=FLIP_AT[position]) as relay:
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3=settings)
        status, result = await put(proxy, "obj", body)
        assert relay.flipped >= 1
        assert status == 502, result
        assert result["error"]["code"] == "upstream_error"
        mismatches = value(await scrape(proxy), "aiouploader_s3_checksum_mismatches_total")
    if s3_server.kind == "moto":
        assert "checksum" in result["error"]["message"], result
        assert mismatches == 1
    assert_contract(s3_server, bucket, "obj", body, stored=False)


# -- the client hop -----------------------------------------------------------

RESET_AT = {"start": 2 * KiB, "middle": SIZE // 2, "end": SIZE - 1}


@pytest.mark.parametrize("position", POSITIONS)
async def test_a_client_reset_mid_body_aborts_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, position: str
) -> None:
    body = os.urandom(SIZE)
    proxy = await proxy_for(make_proxy, bucket)
    check_resources = position != "start"
    baseline = await warm_up(proxy, s3_server, bucket) if check_resources else (tasks(), 10**9)
    async with Relay.to_url(proxy.url, reset_after=RESET_AT[position]) as relay:
        with pytest.raises(aiohttp.ClientError):
            await put(Proxy(relay.url, proxy.session, proxy.config, proxy.app), "obj", body)
        assert relay.faults >= 1
    await proxy.session.close()
    now = await back_to(baseline)
    assert_contract(s3_server, bucket, "obj", body, stored=False)
    assert now[0] <= baseline[0], f"asyncio tasks: {baseline[0]} before, {now[0]} after"
    assert now[1] <= baseline[1], f"open files: {baseline[1]} before, {now[1]} after"


STALL_CLIENT_AT = {"start": 0, "middle": SIZE // 2, "end": SIZE - 1}


async def raw_put(proxy: Proxy, key: str, head_body: bytes, size: int, wait: float) -> tuple[int, dict[str, Any]]:
    """Send a PUT's head and the first bytes of its ``size``-byte body, then stall; the response."""
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"PUT /u/{key} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        writer.write(head_body)
        await writer.drain()
        async with asyncio.timeout(wait):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
            payload = await reader.readexactly(length)
        return int(lines[0].split()[1]), json.loads(payload)
    finally:
        writer.transport.abort()
        writer.close()


@pytest.mark.parametrize("position", POSITIONS)
async def test_a_client_stalling_mid_body_gets_408_and_the_upload_is_aborted(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, position: str
) -> None:
    body = os.urandom(SIZE)
    proxy = await proxy_for(make_proxy, bucket)
    check_resources = position == "middle"
    baseline = await warm_up(proxy, s3_server, bucket) if check_resources else (tasks(), 10**9)
    await proxy.session.close()
    sent = body[: STALL_CLIENT_AT[position]]
    started = time.monotonic()
    status, result = await raw_put(proxy, "obj", sent, SIZE, wait=30)
    assert status == 408, result
    assert result["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 20
    now = await back_to(baseline)
    assert_contract(s3_server, bucket, "obj", body, stored=False)
    assert now[0] <= baseline[0], f"asyncio tasks: {baseline[0]} before, {now[0]} after"
    assert now[1] <= baseline[1], f"open files: {baseline[1]} before, {now[1]} after"


async def test_an_unanswered_read_is_a_timeout_that_claims_nothing_about_storing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3_server.client.put_object(Bucket=bucket, Key="obj", Body=b"stored before")
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.hold_response_to = lambda line: line.startswith("GET /")
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"read_timeout": 1})
        async with proxy.session.get(proxy("/u/obj")) as response:
            status, message = response.status, (await response.json())["error"]["message"]
    assert status in (502, 504) and message.startswith("S3 ")  # moto's connection ends instead: 502
    assert "stored" not in message and ".." not in message


async def test_s3_calls_the_server_gives_up_are_not_counted_as_s3_errors(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.hold_response_to = lambda line: line.startswith("HEAD ")
        proxy = await proxy_for(make_proxy, bucket, relay.url, s3={"connect_timeout": 1})
        async with proxy.session.get(proxy("/readyz")) as response:
            assert response.status == 503  # /readyz stopped waiting for HeadBucket
        assert relay.faults >= 1
        text = await scrape(proxy)
    assert value(text, "aiouploader_s3_request_seconds_count", operation="head_bucket") >= 1
    assert value(text, "aiouploader_s3_errors_total", code="CancelledError") == 0
