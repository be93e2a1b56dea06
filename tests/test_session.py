"""An upload's lifecycle hooks run once each, whichever way the request came: PUT, form, 100-continue, 307."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict

from aiouploader import Upload, UploadError
from aiouploader.body import Read
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.routes import ROUTES
from aiouploader.service import SERVICE
from aiouploader.session import Phase, UploadSession
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .plugins_for_tests import Counting

STORED = {"started": 1, "completed": 1, "failed": 0}
REFUSED = {"started": 1, "completed": 0, "failed": 1}
REDIRECTED = {"started": 1, "completed": 0, "failed": 0}
"""S3 gets the bytes of a 307 without the server, which never learns how that went."""


async def counted(make_proxy: MakeProxy, bucket: str, **route: object) -> tuple[Proxy, Counting]:
    pm = make_plugin_manager()
    counting = Counting()
    pm.register(counting, name="counting")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["counting"], **route}], pm=pm)
    return proxy, counting


async def put(proxy: Proxy, key: str, expect100: bool = False) -> int:
    url = yarl.URL(proxy(f"/u/{key}"), encoded=True)
    async with proxy.session.put(url, data=b"hello", expect100=expect100, allow_redirects=False) as response:
        return response.status


@pytest.mark.parametrize("expect100", [False, True], ids=["put", "100-continue"])
async def test_a_put_starts_and_completes_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, expect100: bool
) -> None:
    proxy, counting = await counted(make_proxy, bucket)
    assert await put(proxy, "k", expect100) == 201
    assert counting.of("k") == STORED
    assert s3_server.get(bucket, "k") == b"hello"


@pytest.mark.parametrize("expect100", [False, True], ids=["put", "100-continue"])
async def test_a_put_refused_in_upload_started_fails_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, expect100: bool
) -> None:
    proxy, counting = await counted(make_proxy, bucket)
    assert await put(proxy, "refused", expect100) == 403
    assert counting.of("refused") == REFUSED
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("expect100", [False, True], ids=["put", "100-continue"])
async def test_a_put_that_s3_refuses_fails_once(make_proxy: MakeProxy, expect100: bool) -> None:
    proxy, counting = await counted(make_proxy, "bucket-that-does-not-exist")
    assert await put(proxy, "k", expect100) == 502
    assert counting.of("k") == REFUSED


async def post_form(proxy: Proxy, *filenames: str) -> int:
    form = aiohttp.FormData()
    for i, filename in enumerate(filenames):
        form.add_field(f"f{i}", filename.encode(), filename=filename)
    async with proxy.session.post(proxy("/u/"), data=form) as response:
        return response.status


async def test_each_file_of_a_form_starts_and_completes_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy, counting = await counted(make_proxy, bucket, form_keys="filename")
    assert await post_form(proxy, "one.txt", "two.txt") == 201
    assert counting.of("one.txt") == counting.of("two.txt") == STORED


async def test_a_form_with_a_file_refused_in_upload_started_fails_each_file_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy, counting = await counted(make_proxy, bucket, form_keys="filename")
    assert await post_form(proxy, "one.txt", "refused.txt") == 403
    assert counting.of("one.txt") == counting.of("refused.txt") == REFUSED
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("expect100", [False, True], ids=["put", "100-continue"])
async def test_a_redirect_to_s3_starts_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, expect100: bool
) -> None:
    proxy, counting = await counted(make_proxy, bucket, direct_upload=True)
    assert await put(proxy, "k", expect100) == 307
    assert counting.of("k") == REDIRECTED


@pytest.mark.parametrize("expect100", [False, True], ids=["put", "100-continue"])
async def test_a_redirect_refused_in_upload_started_fails_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, expect100: bool
) -> None:
    proxy, counting = await counted(make_proxy, bucket, direct_upload=True)
    assert await put(proxy, "refused", expect100) == 403
    assert counting.of("refused") == REFUSED


def _reader(*pieces: bytes) -> Read:
    left = list(pieces)

    async def read() -> bytes:
        return left.pop(0) if left else b""

    return read


async def _session(make_proxy: MakeProxy, bucket: str, key: str) -> tuple[UploadSession, Counting]:
    """A session of the route ``/u`` of a running server, with its S3 facade and chain, as a handler makes one."""
    proxy, counting = await counted(make_proxy, bucket, plugins=["counting", "checksum"])
    service, route = proxy.app[SERVICE], proxy.app[ROUTES][0]
    upload = Upload("test", route.path, bucket, "", key, "text/plain", None, CIMultiDict())
    return UploadSession(service.s3, route.chain, upload, service.limits), counting


async def test_a_body_may_come_in_several_segments(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    session, counting = await _session(make_proxy, bucket, "k")
    await session.receive(_reader(b"hello, "))
    await session.receive(_reader(b"wor", b"ld"))
    assert session.phase is Phase.RECEIVING and counting.of("k")["started"] == 1
    await session.seal()
    result = await session.commit()
    assert result["size"] == 12 and result["checksums"]["sha256"] == hashlib.sha256(b"hello, world").hexdigest()
    assert s3_server.get(bucket, "k") == b"hello, world"
    assert counting.of("k") == STORED and session.ended
    with pytest.raises(RuntimeError):
        await session.receive(_reader(b"more"))


async def test_a_discarded_session_leaves_nothing_and_fails_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    session, counting = await _session(make_proxy, bucket, "k")
    await session.receive(_reader(b"x" * 100))
    await session.discard(UploadError("given up"))
    await session.discard(UploadError("given up again"))
    assert counting.of("k") == REFUSED and session.phase is Phase.FAILED
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []
