"""Resumable uploads (tus 1.0.0) with tus-js-client from npm, run by Node (tests/tus-js/upload.mjs), against moto."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server

MiB = 1024**2
HERE = Path(__file__).parent / "tus-js"
NODE = shutil.which("node")
RETRIES = [100, 250, 500, 1000, 2000, 4000, 8000]
"""Milliseconds between a client's retries, e.g. while the server still takes in a PATCH the client cut."""

pytestmark = pytest.mark.skipif(
    NODE is None or not (HERE / "node_modules" / "tus-js-client").is_dir(),
    reason="needs node and tests/tus-js/node_modules (scripts/test.sh runs npm ci there)",
)


@pytest.fixture
def s3_server(moto_server: S3Server) -> S3Server:
    return moto_server


async def resumable_proxy(make_proxy: MakeProxy, bucket: str, **route: Any) -> Proxy:
    plugins = route.pop("plugin_settings", {})
    route = {
        "path": "/uploads",
        "bucket": bucket,
        "plugins": ["checksum"],
        "resumable": True,
        "form_keys": "filename",
        **route,
    }
    return await make_proxy(routes=[route], plugins=plugins, s3={"part_size": "5MiB", "parts_in_flight": 2})


async def tus_js(**plan: Any) -> dict[str, Any]:
    """Run one tus-js-client upload (see upload.mjs for the plan); what the client saw."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE, str(HERE / "upload.mjs"), json.dumps(plan), stdout=asyncio.subprocess.PIPE, cwd=HERE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 300)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, out
    seen: dict[str, Any] = json.loads(out)
    return seen


def data_file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return str(path)


def upload_result(seen: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.b64decode(seen["uploadResult"]))
    return result


def patches(seen: dict[str, Any]) -> list[dict[str, Any]]:
    return [request for request in seen["requests"] if request["method"] == "PATCH"]


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_50_mib_file_goes_up_in_patches_of_8_mib(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(50 * MiB)
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, data),
        source="file",
        chunkSize=8 * MiB,
        metadata={"filename": "big.bin", "filetype": "application/x-test"},
    )
    assert seen["outcome"] == "success", seen
    assert [(p["offset"], p["status"]) for p in patches(seen)] == [(str(n * 8 * MiB), 204) for n in range(7)]
    result = upload_result(seen)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (result["key"], result["size"], result["content_type"]) == ("big.bin", len(data), "application/x-test")
    assert s3_server.get(bucket, "big.bin") == data
    async with proxy.session.get(seen["url"]) as response:
        assert response.status == 200
        assert await response.json() == result
    assert s3_server.multipart_uploads(bucket) == []


async def test_patches_sent_as_posts_with_a_method_override_upload_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(12 * MiB + 7)
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, data),
        source="file",
        chunkSize=5 * MiB,
        metadata={"filename": "overridden.bin"},
        overridePatchMethod=True,
    )
    assert seen["outcome"] == "success", seen
    assert [(r["method"], r["offset"], r["status"]) for r in seen["requests"][1:]] == [
        ("POST", str(n * 5 * MiB), 204) for n in range(3)
    ]
    assert upload_result(seen)["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, "overridden.bin") == data


async def test_an_upload_aborted_mid_patch_resumes_from_the_servers_offset(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(24 * MiB + 123)
    path = data_file(tmp_path, data)
    plan = {"file": path, "source": "buffer", "chunkSize": 8 * MiB, "metadata": {"filename": "resumed.bin"}}
    first = await tus_js(endpoint=proxy("/uploads/"), abortAt=12 * MiB, **plan)
    assert first["outcome"] == "aborted" and first["url"], first
    assert patches(first)[0]["responseOffset"] == str(8 * MiB)  # the second PATCH was cut, or just made it
    assert s3_server.keys(bucket) == []

    resumed = await tus_js(uploadUrl=first["url"], retryDelays=RETRIES, **plan)
    assert resumed["outcome"] == "success", resumed
    assert resumed["requests"][0]["method"] == "HEAD"
    sent = [p for p in patches(resumed) if p["status"] == 204]
    assert 8 * MiB <= int(sent[0]["offset"]) < len(data)  # from where the server stood, not from 0
    heads = [r for r in resumed["requests"] if r["method"] == "HEAD" and r["status"] == 200]
    assert sent[0]["offset"] == heads[-1]["responseOffset"]
    result = upload_result(resumed)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, "resumed.bin") == data
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_stream_of_unknown_length_is_sent_with_upload_length_deferred(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket)
    data = os.urandom(10 * MiB + 1)
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, data),
        source="stream",
        chunkSize=4 * MiB,
        uploadLengthDeferred=True,
        metadata={"filename": "stream.bin"},
    )
    assert seen["outcome"] == "success", seen
    creation = seen["requests"][0]
    assert (creation["method"], creation["length"], creation["status"]) == ("POST", None, 201)
    assert patches(seen)[0]["length"] is None and patches(seen)[-1]["length"] == str(len(data))
    assert upload_result(seen)["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, "stream.bin") == data


async def test_abort_with_termination_removes_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
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
    )
    assert seen["outcome"] == "terminated", seen
    assert seen["requests"][-1]["method"] == "DELETE" and seen["requests"][-1]["status"] == 204
    async with proxy.session.head(seen["url"], headers={"Tus-Resumable": "1.0.0"}) as response:
        assert response.status == 404
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize(
    ("plugins", "settings", "status", "code"),
    [
        (["virus_scan"], {}, 422, "infected"),
        (["size_limit"], {"size_limit": {"max_size": "6MiB"}}, 413, "payload_too_large"),
    ],
    ids=["eicar", "size_limit"],
)
async def test_a_plugins_veto_is_the_clients_error_and_nothing_is_stored(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
    plugins: list[str],
    settings: dict[str, Any],
    status: int,
    code: str,
) -> None:
    proxy = await resumable_proxy(make_proxy, bucket, plugins=plugins, plugin_settings=settings)
    data = bytearray(os.urandom(10 * MiB))
    if code == "infected":
        at = 4 * MiB - 30  # across the first PATCH's end
        data[at : at + len(EICAR)] = EICAR
    seen = await tus_js(
        endpoint=proxy("/uploads/"),
        file=data_file(tmp_path, bytes(data)),
        source="stream",
        chunkSize=4 * MiB,
        uploadLengthDeferred=True,
        retryDelays=[0, 0],
    )
    assert (seen["outcome"], seen["status"]) == ("error", status), seen
    assert code in seen["error"]
    assert [p["status"] for p in patches(seen)] == [204, status]  # a veto is not retried
    async with proxy.session.head(seen["url"], headers={"Tus-Resumable": "1.0.0"}) as response:
        assert response.status == 404
    assert_nothing_left(s3_server, bucket)
