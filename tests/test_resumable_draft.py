"""Resumable uploads in the IETF draft (interop versions 5 and 6), with tus-js-client and crafted requests."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .test_resumable_replicas import replica
from .test_resumable_tus_js import (
    RETRIES,
    assert_nothing_left,
    data_file,
    patches,
    resumable_proxy,
    tus_js,
    upload_result,
)

MiB = 1024**2
DRAFTS = ["ietf-draft-03", "ietf-draft-05"]
INTEROP = {"ietf-draft-03": "5", "ietf-draft-05": "6"}


@pytest.fixture
def s3_server(moto_server: S3Server) -> S3Server:
    return moto_server


@pytest.mark.parametrize("protocol", DRAFTS)
async def test_tus_js_client_uploads_in_several_appends_and_resumes_after_an_abort(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, protocol: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(24 * MiB + 123)
    plan = {
        "file": data_file(tmp_path, data),
        "source": "buffer",
        "chunkSize": 8 * MiB,
        "metadata": {"filename": "draft.bin", "filetype": "application/x-test"},
        "protocol": protocol,
    }
    first = await tus_js(endpoint=proxy("/uploads/"), abortAt=12 * MiB, **plan)
    assert first["outcome"] == "aborted" and first["url"], first
    creation = first["requests"][0]
    assert (creation["method"], creation["complete"], creation["status"]) == ("POST", "?0", 201)
    appended = patches(first)[0]
    assert (appended["complete"], appended["responseComplete"]) == ("?0", "?0")
    assert appended["responseOffset"] == str(8 * MiB)
    assert s3_server.keys(bucket) == []

    resumed = await tus_js(uploadUrl=first["url"], retryDelays=RETRIES, **plan)
    assert resumed["outcome"] == "success", resumed
    heads = [r for r in resumed["requests"] if r["method"] == "HEAD" and r["status"] == 204]
    assert heads and heads[-1]["responseComplete"] == "?0"
    sent = [p for p in patches(resumed) if p["status"] in (200, 204)]
    assert 8 * MiB <= int(sent[0]["offset"]) < len(data)  # from where the server stood, not from 0
    assert sent[0]["offset"] == heads[-1]["responseOffset"]
    assert [p["complete"] for p in sent][-1] == "?1"
    assert (sent[-1]["status"], sent[-1]["responseComplete"]) == (200, "?1")
    result = upload_result(resumed)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (result["key"], result["size"], result["content_type"]) == ("draft.bin", len(data), "application/x-test")
    assert s3_server.get(bucket, "draft.bin") == data
    assert s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("protocol", DRAFTS)
async def test_tus_js_client_sends_a_stream_whose_length_comes_last(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, protocol: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(9 * MiB + 7)
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, data),
        source="stream",
        chunkSize=4 * MiB,
        uploadLengthDeferred=True,
        protocol=protocol,
    )
    assert seen["outcome"] == "success", seen
    result = upload_result(seen)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data  # the route's generated key


@pytest.mark.parametrize("protocol", DRAFTS)
@pytest.mark.parametrize(
    ("plugins", "settings", "status", "code"),
    [
        (["virus_scan"], {}, 422, "infected"),
        (["size_limit"], {"size_limit": {"max_size": "6MiB"}}, 413, "payload_too_large"),
    ],
    ids=["eicar", "size_limit"],
)
async def test_a_plugins_veto_ends_the_upload_and_nothing_is_stored(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
    plugins: list[str],
    settings: dict[str, Any],
    status: int,
    code: str,
    protocol: str,
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, plugins=plugins, plugin_settings=settings)
    data = bytearray(os.urandom(10 * MiB))
    if code == "infected":
        at = 4 * MiB - 30  # across the first append's end
        data[at : at + len(EICAR)] = EICAR
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, bytes(data)),
        source="stream",
        chunkSize=4 * MiB,
        uploadLengthDeferred=True,
        retryDelays=[0, 0],
        protocol=protocol,
    )
    assert (seen["outcome"], seen["status"]) == ("error", status), seen
    assert code in seen["error"]
    assert [p["status"] for p in patches(seen)] == [204, status]
    async with proxy.session.head(seen["url"], headers={"Upload-Draft-Interop-Version": INTEROP[protocol]}) as response:
        assert response.status == 404
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("protocol", DRAFTS)
async def test_tus_js_client_terminates_with_delete(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, protocol: str
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, os.urandom(24 * MiB)),
        source="buffer",
        chunkSize=8 * MiB,
        abortAt=12 * MiB,
        terminate=True,
        retryDelays=RETRIES,
        protocol=protocol,
    )
    assert seen["outcome"] == "terminated", seen
    assert (seen["requests"][-1]["method"], seen["requests"][-1]["status"]) == ("DELETE", 204)
    assert_nothing_left(s3_server, bucket)


V6 = {"Upload-Draft-Interop-Version": "6"}
APPEND = {**V6, "Content-Type": "application/partial-upload"}


async def draft_proxy(make_proxy: MakeProxy, bucket: str) -> Proxy:
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["checksum"], "resumable": True}
    return await make_proxy(routes=[route], s3={"part_size": "5MiB", "parts_in_flight": 2})


async def test_one_request_with_upload_complete_is_a_whole_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await draft_proxy(make_proxy, bucket)
    data = os.urandom(1000)
    headers = {"Upload-Draft-Interop-Version": "5", "Upload-Complete": "?1"}
    async with proxy.session.post(proxy("/uploads/"), data=data, headers=headers) as response:
        assert response.status == 201
        assert (response.headers["Upload-Offset"], response.headers["Upload-Complete"]) == ("1000", "?1")
        assert response.headers["Upload-Length"] == "1000"
        assert response.headers["Upload-Draft-Interop-Version"] == "5"
        result = await response.json()
        location = response.headers["Location"]
    assert result["size"] == 1000 and result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data
    async with proxy.session.head(proxy(location), headers=V6) as response:
        assert response.status == 204
        assert (response.headers["Upload-Offset"], response.headers["Upload-Complete"]) == ("1000", "?1")
        assert response.headers["Cache-Control"] == "no-store"


async def test_a_length_unknown_until_the_last_append_ends_where_its_body_ends(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await draft_proxy(make_proxy, bucket)
    data = os.urandom(6 * MiB + 5)
    async with proxy.session.post(proxy("/uploads/"), headers={**V6, "Upload-Complete": "?0"}) as response:
        assert response.status == 201
        assert (response.headers["Upload-Offset"], response.headers["Upload-Complete"]) == ("0", "?0")
        assert "Upload-Length" not in response.headers
        location = response.headers["Location"]
    sent = {**APPEND, "Upload-Offset": "0", "Upload-Complete": "?0"}
    async with proxy.session.patch(proxy(location), data=data[: 3 * MiB], headers=sent) as response:
        assert response.status == 204 and response.headers["Upload-Offset"] == str(3 * MiB)

    async def rest() -> Any:  # a body of unknown length: sent chunked
        yield data[3 * MiB :]

    sent = {**APPEND, "Upload-Offset": str(3 * MiB), "Upload-Complete": "?1"}
    async with proxy.session.patch(proxy(location), data=rest(), headers=sent) as response:
        assert response.status == 200
        assert response.headers["Upload-Length"] == str(len(data))
        result = await response.json()
    assert base64.b64decode(response.headers["Upload-Result"])
    assert s3_server.get(bucket, result["key"]) == data
    assert s3_server.multipart_uploads(bucket) == []


async def test_draft_errors(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await draft_proxy(make_proxy, bucket)
    async with proxy.session.post(proxy("/uploads/"), headers={"Upload-Draft-Interop-Version": "99"}) as response:
        assert response.status == 400
    async with proxy.session.post(proxy("/uploads/"), headers=V6) as response:
        assert response.status == 400  # no Upload-Complete
    creation = {**V6, "Upload-Complete": "?0", "Upload-Length": "10"}
    async with proxy.session.post(proxy("/uploads/"), headers=creation) as response:
        assert response.status == 201 and response.headers["Upload-Length"] == "10"
        location = response.headers["Location"]

    async def append(offset: int, body: bytes, **headers: str) -> tuple[int, str]:
        sent = {**APPEND, "Upload-Offset": str(offset), "Upload-Complete": "?0", **headers}
        async with proxy.session.patch(proxy(location), data=body, headers=sent) as response:
            return response.status, (await response.json())["error"]["code"] if response.status >= 400 else ""

    assert await append(0, b"x", **{"Content-Type": "application/offset+octet-stream"}) == (
        415,
        "unsupported_media_type",
    )
    assert await append(3, b"x") == (409, "offset_mismatch")
    assert await append(0, b"x", **{"Upload-Complete": "maybe"}) == (400, "bad_request")
    assert await append(0, b"12345", **{"Upload-Complete": "?1"}) == (400, "bad_request")  # 5 bytes, not 10
    assert await append(0, b"12345") == (204, "")
    assert await append(5, b"123456") == (413, "payload_too_large")
    async with proxy.session.head(proxy(location), headers=V6) as response:
        assert response.status == 404
    assert_nothing_left(s3_server, bucket)


async def test_draft_requests_from_a_page_are_allowed(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    app = "https://app.example"
    route = {"path": "/uploads", "bucket": bucket, "resumable": True, "cors": {"allow_origins": [app]}}
    proxy = await make_proxy(routes=[route])
    preflight = {
        "Origin": app,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "upload-draft-interop-version,upload-complete",
    }
    async with proxy.session.options(proxy("/uploads/"), headers=preflight) as response:
        assert response.status == 204
        allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"upload-draft-interop-version", "upload-complete"} <= allowed
    creation = {"Origin": app, **V6, "Upload-Complete": "?1"}
    async with proxy.session.post(proxy("/uploads/"), data=b"hello", headers=creation) as response:
        assert response.status == 201
        exposed = {name.strip().lower() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"location", "upload-offset", "upload-complete", "upload-draft-interop-version"} <= exposed
    assert len(s3_server.keys(bucket)) == 1


async def test_replicas_with_a_state_key_take_turns_on_a_draft_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    first, second = await replica(make_proxy, bucket), await replica(make_proxy, bucket)
    data = os.urandom(7 * MiB + 3)
    async with first.session.post(first("/uploads/"), headers={**V6, "Upload-Complete": "?0"}) as response:
        assert response.status == 201
        location = response.headers["Location"]
    sent = {**APPEND, "Upload-Offset": "0", "Upload-Complete": "?0"}
    async with second.session.patch(second(location), data=data[: 5 * MiB], headers=sent) as response:
        assert response.status == 204 and response.headers["Upload-Offset"] == str(5 * MiB)
    async with first.session.head(first(location), headers=V6) as response:
        assert (response.status, response.headers["Upload-Offset"]) == (204, str(5 * MiB))
        assert "Upload-Length" not in response.headers
    sent = {**APPEND, "Upload-Offset": str(5 * MiB), "Upload-Complete": "?1"}
    async with first.session.patch(first(location), data=data[5 * MiB :], headers=sent) as response:
        assert response.status == 200
        result = await response.json()
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data
    async with second.session.head(second(location), headers=V6) as response:
        assert (response.headers["Upload-Complete"], response.headers["Upload-Length"]) == ("?1", str(len(data)))
    assert s3_server.multipart_uploads(bucket) == []
