"""Property tests: whatever the body, its chunking and the route's chain, GET returns what PUT sent.

Hypothesis drives bounded examples against one aiouploader per S3 server (moto
and rclone), running on its own event loop in a thread so that it outlives the
examples. The server has a route for every ordered subset of the built-in chain
(``size_limit`` with a large limit, ``checksum``, ``virus_scan`` with the stub
backend, ``encryption`` with an identity file so that GET decrypts).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aiouploader import age
from aiouploader.app import make_app
from aiouploader.testing import S3Server, proxy_config

MiB = 1024**2
PART = 5 * MiB
PLUGINS = ("size_limit", "checksum", "virus_scan", "encryption")
CHAINS = [chain for n in range(len(PLUGINS) + 1) for chain in itertools.permutations(PLUGINS, n)]
ROUTE = {chain: f"/r{i}" for i, chain in enumerate(CHAINS)}
T = TypeVar("T")


class Harness:
    """aiouploader and a client session on an event loop of their own, in a thread."""

    def __init__(self, s3_server: S3Server, identity_file: Path, recipient: str) -> None:
        self.s3_server = s3_server
        self.bucket = s3_server.create_bucket()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aiouploader-properties", daemon=True)
        self.thread.start()
        config = proxy_config(
            s3_server.endpoint_url,
            [
                {"path": path, "bucket": self.bucket, "prefix": f"{path[1:]}/", "plugins": list(chain)}
                for chain, path in ROUTE.items()
            ],
            s3={"part_size": "5MiB", "parts_in_flight": 2},
            upload={"block_size": "256KiB"},
            plugins={
                "size_limit": {"max_size": "1GiB"},
                "virus_scan": {"backend": "stub"},
                "encryption": {"recipients": [recipient], "identity_file": str(identity_file)},
            },
        )
        self.server = TestServer(make_app(config), host="127.0.0.1")
        self.run(self._start())

    async def _start(self) -> None:
        await self.server.start_server()
        self.session = aiohttp.ClientSession(auto_decompress=False)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def _stop(self) -> None:
        await self.session.close()
        await self.server.close()

    def close(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module", params=["moto", "rclone"])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    s3_server: S3Server = request.getfixturevalue(f"{request.param}_server")
    secret, recipient = age.generate_identity()
    identity_file = tmp_path_factory.mktemp("age") / "identity.txt"
    identity_file.write_text(f"{secret}\n")
    harness = Harness(s3_server, identity_file, recipient)
    yield harness
    harness.close()


def around(n: int) -> st.SearchStrategy[int]:
    return st.integers(max(0, n - 3), n + 3)


SIZES = st.one_of(
    st.sampled_from([0, 1, PART - 1, PART, PART + 1]),
    around(PART),
    around(2 * PART),
    st.integers(0, 3 * PART + 12345),
)
CHAIN = st.permutations(PLUGINS).flatmap(lambda order: st.integers(0, len(order)).map(lambda n: tuple(order[:n])))


MAX_PIECES = 1024
"""Pieces of a chunked body, the rest sent as one: 15 MiB in 1-byte chunks would take minutes and test nothing more."""


async def pieces(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    """``data`` in pieces of the given sizes, round and round, then what is left after :data:`MAX_PIECES` at once."""
    start = 0
    for size in itertools.islice(itertools.cycle(sizes), MAX_PIECES - 1):
        if start >= len(data):
            return
        yield data[start : start + size]
        start += size
    if start < len(data):
        yield data[start:]


async def put_then_get(harness: Harness, key: str, body: bytes, body_arg: Any) -> tuple[int, Any, bytes]:
    async with harness.session.put(harness.url(key), data=body_arg) as response:
        status, result = response.status, await response.json()
    if status != 201:
        return status, result, b""
    async with harness.session.get(harness.url(key)) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(body)
        return status, result, await response.read()


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=SIZES,
    chain=CHAIN,
    chunked=st.booleans(),
    chunk_sizes=st.lists(st.integers(1, 2 * MiB), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_get_returns_what_put_sent(
    harness: Harness, size: int, chain: tuple[str, ...], chunked: bool, chunk_sizes: list[int], seed: int
) -> None:
    body = random.Random(seed).randbytes(size)
    key = f"{ROUTE[chain]}/obj-{seed}"
    body_arg = pieces(body, chunk_sizes) if chunked else body
    status, result, got = harness.run(put_then_get(harness, key, body, body_arg))
    assert status == 201, result
    assert result["size"] == size
    # The checksum plugin hashes the bytes as they reach it in the chain: after encryption, the ciphertext.
    if "checksum" in chain and ("encryption" not in chain or chain.index("checksum") < chain.index("encryption")):
        assert result["checksums"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
    if "encryption" not in chain:
        assert result["stored_size"] == size
    assert harness.s3_server.multipart_uploads(harness.bucket) == []
    harness.s3_server.client.delete_object(Bucket=harness.bucket, Key=result["key"])
