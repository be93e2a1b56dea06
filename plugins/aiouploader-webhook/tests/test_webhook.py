"""The webhook through a real aiouploader and S3 server, delivering to a small aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiouploader.config import ConfigError
from aiouploader.testing import MakeProxy, Proxy, S3Server, Served, free_port, serve_process
from yarl import URL

import aiouploader_webhook

NEVER = 0
"""An answer of the receiver: hold the request open until the test ends."""


@dataclass
class Receiver:
    url: str
    answers: list[int]
    """Statuses for the next requests, in order (``NEVER`` holds one open); then 200."""
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    release = asyncio.Event()
    received = Receiver("", [])

    async def hook(request: web.Request) -> web.Response:
        received.calls.append((dict(request.headers), await request.read()))
        received.called.set()
        status = received.answers.pop(0) if received.answers else 200
        if status == NEVER:
            await release.wait()
            status = 200
        return web.Response(status=status)

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(request.url)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/loop", loop)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    received.url = str(server.make_url("/hook"))
    yield received
    release.set()
    await aiouploader_webhook.drain()
    await server.close()


async def proxy_with_webhook(make_proxy: MakeProxy, bucket: str, **settings: Any) -> Proxy:
    settings = {"attempts": 3, "backoff": 0.05, "timeout": 5, **settings}
    return await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["checksum", "webhook"]}],
        plugins={"webhook": settings},
    )


async def put(proxy: Proxy, key: str, body: bytes, request_id: str) -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(proxy(f"/u/{key}"), data=body, headers={"X-Request-ID": request_id}) as response:
        return response.status, await response.json()


def logged(caplog: pytest.LogCaptureFixture, request_id: str, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aiouploader_webhook" and r.levelno == level and getattr(r, "request_id", None) == request_id
    ]


async def test_the_upload_result_is_posted_after_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, receiver: Receiver
) -> None:
    proxy = await proxy_with_webhook(make_proxy, bucket, url=receiver.url)
    status, result = await put(proxy, "a.txt", b"hello", "hook-1")
    assert status == 201
    await aiouploader_webhook.drain()
    [(headers, body)] = receiver.calls
    assert json.loads(body) == result
    assert headers["X-Request-ID"] == "hook-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Aiouploader-Event"] == "upload.completed"


async def test_a_failed_delivery_is_tried_again(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [500, 503]
    proxy = await proxy_with_webhook(make_proxy, bucket, url=receiver.url)
    status, result = await put(proxy, "a.txt", b"hello", "hook-2")
    assert status == 201
    await aiouploader_webhook.drain()
    assert [json.loads(body) for _, body in receiver.calls] == [result] * 3
    assert len(logged(caplog, "hook-2", 30)) == 2
    assert logged(caplog, "hook-2", 40) == []


async def test_a_receiver_that_never_answers_does_not_delay_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [NEVER]
    proxy = await proxy_with_webhook(make_proxy, bucket, url=receiver.url, attempts=1, timeout=3)
    started = time.monotonic()
    status, _ = await put(proxy, "a.txt", b"hello", "hook-3")
    assert status == 201
    assert time.monotonic() - started < 2
    assert s3_server.get(bucket, "a.txt") == b"hello"
    await aiouploader_webhook.drain()
    assert len(receiver.calls) == 1
    [message] = logged(caplog, "hook-3", 40)
    assert "gave up after 1 tries" in message and "no answer within 3 seconds" in message


async def test_an_unreachable_receiver_is_logged_and_the_upload_stands(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with_webhook(make_proxy, bucket, url=f"http://127.0.0.1:{free_port()}/hook", attempts=2)
    status, _ = await put(proxy, "a.txt", b"hello", "hook-4")
    assert status == 201
    await aiouploader_webhook.drain()
    assert len(logged(caplog, "hook-4", 30)) == 2
    assert len(logged(caplog, "hook-4", 40)) == 1
    assert s3_server.keys(bucket) == ["a.txt"]


async def test_a_failed_upload_is_not_posted(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, receiver: Receiver
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["size_limit", "webhook"]}],
        plugins={"webhook": {"url": receiver.url}, "size_limit": {"max_size": 3}},
    )
    status, _ = await put(proxy, "a.txt", b"too long", "hook-5")
    assert status == 413
    await aiouploader_webhook.drain()
    assert receiver.calls == []


@pytest.mark.parametrize("where", ["nowhere", "a redirect loop"])
async def test_the_log_shows_the_url_without_its_secrets(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    where: str,
) -> None:
    to = URL(f"http://127.0.0.1:{free_port()}/hook") if where == "nowhere" else URL(receiver.url).with_path("/loop")
    url = to.with_user("admin").with_password("hunter2").with_query(token="s3cr3t")
    proxy = await proxy_with_webhook(make_proxy, bucket, url=str(url), attempts=2)
    status, _ = await put(proxy, "a.txt", b"hello", "hook-6")
    assert status == 201
    await aiouploader_webhook.drain()
    messages = logged(caplog, "hook-6", 30) + logged(caplog, "hook-6", 40)
    assert len(messages) == 3
    for message in messages:
        assert f" to {to} " in message
        assert "hunter2" not in message and "s3cr3t" not in message


async def test_a_delivery_cancelled_as_the_server_stops_is_logged(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [NEVER]
    proxy = await proxy_with_webhook(make_proxy, bucket, url=receiver.url, attempts=1)
    status, _ = await put(proxy, "a.txt", b"hello", "hook-7")
    assert status == 201
    await asyncio.wait_for(receiver.called.wait(), 5)
    # What asyncio.run does with the tasks still running when the server's coroutine returns.
    deliveries = list(aiouploader_webhook._deliveries)
    for task in deliveries:
        task.cancel()
    await asyncio.gather(*deliveries, return_exceptions=True)
    [message] = logged(caplog, "hook-7", 40)
    assert f"webhook to {receiver.url} gave up: cancelled" in message


def serve(tmp_path: Path, s3_server: S3Server, bucket: str, grace: float, webhook: str) -> Served:
    """``aiouploader serve`` in a process of its own, with a route ``/u`` whose plugins post to the webhook."""
    return serve_process(
        tmp_path,
        f"[server]\nshutdown_grace = {grace}\n"
        f'[s3]\nendpoint_url = "{s3_server.endpoint_url}"\n'
        f'[[routes]]\npath = "/u"\nbucket = "{bucket}"\nplugins = ["checksum", "webhook"]\n'
        f"[plugins.webhook]\n{webhook}\n",
    )


async def put_to(url: str, body: bytes, request_id: str) -> tuple[int, dict[str, Any]]:
    headers = {"X-Request-ID": request_id}
    async with aiohttp.ClientSession() as session, session.put(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_a_delivery_in_flight_at_sigterm_is_delivered(
    s3_server: S3Server, bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.answers = [503]
    served = serve(tmp_path, s3_server, bucket, 10, f'url = "{receiver.url}"\nattempts = 2\nbackoff = 1.0')
    try:
        status, result = await put_to(f"{served.url}/u/a.txt", b"hello", "hook-8")
        assert status == 201
        await asyncio.wait_for(receiver.called.wait(), 5)
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.process.wait, 30) == 0
    finally:
        served.stop()
    assert [json.loads(body) for _, body in receiver.calls] == [result, result]
    text = served.log.read_text()
    assert "webhook: waiting up to" in text and "gave up" not in text


async def test_a_delivery_past_the_grace_is_cancelled_and_logged(
    s3_server: S3Server, bucket: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.answers = [NEVER]
    served = serve(tmp_path, s3_server, bucket, 1, f'url = "{receiver.url}"\nattempts = 1\ntimeout = 60')
    try:
        assert (await put_to(f"{served.url}/u/a.txt", b"hello", "hook-9"))[0] == 201
        await asyncio.wait_for(receiver.called.wait(), 5)
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.process.wait, 30) == 0
        assert time.monotonic() - signalled < 6
    finally:
        served.stop()
    text = served.log.read_text()
    assert "plugin webhook: shutdown still running at the end of server.shutdown_grace" in text
    assert f"request hook-9: webhook to {receiver.url} gave up: cancelled" in text


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "url: Field required"),
        ({"url": "ftp://x"}, "url: must be an http"),
        ({"url": "http://"}, "url: must be an http:// or https:// URL with a host"),
        ({"url": "https://"}, "url: must be an http:// or https:// URL with a host"),
        ({"url": "http://:8080/x"}, "url: must be an http:// or https:// URL with a host"),
        ({"url": "http://127.0.0.1:99999/x"}, "url: must be an http:// or https:// URL with a host"),
        ({"url": "http://127.0.0.1:0/x"}, "url: must be an http:// or https:// URL with a host"),
        ({"url": "http://x", "attempts": 0}, "attempts"),
    ],
)
async def test_bad_settings_stop_start_up(
    make_proxy: MakeProxy, bucket: str, settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.webhook .*{named}"):
        await make_proxy(
            routes=[{"path": "/u", "bucket": bucket, "plugins": ["webhook"]}], plugins={"webhook": settings}
        )
