"""CORS: a page on an allowed origin may upload and read the answer; others get no CORS headers."""

from __future__ import annotations

from aiouploader.auth import hash_token
from aiouploader.testing import MakeProxy, Proxy, S3Server

APP = "https://app.example"


async def cors_proxy(make_proxy: MakeProxy, bucket: str) -> Proxy:
    return await make_proxy(
        routes=[
            {"path": "/browser", "bucket": bucket, "auth": ["token"], "cors": {"allow_origins": [APP]}},
            {"path": "/internal", "bucket": bucket},
        ],
        auth={"tokens": [{"name": "page", "sha256": hash_token("page-token")}]},
    )


async def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await cors_proxy(make_proxy, bucket)
    headers = {"Origin": APP, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    async with proxy.session.options(proxy("/browser/a.txt"), headers=headers) as response:
        assert response.status == 204
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
