"""Authentication and authorization through the server: tokens, signed URLs, Expect: 100-continue."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiouploader.auth import hash_token, signed_url
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .raw import closed

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


async def raw_exchange(proxy: Proxy, request: bytes) -> tuple[int, bytes, dict[str, Any]]:
    """Send ``request`` as is; the status, head and JSON body of the answer (the server closes after it)."""
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        await closed(writer)
    return int(head.split(b" ", 2)[1]), head, json.loads(body)


async def test_a_signature_that_is_not_hex_is_forbidden(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    url = signed_url(proxy.url, SECRET, "k1", method="PUT", route="/uploads", key="k", expires_in=60)
    for signature in ("%C3%A9" * 32, "%FF" * 64):
        forged = url.rsplit("signature=", 1)[0] + "signature=" + signature
        async with proxy.session.put(URL(forged, encoded=True), data=b"x") as response:
            assert response.status == 403
            assert "signature does not match" in (await response.json())["error"]["message"]
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_bearer_token_that_is_not_utf8_is_invalid(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    status, head, body = await raw_exchange(
        proxy,
        b"GET /uploads/team/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alpha\xff\r\nConnection: close\r\n\r\n",
    )
    assert status == 401 and b'error="invalid_token"' in head
    assert body["error"]["code"] == "unauthorized"


async def test_credentials_for_get_cover_head(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token", "signed"])
    auth = {"Authorization": "Bearer team-token"}
    async with proxy.session.put(proxy("/uploads/team/a"), data=b"hello", headers=auth) as response:
        assert response.status == 201
    async with proxy.session.head(proxy("/uploads/team/a"), headers=auth) as response:
        assert response.status == 200 and response.content_length == 5
    url = signed_url(proxy.url, SECRET, "k1", method="GET", route="/uploads", key="team/a", expires_in=60)
    async with proxy.session.head(URL(url, encoded=True)) as response:
        assert response.status == 200 and response.content_length == 5


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_oversized_authorization_header_is_not_echoed(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    token = "secret" * 2000
    status, _, body = await raw_exchange(
        proxy, f"GET /uploads/team/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert "secret" not in body["error"]["message"], body


async def test_a_malformed_request_line_does_not_echo_its_query(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = await auth_proxy(make_proxy, bucket, ["token"])
    line = b"PU\x01T /uploads/x?access_token=sekrit123 HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, body = await raw_exchange(proxy, line)
    assert status == 400 and body["error"]["code"] == "bad_request"
    assert "sekrit123" not in body["error"]["message"], body
    assert not [record for record in caplog.records if "sekrit123" in record.getMessage()]


async def test_a_signed_content_type_is_matched_exactly(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    for signed, sent, status in [
        ("application/pdf", "application/pdf", 201),
        ("application/pdf", "application/pdf; charset=x", 403),
        ("application/pdf", "APPLICATION/PDF", 403),
        ("application/pdf", None, 403),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8", 201),
    ]:
        url = signed_url(
            proxy.url, SECRET, "k1", method="PUT", route="/uploads", key="t", expires_in=60, content_type=signed
        )
        headers = {"Content-Type": sent} if sent else {}
        async with proxy.session.put(URL(url, encoded=True), data=b"x", headers=headers) as response:
            assert response.status == status, (signed, sent)
        if status == 201:
            assert s3_server.client.head_object(Bucket=bucket, Key="t")["ContentType"] == signed


async def form_of(*files: tuple[int, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body of files of these sizes and types, and its Content-Type header."""
    data = aiohttp.FormData()
    for i, (size, content_type) in enumerate(files):
        data.add_field(f"f{i}", os.urandom(size), filename=f"{i}.png", content_type=content_type)
    payload = data()
    return await payload.as_bytes(), {"Content-Type": payload.content_type}


async def test_a_signed_content_type_and_size_hold_for_a_forms_files(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await auth_proxy(make_proxy, bucket, ["signed"])
    query = signed_url(
        proxy.url,
        SECRET,
        "k1",
        method="POST",
        route="/uploads",
        prefix="u/",
        expires_in=60,
        max_size=4000,
        content_type="image/png",
    )
    url = URL(query, encoded=True)
    body, headers = await form_of((100, "image/png"), (100, "text/html"))
    async with proxy.session.post(url, data=body, headers=headers) as response:
        assert response.status == 403
    body, headers = await form_of((1900, "image/png"), (1900, "image/png"))
    assert len(body) > 4000  # the form's framing takes the body past the limit; its files stay within it
    async with proxy.session.post(url, data=body, headers=headers) as response:
        assert response.status == 201, await response.text()
    assert len(s3_server.keys(bucket)) == 2
    body, headers = await form_of((1500, "image/png"), (1500, "image/png"), (1500, "image/png"))

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with proxy.session.post(url, data=chunked(), headers=headers) as response:
        assert response.status == 413
        assert "4000" in (await response.json())["error"]["message"]
    assert len(s3_server.keys(bucket)) == 2
    assert s3_server.multipart_uploads(bucket) == []
