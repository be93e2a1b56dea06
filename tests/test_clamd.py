from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aiouploader.clamd import (
    MAX_FRAME,
    ClamdLimitExceeded,
    ClamdUnavailable,
    ScanSession,
    parse_address,
    ping,
)
from aiouploader.eicar import EICAR

if TYPE_CHECKING:
    from tests.fixtures.clamd import ClamdServer

FOUND = "Eicar-Test-Signature.UNOFFICIAL"
TIMEOUT = 30.0
PROMPTLY = 5.0
MIB = 1 << 20


def _clean(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"\0" * (size % 256)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _scan(address: str, *blocks: bytes | memoryview) -> str | None:
    session = await ScanSession.open(address, TIMEOUT)
    try:
        for block in blocks:
            await session.send(block)
        return await session.verdict()
    finally:
        await session.close()


@asynccontextmanager
async def answering_clamd(reply: bytes) -> AsyncIterator[str]:
    """The address of a fake clamd that reads each stream scan to its end, then answers ``reply``."""

    async def scan(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\0")
        while size := struct.unpack(">I", await reader.readexactly(4))[0]:
            await reader.readexactly(size)
        writer.write(reply)
        writer.close()

    server = await asyncio.start_server(scan, "127.0.0.1", 0)
    async with server:
        yield f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_eicar_is_the_standard_test_file() -> None:
    assert len(EICAR) == 68
    assert EICAR.startswith(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS")
    assert EICAR.endswith(b"-TEST-FILE!$H+H*")


async def test_clean_stream(clamd_server: ClamdServer) -> None:
    assert await _scan(clamd_server.tcp_address, b"hello, ", b"world\n" * 1000) is None


async def test_empty_stream(clamd_server: ClamdServer) -> None:
    assert await _scan(clamd_server.tcp_address) is None


async def test_eicar_in_one_chunk(clamd_server: ClamdServer) -> None:
    assert await _scan(clamd_server.tcp_address, EICAR) == FOUND


@pytest.mark.parametrize("split", [1, 34, 67])
async def test_eicar_split_across_sends(clamd_server: ClamdServer, split: int) -> None:
    found = await _scan(clamd_server.tcp_address, EICAR[:split], EICAR[split:])
    assert found == FOUND


async def test_empty_send_does_not_end_the_stream(clamd_server: ClamdServer) -> None:
    assert await _scan(clamd_server.tcp_address, b"", EICAR[:10], b"", EICAR[10:]) == FOUND


async def test_eicar_after_5_mib_of_clean_data(clamd_server: ClamdServer) -> None:
    blocks = [_clean(MIB) for _ in range(5)]
    assert await _scan(clamd_server.tcp_address, *blocks, EICAR) == FOUND
    assert await _scan(clamd_server.tcp_address, *blocks) is None


async def test_big_block_is_split_without_losing_bytes(
    clamd_server: ClamdServer,
) -> None:
    before = _clean(MAX_FRAME - 30)
    data = before + EICAR + _clean(3 * MIB)
    assert len(data) > 3 * MAX_FRAME
    assert await _scan(clamd_server.tcp_address, memoryview(data)) == FOUND
    assert await _scan(clamd_server.tcp_address, memoryview(data)[: len(before) + 60]) is None


async def test_unix_socket(clamd_server: ClamdServer) -> None:
    assert await _scan(clamd_server.unix_address, b"clean") is None
    assert await _scan(clamd_server.unix_address, b"x" * 100, EICAR) == FOUND


async def test_concurrent_scans(clamd_server: ClamdServer) -> None:
    payloads = [EICAR if i % 2 else _clean(MIB) for i in range(8)]
    results = await asyncio.gather(*(_scan(clamd_server.tcp_address, payload) for payload in payloads))
    assert results == [FOUND if i % 2 else None for i in range(8)]


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_stream_over_limit_fails_on_send(clamd_small_limit: ClamdServer, kind: str) -> None:
    address = getattr(clamd_small_limit, f"{kind}_address")
    session = await ScanSession.open(address, TIMEOUT)
    block = _clean(64 * 1024)
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdLimitExceeded, match="StreamMaxLength") as caught:
            for _ in range(16 * 64):
                await session.send(block)
    assert "cannot be scanned" in str(caught.value)
    with pytest.raises(ClamdUnavailable, match="closed"):
        await session.send(block)
    await session.close()
    assert await ping(address, TIMEOUT)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_stream_just_over_limit(clamd_small_limit: ClamdServer, kind: str) -> None:
    address = getattr(clamd_small_limit, f"{kind}_address")
    assert await _scan(address, _clean(MIB)) is None
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdLimitExceeded):
            await _scan(address, _clean(MIB), b"!")


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_clamd_killed_mid_stream(fresh_clamd: ClamdServer, kind: str) -> None:
    session = await ScanSession.open(getattr(fresh_clamd, f"{kind}_address"), TIMEOUT)
    await session.send(_clean(MIB))
    fresh_clamd.process.kill()
    fresh_clamd.process.wait()
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdUnavailable, match="lost connection"):
            for _ in range(64):
                await session.send(_clean(MIB))
            await session.verdict()
    await session.close()


async def test_clamd_killed_while_awaiting_verdict(fresh_clamd: ClamdServer) -> None:
    session = await ScanSession.open(fresh_clamd.unix_address, TIMEOUT)
    await session.send(EICAR)
    os.kill(fresh_clamd.process.pid, signal.SIGSTOP)
    verdict = asyncio.ensure_future(session.verdict())
    await asyncio.sleep(0.2)
    assert not verdict.done()
    fresh_clamd.process.kill()
    fresh_clamd.process.wait()
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdUnavailable, match="lost connection"):
            await verdict


async def test_send_times_out_when_clamd_stalls(fresh_clamd: ClamdServer) -> None:
    session = await ScanSession.open(fresh_clamd.tcp_address, 0.5)
    os.kill(fresh_clamd.process.pid, signal.SIGSTOP)
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdUnavailable, match=r"did not respond within 0\.5s"):
            for _ in range(1024):
                await session.send(_clean(MIB))


async def test_verdict_times_out_when_clamd_stalls(fresh_clamd: ClamdServer) -> None:
    session = await ScanSession.open(fresh_clamd.tcp_address, 0.5)
    await session.send(EICAR)
    os.kill(fresh_clamd.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(ClamdUnavailable, match=r"did not respond within 0\.5s"):
            await session.verdict()
    assert time.monotonic() - started >= 0.45


async def test_connection_refused(tmp_path: Path) -> None:
    for address in (
        f"tcp://127.0.0.1:{_unused_port()}",
        f"unix://{tmp_path}/missing.sock",
    ):
        with pytest.raises(ClamdUnavailable, match="cannot connect"):
            await ScanSession.open(address, TIMEOUT)
        assert await ping(address, TIMEOUT) is False


@pytest.mark.parametrize(
    "reply",
    [b"x" * 10_000, b"stream:  FOUND\0", b"stream: \x1b[2J FOUND\0", b"stream: " + b"A" * 300 + b" FOUND\0"],
    ids=["garbage", "empty-signature", "control-characters", "overlong-signature"],
)
async def test_a_reply_that_is_not_a_verdict_is_unavailable_and_quoted_briefly(reply: bytes) -> None:
    async with answering_clamd(reply) as address:
        with pytest.raises(ClamdUnavailable, match="unexpected reply") as caught:
            await _scan(address, b"data")
    assert len(str(caught.value)) < 200


async def test_close_is_idempotent_and_abandons_the_scan(
    clamd_server: ClamdServer,
) -> None:
    session = await ScanSession.open(clamd_server.tcp_address, TIMEOUT)
    await session.send(EICAR)
    await session.close()
    await session.close()
    with pytest.raises(ClamdUnavailable, match="closed"):
        await session.verdict()
    assert await _scan(clamd_server.tcp_address, b"still serving") is None


async def test_ping(clamd_server: ClamdServer) -> None:
    assert await ping(clamd_server.tcp_address, TIMEOUT) is True
    assert await ping(clamd_server.unix_address, TIMEOUT) is True


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("tcp://127.0.0.1:3310", ("tcp", "127.0.0.1", 3310)),
        ("tcp://clamav:3310/", ("tcp", "clamav", 3310)),
        ("tcp://[::1]:3310", ("tcp", "::1", 3310)),
        ("unix:///run/clamav/clamd.ctl", ("unix", "/run/clamav/clamd.ctl")),
    ],
)
def test_parse_address(address: str, expected: tuple[object, ...]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "127.0.0.1:3310",
        "http://127.0.0.1:3310",
        "tcp://127.0.0.1",
        "tcp://:3310",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:port",
        "tcp://user@127.0.0.1:3310",
        "tcp://127.0.0.1:3310/path",
        "unix://",
        "unix:///",
        "unix:///run/clamav/",
        "unix://relative/clamd.sock",
        "/run/clamav/clamd.ctl",
    ],
)
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match="invalid clamd address"):
        parse_address(address)
