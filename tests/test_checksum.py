"""The ``checksum`` plugin and the integrity of what reaches S3, through HTTP, against moto and rclone."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import crc32c
import pytest

from aiouploader.checksums import HASHES
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .relay import Relay
from .test_metrics import scrape, value

MiB = 1024**2
PART = 5 * MiB
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}
DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "md5": lambda data: hashlib.md5(data).digest(),
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "crc32c": lambda data: crc32c.crc32c(data).to_bytes(4, "big"),
}
try:
    from awscrt import checksums as crt

    DIGESTS["crc64nvme"] = lambda data: crt.crc64nvme(data).to_bytes(8, "big")
except ImportError:  # then aiouploader refuses it too
    pass


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def digest(algorithm: str, data: bytes) -> str:
    return b64(DIGESTS[algorithm](data))


def client_headers(kind: str, data: bytes) -> dict[str, str]:
    """The header(s) a client sends to say what ``data`` is, in each syntax the plugin understands."""
    return {
        "content-md5": {"Content-MD5": digest("md5", data)},
        "content-digest-sha-256": {"Content-Digest": f"sha-256=:{digest('sha256', data)}:"},
        "content-digest-sha-512": {"Content-Digest": f"sha-512=:{digest('sha512', data)}:"},
        "content-digest-two-members": {
            "Content-Digest": f"sha-512=:{digest('sha512', data)}:, sha-256=:{digest('sha256', data)}:"
        },
        "repr-digest-sha-256": {"Repr-Digest": f"sha-256=:{digest('sha256', data)}:"},
        "x-amz-checksum-sha256": {"x-amz-checksum-sha256": digest("sha256", data)},
        "x-amz-checksum-crc32c": {"x-amz-checksum-crc32c": digest("crc32c", data)},
        "x-amz-checksum-crc32": {"x-amz-checksum-crc32": digest("crc32", data)},
        "x-amz-checksum-sha1": {"x-amz-checksum-sha1": digest("sha1", data)},
    }[kind]


ALL_KINDS = [
    "content-md5",
    "content-digest-sha-256",
    "content-digest-sha-512",
    "content-digest-two-members",
    "repr-digest-sha-256",
    "x-amz-checksum-sha256",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc32",
    "x-amz-checksum-sha1",
]


async def proxy_for(make_proxy: MakeProxy, bucket: str, plugins: tuple[str, ...] = ("checksum",), **s3: Any) -> Proxy:
    return await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": list(plugins)}],
        s3={**SMALL_PARTS, **s3},
        upload={"block_size": "256KiB"},
    )


async def put(proxy: Proxy, key: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with proxy.session.put(proxy(f"/uploads/{key}"), data=body, headers=headers) as response:
        return response.status, await response.json()


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


def changed_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


async def test_sha256_of_the_client_bytes_is_in_every_result(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)

    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    status, result = await put(proxy, "empty", b"")
    assert status == 201 and result["checksums"]["sha256"] == sha256(b"")

    pieces = [os.urandom(n) for n in (3 * MiB, 3 * MiB, 1234)]

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    status, result = await put(proxy, "chunked", chunks())
    assert status == 201 and result["checksums"]["sha256"] == sha256(b"".join(pieces))

    raw = os.urandom(1000)
    async with proxy.session.post(proxy("/uploads/"), data=raw) as response:
        assert response.status == 201
        assert (await response.json())["checksums"]["sha256"] == sha256(raw)

    first, second = os.urandom(2000), os.urandom(3000)
    form = aiohttp.FormData()
    form.add_field("a", first, filename="a.bin")
    form.add_field("b", second, filename="b.bin")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 201
        uploads = (await response.json())["uploads"]
    assert [u["checksums"]["sha256"] for u in uploads] == [sha256(first), sha256(second)]


@pytest.mark.parametrize(
    ("size", "kinds"),
    [
        pytest.param(100_000, ALL_KINDS, id="single-put"),
        pytest.param(PART + 1000, ["content-md5", "content-digest-sha-256", "x-amz-checksum-crc32c"], id="multipart"),
    ],
)
async def test_client_digests_are_verified_before_completion(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int, kinds: list[str]
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    body = os.urandom(size)
    for kind in kinds:
        status, result = await put(proxy, f"ok-{kind}", body, client_headers(kind, body))
        assert status == 201, (kind, result)
        status, result = await put(proxy, f"bad-{kind}", body, client_headers(kind, changed_last_byte(body)))
        assert status == 400, (kind, result)
        assert result["error"]["code"] == "checksum_mismatch"
        assert next(iter(client_headers(kind, body))).lower() in result["error"]["message"].lower()
    assert s3_server.keys(bucket) == sorted(f"ok-{kind}" for kind in kinds)
    assert s3_server.multipart_uploads(bucket) == []
    assert s3_server.get(bucket, f"ok-{kinds[-1]}") == body


MALFORMED = [
    {"Content-MD5": "not base64!"},
    {"Content-MD5": b64(b"four")},
    {"Content-Digest": "sha-256=:%%%%:"},
    {"Content-Digest": "sha-256=" + b64(bytes(32))},
    {"Repr-Digest": "sha-512=:" + b64(bytes(32)) + ":"},
    {"x-amz-checksum-crc32c": "AAAA==="},
    {"x-amz-checksum-crc32": b64(bytes(8))},
    {"x-amz-checksum-sha256": ""},
]


async def test_malformed_digest_header_is_a_bad_request(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    for headers in MALFORMED:
        status, result = await put(proxy, "k", b"some bytes", headers)
        assert status == 400, headers
        assert result["error"]["code"] == "bad_request", headers
        assert next(iter(headers)).lower() in result["error"]["message"].lower()
    assert_nothing_left(s3_server, bucket)


async def test_form_with_a_digest_of_the_whole_body_is_accepted(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    payload = (
        b'--b0undary\r\nContent-Disposition: form-data; name="a"; filename="a.bin"\r\n\r\n'
        + os.urandom(1000)
        + b"\r\n--b0undary--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary", "Content-MD5": digest("md5", payload)}
    async with proxy.session.post(proxy("/uploads/"), data=payload, headers=headers) as response:
        assert response.status == 201, await response.text()


def part_bodies(body: bytes) -> list[bytes]:
    return [body[i : i + PART] for i in range(0, len(body), PART)] or [b""]


def composite(algorithm: str, parts: list[bytes]) -> str:
    return f"{b64(DIGESTS[algorithm](b''.join(DIGESTS[algorithm](p) for p in parts)))}-{len(parts)}"


def recorded_checksums(s3_server: S3Server, bucket: str, key: str) -> dict[str, str]:
    head = s3_server.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return {name.removeprefix("Checksum").lower(): value for name, value in head.items() if name in CHECKSUM_FIELDS}


CHECKSUM_FIELDS = {"ChecksumCRC32C", "ChecksumCRC32", "ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC64NVME"}


def head_fields(head: str) -> tuple[str, dict[str, str]]:
    request_line, *lines = head.split("\r\n")
    fields = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return request_line, fields


def object_checksum(algorithm: str, parts: list[bytes]) -> str:
    """A multipart object's checksum: of the whole object for CRC64NVME, else of the parts' checksums."""
    return digest(algorithm, b"".join(parts)) if algorithm == "crc64nvme" else composite(algorithm, parts)


@pytest.mark.parametrize(
    "algorithm, content_md5",
    [("crc32c", False), ("crc32c", True), ("crc32", False), ("sha256", False), ("crc64nvme", False), ("none", True)],
)
async def test_every_put_and_part_carries_the_configured_checksum_and_content_md5_if_set(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, algorithm: str, content_md5: bool
) -> None:
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(
            make_proxy, bucket, endpoint_url=relay.url, checksum_algorithm=algorithm, content_md5=content_md5
        )
        single, multi = os.urandom(100_000), os.urandom(2 * PART + 77)
        status, single_result = await put(proxy, "single", single)
        assert status == 201
        status, multi_result = await put(proxy, "multi", multi)
        assert status == 201

    sent = {}
    for head in relay.requests:
        request_line, fields = head_fields(head)
        method, target, _ = request_line.split(" ")
        if "?tagging" in target:
            continue  # the checksum plugin's sha256 tag, after the object is stored
        if method == "PUT" and "/single" in target:
            sent["single"] = fields
        elif method == "PUT" and "partNumber=" in target:
            sent[f"part{target.rsplit('partNumber=', 1)[1].split('&')[0]}"] = fields
    expected = {"single": single} | {f"part{n}": part for n, part in enumerate(part_bodies(multi), 1)}
    assert sorted(sent) == sorted(expected) == ["part1", "part2", "part3", "single"]
    for name, data in expected.items():
        assert sent[name].get("content-md5") == (digest("md5", data) if content_md5 else None), name
        checksums = {k: v for k, v in sent[name].items() if k.startswith("x-amz-checksum-")}
        assert checksums == ({} if algorithm == "none" else {f"x-amz-checksum-{algorithm}": digest(algorithm, data)})

    if algorithm == "none":
        assert single_result["stored_checksums"] == multi_result["stored_checksums"] == {}
        assert recorded_checksums(s3_server, bucket, "single") == {}
        assert recorded_checksums(s3_server, bucket, "multi") == {}
    else:
        assert single_result["stored_checksums"] == {algorithm: digest(algorithm, single)}
        assert multi_result["stored_checksums"] == {algorithm: object_checksum(algorithm, part_bodies(multi))}
        if s3_server.kind == "rclone":  # rclone records the checksum of a PutObject, not of a multipart upload
            assert recorded_checksums(s3_server, bucket, "single") == {algorithm: digest(algorithm, single)}
        else:  # moto records the object's checksum of a multipart upload (without the -N)
            recorded = recorded_checksums(s3_server, bucket, "multi")
            assert recorded == {algorithm: object_checksum(algorithm, part_bodies(multi)).rsplit("-", 1)[0]}
    assert s3_server.get(bucket, "single") == single
    assert s3_server.get(bucket, "multi") == multi


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_moto_records_the_checksum_of_a_single_put(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, checksum_algorithm="sha256")
    body = os.urandom(1000)
    assert (await put(proxy, "single", body))[0] == 201
    assert recorded_checksums(s3_server, bucket, "single") == {"sha256": digest("sha256", body)}


# rclone verifies Content-MD5, not the additional checksum: in front of it, content_md5 = true.
@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
@pytest.mark.parametrize("size", [pytest.param(MiB, id="single-put"), pytest.param(2 * PART + 100, id="multipart")])
async def test_a_byte_flipped_on_the_way_to_s3_fails_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int
) -> None:
    body = os.urandom(size)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(make_proxy, bucket, endpoint_url=relay.url, max_attempts=2, content_md5=True)
        status, _ = await put(proxy, "control", body)
        assert status == 201  # the relay itself is transparent
        s3_server.client.delete_object(Bucket=bucket, Key="control")

        relay.flip_body_at = 1000
        status, result = await put(proxy, "flipped", body)
        assert relay.flipped >= 1
    assert status == 502
    assert result["error"]["code"] == "upstream_error"
    # rclone's Content-MD5 check caught it (BadDigest); rclone then drops the whole multipart upload,
    # so a part still in flight may report NoSuchUpload first
    message = result["error"]["message"]
    assert "BadDigest" in message or ("part" in message and "NoSuchUpload" in message), message
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_client_digests_are_checked_on_a_route_without_the_plugin(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, kind: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket, plugins=("size_limit",))
    body = os.urandom(PART + 100)
    status, result = await put(proxy, "k", body, client_headers(kind, changed_last_byte(body)))
    assert status == 400 and result["error"]["code"] == "checksum_mismatch", result
    assert_nothing_left(s3_server, bucket)
    status, result = await put(proxy, "k", body, client_headers(kind, body))
    assert status == 201, result
    assert s3_server.get(bucket, "k") == body


@pytest.mark.skipif("crc64nvme" in HASHES, reason="awscrt is installed: CRC64NVME can be checked")
async def test_a_digest_that_cannot_be_checked_is_refused(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    for plugins in (("checksum",), ()):
        proxy = await proxy_for(make_proxy, bucket, plugins=plugins)
        status, result = await put(proxy, "k", b"body", {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="})
        assert status == 400 and "crc64nvme header cannot be checked" in result["error"]["message"], result
    assert_nothing_left(s3_server, bucket)


@pytest.mark.skipif("crc64nvme" not in HASHES, reason="awscrt is not installed")
async def test_a_crc64nvme_digest_is_checked_where_awscrt_is_installed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    body = os.urandom(1000)
    status, result = await put(proxy, "k", body, {"x-amz-checksum-crc64nvme": digest("crc64nvme", b"other")})
    assert status == 400 and result["error"]["code"] == "checksum_mismatch", result
    assert_nothing_left(s3_server, bucket)
    status, result = await put(proxy, "k", body, {"x-amz-checksum-crc64nvme": digest("crc64nvme", body)})
    assert status == 201, result


async def test_a_hex_digest_gets_a_hint(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    status, result = await put(proxy, "k", b"body", {"Content-MD5": hashlib.md5(b"body").hexdigest()})
    assert status == 400 and "hex digits" in result["error"]["message"] and "base64" in result["error"]["message"]
    assert_nothing_left(s3_server, bucket)


def is_single_put(line: str) -> bool:
    return line.startswith("PUT ") and "uploadId=" not in line


def is_part(line: str) -> bool:
    return line.startswith("PUT ") and "partNumber=" in line


def is_head(line: str) -> bool:
    return line.startswith("HEAD ")


def other_checksum(algorithm: str, request: Callable[[str], bool]) -> Callable[[str, bytes], bytes]:
    """For the relay: S3's answers to ``request`` give another ``algorithm`` checksum than the one they had."""
    header = re.compile(rb"(?im)^(x-amz-checksum-" + algorithm.encode() + rb":[ \t]*)[A-Za-z0-9+/=]+")
    other = digest(algorithm, b"not what was sent").encode()

    def alter(line: str, chunk: bytes) -> bytes:
        return header.sub(lambda match: match.group(1) + other, chunk) if request(line) else chunk

    return alter


# moto answers a part and a PutObject with the checksum sent, and a HEAD (ChecksumMode) with the checksum of
# the object it stored, which the server asks for after a completion whose answer has none.
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "algorithm, answer, size, operation",
    [
        ("crc32c", is_single_put, 100_000, "put_object"),
        ("crc32c", is_part, 2 * PART + 100, "upload_part"),
        ("crc32c", is_head, 2 * PART + 100, "complete_multipart_upload"),
        ("crc64nvme", is_part, 2 * PART + 100, "upload_part"),
        ("crc64nvme", is_head, 2 * PART + 100, "complete_multipart_upload"),
    ],
    ids=["put", "part", "object", "crc64nvme-part", "crc64nvme-object"],
)
async def test_s3_answering_another_checksum_is_a_502_that_leaves_nothing(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    algorithm: str,
    answer: Callable[[str], bool],
    size: int,
    operation: str,
) -> None:
    body = os.urandom(size)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.alter_response = other_checksum(algorithm, answer)
        proxy = await proxy_for(make_proxy, bucket, endpoint_url=relay.url, checksum_algorithm=algorithm)
        status, result = await put(proxy, "k", body)
        assert relay.altered >= 1
        metrics = await scrape(proxy)
    assert status == 502, result
    assert result["error"]["code"] == "upstream_error"
    assert "checksum" in result["error"]["message"] and "nothing was stored" in result["error"]["message"]
    assert value(metrics, "aiouploader_s3_checksum_mismatches_total", operation=operation) >= 1
    assert_nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_crc64nvme_upload_round_trips_with_its_full_object_checksum_compared(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    body = os.urandom(2 * PART + 100)
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        proxy = await proxy_for(make_proxy, bucket, endpoint_url=relay.url, checksum_algorithm="crc64nvme")
        status, result = await put(proxy, "k", body)
        assert status == 201, result
        async with proxy.session.get(proxy("/uploads/k")) as response:
            assert response.status == 200 and await response.read() == body
    whole = digest("crc64nvme", body)
    assert result["stored_checksums"] == {"crc64nvme": whole}
    assert recorded_checksums(s3_server, bucket, "k") == {"crc64nvme": whole}
    assert s3_server.client.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["ChecksumType"] == "FULL_OBJECT"
    heads = [head_fields(head) for head in relay.requests]
    create = next(fields for line, fields in heads if line.startswith("POST ") and "?uploads" in line)
    assert create["x-amz-checksum-type"] == "FULL_OBJECT"
    complete = next(fields for line, fields in heads if line.startswith("POST ") and "uploadId=" in line)
    assert complete["x-amz-checksum-crc64nvme"] == whole
    assert any(is_head(line) and fields.get("x-amz-checksum-mode") == "ENABLED" for line, fields in heads)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_in_a_versioned_bucket_the_mismatched_version_is_removed_and_the_previous_one_stays(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    client = s3_server.client
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    before = client.put_object(Bucket=bucket, Key="k", Body=b"the object before")["VersionId"]
    async with Relay.to_url(s3_server.endpoint_url) as relay:
        relay.alter_response = other_checksum("crc32c", is_head)
        proxy = await proxy_for(make_proxy, bucket, endpoint_url=relay.url)
        status, result = await put(proxy, "k", os.urandom(2 * PART + 100))
    assert status == 502, result
    versions = client.list_object_versions(Bucket=bucket, Prefix="k")
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [before]
    assert "DeleteMarkers" not in versions
    assert s3_server.get(bucket, "k") == b"the object before"
    assert s3_server.multipart_uploads(bucket) == []
