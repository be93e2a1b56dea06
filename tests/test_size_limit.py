"""The ``size_limit`` plugin, through HTTP, against real S3 servers (moto and rclone)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.app import make_app
from aiouploader.config import ConfigError, validate
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server

MiB = 1024**2
PART = 5 * MiB
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}
PROMPTLY = 10.0


async def proxy_for(make_proxy: MakeProxy, bucket: str, max_size: str | int, **route: Any) -> Proxy:
    return await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": ["size_limit", "checksum"], **route}],
        plugins={"size_limit": {"max_size": max_size}},
        s3=SMALL_PARTS,
        upload={"block_size": "256KiB"},
    )


async def put(proxy: Proxy, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(proxy(path), data=body) as response:
        return response.status, await response.json()


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (or a 1xx), read off a raw socket."""
    async with asyncio.timeout(PROMPTLY):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        body = await reader.readexactly(int(headers.get("content-length", "0"))) if status >= 200 else b""
    return status, headers, body


async def open_raw(proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = proxy.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def request_head(path: str, length: int, *extra: str) -> bytes:
    lines = [f"PUT {path} HTTP/1.1", "Host: test", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_content_length_over_the_limit_is_413_before_any_body_byte(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, "1MiB")
    reader, writer = await open_raw(proxy)
    try:
        # Headers only: the answer must come without the server waiting for the body.
        writer.write(request_head("/uploads/big", 2 * PART))
        status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 413
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large"
    assert "1MiB" in error["message"]
    assert_nothing_left(s3_server, bucket)


async def test_expect_100_continue_over_the_limit_is_413_without_continue(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, "1MiB")
    reader, writer = await open_raw(proxy)
    try:
        writer.write(request_head("/uploads/big", MiB + 1, "Expect: 100-continue"))
        status, headers, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 413  # the final answer, not 100 Continue: the client never sends the body
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)  # HTTP only: one S3 server is enough
async def test_expect_100_continue_refusal_closes_the_connection_promptly(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, "1MiB")
    reader, writer = await open_raw(proxy)
    try:
        writer.write(request_head("/uploads/big", MiB + 1, "Expect: 100-continue"))
        status, _, _ = await read_response(reader)
        assert status == 413
        async with asyncio.timeout(2):
            assert await reader.read() == b""
    finally:
        writer.close()


async def test_expect_100_continue_under_the_limit_continues_and_stores(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, "1MiB")
    payload = os.urandom(MiB)
    reader, writer = await open_raw(proxy)
    try:
        writer.write(request_head("/uploads/fits", len(payload), "Expect: 100-continue"))
        status, _, _ = await read_response(reader)
        assert status == 100
        writer.write(payload)
        status, headers, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 201, body
    assert json.loads(body)["size"] == MiB
    assert headers["location"] == "/uploads/fits"
    assert s3_server.get(bucket, "fits") == payload


async def test_route_override_wins_over_the_global_default(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[
            {"path": "/default", "bucket": bucket, "prefix": "default/", "plugins": ["size_limit"]},
            {
                "path": "/small",
                "bucket": bucket,
                "prefix": "small/",
                "plugins": ["size_limit"],
                "plugin_settings": {"size_limit": {"max_size": 1000}},
            },
        ],
        plugins={"size_limit": {"max_size": "3KB"}},
    )
    assert (await put(proxy, "/small/a", os.urandom(1000)))[0] == 201
    status, result = await put(proxy, "/small/b", os.urandom(1001))
    assert status == 413
    assert "1000B" in result["error"]["message"]
    assert (await put(proxy, "/default/c", os.urandom(3000)))[0] == 201
    status, result = await put(proxy, "/default/d", os.urandom(3001))
    assert status == 413
    assert "3000B" in result["error"]["message"]
    assert s3_server.keys(bucket) == ["default/c", "small/a"]
    assert s3_server.multipart_uploads(bucket) == []


async def test_chunked_body_at_the_limit_is_stored(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, 10_000)
    pieces = [os.urandom(n) for n in (4000, 4000, 2000)]

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    status, result = await put(proxy, "/uploads/exact", chunks())
    assert status == 201
    assert result["size"] == 10_000
    assert s3_server.get(bucket, "exact") == b"".join(pieces)


async def test_chunked_body_over_the_limit_is_413_mid_stream(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, 10_000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield os.urandom(4000)

    status, result = await put(proxy, "/uploads/over", chunks())
    assert status == 413
    assert result["error"]["code"] == "payload_too_large"
    assert_nothing_left(s3_server, bucket)


async def test_chunked_body_over_the_limit_aborts_the_multipart_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, "12MiB")
    seen_multipart: list[bool] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(8):
            yield os.urandom(2 * MiB)
            if i == 5 and not seen_multipart:
                # 12MiB sent: the first parts must be on their way to S3 before the limit is passed.
                for _ in range(100):
                    if await asyncio.to_thread(s3_server.multipart_uploads, bucket):
                        seen_multipart.append(True)
                        break
                    await asyncio.sleep(0.05)

    status, result = await put(proxy, "/uploads/too-big", chunks())
    assert seen_multipart == [True]
    assert status == 413
    assert result["error"]["code"] == "payload_too_large"
    assert "12MiB" in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


class _DoubleStage(UploadStage):
    async def feed(self, block: bytes) -> bytes:
        return block + block


class Double:
    """Stores every byte twice: a stand-in for a plugin that makes the stored object larger."""

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _DoubleStage()


async def test_limit_counts_the_client_bytes_even_after_a_growing_plugin(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    pm.register(Double(), name="double")
    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": ["double", "size_limit"]}],
        pm=pm,
        plugins={"size_limit": {"max_size": 10_000}},
    )
    body = os.urandom(10_000)
    status, result = await put(proxy, "/uploads/at-the-limit", body)
    assert status == 201, result
    assert (result["size"], result["stored_size"]) == (10_000, 20_000)

    async def chunks() -> AsyncIterator[bytes]:
        yield body
        yield b"x"

    status, result = await put(proxy, "/uploads/over", chunks())
    assert status == 413
    assert s3_server.keys(bucket) == ["at-the-limit"]


BAD_SIZES = ["lots", -1, "12XB", True, "1.5.0MiB"]


@pytest.mark.parametrize("value", BAD_SIZES)
def test_invalid_max_size_stops_start_up(value: Any) -> None:
    route = {"path": "/u", "bucket": "bucket", "plugins": ["size_limit"]}
    config = validate({"routes": [route], "plugins": {"size_limit": {"max_size": value}}})
    with pytest.raises(ConfigError) as caught:
        make_app(config)
    message = str(caught.value)
    assert "size_limit" in message and "max_size" in message
    assert "\n" not in message


def test_invalid_route_override_names_the_route() -> None:
    config = validate(
        {
            "routes": [
                {"path": "/ok", "bucket": "bucket", "prefix": "ok/", "plugins": ["size_limit"]},
                {
                    "path": "/bad",
                    "bucket": "bucket",
                    "prefix": "bad/",
                    "plugins": ["size_limit"],
                    "plugin_settings": {"size_limit": {"max_size": "lots", "typo": 1}},
                },
            ]
        }
    )
    with pytest.raises(ConfigError, match=r"size_limit.*/bad.*(max_size|typo)"):
        make_app(config)


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIOUPLOADER_")}
    return subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
        check=False,
    )


CONFIG = """\
[[routes]]
path = "/uploads"
bucket = "incoming"
plugins = ["size_limit"]

[plugins.size_limit]
max_size = {max_size}
"""


def test_check_config_refuses_an_invalid_max_size_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.format(max_size='"lots"'))
    done = check_config(config)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "size_limit" in lines[0] and "max_size" in lines[0] and "lots" in lines[0]


def test_check_config_sees_an_invalid_max_size_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(CONFIG.format(max_size='"100MiB"'))
    done = check_config(config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plugins"]["size_limit"]["max_size"] == "100MiB"
    done = check_config(config, AIOUPLOADER_PLUGINS__SIZE_LIMIT__MAX_SIZE="-5")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "size_limit" in done.stderr and "max_size" in done.stderr
