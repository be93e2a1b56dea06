"""Object tags that plugins record once the body has passed, and the ``Repr-Digest`` GET and HEAD answer from them.

moto keeps tags as S3 does. ``rclone serve s3`` keeps none: its PutObjectTagging
would replace the object's bytes, so the server must find that out without
tagging an object, and refuse an upload whose plugins record tags there.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest

from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .plugins_for_tests import LineCount
from .relay import Relay

MiB = 1024**2
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}
SIZES = pytest.mark.parametrize("size", [100, 6 * MiB], ids=["put-object", "multipart"])


def lines(size: int) -> bytes:
    return b"line\n" * (size // 5)


def tags_of(s3_server: S3Server, bucket: str, key: str) -> dict[str, str]:
    tag_set = s3_server.client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def repr_digest(body: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def counting_proxy(make_proxy: MakeProxy, bucket: str, extra: dict[str, str] | None = None, **s3: Any) -> Proxy:
    pm = make_plugin_manager()
    pm.register(LineCount(), name="line_count")
    route = {
        "path": "/u",
        "bucket": bucket,
        "plugins": ["line_count"],
        "plugin_settings": {"line_count": {"extra": extra or {}}},
    }
    return await make_proxy(routes=[route], pm=pm, s3=SMALL_PARTS | s3)


async def put(proxy: Proxy, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(proxy(path), data=body) as response:
        return response.status, await response.json()


# Recording


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@SIZES
async def test_a_tag_recorded_in_finish_is_stored_with_the_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int
) -> None:
    proxy = await counting_proxy(make_proxy, bucket)
    status, _ = await put(proxy, "/u/k", lines(size))
    assert status == 201
    assert tags_of(s3_server, bucket, "k") == {"lines": str(size // 5)}
    assert s3_server.get(bucket, "k") == lines(size)


@pytest.mark.parametrize(
    "extra, says",
    [
        ({f"t{i}": "x" for i in range(10)}, "at most 10 tags"),
        ({"k" * 129: "x"}, "1 to 128"),
        ({"note": "v" * 257}, "at most 256"),
        ({"note": "a&b"}, "'&'"),
        ({"aws:note": "x"}, "aws:"),
    ],
    ids=["eleven", "long-key", "long-value", "character", "aws-prefix"],
)
@SIZES
async def test_tags_s3_would_refuse_are_that_plugins_error_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int, extra: dict[str, str], says: str
) -> None:
    proxy = await counting_proxy(make_proxy, bucket, extra)
    status, answer = await put(proxy, "/u/k", lines(size))
    assert status == 500
    assert answer["error"]["code"] == "plugin_error"
    assert "'line_count'" in answer["error"]["message"] and says in answer["error"]["message"]
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_tagging_that_s3_does_not_answer_removes_the_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """A multipart object is tagged once complete (a single PutObject carries its tags)."""
    size = 6 * MiB
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.hold_response_to = lambda line: line.startswith("PUT ") and "/k?tagging" in line
        proxy = await counting_proxy(make_proxy, bucket, endpoint_url=relay.url, max_attempts=1, read_timeout=2)
        status, answer = await put(proxy, "/u/k", lines(size))
    assert (status, answer["error"]["code"]) in ((502, "upstream_error"), (504, "upstream_timeout"))
    assert "tags" in answer["error"]["message"] and "not kept" in answer["error"]["message"]
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
@SIZES
async def test_on_a_store_that_keeps_no_tags_an_upload_recording_them_fails_saying_so(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int
) -> None:
    proxy = await counting_proxy(make_proxy, bucket)
    status, answer = await put(proxy, "/u/k", lines(size))
    assert status == 502
    message = answer["error"]["message"]
    assert answer["error"]["code"] == "upstream_error" and "'line_count'" in message
    assert "does not keep" in message and "rclone" in message
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
async def test_learning_that_a_store_keeps_no_tags_touches_no_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """rclone's PutObjectTagging replaces an object's bytes: the server learns that on a key of its own, removed."""
    body = os.urandom(1000)
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "prefix": "in/", "plugins": ["checksum"]}])
    status, result = await put(proxy, "/u/k", body)
    assert status == 201 and result["checksums"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert s3_server.keys(bucket) == ["in/k"]
    assert s3_server.get(bucket, "in/k") == body
    async with proxy.session.get(proxy("/u/k")) as response:
        assert response.status == 200 and await response.read() == body
        assert "Repr-Digest" not in response.headers


# Repr-Digest


def checksum_proxy(make_proxy: MakeProxy, bucket: str, **s3: Any) -> Any:
    return make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["checksum"]}], s3=SMALL_PARTS | s3)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@SIZES
async def test_get_and_head_answer_the_sha256_the_checksum_plugin_recorded_as_repr_digest(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int
) -> None:
    body = os.urandom(size)
    proxy = await checksum_proxy(make_proxy, bucket)
    status, result = await put(proxy, "/u/k", body)
    assert status == 201
    assert tags_of(s3_server, bucket, "k") == {"sha256": result["checksums"]["sha256"]}
    async with proxy.session.get(proxy("/u/k")) as response:
        got = await response.read()
        assert response.status == 200 and response.headers["Repr-Digest"] == repr_digest(got) == repr_digest(body)
    async with proxy.session.head(proxy("/u/k")) as response:
        assert response.status == 200 and response.headers["Repr-Digest"] == repr_digest(body)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_range_answer_carries_the_digest_of_the_whole_representation(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """RFC 9530: Repr-Digest is of the selected representation, whatever part of it a 206 carries."""
    body = os.urandom(10_000)
    proxy = await checksum_proxy(make_proxy, bucket)
    assert (await put(proxy, "/u/k", body))[0] == 201
    async with proxy.session.get(proxy("/u/k"), headers={"Range": "bytes=100-199"}) as response:
        assert response.status == 206 and await response.read() == body[100:200]
        assert response.headers["Repr-Digest"] == repr_digest(body)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_only_a_tagged_object_costs_a_get_its_tags(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """HeadObject says how many tags an object has: one without costs a GET no more than before."""
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await make_proxy(
            routes=[
                {"path": "/u", "bucket": bucket, "prefix": "sums/", "plugins": ["checksum"]},
                {"path": "/plain", "bucket": bucket, "prefix": "plain/", "plugins": []},
            ],
            s3={"endpoint_url": relay.url},
        )
        assert (await put(proxy, "/u/k", b"tagged"))[0] == 201
        assert (await put(proxy, "/plain/k", b"untagged"))[0] == 201
        for path in ("/u/k", "/plain/k"):
            before = len(relay.requests)
            async with proxy.session.get(proxy(path)) as response:
                assert response.status == 200
                assert ("Repr-Digest" in response.headers) is (path == "/u/k")
            asked = [head.split(" ", 2)[:2] for head in relay.requests[before:]]
            assert sum("?tagging" in target for _, target in asked) == (1 if path == "/u/k" else 0), asked


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_object_without_a_sha256_tag_gets_no_repr_digest(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await counting_proxy(make_proxy, bucket)
    assert (await put(proxy, "/u/k", b"a\nb\n"))[0] == 201
    async with proxy.session.get(proxy("/u/k")) as response:
        assert response.status == 200 and "Repr-Digest" not in response.headers
