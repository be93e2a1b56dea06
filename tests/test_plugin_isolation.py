"""A plugin that fails or hangs costs its own upload only: 500 ``plugin_error``, nothing stored, logged."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

import pytest

from aiouploader import Download, DownloadStage, Upload, UploadStage, hookimpl
from aiouploader.chain import Chain
from aiouploader.config import ConfigError, validate
from aiouploader.hookspecs import Fetch
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .plugins_for_tests import Blocking, Boom, Label

MiB = 1024**2
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}


class _SlowStage(UploadStage):
    def __init__(self, where: str, seconds: float) -> None:
        self._where = where
        self._seconds = seconds

    async def feed(self, block: bytes) -> bytes:
        if self._where == "feed":
            await asyncio.sleep(self._seconds)
        if self._where == "raise":
            raise TimeoutError("the plugin's own timeout")
        return block

    async def finish(self) -> bytes:
        if self._where == "finish":
            await asyncio.sleep(self._seconds)
        return b""


class _SlowOpen(DownloadStage):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    async def open(self, fetch: Fetch, size: int) -> int:
        await asyncio.sleep(self._seconds)
        return await super().open(fetch, size)


class Slow:
    """Sleeps ``seconds`` in the stage call named by ``in``: ``feed``, ``finish``, (download) ``open``.

    ``in = "raise"``: ``feed`` raises a ``TimeoutError`` of its own at once.
    """

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> tuple[str, float]:
        return str(settings.get("in", "feed")), float(settings.get("seconds", 3600))

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: tuple[str, float]) -> UploadStage:
        return _SlowStage(*settings)

    @hookimpl
    def aiouploader_download_stage(self, download: Download, settings: tuple[str, float]) -> DownloadStage | None:
        where, seconds = settings
        return _SlowOpen(seconds) if where == "open" else None


async def slow_proxy(make_proxy: MakeProxy, bucket: str, where: str, plugin_timeout: float = 0.5) -> Proxy:
    pm = make_plugin_manager()
    pm.register(Slow(), name="slow")
    pm.register(Boom(), name="boom")
    route = {"bucket": bucket, "plugin_timeout": plugin_timeout}
    return await make_proxy(
        routes=[
            {
                **route,
                "path": "/slow",
                "prefix": "slow/",
                "plugins": ["checksum", "slow"],
                "plugin_settings": {"slow": {"in": where}},
            },
            {**route, "path": "/fast", "prefix": "fast/", "plugins": ["checksum"]},
            {**route, "path": "/boom", "prefix": "boom/", "plugins": ["boom"]},
        ],
        pm=pm,
        s3=SMALL_PARTS,
        upload={"block_size": "256KiB"},
    )


def records_of(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    """What the chain logged while serving the request (not, say, what the server learnt of the bucket then)."""
    return [r for r in caplog.records if getattr(r, "request_id", None) == request_id and r.name == "aiouploader.chain"]


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("where", ["feed", "finish"])
async def test_a_stage_call_past_the_plugin_timeout_is_a_plugin_error(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    proxy = await slow_proxy(make_proxy, bucket, where)
    started = time.monotonic()
    headers = {"X-Request-ID": f"slow-{where}"}
    async with proxy.session.put(proxy("/slow/k"), data=os.urandom(12 * MiB), headers=headers) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert time.monotonic() - started < 30
    assert error["code"] == "plugin_error"
    assert "'slow'" in error["message"] and "timed out after 0.5 seconds" in error["message"]
    assert_nothing_left(s3_server, bucket)
    [record] = records_of(caplog, f"slow-{where}")
    assert f"slow-{where}" in record.getMessage() and f"{where}()" in record.getMessage()


async def test_other_uploads_go_on_while_a_plugin_hangs(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await slow_proxy(make_proxy, bucket, "feed", plugin_timeout=2)
    bodies = {f"f{i}": os.urandom(MiB + i) for i in range(6)}

    async def put(path: str, body: bytes) -> int:
        async with proxy.session.put(proxy(path), data=body) as response:
            await response.read()
            return response.status

    statuses = await asyncio.gather(
        put("/slow/hangs", os.urandom(MiB)),
        put("/boom/fails", os.urandom(MiB)),
        *(put(f"/fast/{key}", body) for key, body in bodies.items()),
    )
    assert statuses == [500, 500] + [201] * len(bodies)
    assert s3_server.keys(bucket) == sorted(f"fast/{key}" for key in bodies)
    for key, body in bodies.items():
        assert s3_server.get(bucket, f"fast/{key}") == body
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_download_open_past_the_plugin_timeout_is_a_plugin_error(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await slow_proxy(make_proxy, bucket, "open")
    async with proxy.session.put(proxy("/slow/k"), data=b"stored") as response:
        assert response.status == 201
    for method in ("GET", "HEAD"):
        headers = {"X-Request-ID": f"open-{method}"}
        async with proxy.session.request(method, proxy("/slow/k"), headers=headers) as response:
            assert response.status == 500
            assert response.headers["X-Request-ID"] == f"open-{method}"
            if method == "GET":
                error = (await response.json())["error"]
                assert error["code"] == "plugin_error" and "timed out" in error["message"]
        assert records_of(caplog, f"open-{method}")
    assert s3_server.get(bucket, "slow/k") == b"stored"


async def test_a_plugin_exception_is_logged_with_the_request_id(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await slow_proxy(make_proxy, bucket, "feed")
    async with proxy.session.put(proxy("/boom/k"), data=b"x" * 1000, headers={"X-Request-ID": "boom-1"}) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "'boom'" in error["message"]
    assert "timed out" not in error["message"]
    [record] = records_of(caplog, "boom-1")
    assert "boom-1" in record.getMessage() and "boom" in record.getMessage()
    assert record.exc_info is not None and "secret internal detail" in str(record.exc_info[1])
    assert_nothing_left(s3_server, bucket)


async def test_a_plugins_own_timeout_error_is_a_failure_not_a_plugin_timeout(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await slow_proxy(make_proxy, bucket, "raise", plugin_timeout=60)
    async with proxy.session.put(proxy("/slow/k"), data=b"x" * 1000, headers={"X-Request-ID": "own-1"}) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "timed out" not in error["message"]
    [record] = records_of(caplog, "own-1")
    assert record.exc_info is not None and isinstance(record.exc_info[1], TimeoutError)
    assert_nothing_left(s3_server, bucket)


async def test_a_stage_that_blocks_the_event_loop_is_named_in_the_log_with_how_long(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    pm = make_plugin_manager()
    pm.register(Blocking(), name="sleepy")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["checksum", "sleepy"]}], pm=pm)
    async with proxy.session.put(proxy("/u/k"), data=b"x" * 1000, headers={"X-Request-ID": "held-1"}) as response:
        assert response.status == 201
    [record] = [r for r in records_of(caplog, "held-1") if r.levelno == logging.WARNING]
    held = re.fullmatch(
        r"request held-1: plugin sleepy held the event loop for (\d+\.\d{3}) seconds in feed\(\), stalling every "
        r"other request; blocking work belongs in asyncio.to_thread",
        record.getMessage(),
    )
    assert held is not None and float(held[1]) >= 0.5
    assert getattr(record, "fields", {})["plugin"] == "sleepy"


@pytest.mark.parametrize("value", [0, -1, "soon"])
def test_plugin_timeout_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.plugin_timeout"):
        validate({"routes": [{"path": "/u", "bucket": "bucket", "plugin_timeout": value}]})


class _WrongStage(UploadStage):
    def __init__(self, where: str, what: str) -> None:
        self._where, self._what = where, what

    def _wrong(self) -> Any:
        if self._what == "cancel":
            raise asyncio.CancelledError
        if self._what == "exit":
            raise SystemExit(3)
        return None if self._what == "none" else "text"

    async def feed(self, block: bytes) -> bytes:
        return self._wrong() if self._where == "feed" else block

    async def finish(self) -> bytes:
        return self._wrong() if self._where == "finish" else b""


class Wrong:
    """A stage that breaks its contract in ``feed`` or ``finish``: returns None or a str, or raises
    CancelledError or SystemExit."""

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> tuple[str, str]:
        return str(settings["in"]), str(settings["does"])

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: tuple[str, str]) -> UploadStage:
        return _WrongStage(*settings)


@pytest.mark.parametrize("does", ["none", "text", "cancel", "exit"])
@pytest.mark.parametrize("where", ["feed", "finish"])
async def test_a_stage_breaking_its_contract_is_that_plugins_error(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, where: str, does: str
) -> None:
    pm = make_plugin_manager()
    pm.register(Wrong(), name="wrong")
    proxy = await make_proxy(
        routes=[
            {
                "path": "/u",
                "bucket": bucket,
                "plugins": ["wrong", "checksum"],
                "plugin_settings": {"wrong": {"in": where, "does": does}},
            },
            {"path": "/fast", "bucket": s3_server.create_bucket(), "plugins": ["checksum"]},
        ],
        pm=pm,
        s3=SMALL_PARTS,
        upload={"block_size": "256KiB"},
    )
    async with proxy.session.put(proxy("/u/k"), data=os.urandom(6 * MiB)) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "'wrong'" in error["message"]
    assert_nothing_left(s3_server, bucket)
    async with proxy.session.put(proxy("/fast/after"), data=b"still serving") as response:
        assert response.status == 201


async def label_proxy(make_proxy: MakeProxy, bucket: str, when: str) -> Proxy:
    pm = make_plugin_manager()
    pm.register(Label(), name="label")
    route = {"path": "/u", "bucket": bucket, "plugins": ["label"], "plugin_settings": {"label": {"when": when}}}
    return await make_proxy(routes=[route], pm=pm, s3=SMALL_PARTS)


@pytest.mark.parametrize("when", ["feed", "finish", "finish-key"])
@pytest.mark.parametrize("size", [100, 6 * MiB], ids=["put-object", "multipart"])
async def test_a_key_or_metadata_changed_once_the_body_streams_is_that_plugins_error(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, when: str, size: int
) -> None:
    """S3 has the key and metadata from the first byte on: a later change is refused, never silently dropped."""
    proxy = await label_proxy(make_proxy, bucket, when)
    async with proxy.session.put(proxy("/u/k"), data=b"line\n" * (size // 5)) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "'label'" in error["message"]
    assert "after the body started" in error["message"]
    assert_nothing_left(s3_server, bucket)


async def test_metadata_set_as_the_stage_is_made_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await label_proxy(make_proxy, bucket, "stage")
    async with proxy.session.put(proxy("/u/k"), data=b"a\nb\n", headers={"X-Lines": "2"}) as response:
        assert response.status == 201
    stored = s3_server.client.head_object(Bucket=bucket, Key="k")["Metadata"]
    assert {name.lower(): value for name, value in stored.items()} == {"lines": "2"}  # rclone capitalises names


class _HalfStage:
    """A stage that is no ``UploadStage``: it feeds, and has nothing to finish or close with."""

    async def feed(self, block: bytes) -> bytes:
        return block


class _NotADownloadStage:
    async def open(self, fetch: Fetch, size: int) -> int:
        return size


class HalfStages:
    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload) -> Any:
        return _HalfStage()

    @hookimpl
    def aiouploader_download_stage(self, download: Download) -> Any:
        return _NotADownloadStage()


async def test_a_stage_without_the_calls_the_chain_makes_is_that_plugins_error(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    pm = make_plugin_manager()
    pm.register(HalfStages(), name="half")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["half"]}], pm=pm)
    async with proxy.session.put(proxy("/u/k"), data=b"a body") as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "'half'" in error["message"]
    assert_nothing_left(s3_server, bucket)
    assert "plugin half returned _HalfStage from its stage hook, which has no finish(), no close()" in caplog.text

    s3_server.client.put_object(Bucket=bucket, Key="stored", Body=b"stored before")
    async with proxy.session.get(proxy("/u/stored")) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "plugin_error" and "'half'" in error["message"]
    assert "plugin half returned _NotADownloadStage from its stage hook, which has no read()" in caplog.text


class AsyncWhereNotAwaited:
    @hookimpl
    async def aiouploader_upload_started(self, upload: Upload) -> None:
        raise PermissionError("never stored")


class AsyncWhereAwaited:
    @hookimpl
    async def aiouploader_startup(self) -> None:
        pass


def test_an_async_def_for_a_hook_called_without_awaiting_stops_start_up() -> None:
    config = validate({"routes": [{"path": "/u", "bucket": "bucket", "plugins": ["vetoes", "starts"]}]})
    pm = make_plugin_manager(entry_points=False)
    pm.register(AsyncWhereNotAwaited(), name="vetoes")
    pm.register(AsyncWhereAwaited(), name="starts")
    with pytest.raises(ConfigError) as refused:
        Chain.for_route(pm, config, config.routes[0])
    assert str(refused.value) == (
        "plugin vetoes: aiouploader_upload_started is an async def, but the server calls it without awaiting it, "
        "so that its body would never run; make it a plain def"
    )
    starts_only = validate({"routes": [{"path": "/u", "bucket": "bucket", "plugins": ["starts"]}]})
    assert Chain.for_route(pm, starts_only, starts_only.routes[0]).plugins[0].name == "starts"
