"""Authentication and authorization through the server: tokens, signed URLs, Expect: 100-continue."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from aiouploader.auth import hash_token, signed_url
from aiouploader.testing import MakeProxy, Proxy, S3Server

SECRET = "signing-secret-" + "x" * 30


async def auth_proxy(make_proxy: MakeProxy, bucket: str, schemes: list[str]) -> Proxy:
    return await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "auth": schemes, "plugins": ["checksum"]}],
        auth={
            "tokens": [
                {"name": "team", "sha256": hash_token("team-token"), "methods": ["PUT", "GET"], "prefix": "team/"},
            ],
            "signing_keys": {"k1": SECRET},
        },
    )


async def test_a_route_with_auth_refuses_anonymous_requests(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    async with proxy.session.put(proxy("/uploads/team/a"), data=b"x") as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with proxy.session.get(proxy("/uploads/team/a")) as response:
        assert response.status == 401
    assert s3_server.keys(bucket) == []


async def test_a_token_works_within_its_scope_only(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    auth = {"Authorization": "Bearer team-token"}
    async with proxy.session.put(proxy("/uploads/team/a"), data=b"hello", headers=auth) as response:
        assert response.status == 201
    async with proxy.session.get(proxy("/uploads/team/a"), headers=auth) as response:
        assert await response.read() == b"hello"
    async with proxy.session.put(proxy("/uploads/other/a"), data=b"x", headers=auth) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    async with proxy.session.post(proxy("/uploads/"), data=b"generated", headers=auth) as response:
        assert response.status == 403
    async with proxy.session.put(
        proxy("/uploads/team/b"), data=b"x", headers={"Authorization": "Bearer wrong"}
    ) as response:
        assert response.status == 401
    assert s3_server.keys(bucket) == ["team/a"]


async def test_a_signed_url_lets_a_browser_upload_through_the_chain(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    url = signed_url(
        proxy.url,
        SECRET,
        "k1",
        method="PUT",
        route="/uploads",
        key="in/a.pdf",
        expires_in=60,
        max_size=1000,
        content_type="application/pdf",
    )
    headers = {"Content-Type": "application/pdf"}
    async with proxy.session.put(URL(url, encoded=True), data=b"%PDF-", headers=headers) as response:
        result = await response.json()
        assert response.status == 201, result
        assert result["checksums"]["sha256"]
    async with proxy.session.put(URL(url, encoded=True), data=b"x", headers={"Content-Type": "text/html"}) as response:
        assert response.status == 403
    assert s3_server.keys(bucket) == ["in/a.pdf"]


async def test_a_signed_size_limit_holds_for_chunked_bodies(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    url = signed_url(proxy.url, SECRET, "k1", method="PUT", route="/uploads", key="c", expires_in=60, max_size=1000)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield os.urandom(100)

    async with proxy.session.put(URL(url, encoded=True), data=body()) as response:
        assert response.status == 413
    async with proxy.session.put(URL(url, encoded=True), data=os.urandom(1001)) as response:
        assert response.status == 413
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_signed_prefix_puts_generated_keys_under_it(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    url = signed_url(proxy.url, SECRET, "k1", method="POST", route="/uploads", prefix="user-7/", expires_in=60)
    form = aiohttp.FormData()
    form.add_field("f", b"photo", filename="me.jpg")
    async with proxy.session.post(URL(url, encoded=True), data=form) as response:
        assert response.status == 201
        uploads = (await response.json())["uploads"]
    async with proxy.session.post(URL(url, encoded=True), data=b"raw") as response:
        assert response.status == 201
        uploads.append(await response.json())
    assert all(u["key"].startswith("user-7/") for u in uploads)
    assert len(s3_server.keys(bucket)) == 2


async def test_an_expired_or_tampered_signed_url_is_refused(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    expired = signed_url(proxy.url, SECRET, "k1", method="PUT", route="/uploads", key="k", expires_in=-1)
    valid = signed_url(proxy.url, SECRET, "k1", method="PUT", route="/uploads", key="k", expires_in=60)
    for url in (expired, valid.replace("/uploads/k?", "/uploads/other?"), valid.replace("key_id=k1", "key_id=k9")):
        async with proxy.session.put(URL(url, encoded=True), data=b"x") as response:
            assert response.status in (401, 403), url
    async with proxy.session.get(URL(valid, encoded=True)) as response:
        assert response.status == 403
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_expect_100_continue_without_credentials_sends_no_body(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"PUT /uploads/team/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 401")
            assert b"100 Continue" not in head
            await reader.read()
    finally:
        writer.close()
    assert s3_server.keys(bucket) == []


def test_the_sign_command_prints_a_url_the_server_accepts(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[routes]]\npath = "/uploads"\nbucket = "bucket"\nauth = ["signed"]\n')
    env = {"PATH": "/usr/bin:/bin", "AIOUPLOADER_AUTH__SIGNING_KEYS__K1": SECRET}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiouploader",
            "sign",
            "--config",
            str(config),
            "--key-id",
            "k1",
            "--route",
            "/uploads",
            "--key",
            "a b.txt",
            "--expires-in",
            "300",
            "--max-size",
            "1MiB",
            "--base-url",
            "https://up.example",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    url = run.stdout.strip()
    assert url.startswith("https://up.example/uploads/a%20b.txt?expires=")
    expires = int(url.split("expires=")[1].split("&")[0])
    assert time.time() + 250 < expires <= time.time() + 301
    assert "max_size=1048576" in url and "signature=" in url


async def slow_body(release: asyncio.Event) -> AsyncIterator[bytes]:
    yield b"first"
    await release.wait()
    yield b"last"


async def test_uploads_beyond_the_limits_are_overloaded(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "auth": ["token"]}],
        server={"max_uploads": 2},
        auth={
            "tokens": [
                {"name": "one", "sha256": hash_token("one"), "max_uploads": 1},
                {"name": "two", "sha256": hash_token("two")},
            ]
        },
    )
    release = asyncio.Event()

    async def put(key: str, token: str, body: object) -> tuple[int, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}"}
        async with proxy.session.put(proxy(f"/uploads/{key}"), data=body, headers=headers) as response:
            await response.read()
            return response.status, dict(response.headers)

    slow = asyncio.create_task(put("slow", "one", slow_body(release)))
    await asyncio.sleep(0.3)
    status, headers = await put("same-token", "one", b"x")
    assert status == 503 and headers["Retry-After"]
    other = asyncio.create_task(put("other", "two", slow_body(release)))
    await asyncio.sleep(0.3)
    status, _ = await put("third", "two", b"x")
    assert status == 503
    release.set()
    assert (await slow)[0] == 201 and (await other)[0] == 201
    assert (await put("after", "one", b"x"))[0] == 201
    assert s3_server.keys(bucket) == ["after", "other", "slow"]
