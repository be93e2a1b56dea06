"""CORS: a page on an allowed origin may upload and read the answer; others get no CORS headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiouploader.auth import hash_token
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .raw import closed

APP = "https://app.example"


async def cors_proxy(make_proxy: MakeProxy, bucket: str) -> Proxy:
    return await make_proxy(
        routes=[
            {
                "path": "/browser",
                "bucket": bucket,
                "prefix": "browser/",
                "auth": ["token"],
                "cors": {"allow_origins": [APP]},
            },
            {"path": "/internal", "bucket": bucket, "prefix": "internal/"},
        ],
        auth={"tokens": [{"name": "page", "sha256": hash_token("page-token")}]},
    )


async def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    headers = {"Origin": APP, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    async with proxy.session.options(
        proxy("/browser/a.txt"), headers={**headers, "X-Request-ID": "preflight-1"}
    ) as response:
        assert response.status == 204
        assert response.headers["X-Request-ID"] == "preflight-1"  # the contract: every response carries it
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert "PUT" in response.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
        assert "Origin" in response.headers["Vary"]


async def test_a_preflight_from_another_origin_or_for_another_method_is_refused(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    for origin, method in (("https://evil.example", "PUT"), (APP, "DELETE")):
        headers = {"Origin": origin, "Access-Control-Request-Method": method}
        async with proxy.session.options(proxy("/browser/a.txt"), headers=headers) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_responses_to_an_allowed_origin_expose_location_and_etag(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:

    proxy = await make_proxy(
        routes=[{"path": "/browser", "bucket": bucket, "auth": ["token"], "cors": {"allow_origins": ["*"]}}],
        auth={"tokens": [{"name": "page", "sha256": hash_token("page-token")}]},
    )
    headers = {"Origin": APP, "Authorization": "Bearer page-token"}
    async with proxy.session.put(proxy("/browser/a.txt"), data=b"hi", headers=headers) as response:
        assert response.status == 201
        assert response.headers["Access-Control-Allow-Origin"] == APP
        exposed = response.headers["Access-Control-Expose-Headers"]
        assert "Location" in exposed and "ETag" in exposed
    async with proxy.session.put(proxy("/browser/b.txt"), data=b"hi", headers={"Origin": APP}) as response:
        assert response.status == 401
        assert response.headers["Access-Control-Allow-Origin"] == APP  # the page can read why


async def test_routes_without_cors_send_no_cors_headers(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    async with proxy.session.put(proxy("/internal/a"), data=b"x", headers={"Origin": APP}) as response:
        assert response.status == 201
        assert "Access-Control-Allow-Origin" not in response.headers
    async with proxy.session.put(
        proxy("/browser/a"), data=b"x", headers={"Origin": "https://evil.example"}
    ) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.headers["Vary"] == "Origin"


async def test_every_answer_on_a_cors_route_varies_by_origin_so_caches_keep_them_apart(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    token = {"Authorization": "Bearer page-token"}
    async with proxy.session.put(proxy("/browser/c.txt"), data=b"hi", headers=token) as response:
        assert response.status == 201 and response.headers["Vary"] == "Origin"
    for origin in ({}, {"Origin": "https://evil.example"}, {"Origin": APP}):
        async with proxy.session.get(proxy("/browser/c.txt"), headers={**token, **origin}) as response:
            assert response.status == 200 and response.headers.getall("Vary") == ["Origin"]
    async with proxy.session.get(proxy("/browser/none"), headers=token) as response:
        assert response.status == 404 and response.headers["Vary"] == "Origin"
    async with proxy.session.put(proxy("/internal/c.txt"), data=b"hi") as response:
        assert response.status == 201 and "Vary" not in response.headers


async def test_downloads_to_an_allowed_origin_are_marked(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    auth = {"Origin": APP, "Authorization": "Bearer page-token"}
    async with proxy.session.put(proxy("/browser/a.txt"), data=b"hi", headers=auth) as response:
        assert response.status == 201
    for method in ("GET", "HEAD"):
        async with proxy.session.request(method, proxy("/browser/a.txt"), headers=auth) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == APP
            assert "ETag" in response.headers["Access-Control-Expose-Headers"]
            assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_refusal_of_expect_100_continue_to_an_allowed_origin_is_marked(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[
            {
                "path": "/browser",
                "bucket": bucket,
                "plugins": ["size_limit"],
                "plugin_settings": {"size_limit": {"max_size": 10}},
                "cors": {"allow_origins": [APP]},
            }
        ]
    )
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"PUT /browser/big HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\nContent-Length: 1000\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
    finally:
        await closed(writer)
    assert head.startswith("HTTP/1.1 413")
    assert f"Access-Control-Allow-Origin: {APP}\r\n" in head and "Vary: Origin\r\n" in head
    assert s3_server.keys(bucket) == []


async def preflight(proxy: Proxy, path: str, method: str, headers: str = "") -> tuple[int, Any]:
    asked = {"Origin": APP, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    async with proxy.session.options(proxy(path), headers=asked) as response:
        return response.status, response.headers


def listed(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(",")}


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_resumable_routes_tus_requests_allow_what_tus_clients_send_and_read(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    route = {"path": "/uploads", "bucket": bucket, "resumable": True, "cors": {"allow_origins": [APP]}}
    proxy = await make_proxy(routes=[route])
    status, headers = await preflight(proxy, "/uploads/", "POST", "tus-resumable,upload-length,upload-metadata")
    assert status == 204
    assert {"tus-resumable", "upload-length", "upload-metadata"} <= listed(headers["Access-Control-Allow-Headers"])
    creation = {"Origin": APP, "Tus-Resumable": "1.0.0", "Upload-Length": "5"}
    async with proxy.session.post(proxy("/uploads/"), headers=creation) as response:
        assert response.status == 201
        assert "location" in listed(response.headers["Access-Control-Expose-Headers"])
        location = response.headers["Location"]
    for method in ("HEAD", "PATCH", "DELETE"):
        status, headers = await preflight(proxy, location, method, "tus-resumable,upload-offset,content-type")
        assert status == 204 and method in headers["Access-Control-Allow-Methods"]
        assert {"tus-resumable", "upload-offset", "content-type"} <= listed(headers["Access-Control-Allow-Headers"])
    sent = {
        "Origin": APP,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    async with proxy.session.patch(proxy(location), data=b"hello", headers=sent) as response:
        assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == APP
        exposed = listed(response.headers["Access-Control-Expose-Headers"])
        assert {"upload-offset", "upload-result", "tus-resumable"} <= exposed
    assert s3_server.keys(bucket) != []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_resumable_routes_other_requests_keep_the_routes_cors_lists(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    route = {"path": "/uploads", "bucket": bucket, "resumable": True, "cors": {"allow_origins": [APP]}}
    proxy = await make_proxy(routes=[route])
    assert (await preflight(proxy, "/uploads/a.txt", "DELETE"))[0] == 403
    status, headers = await preflight(proxy, "/uploads/a.txt", "PUT")
    assert status == 204 and "upload-offset" not in listed(headers["Access-Control-Allow-Headers"])


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_allow_methods_may_list_patch(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    cors = {"allow_origins": [APP], "allow_methods": ["PUT", "PATCH"]}
    proxy = await make_proxy(routes=[{"path": "/browser", "bucket": bucket, "cors": cors}])
    status, headers = await preflight(proxy, "/browser/a.txt", "PATCH")
    assert status == 204 and headers["Access-Control-Allow-Methods"] == "PUT, PATCH"
