"""The S3 API's bucket operations through boto3: ListObjects (version 1) with markers, and CreateBucket, which
finds a route's bucket there already and makes no other."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from yarl import URL

from aiouploader.testing import MakeProxy, S3Server
from tests.s3api_clients import AKID, CREDENTIALS, SCOPED_AKID, SCOPED_SECRET, client, signed_headers
from tests.test_s3api_boto3 import BUCKET, call, error_of, s3_api_proxy

GET_ONLY_AKID, GET_ONLY_SECRET = "GETONLYKEY", "secret-of-a-reader"


def names(s3_server: S3Server) -> list[str]:
    """The buckets of the store behind the proxy."""
    return sorted(b["Name"] for b in s3_server.client.list_buckets()["Buckets"])


async def put_keys(s3: Any, *keys: str) -> None:
    for key in keys:
        await call(s3.put_object, Bucket=BUCKET, Key=key, Body=key.encode())


async def pages(s3: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page boto3's ListObjects paginator reads, one key or common prefix a page."""
    paginator = s3.get_paginator("list_objects")
    return await asyncio.to_thread(
        lambda: list(paginator.paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 1}, **params))
    )


# ---- ListObjects (version 1) ------------------------------------------------------------------------------------


async def test_list_objects_shows_keys_without_the_route_prefix(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    s3_server.client.put_object(Bucket=bucket, Key="elsewhere", Body=b"not the route's")
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    await put_keys(s3, "a.txt", "d/b.txt", "d/c.txt", "e f+g.txt")
    listed = await call(s3.list_objects, Bucket=BUCKET)
    assert [item["Key"] for item in listed["Contents"]] == ["a.txt", "d/b.txt", "d/c.txt", "e f+g.txt"]
    assert [item["Size"] for item in listed["Contents"]] == [5, 7, 7, 9]
    assert listed["Name"] == BUCKET and listed["Marker"] == "" and listed["IsTruncated"] is False
    assert "NextMarker" not in listed and "KeyCount" not in listed
    nested = await call(s3.list_objects, Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["d/"]
    assert [item["Key"] for item in nested["Contents"]] == ["a.txt", "e f+g.txt"]
    after = await call(s3.list_objects, Bucket=BUCKET, Marker="d/b.txt", Prefix="d/")
    assert [item["Key"] for item in after["Contents"]] == ["d/c.txt"] and after["Marker"] == "d/b.txt"


async def test_list_objects_pages_follow_the_last_key_without_a_delimiter(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    await put_keys(s3, "a", "b/1", "b/2", "c")
    read = await pages(s3)
    assert [[item["Key"] for item in page["Contents"]] for page in read] == [["a"], ["b/1"], ["b/2"], ["c"]]
    assert [page["IsTruncated"] for page in read] == [True, True, True, False]
    assert all("NextMarker" not in page for page in read)


async def test_list_objects_pages_follow_next_marker_with_a_delimiter(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    await put_keys(s3, "a", "b/1", "b/2", "c", "d/1")
    read = await pages(s3, Delimiter="/")
    shown = [
        [item["Key"] for item in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        for page in read
    ]
    assert shown == [["a"], ["b/"], ["c"], ["d/"]]
    assert [page.get("NextMarker") for page in read] == ["a", "b/", "c", None]


async def test_list_objects_url_encodes_keys_and_markers_when_asked(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    await put_keys(s3, "a b/1", "a b/2", "c d")
    url = f"{proxy.s3_api_url}/{BUCKET}?delimiter=%2F&encoding-type=url&marker=a%20a&max-keys=1"
    headers = signed_headers("GET", url, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    async with proxy.session.get(URL(url, encoded=True), headers=headers) as response:
        text = await response.text()
    assert response.status == 200, text
    assert "<Marker>a%20a</Marker><NextMarker>a%20b/</NextMarker>" in text
    assert "<CommonPrefixes><Prefix>a%20b/</Prefix></CommonPrefixes>" in text


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_list_objects_reaches_only_the_credentials_prefix(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    await put_keys(client(proxy.s3_api_url or ""), "ci/mine.txt", "other.txt")
    s3 = client(proxy.s3_api_url or "", akid=SCOPED_AKID, secret=SCOPED_SECRET)
    with pytest.raises(ClientError) as raised:
        await call(s3.list_objects, Bucket=BUCKET)
    assert error_of(raised) == (403, "AccessDenied")
    listed = await call(s3.list_objects, Bucket=BUCKET, Prefix="ci/")
    assert [item["Key"] for item in listed["Contents"]] == ["ci/mine.txt"]


# ---- CreateBucket -------------------------------------------------------------------------------------------------


async def test_create_bucket_of_the_routes_bucket_is_200_in_us_east_1_and_creates_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    before = names(s3_server)
    for akid, secret in ((AKID, None), (SCOPED_AKID, SCOPED_SECRET)):
        s3 = client(proxy.s3_api_url or "", akid=akid, **({"secret": secret} if secret else {}))
        created = await call(s3.create_bucket, Bucket=BUCKET)
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 200 and created["Location"] == f"/{BUCKET}"
    assert names(s3_server) == before and BUCKET not in before
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
async def test_create_bucket_elsewhere_than_us_east_1_is_bucket_already_owned_by_you(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, region: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, s3={"region": region})
    s3 = client(proxy.s3_api_url or "")
    elsewhere = "eu-west-1" if region == "us-east-1" else region
    with pytest.raises(ClientError) as raised:
        await call(s3.create_bucket, Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": elsewhere})
    assert error_of(raised) == (409, "BucketAlreadyOwnedByYou")
    if region != "us-east-1":
        with pytest.raises(ClientError) as raised:
            await call(s3.create_bucket, Bucket=BUCKET)
        assert error_of(raised) == (409, "BucketAlreadyOwnedByYou")
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_create_bucket_needs_credentials_that_may_put_on_the_route(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    reader = {"access_key_id": GET_ONLY_AKID, "secret_access_key": GET_ONLY_SECRET, "methods": ["GET"]}
    proxy = await s3_api_proxy(make_proxy, bucket, s3_api={"credentials": [*CREDENTIALS, reader]})
    s3 = client(proxy.s3_api_url or "", akid=GET_ONLY_AKID, secret=GET_ONLY_SECRET)
    with pytest.raises(ClientError) as raised:
        await call(s3.create_bucket, Bucket=BUCKET)
    assert error_of(raised) == (403, "AccessDenied")


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_create_bucket_of_another_name_is_refused_and_creates_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    before = names(s3_server)
    for name, error in (("another-bucket", (403, "AccessDenied")), (bucket, (403, "AccessDenied"))):
        with pytest.raises(ClientError) as raised:
            await call(s3.create_bucket, Bucket=name)
        assert error_of(raised) == error, name
    with pytest.raises(ClientError) as raised:
        await call(s3.create_bucket, Bucket="Not_A_Bucket")
    assert error_of(raised) == (400, "InvalidBucketName")
    assert names(s3_server) == before


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_create_bucket_asking_for_acls_or_object_lock_is_not_implemented(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    for params in ({"ACL": "public-read"}, {"GrantRead": f"id={AKID}"}, {"ObjectLockEnabledForBucket": True}):
        with pytest.raises(ClientError) as raised:
            await call(s3.create_bucket, Bucket=BUCKET, **params)
        assert error_of(raised) == (501, "NotImplemented"), params
    assert (await call(s3.create_bucket, Bucket=BUCKET, ACL="private"))["Location"] == f"/{BUCKET}"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [
        b"<CreateBucketConfiguration><LocationConstraint>",
        b'<!DOCTYPE c [<!ENTITY e "us-east-1">]><CreateBucketConfiguration/>',
        b"<Configuration><LocationConstraint>us-east-1</LocationConstraint></Configuration>",
    ],
    ids=["unclosed", "entity", "another-root"],
)
async def test_create_bucket_with_a_malformed_configuration_is_malformed_xml(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, body: bytes
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    url = f"{proxy.s3_api_url}/{BUCKET}"
    headers = signed_headers("PUT", url, hashlib.sha256(body).hexdigest())
    async with proxy.session.put(URL(url), headers=headers, data=body) as response:
        assert response.status == 400 and "<Code>MalformedXML</Code>" in await response.text()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_refused_create_bucket_gets_no_100_continue_so_its_body_is_never_sent(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    url = URL(f"{proxy.s3_api_url}/another-bucket")
    head = "".join(
        f"{name}: {value}\r\n" for name, value in signed_headers("PUT", str(url), "UNSIGNED-PAYLOAD").items()
    )
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"PUT {url.raw_path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{head}"
        "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    answer = await reader.readuntil(b"</Error>")
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403 ") and b"100 Continue" not in answer
    assert b"<Code>AccessDenied</Code>" in answer
