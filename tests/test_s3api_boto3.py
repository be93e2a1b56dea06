"""The S3 API through boto3 (its defaults: CRC32 trailers, aws-chunked) and hand-signed requests, against moto and
rclone: every operation that exists, the payload modes, and what is refused with nothing stored."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from yarl import URL

from aiouploader import age
from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server
from tests.raw import closed
from tests.s3api_clients import (
    CREDENTIALS,
    SCOPED_AKID,
    SCOPED_SECRET,
    captured_client,
    client,
    default_client,
    headers_of,
    signed_headers,
    streaming_put,
)

BUCKET = "files"
PREFIX = "raw/"


async def s3_api_proxy(make_proxy: MakeProxy, bucket: str, tls: Path | None = None, **route: Any) -> Proxy:
    """A proxy whose route /files is the bucket ``files`` of its S3 API; over HTTPS with the certificate of a
    ``tls`` directory; ``s3_api``, ``s3`` and ``server``: more of those settings."""
    settings: dict[str, Any] = {"path": "/files", "bucket": bucket, "prefix": PREFIX, "s3_api_bucket": BUCKET}
    plugins = route.pop("plugin_defaults", {})
    s3_api = {"port": 0, "credentials": CREDENTIALS, **route.pop("s3_api", {})}
    server, s3 = route.pop("server", {}), route.pop("s3", {})
    if tls is not None:
        server = {**server, "tls_cert": str(tls / "cert.pem"), "tls_key": str(tls / "key.pem")}
    return await make_proxy(
        routes=[{**settings, "plugins": ["size_limit", "checksum", "virus_scan"], "allow_delete": True, **route}],
        plugins=plugins,
        s3_api=s3_api,
        s3=s3,
        server=server,
    )


async def encrypting_s3_api_proxy(make_proxy: MakeProxy, bucket: str, tmp_path: Path) -> tuple[Proxy, Path]:
    """A proxy whose S3 API route hashes and encrypts to a new age identity; the proxy and the identity's file."""
    secret, recipient = age.generate_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(f"{secret}\n")
    proxy = await s3_api_proxy(
        make_proxy,
        bucket,
        plugins=["checksum", "encryption"],
        plugin_defaults={"encryption": {"recipients": [recipient], "identity_file": str(identity)}},
    )
    return proxy, identity


async def age_decrypted(stored: bytes, identity: Path) -> bytes:
    """What the age command decrypts ``stored`` to with ``identity``."""
    source = identity.with_name("stored.age")
    source.write_bytes(stored)
    command = ["age", "-d", "-i", str(identity), str(source)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    return (await process.communicate())[0]


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


async def call(method: Any, **params: Any) -> Any:
    """Call boto3 in a thread (the server runs on this loop); a streamed body comes back read, as ``Body``."""

    def run() -> Any:
        answer = method(**params)
        if "Body" in answer:
            answer["Body"] = answer["Body"].read()
        return answer

    return await asyncio.to_thread(run)


@pytest.mark.parametrize("https", [False, True], ids=["http-signed-payload", "https-aws-chunked-crc32-trailer"])
async def test_put_object_stores_the_bytes_under_the_route_prefix_and_get_object_returns_them(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tls: Path, https: bool
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls if https else None)
    s3 = client(proxy.s3_api_url or "", verify=str(tls / "cert.pem"))
    body = bytes(range(256)) * 4096 + b"end"
    put = await call(s3.put_object, Bucket=BUCKET, Key="dir/ä b+c.bin", Body=io.BytesIO(body), Metadata={"a": "1"})
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3_server.keys(bucket) == ["raw/dir/ä b+c.bin"]
    assert s3_server.get(bucket, "raw/dir/ä b+c.bin") == body
    assert put["ETag"] == s3_server.client.head_object(Bucket=bucket, Key="raw/dir/ä b+c.bin")["ETag"]
    got = await call(s3.get_object, Bucket=BUCKET, Key="dir/ä b+c.bin")
    assert got["Body"] == body and got["ContentLength"] == len(body) and got["Metadata"] == {"a": "1"}


async def test_get_object_serves_a_range_and_honours_conditions(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    body = bytes(range(256)) * 100
    etag = (await call(s3.put_object, Bucket=BUCKET, Key="k", Body=body))["ETag"]
    part = await call(s3.get_object, Bucket=BUCKET, Key="k", Range="bytes=100-299")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-299/{len(body)}" and part["Body"] == body[100:300]
    head_of_part = await call(s3.head_object, Bucket=BUCKET, Key="k", Range="bytes=100-299")
    assert head_of_part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert (head_of_part["ContentRange"], head_of_part["ContentLength"]) == (f"bytes 100-299/{len(body)}", 200)
    with pytest.raises(ClientError) as raised:
        await call(s3.get_object, Bucket=BUCKET, Key="k", IfNoneMatch=etag)
    assert error_of(raised)[0] == 304
    with pytest.raises(ClientError) as raised:
        await call(s3.get_object, Bucket=BUCKET, Key="k", IfMatch='"other"')
    assert error_of(raised) == (412, "PreconditionFailed")
    head = await call(s3.head_object, Bucket=BUCKET, Key="k")
    assert head["ContentLength"] == len(body) and head["ETag"] == etag


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_get_object_and_head_object_answer_the_recorded_sha256_as_repr_digest(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    body = bytes(range(256)) * 1000
    await call(s3.put_object, Bucket=BUCKET, Key="k", Body=body)
    expected = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    got = await call(s3.get_object, Bucket=BUCKET, Key="k")
    assert got["Body"] == body and got["ResponseMetadata"]["HTTPHeaders"]["repr-digest"] == expected
    head = await call(s3.head_object, Bucket=BUCKET, Key="k")
    assert head["ResponseMetadata"]["HTTPHeaders"]["repr-digest"] == expected


async def test_a_missing_key_is_no_such_key(make_proxy: MakeProxy, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    with pytest.raises(ClientError) as raised:
        await call(s3.get_object, Bucket=BUCKET, Key="absent")
    assert error_of(raised) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as raised:
        await call(s3.head_object, Bucket=BUCKET, Key="absent")
    assert error_of(raised)[0] == 404


async def test_delete_object_removes_it_where_the_route_allows_delete(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    await call(s3.put_object, Bucket=BUCKET, Key="gone", Body=b"x")
    deleted = await call(s3.delete_object, Bucket=BUCKET, Key="gone")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_delete_object_is_refused_where_the_route_does_not_allow_delete(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, allow_delete=False)
    s3 = client(proxy.s3_api_url or "")
    await call(s3.put_object, Bucket=BUCKET, Key="kept", Body=b"x")
    with pytest.raises(ClientError) as raised:
        await call(s3.delete_object, Bucket=BUCKET, Key="kept")
    assert error_of(raised) == (405, "MethodNotAllowed")
    assert s3_server.keys(bucket) == ["raw/kept"]


async def test_list_objects_v2_shows_keys_without_the_route_prefix(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3_server.client.put_object(Bucket=bucket, Key="elsewhere", Body=b"not the route's")
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    for key in ("a.txt", "d/b.txt", "d/c.txt", "e f+g.txt"):
        await call(s3.put_object, Bucket=BUCKET, Key=key, Body=key.encode())
    listed = await call(s3.list_objects_v2, Bucket=BUCKET)
    assert [item["Key"] for item in listed["Contents"]] == ["a.txt", "d/b.txt", "d/c.txt", "e f+g.txt"]
    assert listed["KeyCount"] == 4 and listed["Name"] == BUCKET
    assert [item["Size"] for item in listed["Contents"]] == [5, 7, 7, 9]
    nested = await call(s3.list_objects_v2, Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["d/"]
    assert [item["Key"] for item in nested["Contents"]] == ["a.txt", "e f+g.txt"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="d/", PaginationConfig={"PageSize": 1})
    keys = await asyncio.to_thread(lambda: [item["Key"] for page in pages for item in page.get("Contents", [])])
    assert keys == ["d/b.txt", "d/c.txt"]


async def test_head_bucket_and_get_bucket_location_answer(make_proxy: MakeProxy, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    assert (await call(s3.head_bucket, Bucket=BUCKET))["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (await call(s3.get_bucket_location, Bucket=BUCKET)).get("LocationConstraint") is None
    with pytest.raises(ClientError) as raised:
        await call(s3.list_objects_v2, Bucket="no-such-bucket")
    assert error_of(raised) == (404, "NoSuchBucket")


async def test_presigned_put_and_get_urls_work(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "p q.txt"}, ExpiresIn=60)
    async with proxy.session.put(URL(put_url, encoded=True), data=b"presigned body") as response:
        assert response.status == 200, await response.text()
    assert s3_server.get(bucket, "raw/p q.txt") == b"presigned body"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "p q.txt"}, ExpiresIn=60)
    async with proxy.session.get(URL(get_url, encoded=True)) as response:
        assert response.status == 200 and await response.read() == b"presigned body"
    async with proxy.session.get(URL(get_url.replace("p%20q", "other"), encoded=True)) as response:
        assert response.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in await response.read()


async def test_presigned_urls_of_boto3s_defaults_signature_version_2_work(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = default_client(proxy.s3_api_url or "")
    params = {"Bucket": BUCKET, "Key": "v2 é.txt", "ContentType": "text/plain"}
    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=60)
    assert "AWSAccessKeyId=" in put_url and "X-Amz-" not in put_url
    async with proxy.session.put(URL(put_url, encoded=True), data=b"v2", headers={"Content-Type": "text/html"}) as r:
        assert r.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in await r.read()  # not the signed type
    async with proxy.session.put(URL(put_url, encoded=True), data=b"v2", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 200, await r.text()
    assert s3_server.get(bucket, "raw/v2 é.txt") == b"v2"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "v2 é.txt"}, ExpiresIn=60)
    async with proxy.session.get(URL(get_url, encoded=True)) as response:
        assert response.status == 200 and await response.read() == b"v2"
        assert response.headers["Content-Type"] == "text/plain"
    expires = URL(get_url, encoded=True).query["Expires"]
    later = get_url.replace(f"Expires={expires}", f"Expires={int(expires) + 1}")
    for tampered in (get_url.replace("v2%20", "v3%20"), later):
        async with proxy.session.get(URL(tampered, encoded=True)) as response:
            assert response.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in await response.read()
    stranger = default_client(proxy.s3_api_url or "", "UNKNOWN", "x")
    unknown = stranger.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "v2 é.txt"})
    async with proxy.session.get(URL(unknown, encoded=True)) as response:
        assert response.status == 403 and b"<Code>InvalidAccessKeyId</Code>" in await response.read()
    listing = s3.generate_presigned_url("list_objects", Params={"Bucket": BUCKET})  # signed as "/files/"
    async with proxy.session.get(URL(listing, encoded=True)) as response:
        assert response.status == 200 and "<Key>v2%20%C3%A9.txt</Key>" in await response.text()  # encoding-type=url


async def test_a_signature_version_2_url_for_one_operation_does_not_authorise_another(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = default_client(proxy.s3_api_url or "")
    await call(client(proxy.s3_api_url or "").put_object, Bucket=BUCKET, Key="kept.txt", Body=b"original")
    upload_id = (await call(s3.create_multipart_upload, Bucket=BUCKET, Key="kept.txt"))["UploadId"]
    params = {"Bucket": BUCKET, "Key": "kept.txt", "UploadId": upload_id, "PartNumber": 1}
    url = URL(s3.generate_presigned_url("upload_part", Params=params), encoded=True)
    auth = "&".join(f"{name}={quote(url.query[name], safe='')}" for name in ("AWSAccessKeyId", "Signature", "Expires"))
    # Signed over "?partNumber=1&uploadId=…"; behind a "#", which a URL parser takes for a fragment, the
    # server would see no operation's parameters and do a PutObject.
    target = f"{url.raw_path}?{auth}&x-id=#&uploadId={upload_id}&partNumber=1"
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        head = f"PUT {target} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nContent-Length: 8\r\nConnection: close\r\n"
        writer.write(head.encode() + b"\r\nATTACKER")
        answer = await reader.read()
    finally:
        await closed(writer)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"<Code>InvalidURI</Code>" in answer
    assert s3_server.get(bucket, "raw/kept.txt") == b"original"
    await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="kept.txt", UploadId=upload_id)


@pytest.mark.parametrize(
    ("expires_in", "status", "code"),
    [(-10, 403, "AccessDenied"), (8 * 86400, 400, "AuthorizationQueryParametersError")],
    ids=["expired", "beyond-a-week"],
)
async def test_a_signature_version_2_url_holds_for_at_most_a_week_and_not_after_it_expires(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, expires_in: int, status: int, code: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = default_client(proxy.s3_api_url or "")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "late"}, ExpiresIn=expires_in)
    async with proxy.session.put(URL(url, encoded=True), data=b"late") as response:
        assert response.status == status and f"<Code>{code}</Code>".encode() in await response.read()
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


async def test_a_wrong_secret_is_signature_does_not_match_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "", secret="not-the-secret")
    with pytest.raises(ClientError) as raised:
        await call(s3.put_object, Bucket=BUCKET, Key="k", Body=b"x" * 2_000_000)
    assert error_of(raised) == (403, "SignatureDoesNotMatch")
    unknown = client(proxy.s3_api_url or "", akid="UNKNOWNKEY")
    with pytest.raises(ClientError) as raised:
        await call(unknown.put_object, Bucket=BUCKET, Key="k", Body=b"x")
    assert error_of(raised) == (403, "InvalidAccessKeyId")
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


async def test_credentials_reach_only_their_prefix_and_methods(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "", akid=SCOPED_AKID, secret=SCOPED_SECRET)
    await call(s3.put_object, Bucket=BUCKET, Key="ci/ok.txt", Body=b"mine")
    for operation, params in (
        (s3.put_object, {"Key": "other/k.txt", "Body": b"not mine"}),
        (s3.get_object, {"Key": "other/k.txt"}),
        (s3.delete_object, {"Key": "ci/ok.txt"}),
        (s3.list_objects_v2, {}),
    ):
        with pytest.raises(ClientError) as raised:
            await call(operation, Bucket=BUCKET, **params)
        assert error_of(raised) == (403, "AccessDenied"), operation
    listed = await call(s3.list_objects_v2, Bucket=BUCKET, Prefix="ci/")
    assert [item["Key"] for item in listed["Contents"]] == ["ci/ok.txt"]
    assert s3_server.keys(bucket) == ["raw/ci/ok.txt"]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("backend", ["stub", "clamd"])
async def test_eicar_is_refused_as_infected_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = {"backend": backend}
    if backend == "clamd":
        settings["clamd_address"] = request.getfixturevalue("clamd_server").tcp_address
    proxy = await s3_api_proxy(make_proxy, bucket, plugin_defaults={"virus_scan": settings})
    s3 = client(proxy.s3_api_url or "")
    with pytest.raises(ClientError) as raised:
        await call(s3.put_object, Bucket=BUCKET, Key="eicar.com", Body=b"x" * 100_000 + EICAR)
    assert error_of(raised) == (422, "Infected")
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_body_over_the_size_limit_is_entity_too_large(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, plugin_settings={"size_limit": {"max_size": 1000}})
    s3 = client(proxy.s3_api_url or "")
    with pytest.raises(ClientError) as raised:
        await call(s3.put_object, Bucket=BUCKET, Key="big", Body=b"x" * 1001)
    assert error_of(raised) == (413, "EntityTooLarge")
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_operations_that_do_not_exist_are_not_implemented(make_proxy: MakeProxy, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    for operation, params in (
        (s3.get_object_acl, {"Key": "k"}),
        (s3.list_buckets, {}),
        (s3.list_object_versions, {}),
        (s3.delete_bucket, {}),
        (s3.copy_object, {"Key": "k", "CopySource": f"{BUCKET}/other"}),
        (s3.put_object_tagging, {"Key": "k", "Tagging": {"TagSet": []}}),
    ):
        params = params if operation == s3.list_buckets else {"Bucket": BUCKET, **params}
        with pytest.raises(ClientError) as raised:
            await call(operation, **params)
        assert error_of(raised) == (501, "NotImplemented"), operation


# ---- payload modes, each checked before anything is stored ----------------------------------------------------


async def put(proxy: Proxy, key: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    async with proxy.session.put(URL(f"{proxy.s3_api_url}/{BUCKET}/{key}"), headers=headers, data=body) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_signed_payload_hash_is_checked_before_the_object_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    url = f"{proxy.s3_api_url}/{BUCKET}/signed"
    body = b"signed payload" * 1000
    status, _ = await put(proxy, "signed", signed_headers("PUT", url, hashlib.sha256(body).hexdigest()), body)
    assert status == 200 and s3_server.get(bucket, "raw/signed") == body
    headers = signed_headers("PUT", url.replace("signed", "other"), hashlib.sha256(body).hexdigest())
    status, text = await put(proxy, "other", headers, body[:-1] + b"!")
    assert status == 400 and "<Code>XAmzContentSHA256Mismatch</Code>" in text
    assert s3_server.keys(bucket) == ["raw/signed"]


@pytest.mark.parametrize("trailer", [False, True], ids=["signed-chunks", "signed-chunks-trailer"])
async def test_signed_chunks_are_decoded_and_a_tampered_one_stores_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, trailer: bool
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    chunks = [b"a" * 65536, b"b" * 65536, b"tail"]
    payload = b"".join(chunks)
    crc = ("x-amz-checksum-crc32", base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode())
    headers, body = streaming_put(f"{proxy.s3_api_url}/{BUCKET}/chunked", chunks, crc if trailer else None)
    assert await put(proxy, "chunked", headers, body) == (200, "")
    assert s3_server.get(bucket, "raw/chunked") == payload
    headers, body = streaming_put(f"{proxy.s3_api_url}/{BUCKET}/tampered", chunks, crc if trailer else None)
    status, text = await put(proxy, "tampered", headers, body.replace(b"tail", b"tale"))
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text
    assert s3_server.keys(bucket) == ["raw/chunked"] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_wrong_trailing_checksum_is_bad_digest_and_stores_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    wrong = ("x-amz-checksum-crc32", base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode())
    headers, body = streaming_put(f"{proxy.s3_api_url}/{BUCKET}/k", [b"payload"], wrong)
    status, text = await put(proxy, "k", headers, body)
    assert status == 400 and "<Code>BadDigest</Code>" in text
    s3 = client(proxy.s3_api_url or "")
    with pytest.raises(ClientError) as raised:
        await call(s3.put_object, Bucket=BUCKET, Key="k", Body=b"payload", ChecksumCRC32=wrong[1])
    assert error_of(raised) == (400, "BadDigest")
    # boto3's own STREAMING-UNSIGNED-PAYLOAD-TRAILER body (what it sends over HTTPS), its trailer changed
    captured, sent = captured_client((proxy.s3_api_url or "").replace("http:", "https:"))
    captured.put_object(Bucket=BUCKET, Key="k", Body=io.BytesIO(b"payload"))
    request, body = sent[0]
    right = base64.b64encode(zlib.crc32(b"payload").to_bytes(4, "big"))
    assert right in body
    headers = {k: v for k, v in headers_of(request).items() if k.lower() not in ("transfer-encoding", "content-length")}
    status, text = await put(proxy, "k", headers, body.replace(right, wrong[1].encode()))
    assert status == 400 and "<Code>BadDigest</Code>" in text
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "config", [{}, {"request_checksum_calculation": "when_required"}], ids=["default-checksums", "when-required"]
)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_boto3_checksum_settings_store_the_bytes_unframed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, config: dict[str, str], tls: Path, https: bool
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls if https else None)
    s3 = client(proxy.s3_api_url or "", verify=str(tls / "cert.pem"), **config)
    body = b"0123456789" * 300_000
    for algorithm in ("CRC32", "SHA1", "SHA256"):
        await call(s3.put_object, Bucket=BUCKET, Key=algorithm, Body=io.BytesIO(body), ChecksumAlgorithm=algorithm)
        assert s3_server.get(bucket, f"raw/{algorithm}") == body
    got = await call(s3.get_object, Bucket=BUCKET, Key="CRC32", ChecksumMode="ENABLED")
    assert got["Body"] == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_encrypted_route_stores_age_and_boto3_reads_plaintext(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy, identity = await encrypting_s3_api_proxy(make_proxy, bucket, tmp_path)
    s3 = client(proxy.s3_api_url or "")
    body = bytes(range(256)) * 1000
    await call(s3.put_object, Bucket=BUCKET, Key="secret.bin", Body=io.BytesIO(body))
    stored = s3_server.get(bucket, "raw/secret.bin")
    assert stored.startswith(b"age-encryption.org/v1\n") and body not in stored
    assert await age_decrypted(stored, identity) == body
    got = await call(s3.get_object, Bucket=BUCKET, Key="secret.bin", ChecksumMode="ENABLED")
    assert got["Body"] == body
    ranged = await call(s3.get_object, Bucket=BUCKET, Key="secret.bin", Range="bytes=70000-70099")
    assert ranged["Body"] == body[70000:70100]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_request_dated_beyond_fifteen_minutes_is_request_time_too_skewed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    url = f"{proxy.s3_api_url}/{BUCKET}/late"
    then = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
    headers = signed_headers("PUT", url, hashlib.sha256(b"late").hexdigest(), when=then)
    status, text = await put(proxy, "late", headers, b"late")
    assert status == 403 and "<Code>RequestTimeTooSkewed</Code>" in text
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_refused_put_gets_no_100_continue_so_its_body_is_never_sent(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    url = URL(f"{proxy.s3_api_url}/{BUCKET}/refused")
    headers = signed_headers("PUT", str(url), "UNSIGNED-PAYLOAD", secret="not-the-secret")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"PUT {url.raw_path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{head}"
        "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    answer = await reader.readuntil(b"</Error>")
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403 ") and b"100 Continue" not in answer
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer
    assert s3_server.keys(bucket) == []
