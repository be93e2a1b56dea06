"""Resumable uploads across replicas: two instances with the same state key in front of one bucket, on moto
(conditional writes) and rclone (the fallback without them)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from tusclient import client as tus_client

from aiouploader import Upload, UploadStage, age, hookimpl
from aiouploader.auth import hash_token
from aiouploader.chain_state import StateKey
from aiouploader.eicar import EICAR
from aiouploader.orphans import sweep
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.service import SERVICE
from aiouploader.testing import MakeProxy, Proxy, S3Server, serve_process
from aiouploader.tus.stored import state_key, unseal
from aiouploader.tus.uploads import RESUMABLE_UPLOADS, carried_on
from tests.s3api_clients import client

from .plugins_for_tests import Lifecycle
from .relay import Relay
from .test_resumable import PATCH, TUS, create, head, patch
from .test_resumable_tus_js import HERE, NODE, RETRIES, data_file, patches, tus_js, upload_result
from .test_s3api_boto3 import age_decrypted, call, error_of

if TYPE_CHECKING:
    from tests.fixtures.clamd import ClamdServer

MiB = 1024**2
STATE_KEY = "replicas-share-this-state-key-" + "k" * 16


async def replica(make_proxy: MakeProxy, bucket: str, **route: Any) -> Proxy:
    """An instance of the resumable route /uploads over ``bucket``, sealing upload state with :data:`STATE_KEY`."""
    plugins = route.pop("plugin_settings", {})
    pm = route.pop("pm", None)
    sections = {"s3_api": route.pop("s3_api")} if "s3_api" in route else {}
    s3 = {"part_size": "5MiB", "parts_in_flight": 2, **route.pop("s3", {})}
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["checksum"], "resumable": True, **route}
    return await make_proxy(
        routes=[route],
        pm=pm,
        plugins=plugins,
        s3=s3,
        upload={"block_size": "256KiB"},
        server={"state_key": STATE_KEY},
        **sections,
    )


def tus_uploader(server: str, data: bytes, **options: Any) -> Any:
    """A tuspy uploader of ``data`` as clip.bin to the server at ``server``."""
    tus = tus_client.TusClient(server + "/uploads/")
    return tus.uploader(file_stream=io.BytesIO(data), metadata={"filename": "clip.bin"}, **options)


def upload_id(location: str) -> str:
    return urlsplit(location).path.rsplit("/", 1)[1]


def result_of(headers: Any) -> Any:
    return json.loads(base64.b64decode(headers["Upload-Result"]))


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def send_alternating(proxies: list[Proxy], location: str, data: bytes, size: int) -> Any:
    """PATCH ``data`` in pieces of ``size`` bytes, each to the next of ``proxies``; the last answer's headers."""
    offset, turn, headers = 0, 0, None
    while offset < len(data):
        piece = data[offset : offset + size]
        status, headers, error = await patch(proxies[turn % len(proxies)], location, offset, piece)
        assert status == 204, error
        offset += len(piece)
        turn += 1
    return headers


async def test_patches_alternating_between_two_instances_complete_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket, form_keys="filename"), await replica(make_proxy, bucket)
    data = os.urandom(13 * MiB + 4321)
    location = await create(one, **{"Upload-Length": str(len(data)), "Upload-Metadata": "filename Y2xpcC5iaW4="})
    headers = await send_alternating([two, one], location, data, 3 * MiB)

    result = result_of(headers)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["key"] == "clip.bin" and result["size"] == len(data)
    assert s3_server.get(bucket, "clip.bin") == data
    assert s3_server.multipart_uploads(bucket) == []
    assert s3_server.keys(bucket) == [state_key(upload_id(location)), "clip.bin"]  # no tail is left
    for proxy in (one, two):
        async with proxy.session.get(proxy(location)) as response:
            assert response.status == 200 and await response.json() == result
        status, headers = await head(proxy, location)
        assert (status, headers["Upload-Offset"]) == (200, str(len(data)))
    assert len(one.app[RESUMABLE_UPLOADS]) == len(two.app[RESUMABLE_UPLOADS]) == 0  # nothing held between requests
    states = one.app[RESUMABLE_UPLOADS].states
    assert states is not None and states.conditional[bucket] == (s3_server.kind == "moto")  # rclone: the fallback


async def test_an_encrypting_route_across_instances_stores_what_age_decrypts(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    secret, recipient = age.generate_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(f"{secret}\n")
    settings = {"plugins": ["checksum", "encryption"], "plugin_settings": {"encryption": {"recipients": [recipient]}}}
    one, two = await replica(make_proxy, bucket, **settings), await replica(make_proxy, bucket, **settings)
    data = os.urandom(11 * MiB + 17)
    location = await create(one, **{"Upload-Length": str(len(data))})
    result = result_of(await send_alternating([one, two], location, data, 2 * MiB + 99))
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    stored = s3_server.get(bucket, result["key"])
    assert stored != data and result["stored_size"] == len(stored)
    assert await age_decrypted(stored, identity) == data


async def test_a_short_patch_leaves_a_tail_object_the_other_instance_takes_up(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket), await replica(make_proxy, bucket)
    data = os.urandom(7 * MiB + 3)
    location = await create(one, **{"Upload-Length": str(len(data))})
    status, _, _ = await patch(one, location, 0, data[: 1 * MiB])
    assert status == 204
    upload = upload_id(location)
    state, tail = s3_server.keys(bucket)
    assert state == state_key(upload) and tail.startswith(f"{state}.tail-{MiB}-")
    assert s3_server.get(bucket, tail) == data[: 1 * MiB]
    assert s3_server.multipart_uploads(bucket) == []  # under 5 MiB: no part yet

    status, headers = await head(two, location)
    assert (status, headers["Upload-Offset"], headers["Upload-Length"]) == (200, str(MiB), str(len(data)))
    status, headers, _ = await patch(two, location, MiB, data[MiB:])
    assert status == 204
    result = result_of(headers)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data
    assert s3_server.keys(bucket) == sorted([state_key(upload), result["key"]])


SERVED = """
[server]
state_key = "{state_key}"
shutdown_grace = 5

[s3]
endpoint_url = "{endpoint}"
part_size = "5MiB"
orphan_ttl = 0

[[routes]]
path = "/uploads"
bucket = "{bucket}"
plugins = ["checksum"]
resumable = true
form_keys = "filename"
"""


async def test_a_server_stopped_and_started_again_resumes_the_upload(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    config = SERVED.format(state_key=STATE_KEY, endpoint=s3_server.endpoint_url, bucket=bucket)
    data = os.urandom(12 * MiB + 5)
    first = await asyncio.to_thread(serve_process, tmp_path, config)
    try:
        sending = await asyncio.to_thread(tus_uploader, first.url, data, chunk_size=3 * MiB, upload_checksum=True)
        await asyncio.to_thread(sending.upload, 6 * MiB)
        path = urlsplit(sending.url).path
    finally:
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 30) == 0
    kept = upload_id(path)
    state, tail = s3_server.keys(bucket)  # a 5 MiB part is in S3, and a 1 MiB tail
    assert state == state_key(kept) and tail.startswith(f"{state}.tail-{6 * MiB}-")
    assert len(s3_server.multipart_uploads(bucket)) == 1

    second = await asyncio.to_thread(serve_process, tmp_path, config)
    try:
        url = second.url + path
        resumed = await asyncio.to_thread(tus_uploader, second.url, data, url=url, chunk_size=3 * MiB)
        assert resumed.offset == 6 * MiB
        await asyncio.to_thread(resumed.upload)
        result = json.loads(base64.b64decode(resumed.request.response_headers["upload-result"]))
    finally:
        second.stop()
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, "clip.bin") == data
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_clamd_scan_cannot_move_so_another_instance_answers_410(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, clamd_server: ClamdServer
) -> None:
    settings = {"virus_scan": {"backend": "clamd", "clamd_address": clamd_server.tcp_address}}
    one = await replica(make_proxy, bucket, plugins=["virus_scan"], plugin_settings=settings)
    two = await replica(make_proxy, bucket, plugins=["virus_scan"], plugin_settings=settings)
    data = bytearray(os.urandom(6 * MiB))
    at = 3 * MiB - 30
    data[at : at + len(EICAR)] = EICAR
    location = await create(one, **{"Upload-Length": str(len(data))})
    assert (await patch(one, location, 0, bytes(data[: 3 * MiB])))[0] == 204
    status, headers = await head(two, location)
    assert (status, headers["Upload-Offset"]) == (200, str(3 * MiB))

    status, _, error = await patch(two, location, 3 * MiB, bytes(data[3 * MiB :]))
    assert (status, error["error"]["code"]) == (410, "cannot_resume")
    async with two.session.delete(two(location), headers=TUS) as response:
        assert response.status == 410
    status, _, error = await patch(one, location, 3 * MiB, bytes(data[3 * MiB :]))
    assert (status, error["error"]["code"]) == (422, "infected")
    for proxy in (one, two):
        assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_a_size_limit_passed_on_the_other_instance_removes_everything(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    lifecycle = [Lifecycle(), Lifecycle()]
    settings = {
        "plugins": ["size_limit", "checksum", "lifecycle"],
        "plugin_settings": {"size_limit": {"max_size": "8MiB"}},
    }
    proxies = []
    for listener in lifecycle:
        pm = make_plugin_manager()
        pm.register(listener, name="lifecycle")
        proxies.append(await replica(make_proxy, bucket, pm=pm, **settings))
    one, two = proxies
    location = await create(one, **{"Upload-Defer-Length": "1"})
    assert (await patch(one, location, 0, os.urandom(6 * MiB)))[0] == 204
    assert len(s3_server.multipart_uploads(bucket)) == 1
    tail = f"{state_key(upload_id(location))}.tail-{6 * MiB}-"
    assert any(key.startswith(tail) for key in s3_server.keys(bucket))

    status, _, error = await patch(two, location, 6 * MiB, os.urandom(3 * MiB))
    assert (status, error["error"]["code"]) == (413, "payload_too_large")
    for proxy in (one, two):
        assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)
    assert [event for event, _ in lifecycle[0].events] == ["started"]
    assert [event for event, _ in lifecycle[1].events] == ["failed"]  # each hook once in all


class _GateStage(UploadStage):
    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def feed(self, block: bytes) -> bytes:
        self._gate.entered.set()
        await self._gate.opened.wait()
        return block

    def save(self) -> bytes:
        return b""

    def restore(self, state: bytes) -> None:
        pass


class Gate:
    """Holds every block in ``feed`` until ``opened`` is set; ``entered`` tells that a block is held."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _GateStage(self)


async def test_a_patch_on_one_instance_while_another_sends_bytes_is_423(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    gates, proxies = [Gate(), Gate()], []
    for gate in gates:
        pm = make_plugin_manager()
        pm.register(gate, name="gate")
        proxies.append(await replica(make_proxy, bucket, plugins=["gate"], pm=pm))
    one, two = proxies
    gates[1].opened.set()
    location = await create(two, **{"Upload-Length": "10"})
    first = asyncio.create_task(patch(one, location, 0, b"12345"))
    await gates[0].entered.wait()
    status, _, error = await patch(two, location, 0, b"12345")
    assert (status, error["error"]["code"]) == (423, "upload_busy")
    async with two.session.delete(two(location), headers=TUS) as response:
        assert response.status == 423
    gates[0].opened.set()
    assert (await first)[0] == 204
    status, headers, _ = await patch(two, location, 5, b"67890")
    assert status == 204 and result_of(headers)["size"] == 10
    assert s3_server.get(bucket, result_of(headers)["key"]) == b"1234567890"


async def test_termination_on_another_instance_removes_everything(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket), await replica(make_proxy, bucket)
    location = await create(one, **{"Upload-Length": str(9 * MiB)})
    assert (await patch(one, location, 0, os.urandom(6 * MiB)))[0] == 204
    async with two.session.delete(two(location), headers=TUS) as response:
        assert response.status == 204
    for proxy in (one, two):
        assert (await head(proxy, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_an_expired_upload_is_removed_by_any_instance(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket, resumable_expires=600), await replica(make_proxy, bucket)
    location = await create(one, **{"Upload-Length": str(9 * MiB)})
    assert (await patch(one, location, 0, os.urandom(6 * MiB)))[0] == 204
    assert len(s3_server.multipart_uploads(bucket)) == 1
    uploads, service = two.app[RESUMABLE_UPLOADS], two.app[SERVICE]

    def session_for(stored: Any) -> Any:
        return carried_on(service, service.routes[0], stored)

    assert await uploads.sweep([bucket], session_for) == 0  # not expired yet
    assert len(s3_server.keys(bucket)) == 2
    assert await uploads.sweep([bucket], session_for, now=time.time() + 601) == 1
    assert (await head(one, location))[0] == 404
    assert_nothing_left(s3_server, bucket)


async def test_clients_cannot_reach_the_upload_state_through_either_front_door(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3_api = {"port": 0, "credentials": [{"access_key_id": "AKIDREPLICAS", "secret_access_key": "s" * 40}]}
    proxy = await replica(make_proxy, bucket, s3_api_bucket="files", allow_delete=True, s3_api=s3_api)
    location = await create(proxy, **{"Upload-Length": str(2 * MiB)})
    assert (await patch(proxy, location, 0, os.urandom(MiB)))[0] == 204
    state = state_key(upload_id(location))
    kept = s3_server.keys(bucket)
    assert state in kept and len(kept) == 2

    for method in ("GET", "HEAD", "PUT", "DELETE"):
        async with proxy.session.request(method, proxy(f"/uploads/{state}"), data=b"x") as response:
            assert response.status == 400, method
    s3 = client(proxy.s3_api_url or "", "AKIDREPLICAS", "s" * 40)
    for operation, params in (
        (s3.get_object, {}),
        (s3.put_object, {"Body": b"x"}),
        (s3.delete_object, {}),
        (s3.create_multipart_upload, {}),
    ):
        with pytest.raises(ClientError) as refused:
            await call(operation, Bucket="files", Key=state, **params)
        assert error_of(refused)[0] == 400, operation
    for listing in ({}, {"Prefix": ".aiouploader/"}, {"Delimiter": "/"}):
        page = await call(s3.list_objects_v2, Bucket="files", **listing)
        shown = [item["Key"] for item in page.get("Contents", [])] + [
            p["Prefix"] for p in page.get("CommonPrefixes", [])
        ]
        assert not any(key.startswith(".aiouploader") for key in shown), listing
    s3_server.client.put_object(Bucket=bucket, Key="~after", Body=b"z")
    for version in ("list_objects", "list_objects_v2"):
        paginate = s3.get_paginator(version).paginate
        pages = await asyncio.to_thread(list, paginate(Bucket="files", PaginationConfig={"PageSize": 1}))
        assert [item["Key"] for page in pages for item in page.get("Contents", [])] == ["~after"], version
        assert not any(upload_id(location) in page.get("NextMarker", "") for page in pages), version
    s3_server.client.delete_object(Bucket=bucket, Key="~after")
    assert s3_server.keys(bucket) == kept
    status, headers = await head(proxy, location)
    assert (status, headers["Upload-Offset"]) == (200, str(MiB))


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)  # rclone: see docs/operations.md
async def test_two_patches_at_once_with_the_same_offset_let_one_through(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket), await replica(make_proxy, bucket)
    data = os.urandom(2 * MiB)
    location = await create(one, **{"Upload-Length": str(len(data))})
    answers = await asyncio.gather(patch(one, location, 0, data[:MiB]), patch(two, location, 0, data[:MiB]))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses in ([204, 409], [204, 423])
    status, headers = await head(two, location)
    assert (status, headers["Upload-Offset"]) == (200, str(MiB))
    status, headers, _ = await patch(two, location, MiB, data[MiB:])
    assert status == 204
    assert s3_server.get(bucket, result_of(headers)["key"]) == data


async def test_a_drain_ends_the_patch_in_flight_and_leaves_the_upload_to_another_instance(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    gate = Gate()
    gate.opened.set()  # it only tells when the first bytes have passed
    pm = make_plugin_manager()
    pm.register(gate, name="gate")
    one = await replica(make_proxy, bucket, plugins=["gate", "checksum"], pm=pm)
    other, passing = make_plugin_manager(), Gate()
    passing.opened.set()
    other.register(passing, name="gate")
    two = await replica(make_proxy, bucket, plugins=["gate", "checksum"], pm=other)
    data = os.urandom(8 * MiB)
    location = await create(one, **{"Upload-Length": str(len(data))})
    more = asyncio.Event()

    async def body() -> Any:
        yield data[: 6 * MiB]
        await more.wait()

    headers = {**PATCH, "Upload-Offset": "0", "Content-Length": str(len(data))}
    sending = asyncio.create_task(one.session.patch(one(location), data=body(), headers=headers))
    await gate.entered.wait()
    assert await one.app[SERVICE].drain(0) == 0  # ended early, not cancelled
    sending.cancel()
    more.set()
    await asyncio.gather(sending, return_exceptions=True)

    status, headers = await head(two, location)
    offset = int(headers["Upload-Offset"])
    assert status == 200 and 0 < offset <= 6 * MiB
    status, headers, _ = await patch(two, location, offset, data[offset:])
    assert status == 204
    result = result_of(headers)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, result["key"]) == data


async def test_an_upload_created_while_the_server_shuts_down_goes_on_elsewhere(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    async with Relay(urlsplit(s3_server.endpoint_url).port or 80) as slow:
        one = await replica(make_proxy, bucket, s3={"endpoint_url": slow.url})
        two = await replica(make_proxy, bucket)
        await create(one, **{"Upload-Length": "1"})  # the bucket's conditional writes are learnt
        slow.delay = 0.2  # the next creation's state write takes a while
        uploads = one.app[RESUMABLE_UPLOADS]
        creating = asyncio.create_task(create(one, **{"Upload-Length": str(MiB)}))
        for _ in range(1000):  # until the creation is under way
            if len(uploads):
                break
            await asyncio.sleep(0.01)
        await uploads.close()  # what the server's shutdown does, with this creation still writing its state
        location = await creating
    status, headers = await head(two, location)
    assert (status, headers["Upload-Offset"]) == (200, "0")
    data = os.urandom(MiB)
    status, headers, _ = await patch(two, location, 0, data)
    assert status == 204 and s3_server.get(bucket, result_of(headers)["key"]) == data


async def test_the_orphan_sweep_leaves_the_multipart_upload_of_an_upload_kept_in_the_bucket(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    one, two = await replica(make_proxy, bucket), await replica(make_proxy, bucket)
    location = await create(one, **{"Upload-Length": str(9 * MiB)})
    assert (await patch(one, location, 0, os.urandom(6 * MiB)))[0] == 204
    kept = s3_server.multipart_uploads(bucket)
    assert len(kept) == 1
    states = two.app[RESUMABLE_UPLOADS].states
    assert states is not None
    assert await sweep(two.app[SERVICE].s3, [(bucket, "")], 0, states.multipart_ids) == 0
    assert s3_server.multipart_uploads(bucket) == kept
    creator = one.app[SERVICE].s3
    assert kept[0]["UploadId"] not in creator.in_progress  # handed to the bucket: this instance holds nothing of it
    assert await sweep(creator, [(bucket, "")], 0, states.multipart_ids) == 0
    assert s3_server.multipart_uploads(bucket) == kept
    assert (await patch(two, location, 6 * MiB, os.urandom(3 * MiB)))[0] == 204


async def test_credentials_are_checked_on_every_instance_and_never_kept_with_the_state(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    tokens = [
        {"name": "team", "sha256": hash_token("team-token"), "methods": ["POST"], "prefix": "team/"},
        {"name": "other", "sha256": hash_token("other-token"), "methods": ["POST"], "prefix": "other/"},
    ]
    route = {"path": "/uploads", "bucket": bucket, "auth": ["token"], "resumable": True, "plugins": ["checksum"]}
    one, two = [
        await make_proxy(routes=[route], auth={"tokens": tokens}, server={"state_key": STATE_KEY}) for _ in range(2)
    ]
    team, other = {"Authorization": "Bearer team-token"}, {"Authorization": "Bearer other-token"}
    location = await create(one, **{"Upload-Length": "10", **team})
    blob = s3_server.get(bucket, state_key(upload_id(location)))
    assert b"team-token" not in blob
    kept = unseal(blob, StateKey(STATE_KEY), upload_id(location))
    assert "Authorization" not in kept.upload.headers and kept.scope.startswith("team/")

    assert (await patch(two, location, 0, b"12345"))[0] == 401
    assert (await patch(two, location, 0, b"12345", **other))[0] == 403
    assert (await patch(two, location, 0, b"12345", **team))[0] == 204
    status, headers, _ = await patch(one, location, 5, b"67890", **team)
    assert status == 204 and result_of(headers)["key"].startswith("team/")


@pytest.mark.skipif(
    NODE is None or not (HERE / "node_modules" / "tus-js-client").is_dir(),
    reason="needs node and tests/tus-js/node_modules (scripts/test.sh runs npm ci there)",
)
async def test_tus_js_client_aborted_on_one_instance_resumes_on_the_other(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    one, two = await replica(make_proxy, bucket, form_keys="filename"), await replica(make_proxy, bucket)
    data = os.urandom(20 * MiB + 7)
    plan = {"file": data_file(tmp_path, data), "source": "buffer", "chunkSize": 8 * MiB}
    first = await tus_js(endpoint=one("/uploads/"), abortAt=12 * MiB, metadata={"filename": "moved.bin"}, **plan)
    assert first["outcome"] == "aborted" and first["url"], first

    elsewhere = two(urlsplit(first["url"]).path)
    resumed = await tus_js(uploadUrl=elsewhere, retryDelays=RETRIES, **plan)
    assert resumed["outcome"] == "success", resumed
    sent = [p for p in patches(resumed) if p["status"] == 204]
    heads = [r for r in resumed["requests"] if r["method"] == "HEAD" and r["status"] == 200]
    assert int(sent[0]["offset"]) >= 8 * MiB  # from where the first instance stood, not from 0
    assert sent[0]["offset"] == heads[-1]["responseOffset"]
    result = upload_result(resumed)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_server.get(bucket, "moved.bin") == data
    assert s3_server.multipart_uploads(bucket) == []
