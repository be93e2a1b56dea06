"""The ``virus_scan`` plugin (stub and a real clamd), through HTTP, against moto and rclone."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.app import make_app
from aiouploader.config import ConfigError, validate
from aiouploader.eicar import EICAR
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server, free_port
from tests.test_clamd import answering_clamd

if TYPE_CHECKING:
    from tests.fixtures.clamd import ClamdServer

MiB = 1024**2
PART = 5 * MiB
BLOCK = 4096
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}
CLAMD_FOUND = "Eicar-Test-Signature.UNOFFICIAL"
PAUSE = 0.05
VIRUS_SCAN_LOG = "aiouploader.builtin.virus_scan"
RETRY_LATER = "The virus scanner is unavailable; retry later."


class _SpyStage(UploadStage):
    def __init__(self, blocks: list[int]) -> None:
        self._blocks = blocks

    async def feed(self, block: bytes) -> bytes:
        self._blocks.append(len(block))
        return block


class BlockSpy:
    """Records the size of every block the chain sees, to show where block boundaries fell."""

    def __init__(self) -> None:
        self.blocks: list[int] = []

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _SpyStage(self.blocks)

    def boundaries(self) -> list[int]:
        return list(itertools.accumulate(self.blocks))


async def proxy_for(
    make_proxy: MakeProxy, bucket: str, spy: BlockSpy | None = None, block_size: int = 256 * 1024, **settings: Any
) -> Proxy:
    pm = make_plugin_manager()
    plugins = ["virus_scan"]
    if spy is not None:
        pm.register(spy, name="spy")
        plugins = ["spy", "virus_scan"]
    return await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": plugins}],
        pm=pm,
        plugins={"virus_scan": settings},
        s3=SMALL_PARTS,
        upload={"block_size": block_size},
    )


async def put(proxy: Proxy, key: str, body: Any) -> tuple[int, dict[str, Any], Any]:
    async with proxy.session.put(proxy(f"/uploads/{key}"), data=body) as response:
        return response.status, await response.json(), response.headers


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


def scanner_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == VIRUS_SCAN_LOG and r.levelno == logging.WARNING]


def clean(size: int) -> bytes:
    """Bytes that no scanner objects to (and that do not contain EICAR by chance)."""
    return bytes(range(256)) * (size // 256) + b"\0" * (size % 256)


def with_eicar_at(size: int, offset: int) -> bytes:
    body = clean(size)
    return body[:offset] + EICAR + body[offset + len(EICAR) :]


async def paced(pieces: list[bytes], *, pause: float = PAUSE) -> AsyncIterator[bytes]:
    """A chunked body sent piece by piece, with a pause after each so the server reads them apart."""
    for piece in pieces:
        yield piece
        await asyncio.sleep(pause)


def split_at(body: bytes, *cuts: int) -> list[bytes]:
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


# --- stub backend ------------------------------------------------------------------------------


async def test_stub_reports_clean_uploads(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, backend="stub")
    for key, body in (("empty", b""), ("small", clean(10_000)), ("multipart", clean(PART + 10))):
        status, result, _ = await put(proxy, key, body)
        assert status == 201
        assert result["plugins"]["virus_scan"]["verdict"] == "clean"
        assert s3_server.get(bucket, key) == body


@pytest.mark.parametrize("offset", [0, 5000, 100_000 - len(EICAR)], ids=["start", "middle", "end"])
async def test_stub_finds_eicar_anywhere_in_the_body(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, offset: int
) -> None:
    proxy = await proxy_for(make_proxy, bucket, backend="stub")
    status, result, _ = await put(proxy, "infected", with_eicar_at(100_000, offset))
    assert status == 422
    assert result["error"]["code"] == "infected"
    assert "Eicar-Test-Signature" in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


async def test_stub_finds_eicar_split_across_a_block_boundary(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    spy = BlockSpy()
    proxy = await proxy_for(make_proxy, bucket, spy, block_size=BLOCK, backend="stub")
    start = 3 * BLOCK - 30
    body = with_eicar_at(6 * BLOCK, start)
    status, result, _ = await put(proxy, "split", paced(split_at(body, BLOCK, 2 * BLOCK, 3 * BLOCK, 4 * BLOCK)))
    assert any(start < end < start + len(EICAR) for end in spy.boundaries()), spy.blocks  # it was split
    assert status == 422
    assert "Eicar-Test-Signature" in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


async def test_stub_finds_eicar_split_across_the_part_boundary(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    spy = BlockSpy()
    proxy = await proxy_for(make_proxy, bucket, spy, block_size=BLOCK, backend="stub")
    start = PART - 30
    body = with_eicar_at(PART + MiB, start)
    # A block ends 10 bytes past the part boundary: the first part (with EICAR's head) goes to S3
    # before the block with EICAR's tail arrives, so the multipart upload has to be aborted.
    pieces = split_at(body, PART + 10 - BLOCK, PART + 10)
    status, result, _ = await put(proxy, "split", paced(pieces, pause=0.3))
    assert start < PART + 10 < start + len(EICAR)
    assert PART + 10 in spy.boundaries(), spy.blocks
    assert status == 422
    assert result["error"]["code"] == "infected"
    assert_nothing_left(s3_server, bucket)


# --- clamd backend -----------------------------------------------------------------------------


async def test_clamd_reports_clean_uploads(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_server: ClamdServer
) -> None:
    for address in (clamd_server.tcp_address, clamd_server.unix_address):
        proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=address)
        for size in (0, 10_000, PART + 10):
            body = clean(size)
            status, result, _ = await put(proxy, f"clean-{size}", body)
            assert status == 201, result
            assert result["plugins"]["virus_scan"] == {"verdict": "clean", "backend": "clamd"}
    assert s3_server.keys(bucket) == sorted(f"clean-{size}" for size in (0, 10_000, PART + 10))


@pytest.mark.parametrize(
    ("size", "offset"),
    [
        pytest.param(10_000, 4000, id="single-put"),
        pytest.param(3 * PART, PART - 30, id="across-a-part-boundary"),
        pytest.param(3 * PART, 3 * PART - len(EICAR), id="at-the-end-of-several-parts"),
    ],
)
async def test_clamd_finds_eicar(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_server: ClamdServer, size: int, offset: int
) -> None:
    proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=clamd_server.tcp_address)
    status, result, _ = await put(proxy, "infected", with_eicar_at(size, offset))
    assert status == 422
    assert result["error"]["code"] == "infected"
    assert CLAMD_FOUND in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


async def test_clamd_killed_mid_upload_is_503_and_leaves_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, fresh_clamd: ClamdServer
) -> None:
    proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=fresh_clamd.tcp_address)

    async def slow_body() -> AsyncIterator[bytes]:
        for i in range(12):
            yield clean(MiB)
            await asyncio.sleep(PAUSE)
            if i == 6:  # a part is on its way to S3, and clamd has seen 7MiB
                fresh_clamd.process.kill()
                await asyncio.to_thread(fresh_clamd.process.wait)

    status, result, headers = await put(proxy, "k", slow_body())
    assert fresh_clamd.process.returncode is not None
    assert status == 503
    assert result["error"]["code"] == "scanner_unavailable"
    assert int(headers["Retry-After"]) > 0
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("address", ["tcp", "unix"])
async def test_clamd_not_running_is_503_with_the_details_in_the_log(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture, address: str
) -> None:
    clamd_address = f"tcp://127.0.0.1:{free_port()}" if address == "tcp" else "unix:///nonexistent/clamd.ctl"
    proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=clamd_address)
    for body in (b"", clean(10_000), clean(PART + 10)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=VIRUS_SCAN_LOG):
            status, result, headers = await put(proxy, "k", body)
        assert status == 503
        assert result["error"] == {"code": "scanner_unavailable", "message": RETRY_LATER}
        assert headers["Retry-After"]
        [warning] = scanner_warnings(caplog)
        assert getattr(warning, "request_id", None) == headers["X-Request-ID"]
        assert f"cannot connect to clamd at {clamd_address}" in warning.getMessage()
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize(
    "reply",
    [b"x" * 10_000, b"stream:  FOUND\0", b"stream: \x1b[2J FOUND\0"],
    ids=["garbage", "empty-signature", "control"],
)
async def test_a_clamd_reply_that_is_not_a_verdict_is_503_or_unscanned_with_fail_open(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture, reply: bytes
) -> None:
    async with answering_clamd(reply) as address:
        proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=address)
        with caplog.at_level(logging.WARNING, logger=VIRUS_SCAN_LOG):
            status, result, headers = await put(proxy, "k", clean(10_000))
        assert status == 503
        assert result["error"] == {"code": "scanner_unavailable", "message": RETRY_LATER}
        [warning] = scanner_warnings(caplog)
        assert getattr(warning, "request_id", None) == headers["X-Request-ID"]
        assert "unexpected reply" in warning.getMessage() and len(warning.getMessage()) < 300
        assert_nothing_left(s3_server, bucket)
        proxy = await proxy_for(make_proxy, bucket, backend="clamd", clamd_address=address, fail_open=True)
        status, result, _ = await put(proxy, "k", clean(10_000))
        assert status == 201
        assert result["plugins"]["virus_scan"]["verdict"] == "unscanned"


async def test_fail_open_stores_unscanned_with_a_warning(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_for(
        make_proxy, bucket, backend="clamd", clamd_address=f"tcp://127.0.0.1:{free_port()}", fail_open=True
    )
    body = clean(PART + 10)
    with caplog.at_level(logging.WARNING, logger=VIRUS_SCAN_LOG):
        status, result, headers = await put(proxy, "k", body)
    assert status == 201
    assert result["plugins"]["virus_scan"]["verdict"] == "unscanned"
    [warning] = scanner_warnings(caplog)
    assert getattr(warning, "request_id", None) == headers["X-Request-ID"]
    assert "UNSCANNED" in warning.getMessage() and "\n" not in warning.getMessage()
    assert s3_server.get(bucket, "k") == body


async def test_over_the_scanner_max_size_is_413_and_never_stored_unscanned(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_server: ClamdServer
) -> None:
    proxy = await proxy_for(
        make_proxy, bucket, backend="clamd", clamd_address=clamd_server.tcp_address, max_size="6MiB"
    )
    body = clean(6 * MiB + 1)
    for sent in (body, paced(split_at(body, 3 * MiB, 6 * MiB))):  # Content-Length, then chunked
        status, result, _ = await put(proxy, "big", sent)
        assert status == 413
        assert result["error"]["code"] == "payload_too_large"
        assert "6MiB" in result["error"]["message"] and "virus" in result["error"]["message"]
        assert_nothing_left(s3_server, bucket)
    assert (await put(proxy, "fits", body[:-1]))[0] == 201


async def test_over_clamd_stream_max_length_is_413_and_never_stored_unscanned(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_small_limit: ClamdServer
) -> None:
    proxy = await proxy_for(
        make_proxy, bucket, backend="clamd", clamd_address=clamd_small_limit.tcp_address, max_size="16MiB"
    )
    for size in (2 * MiB, PART + MiB):
        status, result, _ = await put(proxy, "big", clean(size))
        assert status == 413, result
        assert result["error"]["code"] == "payload_too_large"
        assert "StreamMaxLength" in result["error"]["message"]
        assert_nothing_left(s3_server, bucket)


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"backend": "clamd", "clamd_address": "tcp://127.0.0.1"}, "clamd_address"),
        ({"backend": "clamd", "clamd_address": "tcp://127.0.0.1:0"}, "clamd_address"),
        ({"backend": "clamd", "clamd_address": "unix://relative/path"}, "clamd_address"),
        ({"backend": "clamd", "clamd_address": "unix:///"}, "clamd_address"),
        ({"backend": "clamd", "max_size": 0}, "max_size"),
        ({"clamd_address": "http://127.0.0.1:3310"}, "clamd_address"),
        ({"backend": "clamav"}, "backend"),
        ({"timeout": 0}, "timeout"),
        ({"max_size": "huge"}, "max_size"),
        ({"fail_closed": True}, "fail_closed"),
    ],
)
def test_invalid_settings_stop_start_up(settings: dict[str, Any], named: str) -> None:
    config = validate(
        {"routes": [{"path": "/u", "bucket": "bucket", "plugins": ["virus_scan"]}], "plugins": {"virus_scan": settings}}
    )
    with pytest.raises(ConfigError) as caught:
        make_app(config)
    message = str(caught.value)
    assert "virus_scan" in message and named in message
    assert "\n" not in message
