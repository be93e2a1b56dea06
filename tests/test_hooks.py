"""Each hook of ``aiouploader/hookspecs.py``, called by name by a small plugin, through the real server."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yarl

from aiouploader import Download, DownloadStage, Upload, UploadError, UploadStage, hookimpl
from aiouploader.app import make_app, server_options
from aiouploader.config import ConfigError
from aiouploader.errors import Forbidden
from aiouploader.plugin_manager import PluginLoadError, make_plugin_manager
from aiouploader.runner import Runner
from aiouploader.testing import MakeProxy, Proxy, S3Server, proxy_config

FLIP = bytes(range(255, -1, -1))


class _Flip(UploadStage):
    async def feed(self, block: bytes) -> bytes:
        return block.translate(FLIP)


class _Unflip(DownloadStage):
    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        below = super().read(start, end)

        async def unflipped() -> AsyncIterator[bytes]:
            async for chunk in below:
                yield chunk.translate(FLIP)

        return unflipped()


class Recorder:
    """Implements every hook; records the calls; behaves as its settings say."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        if settings.get("invalid"):
            raise ValueError("invalid: the test says so")
        self.calls.append(("configure", dict(settings)))
        return {"parsed": True, **settings}

    @hookimpl
    def aiouploader_upload_started(self, upload: Upload, settings: dict[str, Any]) -> None:
        self.calls.append(("started", upload.size))
        if upload.key == "refused":
            raise Forbidden("refused by upload_started")

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: dict[str, Any]) -> UploadStage | None:
        self.calls.append(("stage", settings["parsed"]))
        return _Flip() if settings.get("flip") else None

    @hookimpl
    def aiouploader_upload_completed(self, upload: Upload, result: dict[str, Any], settings: dict[str, Any]) -> None:
        self.calls.append(("completed", result))
        if settings.get("raise_after"):
            raise RuntimeError("completed hook failed")

    @hookimpl
    def aiouploader_upload_failed(self, upload: Upload, error: UploadError, settings: dict[str, Any]) -> None:
        self.calls.append(("failed", error.code))
        if settings.get("raise_after"):
            raise RuntimeError("failed hook failed")

    @hookimpl
    def aiouploader_download_stage(self, download: Download, settings: dict[str, Any]) -> DownloadStage | None:
        self.calls.append(("download", download.key))
        return _Unflip() if settings.get("flip") else None


class _Reporting(UploadStage):
    def __init__(self, upload: Upload, name: str) -> None:
        self._upload = upload
        self._name = name

    async def finish(self) -> bytes:
        self._upload.reports[self._name] = {"seen": self._upload.size}
        return b""


class Reporter:
    """Reports under the name it is registered as, whatever that is."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @hookimpl
    def aiouploader_upload_started(self, upload: Upload, name: str) -> None:
        self.names.append(name)

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, name: str) -> UploadStage:
        return _Reporting(upload, name)

    @hookimpl
    def aiouploader_upload_completed(self, upload: Upload, name: str) -> None:
        self.names.append(name)

    @hookimpl
    def aiouploader_upload_failed(self, upload: Upload, name: str) -> None:
        self.names.append(name)

    @hookimpl
    def aiouploader_download_stage(self, download: Download, name: str) -> None:
        self.names.append(name)


async def recorded(make_proxy: MakeProxy, bucket: str, **settings: Any) -> tuple[Proxy, Recorder]:
    pm = make_plugin_manager()
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    route = {"path": "/u", "bucket": bucket, "plugins": ["recorder"], "plugin_settings": {"recorder": settings}}
    proxy = await make_proxy(routes=[route], pm=pm, plugins={"recorder": {"default": 1}})
    return proxy, recorder


async def put(proxy: Proxy, key: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(yarl.URL(proxy(f"/u/{key}"), encoded=True), data=body) as response:
        return response.status, await response.json()


def names(recorder: Recorder) -> list[str]:
    return [name for name, _ in recorder.calls]


async def test_aiouploader_configure_gets_the_defaults_overlaid_by_the_route(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy, recorder = await recorded(make_proxy, bucket, default=2, own=3)
    assert recorder.calls == [("configure", {"default": 2, "own": 3})]
    assert (await put(proxy, "k", b"x"))[0] == 201
    assert ("stage", True) in recorder.calls
    with pytest.raises(ConfigError, match=r"plugins\.recorder \(route /u\): invalid: the test says so"):
        await recorded(make_proxy, bucket, invalid=True)


async def test_aiouploader_upload_started_runs_before_the_body_and_may_refuse(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy, recorder = await recorded(make_proxy, bucket)
    status, result = await put(proxy, "refused", b"x" * 1000)
    assert status == 403 and result["error"]["message"] == "refused by upload_started"
    assert recorder.calls[1:] == [("started", 0), ("failed", "forbidden")]
    assert s3_server.keys(bucket) == []


async def test_aiouploader_upload_stage_sees_the_bytes_or_stays_out(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    body = os.urandom(1000)
    plain, _ = await recorded(make_proxy, bucket)
    assert (await put(plain, "plain", body))[0] == 201
    flipping, _ = await recorded(make_proxy, bucket, flip=True)
    assert (await put(flipping, "flipped", body))[0] == 201
    assert s3_server.get(bucket, "plain") == body
    assert s3_server.get(bucket, "flipped") == body.translate(FLIP)


async def test_aiouploader_upload_completed_sees_the_result_the_client_gets(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, recorder = await recorded(make_proxy, bucket, raise_after=True)
    status, result = await put(proxy, "k", b"hello")
    assert status == 201
    assert recorder.calls[-1] == ("completed", result)
    assert names(recorder)[1:] == ["started", "stage", "completed"]
    assert any("failed in upload_completed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert s3_server.get(bucket, "k") == b"hello"


async def test_aiouploader_upload_failed_gets_the_error_the_client_gets(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, recorder = await recorded(make_proxy, "bucket-that-does-not-exist", raise_after=True)
    status, result = await put(proxy, "k", b"hello")
    assert status == 502
    assert recorder.calls[-1] == ("failed", result["error"]["code"]) == ("failed", "upstream_error")
    assert any("failed in upload_failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "completed" not in names(recorder)


async def test_aiouploader_download_stage_undoes_the_upload_stage(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy, recorder = await recorded(make_proxy, bucket, flip=True)
    body = os.urandom(10_000)
    assert (await put(proxy, "k", body))[0] == 201
    async with proxy.session.get(proxy("/u/k")) as response:
        assert await response.read() == body
    async with proxy.session.get(proxy("/u/k"), headers={"Range": "bytes=100-199"}) as response:
        assert response.status == 206 and await response.read() == body[100:200]
    assert ("download", "k") in recorder.calls


async def test_the_hooks_get_the_name_the_plugin_is_registered_under(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    first, second = Reporter(), Reporter()
    pm.register(first, name="first_reporter")
    pm.register(second, name="second_reporter")
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": ["first_reporter", "second_reporter"]}], pm=pm
    )
    status, result = await put(proxy, "k", b"hello")
    assert status == 201
    assert result["plugins"] == {"first_reporter": {"seen": 5}, "second_reporter": {"seen": 5}}
    async with proxy.session.get(proxy("/u/k")) as response:
        assert response.status == 200
    assert first.names == ["first_reporter"] * 3
    assert second.names == ["second_reporter"] * 3


class Lasting:
    """Records start-up and shutdown; its shutdown takes ``linger`` seconds."""

    def __init__(self, linger: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._linger = linger
        self._fail = fail

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> int:
        return int(settings.get("n", 0))

    @hookimpl
    async def aiouploader_startup(self, settings: dict[str, int], name: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("startup", name, settings))
        if self._fail:
            raise RuntimeError("no licence server")

    @hookimpl
    async def aiouploader_shutdown(self, name: str, grace: float) -> None:
        self.calls.append(("shutdown", name, grace))
        await asyncio.sleep(self._linger)
        self.calls.append(("shut down", name))


async def started(
    s3_server: S3Server, bucket: str, plugins: dict[str, Lasting], grace: float = 30, unlisted: Lasting | None = None
) -> Runner:
    """A server whose route ``/a`` lists ``plugins``, and ``/b`` the one called ``first``."""
    pm = make_plugin_manager()
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    if unlisted is not None:
        pm.register(unlisted, name="unlisted")
    routes = [
        {
            "path": "/a",
            "bucket": bucket,
            "prefix": "a/",
            "plugins": list(plugins),
            "plugin_settings": {"first": {"n": 1}},
        },
        {"path": "/b", "bucket": bucket, "prefix": "b/", "plugins": ["first"], "plugin_settings": {"first": {"n": 2}}},
    ]
    config = proxy_config(s3_server.endpoint_url, routes, server={"shutdown_grace": grace})
    runner = Runner(make_app(config, pm), **server_options(config))
    await runner.setup()
    return runner


async def test_aiouploader_startup_and_aiouploader_shutdown_run_once_per_server(
    moto_server: S3Server, bucket: str
) -> None:
    first, second, unlisted = Lasting(), Lasting(), Lasting()
    runner = await started(moto_server, bucket, {"first": first, "second": second}, unlisted=unlisted)
    assert first.calls == [("startup", "first", {"/a": 1, "/b": 2})]
    assert second.calls == [("startup", "second", {"/a": 0})]
    await runner.cleanup()
    assert first.calls[1:] == [("shutdown", "first", 30), ("shut down", "first")]
    assert second.calls[1:] == [("shutdown", "second", 30), ("shut down", "second")]
    assert unlisted.calls == []


async def test_a_plugin_that_fails_to_start_stops_start_up_naming_it(moto_server: S3Server, bucket: str) -> None:
    first, broken = Lasting(), Lasting(fail=True)
    with pytest.raises(PluginLoadError, match=r"^plugin second: cannot start \(RuntimeError: no licence server\)$"):
        await started(moto_server, bucket, {"first": first, "second": broken})
    assert [call[0] for call in first.calls] == ["startup", "shutdown", "shut down"]
    assert [call[0] for call in broken.calls] == ["startup"]


async def test_a_shutdown_past_the_grace_is_cancelled_and_logged(
    moto_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    quick, slow = Lasting(), Lasting(linger=60)
    runner = await started(moto_server, bucket, {"first": quick, "second": slow}, grace=0.5)
    begun = time.monotonic()
    await runner.cleanup()
    assert time.monotonic() - begun < 30  # the slow plugin's shutdown would take 60
    assert quick.calls[-1] == ("shut down", "first")
    assert slow.calls[-1] == ("shutdown", "second", 0.5)
    [warning] = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "shutdown" in r.getMessage()
    ]
    assert warning == (
        "plugin second: shutdown still running at the end of server.shutdown_grace (0.5 s for it): cancelled"
    )
