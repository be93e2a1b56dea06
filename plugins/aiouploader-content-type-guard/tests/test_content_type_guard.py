"""The content type guard through a real aiouploader and S3 server (the ``aiouploader.testing`` fixtures)."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest
from aiouploader import Upload
from aiouploader.config import ConfigError
from aiouploader.errors import UnsupportedMediaType
from aiouploader.testing import MakeProxy, Proxy, S3Server

from aiouploader_content_type_guard import HEAD, GuardSettings, GuardStage, sniff

MiB = 1024**2
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8)


async def guarded(make_proxy: MakeProxy, bucket: str, **settings: Any) -> Proxy:
    route: dict[str, Any] = {"path": "/u", "bucket": bucket, "plugins": ["content_type_guard", "checksum"]}
    if settings:
        route["plugin_settings"] = {"content_type_guard": settings}
    return await make_proxy(routes=[route], s3={"part_size": "5MiB"}, upload={"block_size": "64KiB"})


async def put(proxy: Proxy, key: str, body: bytes, content_type: str = "image/png") -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(proxy(f"/u/{key}"), data=body, headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def test_an_allowed_type_is_stored_whole(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await guarded(make_proxy, bucket)
    body = PNG + os.urandom(6 * MiB)
    status, result = await put(proxy, "photo.png", body)
    assert status == 201
    assert result["plugins"]["content_type_guard"] == {"detected": "image/png"}
    assert s3_server.get(bucket, "photo.png") == body


async def test_a_renamed_executable_is_refused_with_415(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await guarded(make_proxy, bucket)
    for head in (ELF, b"MZ\x90\x00\x03\x00\x00\x00"):
        status, result = await put(proxy, "photo.png", head + os.urandom(6 * MiB))
        assert status == 415
        assert result["error"]["code"] == "unsupported_media_type"
        assert "image/png" in result["error"]["message"]
    assert "application/x-executable" in result["error"]["message"] or "x-msdownload" in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


async def test_a_body_shorter_than_the_magic_table_is_judged_at_its_end(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await guarded(make_proxy, bucket)
    status, _ = await put(proxy, "tiny.pdf", b"%PDF-", "application/pdf")
    assert status == 201
    assert s3_server.get(bucket, "tiny.pdf") == b"%PDF-"
    status, _ = await put(proxy, "empty", b"")
    assert status == 415
    assert s3_server.keys(bucket) == ["tiny.pdf"]


async def test_unrecognised_content_passes_only_when_octet_stream_is_allowed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    text = b"just some text, no magic number"
    strict = await guarded(make_proxy, bucket)
    assert (await put(strict, "a.txt", text, "text/plain"))[0] == 415
    lenient = await guarded(make_proxy, bucket, allow=["application/octet-stream"])
    status, result = await put(lenient, "a.txt", text, "text/plain")
    assert status == 201 and result["plugins"]["content_type_guard"] == {"detected": "application/octet-stream"}
    assert (await put(lenient, "b.png", PNG))[0] == 415


async def test_a_form_with_one_refused_file_stores_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await guarded(make_proxy, bucket)
    form = aiohttp.FormData()
    form.add_field("a", PNG + b"rest", filename="a.png", content_type="image/png")
    form.add_field("b", ELF, filename="b.png", content_type="image/png")
    async with proxy.session.post(proxy("/u/"), data=form) as response:
        assert response.status == 415
    assert_nothing_left(s3_server, bucket)


async def test_an_unknown_type_in_allow_stops_start_up(make_proxy: MakeProxy, bucket: str) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.content_type_guard .*allow: image/tiff cannot be recognised"):
        await guarded(make_proxy, bucket, allow=["image/png", "image/tiff"])


async def test_the_magic_number_may_arrive_a_byte_at_a_time() -> None:
    upload = Upload("r", "/u", "b", "", "k", "image/png", None, {})
    stage = GuardStage(upload, GuardSettings(), "content_type_guard")
    body = PNG + b"more"
    passed = b"".join([await stage.feed(body[i : i + 1]) for i in range(len(body))])
    assert passed + await stage.finish() == body
    assert passed[:HEAD] == body[:HEAD]
    stage = GuardStage(upload, GuardSettings(), "content_type_guard")
    assert await stage.feed(ELF[:3]) == b""
    with pytest.raises(UnsupportedMediaType):
        await stage.feed(ELF[3:])


def test_sniff_reads_webp_by_both_of_its_marks() -> None:
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "application/octet-stream"
