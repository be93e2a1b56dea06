"""``GET /metrics``: Prometheus text that moves with uploads, failures, plugin stages and S3 calls."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server, free_port

from .plugins_for_tests import Blocking
from .raw import closed
from .serving import serve

MiB = 1024**2


async def proxy_for(make_proxy: MakeProxy, bucket: str) -> Proxy:
    route = {
        "path": "/u",
        "bucket": bucket,
        "plugins": ["size_limit", "checksum"],
        "plugin_settings": {"size_limit": {"max_size": "8MiB"}},
    }
    return await make_proxy(routes=[route], s3={"part_size": "5MiB", "parts_in_flight": 2})


async def scrape(proxy: Proxy) -> str:
    async with proxy.session.get(proxy("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_metrics_parse_and_count_created_uploads_and_bytes(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    before = await scrape(proxy)
    assert value(before, "aiouploader_uploads_total") == 0
    body = os.urandom(6 * MiB)
    async with proxy.session.put(proxy("/u/a.bin"), data=body) as response:
        assert response.status == 201
    text = await scrape(proxy)
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="created") == 1
    assert value(text, "aiouploader_received_bytes_total", route="/u") == len(body)
    assert value(text, "aiouploader_stored_bytes_total", route="/u") == len(body)
    assert value(text, "aiouploader_upload_duration_seconds_count", route="/u", outcome="created") == 1
    assert value(text, "aiouploader_uploads_in_flight") == 0
    assert value(text, "aiouploader_part_bytes_in_flight") == 0
    assert value(text, "aiouploader_plugin_stage_seconds_count", route="/u", plugin="checksum") >= 1
    assert value(text, "aiouploader_s3_request_seconds_count", operation="create_multipart_upload") == 1
    assert value(text, "aiouploader_s3_request_seconds_count", operation="upload_part") == 2
    assert value(text, "aiouploader_s3_request_seconds_count", operation="complete_multipart_upload") == 1


async def test_failed_uploads_count_by_error_code_and_aborts(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)

    async def too_large() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield os.urandom(MiB)

    async with proxy.session.put(proxy("/u/big.bin"), data=too_large()) as response:
        assert response.status == 413
    async with proxy.session.put(proxy("/u/declared.bin"), data=b"x", headers={"Content-Length": "1"}) as response:
        assert response.status == 201
    async with proxy.session.get(proxy("/u/missing")) as response:
        assert response.status == 404
    text = await scrape(proxy)
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="payload_too_large") == 1
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="created") == 1
    assert value(text, "aiouploader_uploads_total", outcome="not_found") == 0
    assert value(text, "aiouploader_multipart_aborts_total") >= 1
    assert value(text, "aiouploader_s3_errors_total", code="CancelledError") == 0  # the server gave them up
    assert value(text, "aiouploader_received_bytes_total", route="/u") > 8 * MiB
    assert value(text, "aiouploader_stored_bytes_total", route="/u") == 1
    assert s3_server.multipart_uploads(bucket) == []


async def test_an_upload_whose_client_went_away_counts_as_disconnected(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    port = URL(proxy.url).port
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PUT /u/gone HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n" + os.urandom(1_000_000))
    await writer.drain()
    await closed(writer)
    text = await scrape(proxy)
    for _ in range(400):  # until the server has seen the connection go
        if value(text, "aiouploader_uploads_total", route="/u") == 1:
            break
        await asyncio.sleep(0.05)
        text = await scrape(proxy)
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="disconnected") == 1
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="cancelled") == 0
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


async def test_s3_errors_are_counted_by_operation_and_code(make_proxy: MakeProxy, s3_server: S3Server) -> None:
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": "no-such-bucket-here", "plugins": []}])
    async with proxy.session.put(proxy("/u/x"), data=b"hello") as response:
        assert response.status == 502
    text = await scrape(proxy)
    assert value(text, "aiouploader_s3_errors_total", operation="put_object") == 1
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="upstream_error") == 1


async def test_each_app_has_its_own_registry(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    first, second = await proxy_for(make_proxy, bucket), await proxy_for(make_proxy, bucket)
    async with first.session.put(first("/u/one"), data=b"1") as response:
        assert response.status == 201
    assert value(await scrape(first), "aiouploader_uploads_total") == 1
    assert value(await scrape(second), "aiouploader_uploads_total") == 0


async def test_answers_to_expect_100_continue_are_counted_and_logged(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiouploader.access")
    routes = [
        {"path": "/u", "bucket": bucket, "plugins": ["size_limit"], "plugin_settings": {"size_limit": {"max_size": 9}}},
        {"path": "/direct", "bucket": s3_server.create_bucket(), "direct_upload": True},
    ]
    proxy = await make_proxy(routes=routes)
    host, port = proxy.url.removeprefix("http://").split(":")
    for path, status in [("/u/big", 413), ("/direct/d", 307)]:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = f"PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n"
            writer.write(f"{head}X-Request-ID: expect-{status}\r\n\r\n".encode())
            async with asyncio.timeout(5):
                answer = (await reader.read()).decode("latin-1")  # then the connection closes: no body is coming
        finally:
            await closed(writer)
        assert answer.startswith(f"HTTP/1.1 {status} ") and "100 Continue" not in answer
        assert f"X-Request-ID: expect-{status}" in answer
    text = await scrape(proxy)
    assert value(text, "aiouploader_uploads_total", route="/u", outcome="payload_too_large") == 1
    assert value(text, "aiouploader_uploads_total", route="/direct", outcome="redirected") == 1
    logged = {r.__dict__["fields"]["request_id"]: r.__dict__["fields"]["status"] for r in caplog.records}
    assert logged == {"expect-413": 413, "expect-307": 307}
    assert s3_server.keys(bucket) == []


async def test_metrics_can_be_served_on_a_port_of_their_own(rclone_server: S3Server, tmp_path: Path) -> None:
    """For operators who expose the main port: /metrics leaves it, and answers on metrics_host:metrics_port."""
    metrics_port = free_port()
    served = serve(tmp_path, rclone_server, rclone_server.create_bucket(), server=f"metrics_port = {metrics_port}")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.put(served.url + "/u/k.txt", data=b"x") as response:
                assert response.status == 201
            async with session.get(served.url + "/metrics") as response:
                assert response.status == 404
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                assert response.status == 200
                text = await response.text()
        assert 'aiouploader_uploads_total{outcome="created",route="/u"} 1.0' in text
        served.process.terminate()
        assert await asyncio.to_thread(served.process.wait, 30) == 0
    finally:
        served.stop()


async def test_event_loop_lag_is_a_histogram_that_sees_a_blocking_stage(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    pm.register(Blocking(), name="sleepy")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["sleepy"]}], pm=pm)
    async with proxy.session.put(proxy("/u/k"), data=b"x" * 1000) as response:
        assert response.status == 201
    text = await scrape(proxy)
    samples = value(text, "aiouploader_event_loop_lag_seconds_count")
    assert samples >= 1 and value(text, "aiouploader_event_loop_lag_seconds_bucket", le="+Inf") == samples
    assert samples - value(text, "aiouploader_event_loop_lag_seconds_bucket", le="0.1") >= 1
