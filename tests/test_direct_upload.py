"""Direct-to-S3 routes: PUT answers 307 to a presigned URL, for routes whose plugins need no bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from aiouploader.app import make_app
from aiouploader.auth import hash_token, signed_url
from aiouploader.config import ConfigError
from aiouploader.testing import MakeProxy, S3Server, proxy_config


async def test_put_is_redirected_to_a_presigned_url_that_stores_the_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/direct", "bucket": bucket, "prefix": "d/", "direct_upload": True, "auth": ["token"]}],
        auth={"tokens": [{"name": "t", "sha256": hash_token("t")}]},
    )
    headers = {"Authorization": "Bearer t", "Content-Type": "text/plain"}
    async with proxy.session.put(proxy("/direct/a.txt"), data=b"hello", headers=headers, allow_redirects=False) as r:
        assert r.status == 307
        location = r.headers["Location"]
    assert (location.startswith(s3_server.endpoint_url) and "Signature" in location) or "X-Amz-Signature" in location
    async with (
        aiohttp.ClientSession() as direct,
        direct.put(URL(location, encoded=True), data=b"hello", headers={"Content-Type": "text/plain"}) as r,
    ):
        assert r.status == 200
    assert s3_server.get(bucket, "d/a.txt") == b"hello"
    async with proxy.session.put(proxy("/direct/b.txt"), data=b"x", allow_redirects=False) as r:
        assert r.status == 401
    assert s3_server.keys(bucket) == ["d/a.txt"]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_direct_route_with_plugins_that_need_the_bytes_is_refused(s3_server: S3Server) -> None:
    config = proxy_config(
        s3_server.endpoint_url, [{"path": "/d", "bucket": "bucket", "direct_upload": True, "plugins": ["checksum"]}]
    )
    with pytest.raises(ConfigError, match=r"direct_upload .* 'checksum' must see them"):
        make_app(config)


SECRET = "s" * 32


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)  # moto does not check presigned signatures
async def test_a_signed_urls_size_limit_holds_on_the_presigned_url(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/direct", "bucket": bucket, "direct_upload": True, "auth": ["signed"]}],
        auth={"signing_keys": {"k1": SECRET}},
    )
    url = signed_url(proxy(""), SECRET, "k1", method="PUT", route="/direct", expires_in=60, key="a.bin", max_size=10)

    async def chunked() -> AsyncIterator[bytes]:
        yield b"tiny"

    async with proxy.session.put(URL(url, encoded=True), data=chunked(), allow_redirects=False) as r:
        assert r.status == 400 and "Content-Length" in (await r.json())["error"]["message"]
    async with proxy.session.put(URL(url, encoded=True), data=b"tiny", allow_redirects=False) as r:
        assert r.status == 307
        location = URL(r.headers["Location"], encoded=True)
    async with aiohttp.ClientSession() as direct:
        async with direct.put(location, data=b"x" * 5000) as r:
            assert r.status == 403  # S3 checks the signed Content-Length
        assert s3_server.keys(bucket) == []
        async with direct.put(location, data=b"tiny") as r:
            assert r.status == 200
    assert s3_server.get(bucket, "a.bin") == b"tiny"


async def test_if_none_match_goes_with_the_presigned_url(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(routes=[{"path": "/direct", "bucket": bucket, "direct_upload": True}])
    s3_server.client.put_object(Bucket=bucket, Key="taken", Body=b"first")
    headers = {"If-None-Match": "*"}
    async with proxy.session.put(proxy("/direct/taken"), data=b"x", headers=headers, allow_redirects=False) as r:
        assert r.status == 307
        location = URL(r.headers["Location"], encoded=True)
    assert "if-none-match" in location.query["X-Amz-SignedHeaders"]
    if s3_server.kind == "moto":  # rclone takes the signed header but does not act on it
        async with aiohttp.ClientSession() as direct, direct.put(location, data=b"x", headers=headers) as r:
            assert r.status == 412
    assert s3_server.get(bucket, "taken") == b"first"


async def test_a_signed_size_limit_holds_whatever_content_type_a_put_claims(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    """multipart/form-data is a form only on a POST to the route: a PUT claiming it is limited by its length."""
    proxy = await make_proxy(
        routes=[{"path": "/direct", "bucket": bucket, "direct_upload": True, "auth": ["signed"]}],
        auth={"signing_keys": {"k1": SECRET}},
    )
    url = signed_url(proxy(""), SECRET, "k1", method="PUT", route="/direct", expires_in=60, key="x.bin", max_size=10)
    for expect in ({}, {"Expect": "100-continue"}):
        headers = {"Content-Type": "multipart/form-data", **expect}
        async with proxy.session.put(
            URL(url, encoded=True), data=b"x" * 300_000, headers=headers, allow_redirects=False
        ) as r:
            assert r.status == 413, expect
            assert "Location" not in r.headers
    assert s3_server.keys(bucket) == []


async def test_the_presigned_url_expires_no_later_than_the_signed_url(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/direct", "bucket": bucket, "direct_upload": True, "auth": ["signed"]}],
        auth={"signing_keys": {"k1": SECRET}},
    )
    url = signed_url(proxy(""), SECRET, "k1", method="PUT", route="/direct", expires_in=5, key="a.bin")
    async with proxy.session.put(URL(url, encoded=True), data=b"tiny", allow_redirects=False) as r:
        assert r.status == 307
        location = URL(r.headers["Location"], encoded=True)
    assert 1 <= int(location.query["X-Amz-Expires"]) <= 5  # not direct_upload_expires, 300
