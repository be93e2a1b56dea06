"""Resumable uploads (tus 1.0.0) through HTTP, with tuspy and crafted requests, against moto and rclone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from yarl import URL

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.auth import hash_token, signed_url
from aiouploader.eicar import EICAR
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server
from aiouploader.tus.uploads import RESUMABLE_UPLOADS

from .plugins_for_tests import Lifecycle

if TYPE_CHECKING:
    from tests.fixtures.clamd import ClamdServer

MiB = 1024**2
SECRET = "signing-secret-" + "x" * 30
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def resumable_proxy(make_proxy: MakeProxy, bucket: str, **route: Any) -> Proxy:
    plugins = route.pop("plugin_settings", {})
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["checksum"], "resumable": True, **route}
    return await make_proxy(
        routes=[route], plugins=plugins, s3={"part_size": "5MiB", "parts_in_flight": 2}, upload={"block_size": "256KiB"}
    )


def uploader(proxy: Proxy, data: bytes, **options: Any) -> Any:
    tus = tus_client.TusClient(proxy("/uploads/"))
    return tus.uploader(file_stream=io.BytesIO(data), metadata={"filename": "clip.bin"}, **options)


async def create(proxy: Proxy, **headers: str) -> str:
    async with proxy.session.post(proxy("/uploads/"), headers={**TUS, **headers}) as response:
        assert response.status == 201, await response.text()
        return response.headers["Location"]


async def head(proxy: Proxy, location: str) -> tuple[int, Any]:
    async with proxy.session.head(proxy(location), headers=TUS) as response:
        return response.status, response.headers


async def patch(proxy: Proxy, location: str, offset: int, body: bytes, **headers: str) -> tuple[int, Any, Any]:
    sent = {**PATCH, "Upload-Offset": str(offset), **headers}
    async with proxy.session.patch(proxy(location), data=body, headers=sent) as response:
        payload = await response.json() if response.status >= 400 else None
        return response.status, response.headers, payload


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def test_tuspy_uploads_in_several_patches_and_resumes_after_stopping(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, form_keys="filename")
    data = os.urandom(50 * MiB + 12345)
    first = uploader(proxy, data, chunk_size=8 * MiB, upload_checksum=True)
    await asyncio.to_thread(first.upload, 24 * MiB)
    assert s3_server.keys(bucket) == []
    status, headers = await head(proxy, urlsplit(first.url).path)
    assert (status, headers["Upload-Offset"], headers["Upload-Length"]) == (200, str(24 * MiB), str(len(data)))
    assert headers["Cache-Control"] == "no-store"

    resumed = await asyncio.to_thread(uploader, proxy, data, url=first.url, chunk_size=8 * MiB, upload_checksum=True)
    assert resumed.offset == 24 * MiB
    await asyncio.to_thread(resumed.upload)

    assert s3_server.get(bucket, "clip.bin") == data
    result = json.loads(base64.b64decode(resumed.request.response_headers["upload-result"]))
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["key"] == "clip.bin" and result["size"] == len(data)
    async with proxy.session.get(first.url) as response:
        assert response.status == 200
        assert await response.json() == result
    async with proxy.session.get(proxy("/uploads/clip.bin")) as response:
        assert await response.read() == data
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_patch_cut_mid_body_keeps_what_came_and_the_upload_resumes(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(9 * MiB + 7)
    location = await create(proxy, **{"Upload-Length": str(len(data))})
    sent = 2 * MiB + 5
    host, port = urlsplit(proxy.url).netloc.split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data[:sent]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    upload = proxy.app[RESUMABLE_UPLOADS].get(location.rsplit("/", 1)[1], "/uploads")
    await upload.received.wait()  # the server fed what it read before the cut to the chain
    status, headers = await head(proxy, location)
    offset = int(headers["Upload-Offset"])
    assert status == 200 and 0 < offset <= sent and offset == upload.offset

    resumed = await asyncio.to_thread(uploader, proxy, data, url=proxy(location), chunk_size=4 * MiB)
    assert resumed.offset == offset
    await asyncio.to_thread(resumed.upload)
    result = json.loads(base64.b64decode(resumed.request.response_headers["upload-result"]))
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data


async def test_deferred_length_is_given_by_a_later_patch(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(6 * MiB + 1)
    location = await create(proxy, **{"Upload-Defer-Length": "1", "Upload-Metadata": "filetype dGV4dC9wbGFpbg=="})
    status, headers = await head(proxy, location)
    assert (status, headers["Upload-Defer-Length"], headers["Upload-Offset"]) == (200, "1", "0")
    status, headers, _ = await patch(proxy, location, 0, data[: 3 * MiB])
    assert (status, headers["Upload-Offset"]) == (204, str(3 * MiB))
    assert "Upload-Result" not in headers
    status, headers, _ = await patch(proxy, location, 3 * MiB, data[3 * MiB :], **{"Upload-Length": str(len(data))})
    assert status == 204
    result = json.loads(base64.b64decode(headers["Upload-Result"]))
    assert result["content_type"] == "text/plain"
    assert s3_server.get(bucket, result["key"]) == data


async def test_creation_with_upload_and_termination(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    headers = {**PATCH, "Upload-Length": str(8 * MiB)}
    async with proxy.session.post(proxy("/uploads/"), data=os.urandom(6 * MiB), headers=headers) as response:
        assert response.status == 201
        assert response.headers["Upload-Offset"] == str(6 * MiB)
        location = response.headers["Location"]
    assert len(s3_server.multipart_uploads(bucket)) == 1
    assert (await head(proxy, location))[0] == 200
    async with proxy.session.delete(proxy(location), headers=TUS) as response:
        assert response.status == 204
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)
    async with proxy.session.get(proxy("/metrics")) as response:
        metrics = await response.text()
    for event in ("created", "resumed", "terminated"):
        assert f'aiouploader_resumable_uploads_total{{event="{event}",route="/uploads"}} 1.0' in metrics


async def test_a_patch_whose_checksum_does_not_match_ends_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(7 * MiB)
    location = await create(proxy, **{"Upload-Length": str(len(data))})
    good = "sha256 " + base64.b64encode(hashlib.sha256(data[: 6 * MiB]).digest()).decode()
    assert (await patch(proxy, location, 0, data[: 6 * MiB], **{"Upload-Checksum": good}))[0] == 204
    wrong = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    status, _, error = await patch(proxy, location, 6 * MiB, data[6 * MiB :], **{"Upload-Checksum": wrong})
    assert (status, error["error"]["code"]) == (460, "checksum_mismatch")
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_a_plugins_veto_ends_the_upload(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await resumable_proxy(
        make_proxy,
        bucket,
        plugins=["size_limit", "checksum"],
        plugin_settings={"size_limit": {"max_size": "5MiB"}},
    )
    async with proxy.session.options(proxy("/uploads/")) as response:
        assert response.headers["Tus-Max-Size"] == str(5 * MiB)
    data = os.urandom(6 * MiB)
    sending = uploader(proxy, data, chunk_size=2 * MiB, upload_checksum=True)
    with pytest.raises(TusCommunicationError) as refused:
        await asyncio.to_thread(sending.upload)  # its Upload-Length is over the limit: refused at creation
    assert refused.value.status_code == 413 and sending.url is None

    location = await create(proxy, **{"Upload-Defer-Length": "1"})
    assert (await patch(proxy, location, 0, data[: 3 * MiB]))[0] == 204
    status, _, error = await patch(proxy, location, 3 * MiB, data[3 * MiB :])
    assert (status, error["error"]["code"]) == (413, "payload_too_large")
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)

    location = await create(proxy, **{"Upload-Defer-Length": "1"})
    length = {"Upload-Length": str(len(data))}  # stated late, over the limit: refused at the PATCH's first bytes
    status, _, error = await patch(proxy, location, 0, data[:1000], **length)
    assert (status, error["error"]["code"]) == (413, "payload_too_large")
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_protocol_errors(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    async with proxy.session.options(proxy("/uploads/")) as response:
        assert response.status == 204
        assert response.headers["Tus-Version"] == "1.0.0"
        assert "checksum" in response.headers["Tus-Extension"].split(",")
        assert "sha256" in response.headers["Tus-Checksum-Algorithm"].split(",")
        assert response.headers["Tus-Max-Size"] == str(5 * 1024**4)  # S3's largest object: no plugin limits it
    location = await create(proxy, **{"Upload-Length": "10"})
    async with proxy.session.patch(proxy(location), data=b"x", headers={"Upload-Offset": "0"}) as response:
        assert response.status == 412
        assert response.headers["Tus-Version"] == "1.0.0"
    status, _, error = await patch(proxy, location, 0, b"x", **{"Content-Type": "application/octet-stream"})
    assert (status, error["error"]["code"]) == (415, "unsupported_media_type")
    status, _, error = await patch(proxy, location, 3, b"x")
    assert (status, error["error"]["code"]) == (409, "offset_mismatch")
    assert (await patch(proxy, location, 0, b"12345"))[0] == 204
    async with proxy.session.get(proxy(location)) as response:
        assert response.status == 409
    status, _, error = await patch(proxy, location, 5, b"123456")
    assert (status, error["error"]["code"]) == (413, "payload_too_large")
    assert (await head(proxy, location))[0] == 404
    assert (await head(proxy, "/uploads/.tus/not-an-upload"))[0] == 404
    async with proxy.session.post(proxy("/uploads/"), headers={**TUS}) as response:
        assert response.status == 400
    for refused in ({"Upload-Concat": "partial"}, {"Upload-Metadata": "filename YQ==,filename Yg=="}):
        async with proxy.session.post(proxy("/uploads/"), headers={**TUS, "Upload-Length": "3", **refused}) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (400, "bad_request")
    assert_nothing_left(s3_server, bucket)
    async with proxy.session.post(proxy("/uploads/"), data=b"plain") as response:
        assert response.status == 201  # a POST without Tus-Resumable stores its body as before
        assert "Tus-Resumable" not in response.headers


async def test_an_expired_upload_is_aborted_and_removed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, resumable_expires=3600)
    location = await create(proxy, **{"Upload-Length": str(8 * MiB)})
    status, headers, _ = await patch(proxy, location, 0, os.urandom(6 * MiB))
    assert status == 204
    uploads = proxy.app[RESUMABLE_UPLOADS]
    upload = uploads.get(location.rsplit("/", 1)[1], "/uploads")
    assert upload.timer is not None and upload.timer.when() > asyncio.get_running_loop().time() + 3500
    assert parsedate_to_datetime(headers["Upload-Expires"]).timestamp() == pytest.approx(upload.expires, abs=1)
    assert len(s3_server.multipart_uploads(bucket)) == 1
    await uploads.expire(upload)  # what its timer does once the hour has passed
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def auth_proxy(make_proxy: MakeProxy, bucket: str, schemes: list[str]) -> Proxy:
    return await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "auth": schemes, "resumable": True, "plugins": ["checksum"]}],
        auth={
            "tokens": [
                {"name": "team", "sha256": hash_token("team-token"), "methods": ["POST"], "prefix": "team/"},
                {"name": "other", "sha256": hash_token("other-token"), "methods": ["POST"], "prefix": "other/"},
            ],
            "signing_keys": {"k1": SECRET},
        },
    )


async def test_every_request_of_an_upload_needs_credentials_covering_its_key(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    async with proxy.session.post(proxy("/uploads/"), headers={**TUS, "Upload-Length": "5"}) as response:
        assert response.status == 401
    team = {"Authorization": "Bearer team-token"}
    location = await create(proxy, **{"Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ=", **team})
    other = {"Authorization": "Bearer other-token"}
    assert (await patch(proxy, location, 0, b"hello", **other))[0] == 403
    assert (await patch(proxy, location, 0, b"hello"))[0] == 401
    async with proxy.session.head(proxy(location), headers={**TUS, **other}) as response:
        assert response.status == 403
    async with proxy.session.delete(proxy(location), headers={**TUS, **other}) as response:
        assert response.status == 403
    status, headers, _ = await patch(proxy, location, 0, b"hello", **team)
    assert status == 204
    assert json.loads(base64.b64decode(headers["Upload-Result"]))["key"].startswith("team/")
    assert len(s3_server.keys(bucket)) == 1 and s3_server.keys(bucket)[0].startswith("team/")


async def test_a_signed_urls_size_limit_holds_over_the_whole_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    url = signed_url(
        proxy.url, SECRET, "k1", method="POST", route="/uploads", prefix="in/", expires_in=60, max_size=1000
    )
    async with proxy.session.post(URL(url, encoded=True), headers={**TUS, "Upload-Length": "1001"}) as response:
        assert response.status == 413
    async with proxy.session.post(URL(url, encoded=True), headers={**TUS, "Upload-Defer-Length": "1"}) as response:
        assert response.status == 201
        location = response.headers["Location"]
    assert urlsplit(location).query == urlsplit(url).query
    upload_url = URL(proxy(location), encoded=True)
    sent = {**PATCH, "Upload-Offset": "0"}
    async with proxy.session.patch(upload_url, data=os.urandom(600), headers=sent) as response:
        assert response.status == 204
    sent = {**PATCH, "Upload-Offset": "600"}
    async with proxy.session.patch(upload_url, data=os.urandom(600), headers=sent) as response:
        assert response.status == 413
    async with proxy.session.head(upload_url, headers=TUS) as response:
        assert response.status == 404
    assert_nothing_left(s3_server, bucket)


async def test_eicar_split_across_two_patches_is_found(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_server: ClamdServer
) -> None:
    proxy = await resumable_proxy(
        make_proxy,
        bucket,
        plugins=["virus_scan"],
        plugin_settings={"virus_scan": {"backend": "clamd", "clamd_address": clamd_server.tcp_address}},
    )
    data = bytearray(os.urandom(6 * MiB))
    at = 3 * MiB - 30
    data[at : at + len(EICAR)] = EICAR
    location = await create(proxy, **{"Upload-Length": str(len(data))})
    assert (await patch(proxy, location, 0, bytes(data[: 3 * MiB])))[0] == 204
    status, _, error = await patch(proxy, location, 3 * MiB, bytes(data[3 * MiB :]))
    assert (status, error["error"]["code"]) == (422, "infected")
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


class _GateStage(UploadStage):
    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def feed(self, block: bytes) -> bytes:
        self._gate.entered.set()
        await self._gate.opened.wait()
        return block


class Gate:
    """Holds every block in ``feed`` until ``opened`` is set; ``entered`` tells that a block is held."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _GateStage(self)


async def test_a_second_request_while_one_sends_bytes_is_423(make_proxy: MakeProxy, bucket: str) -> None:
    gate, lifecycle = Gate(), Lifecycle()
    pm = make_plugin_manager()
    pm.register(gate, name="gate")
    pm.register(lifecycle, name="lifecycle")
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["gate", "lifecycle"], "resumable": True}
    proxy = await make_proxy(routes=[route], pm=pm)
    location = await create(proxy, **{"Upload-Length": "10"})
    first = asyncio.create_task(patch(proxy, location, 0, b"12345"))
    await gate.entered.wait()
    status, _, error = await patch(proxy, location, 0, b"12345")
    assert (status, error["error"]["code"]) == (423, "upload_busy")
    async with proxy.session.delete(proxy(location), headers=TUS) as response:
        assert response.status == 423
    gate.opened.set()
    assert (await first)[0] == 204
    status, headers, _ = await patch(proxy, location, 5, b"67890")
    assert status == 204 and json.loads(base64.b64decode(headers["Upload-Result"]))["size"] == 10
    assert [event for event, _ in lifecycle.events] == ["started", "completed"]  # each hook once in all


async def test_a_zero_length_upload_is_complete_at_creation(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, form_keys="filename")
    location = await create(proxy, **{"Upload-Length": "0", "Upload-Metadata": "filename ZW1wdHk="})
    async with proxy.session.get(proxy(location)) as response:
        assert response.status == 200
        assert (await response.json())["size"] == 0
    assert s3_server.get(bucket, "empty") == b""


async def test_bytes_sent_to_a_complete_upload_are_refused_and_its_object_stays(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, form_keys="filename")
    location = await create(proxy, **{"Upload-Length": "5", "Upload-Metadata": "filename ZG9uZQ=="})
    assert (await patch(proxy, location, 0, b"12345"))[0] == 204
    status, _, error = await patch(proxy, location, 5, b"6")
    assert (status, error["error"]["code"]) == (413, "payload_too_large")
    status, headers, _ = await patch(proxy, location, 5, b"")  # a retry that sends nothing hears the upload's end
    assert (status, headers["Upload-Offset"]) == (204, "5") and "Upload-Result" in headers
    assert s3_server.get(bucket, "done") == b"12345"


async def test_a_post_with_x_http_method_override_is_the_method_it_names(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, form_keys="filename")
    location = await create(proxy, **{"Upload-Length": "10", "Upload-Metadata": "filename b3ZlcnJpZGRlbg=="})
    sent = {**PATCH, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0"}
    async with proxy.session.post(proxy(location), data=b"12345", headers=sent) as response:
        assert (response.status, response.headers["Upload-Offset"]) == (204, "5")
    async with proxy.session.post(proxy(location), headers={**TUS, "X-HTTP-Method-Override": "HEAD"}) as response:
        assert (response.status, response.headers["Upload-Offset"]) == (200, "5")
    for other in ("PUT", "GET", "X" * 3000):  # a POST still: only what tus's clients send is overridden
        async with proxy.session.post(proxy(location), headers={**TUS, "X-HTTP-Method-Override": other}) as response:
            assert response.status == 405
            assert (await response.json())["error"]["message"] == "POST is not served on a resumable upload."
    async with proxy.session.post(proxy(location), headers={**TUS, "X-HTTP-Method-Override": "DELETE"}) as response:
        assert response.status == 204
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)

    location = await create(proxy, **{"Upload-Length": "3", "Upload-Metadata": "filename b3ZlcnJpZGRlbg=="})
    async with proxy.session.post(proxy(location), data=b"abc", headers={**sent, "Upload-Offset": "0"}) as response:
        assert response.status == 204
    assert s3_server.get(bucket, "overridden") == b"abc"


async def test_shutdown_aborts_the_uploads_in_progress(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    location = await create(proxy, **{"Upload-Length": str(8 * MiB)})
    assert (await patch(proxy, location, 0, os.urandom(6 * MiB)))[0] == 204
    assert len(s3_server.multipart_uploads(bucket)) == 1
    await proxy.app.shutdown()
    assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_another_instance_tells_the_client_to_start_again(make_proxy: MakeProxy, bucket: str) -> None:
    here, elsewhere = await resumable_proxy(make_proxy, bucket), await resumable_proxy(make_proxy, bucket)
    location = await create(here, **{"Upload-Length": "10"})
    assert (await patch(here, location, 0, b"12345"))[0] == 204
    status, _, error = await patch(elsewhere, location, 5, b"67890")
    assert status == 404
    assert "start the upload again" in error["error"]["message"]


async def test_uploads_between_requests_count_against_max_buffered(make_proxy: MakeProxy, bucket: str) -> None:
    route = {"path": "/uploads", "bucket": bucket, "resumable": True}
    proxy = await make_proxy(
        routes=[route], s3={"part_size": "5MiB", "parts_in_flight": 2}, server={"max_buffered": "16MiB"}
    )
    length = {"Upload-Length": str(8 * MiB)}  # each keeps up to a part (5MiB) between its requests
    locations = [await create(proxy, **length) for _ in range(3)]
    async with proxy.session.post(proxy("/uploads/"), headers={**TUS, **length}) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "overloaded"
    async with proxy.session.delete(proxy(locations[0]), headers=TUS) as response:
        assert response.status == 204
    await create(proxy, **length)
