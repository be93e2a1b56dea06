"""Each hook of ``aiouploader/hookspecs.py``, called by name by a small plugin, through the real server."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yarl

from aiouploader import Download, DownloadStage, Upload, UploadError, UploadStage, hookimpl
from aiouploader.config import ConfigError
from aiouploader.errors import Forbidden
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server

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
