"""The upload path of the contract, through HTTP, against real S3 servers (moto and rclone)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiouploader import Download, DownloadStage, hookimpl
from aiouploader.eicar import EICAR
from aiouploader.hookspecs import Fetch
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.testing import MakeProxy, Proxy, S3Server

from .plugins_for_tests import Boom, Lifecycle, Tag, VetoAfter

MiB = 1024**2
PART = 5 * MiB
SMALL_PARTS = {"part_size": "5MiB", "parts_in_flight": 2}


async def proxy_for(make_proxy: MakeProxy, bucket: str, **route: Any) -> Proxy:
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["checksum"], **route}
    return await make_proxy(routes=[route], s3=SMALL_PARTS, upload={"block_size": "256KiB"})


async def put(proxy: Proxy, key: str, body: Any, **headers: str) -> tuple[int, dict[str, Any], Any]:
    async with proxy.session.put(proxy(f"/uploads/{key}"), data=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


def assert_nothing_left(s3_server: S3Server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 12345])
async def test_put_then_get_returns_the_same_bytes(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, size: int
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    body = os.urandom(size)
    status, result, headers = await put(proxy, "dir/object.bin", body)
    assert status == 201
    assert headers["Location"] == "/uploads/dir/object.bin"
    assert result["size"] == result["stored_size"] == size
    assert result["checksums"]["sha256"] == hashlib.sha256(body).hexdigest()
    multipart = size > PART
    assert result["etag"].strip('"').endswith(f"-{-(-size // PART)}") is multipart
    assert s3_server.get(bucket, "dir/object.bin") == body
    async with proxy.session.get(proxy("/uploads/dir/object.bin")) as response:
        assert response.status == 200
        if s3_server.kind == "moto":  # rclone answers HEAD with the whole file's MD5, not the multipart ETag
            assert response.headers["ETag"] == result["etag"]
        assert int(response.headers["Content-Length"]) == size
        assert await response.read() == body
    assert s3_server.multipart_uploads(bucket) == []


async def test_chunked_put_of_several_parts(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    pieces = [os.urandom(n) for n in (1, 70_000, 3 * MiB, 4 * MiB + 1, 5, 2 * MiB)]

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    status, result, _ = await put(proxy, "chunked", chunks())
    assert status == 201
    assert result["size"] == sum(map(len, pieces))
    assert s3_server.get(bucket, "chunked") == b"".join(pieces)


async def test_content_type_is_kept(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    status, result, _ = await put(proxy, "doc.pdf", b"%PDF-1.7", **{"Content-Type": "application/pdf"})
    assert status == 201 and result["content_type"] == "application/pdf"
    async with proxy.session.get(proxy("/uploads/doc.pdf")) as response:
        assert response.headers["Content-Type"] == "application/pdf"


async def test_prefix_is_prepended(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, prefix="raw/")
    status, result, headers = await put(proxy, "a.txt", b"hello")
    assert status == 201 and result["key"] == "raw/a.txt" and headers["Location"] == "/uploads/a.txt"
    assert s3_server.keys(bucket) == ["raw/a.txt"]
    async with proxy.session.get(proxy("/uploads/a.txt")) as response:
        assert await response.read() == b"hello"


async def test_post_raw_body_gets_a_generated_key(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    body = os.urandom(1000)
    async with proxy.session.post(proxy("/uploads/"), data=body, headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 201
        result = await response.json()
        location = response.headers["Location"]
    assert location.startswith("/uploads/") and len(location) > len("/uploads/") + 16
    assert s3_server.get(bucket, result["key"]) == body
    async with proxy.session.get(proxy(location)) as response:
        assert await response.read() == body


async def test_post_form_streams_each_file_to_its_own_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    proxy = await proxy_for(make_proxy, bucket)
    first, second = os.urandom(3000), os.urandom(PART + 10)
    form = aiohttp.FormData()
    form.add_field("note", "not a file")
    form.add_field("a", first, filename="../../etc/passwd", content_type="text/plain")
    form.add_field("b", second, filename="C:\\Users\\me\\photo .jpg", content_type="image/jpeg")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 201
        uploads = (await response.json())["uploads"]
    assert [u["key"].split("/")[-1] for u in uploads] == ["passwd", "photo_.jpg"]
    assert all(".." not in u["key"] for u in uploads)
    assert [u["content_type"] for u in uploads] == ["text/plain", "image/jpeg"]
    assert s3_server.get(bucket, uploads[0]["key"]) == first
    assert s3_server.get(bucket, uploads[1]["key"]) == second


async def test_post_form_with_filename_keys(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    import aiohttp

    proxy = await proxy_for(make_proxy, bucket, form_keys="filename", prefix="in/")
    form = aiohttp.FormData()
    form.add_field("a", b"x", filename="report.pdf")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 201
        assert response.headers["Location"] == "/uploads/report.pdf"
    assert s3_server.keys(bucket) == ["in/report.pdf"]


async def test_form_file_names_as_browsers_send_them(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, form_keys="filename")
    long_name = "\U0001d400" * 300 + ".txt"  # 4 bytes each in UTF-8
    sent = {"C:\\Users\\me\\report.doc": "report.doc", "say %22hi%22.txt": "say_hi_.txt", long_name: None}
    for filename, key in sent.items():
        body = (
            f'--XX\r\nContent-Disposition: form-data; name="f"; filename="{filename}"\r\n\r\nhello\r\n--XX--\r\n'
        ).encode()
        headers = {"Content-Type": "multipart/form-data; boundary=XX"}
        async with proxy.session.post(proxy("/uploads/"), data=body, headers=headers) as response:
            assert response.status == 201, filename
            stored = (await response.json())["uploads"][0]["key"]
        if key is not None:
            assert stored == key
        else:  # cut to what a store keeps in one path segment (255 bytes on most file systems)
            assert len(stored.encode()) <= 200 and stored.startswith("\U0001d400")
        assert s3_server.get(bucket, stored) == b"hello"


async def test_post_form_without_a_file_or_malformed_is_a_bad_request(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    proxy = await proxy_for(make_proxy, bucket)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("only", "text")
    form.add_field("more", "text")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 400
        assert "no file field" in (await response.json())["error"]["message"]
    async with proxy.session.post(
        proxy("/uploads/"), data=b"--x\r\nnot a form", headers={"Content-Type": "multipart/form-data; boundary=x"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_request"
    assert_nothing_left(s3_server, bucket)


async def test_form_failure_removes_the_files_already_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    pm = make_plugin_manager()
    pm.register(VetoAfter(), name="veto")
    proxy = await make_proxy(
        routes=[
            {"path": "/uploads", "bucket": bucket, "plugins": ["veto"], "plugin_settings": {"veto": {"after": 100}}}
        ],
        pm=pm,
        s3=SMALL_PARTS,
    )
    form = aiohttp.FormData()
    form.add_field("a", b"x" * 50, filename="small")
    form.add_field("b", b"y" * 500, filename="large")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 403
    assert_nothing_left(s3_server, bucket)


def form_of(first: bytes, second: bytes, *, closed: bool) -> bytes:
    """A form of two files, ``keep.txt`` then ``other.bin``; not ``closed``, it ends inside the second."""
    head = 'Content-Disposition: form-data; name="{}"; filename="{}"\r\n\r\n'
    return (
        b"--XX\r\n"
        + head.format("a", "keep.txt").encode()
        + first
        + b"\r\n--XX\r\n"
        + head.format("b", "other.bin").encode()
        + second
        + (b"\r\n--XX--\r\n" if closed else b"")
    )


def cut_form(first: bytes) -> bytes:
    return form_of(first, b"the body ends here", closed=False)


def infected_form(first: bytes) -> bytes:
    return form_of(first, EICAR, closed=True)


@pytest.mark.parametrize("first_size", [3000, PART + 10], ids=["one-part", "multipart"])
@pytest.mark.parametrize(("make_form", "status"), [(cut_form, 400), (infected_form, 422)], ids=["cut", "infected"])
async def test_form_failure_leaves_existing_objects_as_they_were(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    first_size: int,
    make_form: Callable[[bytes], bytes],
    status: int,
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": ["virus_scan"], "form_keys": "filename"}],
        plugins={"virus_scan": {"backend": "stub"}},
        s3=SMALL_PARTS,
    )
    assert (await put(proxy, "keep.txt", b"the original"))[0] == 201
    body = make_form(os.urandom(first_size))
    headers = {"Content-Type": "multipart/form-data; boundary=XX"}
    async with proxy.session.post(proxy("/uploads/"), data=body, headers=headers) as response:
        assert response.status == status
    assert s3_server.keys(bucket) == ["keep.txt"]
    assert s3_server.get(bucket, "keep.txt") == b"the original"
    assert s3_server.multipart_uploads(bucket) == []


async def test_form_with_two_files_for_one_key_is_refused(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    proxy = await proxy_for(make_proxy, bucket, form_keys="filename")
    form = aiohttp.FormData()
    form.add_field("a", os.urandom(PART + 10), filename="same.txt")
    form.add_field("b", b"second", filename="same.txt")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 400
        assert "two files for the key 'same.txt'" in (await response.json())["error"]["message"]
    assert_nothing_left(s3_server, bucket)


async def test_a_form_with_more_files_than_allowed_is_refused(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket}], s3=SMALL_PARTS, upload={"max_form_files": 3}
    )
    for count, status in ((3, 201), (4, 400)):
        form = aiohttp.FormData()
        for i in range(count):
            form.add_field(f"f{i}", b"x" * 100, filename=f"{count}-{i}")
        async with proxy.session.post(proxy("/uploads/"), data=form) as response:
            assert response.status == status
            if status == 400:
                assert "upload.max_form_files" in (await response.json())["error"]["message"]
    assert len(s3_server.keys(bucket)) == 3
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_forms_files_together_are_bounded_by_max_form_size_and_each_by_size_limit(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import aiohttp

    proxy = await make_proxy(
        routes=[
            {
                "path": "/uploads",
                "bucket": bucket,
                "plugins": ["size_limit"],
                "plugin_settings": {"size_limit": {"max_size": 1000}},
            }
        ],
        upload={"max_form_size": 2500},
    )
    for sizes, status, named in (
        ((1000, 1000), 201, None),
        ((1001,), 413, "1000B this route accepts"),
        ((1000, 1000, 1000), 413, "2500 bytes upload.max_form_size allows"),
    ):
        form = aiohttp.FormData()
        for i, size in enumerate(sizes):
            form.add_field(f"f{i}", b"x" * size, filename=f"{len(sizes)}-{i}")
        async with proxy.session.post(proxy("/uploads/"), data=form) as response:
            assert response.status == status, await response.text()
            if named:
                assert named in (await response.json())["error"]["message"]
    assert sorted(key.rsplit("/", 1)[1] for key in s3_server.keys(bucket)) == ["2-0", "2-1"]
    assert s3_server.multipart_uploads(bucket) == []


async def test_form_stores_an_empty_file_beside_others(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    import aiohttp

    proxy = await proxy_for(make_proxy, bucket, form_keys="filename")
    second = os.urandom(PART + 10)
    form = aiohttp.FormData()
    form.add_field("a", b"", filename="empty.txt")
    form.add_field("b", second, filename="full.bin")
    async with proxy.session.post(proxy("/uploads/"), data=form) as response:
        assert response.status == 201
        assert [u["size"] for u in (await response.json())["uploads"]] == [0, len(second)]
    assert s3_server.get(bucket, "empty.txt") == b""
    assert s3_server.get(bucket, "full.bin") == second
    assert s3_server.multipart_uploads(bucket) == []


async def test_a_forms_files_in_s3_hold_no_memory_until_the_form_ends(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import tracemalloc

    proxy = await proxy_for(make_proxy, bucket)
    file, count = os.urandom(3 * PART), 6
    last_file_started, go_on = asyncio.Event(), asyncio.Event()

    async def form() -> AsyncIterator[bytes]:
        for i in range(count + 1):
            yield f'--XX\r\nContent-Disposition: form-data; name="f"; filename="{i}"\r\n\r\n'.encode()
            if i < count:
                yield file
                yield b"\r\n"
        yield b"the last file starts"
        last_file_started.set()
        await go_on.wait()
        yield b"\r\n--XX--\r\n"

    tracemalloc.start()
    try:
        headers = {"Content-Type": "multipart/form-data; boundary=XX"}
        posting = asyncio.ensure_future(proxy.session.post(proxy("/uploads/"), data=form(), headers=headers))
        await last_file_started.wait()
        for _ in range(300):  # each file waits in S3 as a multipart upload
            if len(await asyncio.to_thread(s3_server.multipart_uploads, bucket)) >= count:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        go_on.set()
    async with await posting as response:
        assert response.status == 201
        assert len((await response.json())["uploads"]) == count + 1
    assert held < len(file), f"{held / MiB:.1f} MiB held while {count} files of {len(file) / MiB:.0f} MiB wait"
    assert s3_server.multipart_uploads(bucket) == []


async def test_range_requests(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    body = os.urandom(10_000)
    await put(proxy, "r", body)
    cases = {"bytes=0-0": body[:1], "bytes=100-199": body[100:200], "bytes=9990-": body[9990:], "bytes=-10": body[-10:]}
    for header, expected in cases.items():
        async with proxy.session.get(proxy("/uploads/r"), headers={"Range": header}) as response:
            assert response.status == 206, header
            assert await response.read() == expected
            start = len(body) - len(expected) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
            assert response.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/10000"
    async with proxy.session.get(proxy("/uploads/r"), headers={"Range": "bytes=10000-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */10000"
        assert (await response.json())["error"]["code"] == "range_not_satisfiable"
    for header, expected in {"BYTES=1-2": body[1:3], "bytes=" + "0" * 25 + "1-" + "0" * 25 + "2": body[1:3]}.items():
        async with proxy.session.get(proxy("/uploads/r"), headers={"Range": header}) as response:
            assert (response.status, await response.read()) == (206, expected), header
    async with proxy.session.head(proxy("/uploads/r"), headers={"Range": "bytes=0-0"}) as response:
        assert response.status == 200  # a HEAD has no body to take a range of
        assert response.headers["Content-Length"] == "10000" and "Content-Range" not in response.headers


class _ReplaceOnOpen(DownloadStage):
    def __init__(self, replace: Callable[[], None]) -> None:
        super().__init__()
        self._replace = replace

    async def open(self, fetch: Fetch, size: int) -> int:
        self._replace()
        return await super().open(fetch, size)


class ReplaceWhileReading:
    """Replaces the object after the server looked it up, before it reads it, ``times`` times."""

    def __init__(self, s3_server: S3Server, bucket: str, times: int) -> None:
        self.bodies = [os.urandom(3000 + 1000 * i) for i in range(times)]
        self._s3, self._bucket = s3_server, bucket

    def _replace(self) -> None:
        if self.bodies:
            self._s3.client.put_object(Bucket=self._bucket, Key="raced", Body=self.bodies.pop(0))

    @hookimpl
    def aiouploader_download_stage(self, download: Download, settings: Any) -> DownloadStage:
        return _ReplaceOnOpen(self._replace)


@pytest.mark.parametrize("times", [1, 3])
async def test_a_get_never_mixes_an_object_with_the_one_replacing_it(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, times: int
) -> None:
    pm = make_plugin_manager()
    replacer = ReplaceWhileReading(s3_server, bucket, times)
    pm.register(replacer, name="replace")
    route = {"path": "/uploads", "bucket": bucket, "plugins": ["replace"]}
    proxy = await make_proxy(routes=[route], pm=pm, plugins={"replace": {}})
    last = replacer.bodies[-1]
    s3_server.client.put_object(Bucket=bucket, Key="raced", Body=b"the first object")
    async with proxy.session.get(proxy("/uploads/raced")) as response:
        if times < 3:  # the GET starts over from the object that replaced the one it looked up
            assert (response.status, await response.read()) == (200, last)
            assert response.headers["ETag"] == s3_server.client.head_object(Bucket=bucket, Key="raced")["ETag"]
        else:  # replaced every time it looked: it gives up rather than mix them
            assert response.status == 409
            assert (await response.json())["error"]["code"] == "conflict"


async def test_conditional_get_head_and_delete(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, allow_delete=True)
    body = os.urandom(10_000)
    await put(proxy, "c", body)
    async with proxy.session.get(proxy("/uploads/c")) as response:
        etag, modified = response.headers["ETag"], response.headers["Last-Modified"]

    async def status(method: str = "GET", **headers: str) -> tuple[int, bytes]:
        async with proxy.session.request(method, proxy("/uploads/c"), headers=headers) as response:
            return response.status, await response.read()

    assert await status(**{"If-None-Match": etag}) == (304, b"")
    assert await status("HEAD", **{"If-None-Match": f'"other", {etag}'}) == (304, b"")
    assert await status(**{"If-None-Match": "W/" + etag}) == (304, b"")
    assert await status(**{"If-Modified-Since": modified}) == (304, b"")
    assert await status(**{"If-None-Match": '"other"', "If-Modified-Since": modified}) == (200, body)
    assert await status(**{"If-Match": etag}) == (200, body)
    assert (await status(**{"If-Match": '"other"'}))[0] == 412
    assert (await status(**{"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}))[0] == 412
    assert await status(**{"Range": "bytes=0-9", "If-Range": etag}) == (206, body[:10])
    assert await status(**{"Range": "bytes=0-9", "If-Range": modified}) == (206, body[:10])
    assert await status(**{"Range": "bytes=0-9", "If-Range": '"other"'}) == (200, body)
    assert await status(**{"Range": "bytes=0-9", "If-Range": "W/" + etag}) == (200, body)  # If-Range compares strongly
    assert await status(**{"Range": "bytes=0-9", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}) == (200, body)
    assert (await status("DELETE", **{"If-Match": '"other"'}))[0] == 412
    assert s3_server.get(bucket, "c") == body
    assert (await status("DELETE", **{"If-Match": etag}))[0] == 204
    assert s3_server.keys(bucket) == []


async def test_downloads_keep_their_content_type_and_are_not_run_by_browsers(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    _, result, _ = await put(
        proxy, "page.html", b"<script>alert(1)</script>", **{"Content-Type": "text/html; charset=utf-8"}
    )
    assert result["content_type"] == "text/html; charset=utf-8"
    async with proxy.session.get(proxy("/uploads/page.html")) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox"


@pytest.mark.parametrize("allow_delete", [False, True])
async def test_405_names_the_methods_that_are_answered(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, allow_delete: bool
) -> None:
    proxy = await proxy_for(make_proxy, bucket, allow_delete=allow_delete)
    on_a_key = "GET, HEAD, PUT, DELETE" if allow_delete else "GET, HEAD, PUT"
    cases = [("PATCH", "/uploads/k", on_a_key), ("POST", "/uploads/k", on_a_key), ("GET", "/uploads/", "POST")]
    cases += [(method, probe, "GET, HEAD") for method, probe in [("PUT", "/healthz"), ("POST", "/readyz")]]
    if not allow_delete:
        cases.append(("DELETE", "/uploads/k", on_a_key))
    for method, path, allowed in cases:
        async with proxy.session.request(method, proxy(path)) as response:
            assert (response.status, response.headers.get("Allow")) == (405, allowed), (method, path)
            assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_an_uploads_representation_headers_come_back_with_it(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    import gzip

    proxy = await proxy_for(make_proxy, bucket)
    body = gzip.compress(b'{"hello": "world"}' * 1000)
    kept = {
        "Content-Encoding": "gzip",
        "Content-Disposition": 'attachment; filename="data.json"',
        "Content-Language": "de",
        "Cache-Control": "max-age=60",
    }
    status, _, _ = await put(proxy, "data.json", body, **kept, **{"Content-Type": "application/json"})
    assert status == 201
    for method in ("GET", "HEAD"):
        async with proxy.session.request(method, proxy("/uploads/data.json"), auto_decompress=False) as response:
            assert {name: response.headers.get(name) for name in kept} == kept, method
            if method == "GET":
                assert await response.read() == body
            etag = response.headers["ETag"]
    async with proxy.session.get(proxy("/uploads/data.json"), headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert response.headers["Cache-Control"] == "max-age=60"  # RFC 9110: a 304 keeps the 200's caching


async def test_head_has_the_headers_of_get(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    _, result, _ = await put(proxy, "h", b"12345", **{"Content-Type": "text/plain"})
    async with proxy.session.head(proxy("/uploads/h")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "5"
        assert response.headers["ETag"] == result["etag"]
        assert response.headers["Content-Type"].startswith("text/plain")
        assert await response.read() == b""


async def test_get_missing_object_is_404(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    async with proxy.session.get(proxy("/uploads/nope")) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_delete_only_where_allowed(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    route = {"bucket": bucket, "plugins": []}
    proxy = await make_proxy(
        routes=[
            {"path": "/keep", "prefix": "keep/", **route},
            {"path": "/scratch", "prefix": "scratch/", **route, "allow_delete": True},
        ]
    )
    for path in ("/keep/a", "/scratch/b"):
        async with proxy.session.put(proxy(path), data=b"x") as response:
            assert response.status == 201
    async with proxy.session.delete(proxy("/keep/a")) as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    async with proxy.session.delete(proxy("/scratch/b")) as response:
        assert response.status == 204
    async with proxy.session.delete(proxy("/scratch/b")) as response:
        assert response.status == 404
    assert s3_server.keys(bucket) == ["keep/a"]


async def test_request_id_is_echoed_or_generated(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    async with proxy.session.get(proxy("/healthz"), headers={"X-Request-ID": "abc-123"}) as response:
        assert response.headers["X-Request-ID"] == "abc-123"
    async with proxy.session.get(proxy("/uploads/missing"), headers={"X-Request-ID": "bad id\twith tab"}) as response:
        assert response.status == 404
        generated = response.headers["X-Request-ID"]
        assert generated != "bad id\twith tab" and len(generated) == 32
    _, _, headers = await put(proxy, "x", b"1", **{"X-Request-ID": "put-1"})
    assert headers["X-Request-ID"] == "put-1"


async def test_health_and_readiness(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    async with proxy.session.get(proxy("/healthz")) as response:
        assert response.status == 200
    async with proxy.session.get(proxy("/readyz")) as response:
        assert response.status == 200
    missing = await make_proxy(routes=[{"path": "/u", "bucket": "no-such-bucket-here"}])
    async with missing.session.get(missing("/readyz")) as response:
        assert response.status == 503
        assert "no-such-bucket-here" in (await response.json())["error"]["message"]
        assert response.headers["Retry-After"]


BAD_KEYS = [
    ("/uploads/", 400, "invalid_key"),
    ("/uploads/a/../b", 400, "invalid_key"),
    ("/uploads/./b", 400, "invalid_key"),
    ("/uploads/a//b", 400, "invalid_key"),
    ("/uploads/%2E%2E/etc", 400, "invalid_key"),
    ("/uploads/nul%00byte", 400, "invalid_key"),
    ("/uploads/line%0Abreak", 400, "invalid_key"),
    ("/uploads/del%7F", 400, "invalid_key"),
    ("/uploads/bad%FFutf8", 400, "invalid_key"),
    ("/uploads/" + "k" * 1025, 400, "invalid_key"),
    ("/elsewhere/key", 404, "not_found"),
]


@pytest.mark.parametrize(("path", "status", "code"), BAD_KEYS)
async def test_bad_keys_are_refused_and_nothing_is_written(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, path: str, status: int, code: str
) -> None:
    import yarl

    proxy = await proxy_for(make_proxy, bucket)
    url = yarl.URL(proxy.url + path, encoded=True)
    async with proxy.session.put(url, data=b"data") as response:
        assert response.status == status
        assert (await response.json())["error"]["code"] == code
        assert response.headers["X-Request-ID"]
    assert_nothing_left(s3_server, bucket)


async def test_key_of_exactly_the_limit_is_accepted(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket, prefix="p/")
    key = "/".join(["k" * 200] * 5 + ["k" * 17])  # segments short enough for rclone's file names
    assert len(("p/" + key).encode()) == 1024
    status, _, _ = await put(proxy, key, b"x")
    assert status == 201
    status, _, _ = await put(proxy, key + "k", b"x")
    assert status == 400


async def test_unknown_route_post_and_method_errors(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    async with proxy.session.post(proxy("/uploads/some-key"), data=b"x") as response:
        assert response.status == 405
    async with proxy.session.get(proxy("/uploads/")) as response:
        assert response.status == 405
    async with proxy.session.patch(proxy("/uploads/k"), data=b"x") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert_nothing_left(s3_server, bucket)


async def test_plugins_run_in_the_configured_order(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    pm = make_plugin_manager()
    first, second = Tag("<A>"), Tag("<B>")
    pm.register(first, name="tag_a")
    pm.register(second, name="tag_b")
    route = {"bucket": bucket, "plugins": []}
    proxy = await make_proxy(
        routes=[
            {"path": "/ab", "prefix": "ab/", **route, "plugins": ["tag_a", "tag_b"]},
            {"path": "/ba", "prefix": "ba/", **route, "plugins": ["tag_b", "tag_a"]},
        ],
        pm=pm,
        s3=SMALL_PARTS,
    )
    body = os.urandom(PART + 3)
    for path in ("/ab/x", "/ba/y"):
        async with proxy.session.put(proxy(path), data=body) as response:
            result = await response.json()
            assert response.status == 201
            assert result["size"] == len(body) and result["stored_size"] == len(body) + 6
    assert s3_server.get(bucket, "ab/x") == body + b"<A><B>"
    assert s3_server.get(bucket, "ba/y") == body + b"<B><A>"
    assert first.log[-1] == "<A>:close" and "<A>:finish" in first.log


async def test_veto_mid_stream_aborts_the_multipart_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    pm.register(VetoAfter(), name="veto")
    lifecycle = Lifecycle()
    pm.register(lifecycle, name="lifecycle")
    proxy = await make_proxy(
        routes=[
            {
                "path": "/uploads",
                "bucket": bucket,
                "plugins": ["lifecycle", "veto"],
                "plugin_settings": {"veto": {"after": 4 * PART}},
            }
        ],
        pm=pm,
        s3=SMALL_PARTS,
    )
    status, result, _ = await put(proxy, "vetoed", os.urandom(5 * PART))
    assert status == 403
    assert result == {"error": {"code": "forbidden", "message": "vetoed by the test plugin"}}
    assert lifecycle.events == [("started", "vetoed"), ("failed", "Forbidden")]
    assert_nothing_left(s3_server, bucket)


async def test_lifecycle_hooks_may_rename_and_add_metadata(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    lifecycle = Lifecycle()
    pm.register(lifecycle, name="lifecycle")
    proxy = await make_proxy(routes=[{"path": "/uploads", "bucket": bucket, "plugins": ["lifecycle"]}], pm=pm)
    status, _, headers = await put(proxy, "rename-me.txt", b"hi")
    assert status == 201
    assert headers["Location"] == "/uploads/renamed/rename-me.txt"
    assert lifecycle.events == [("started", "rename-me.txt"), ("completed", "renamed/rename-me.txt")]
    head = s3_server.client.head_object(Bucket=bucket, Key="renamed/rename-me.txt")
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"team": "blue"}  # rclone capitalises names


async def test_a_failing_plugin_is_a_plugin_error_without_details(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    pm = make_plugin_manager()
    pm.register(Boom(), name="boom")
    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket, "plugins": ["boom"]}], pm=pm, s3=SMALL_PARTS
    )
    status, result, _ = await put(proxy, "k", os.urandom(2 * PART))
    assert status == 500
    assert result["error"]["code"] == "plugin_error"
    assert "boom" in result["error"]["message"]
    assert "secret internal detail" not in str(result)
    assert_nothing_left(s3_server, bucket)


async def test_s3_failure_is_502_and_leaves_nothing(make_proxy: MakeProxy, s3_server: S3Server) -> None:
    proxy = await make_proxy(routes=[{"path": "/uploads", "bucket": "bucket-that-does-not-exist"}], s3=SMALL_PARTS)
    for size in (10, 2 * PART):
        status, result, _ = await put(proxy, "k", os.urandom(size))
        assert status == 502
        assert result["error"]["code"] == "upstream_error"


async def test_unreachable_s3_is_502(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    from aiouploader.testing import free_port

    proxy = await make_proxy(
        routes=[{"path": "/uploads", "bucket": bucket}],
        s3={"endpoint_url": f"http://127.0.0.1:{free_port()}", "max_attempts": 1, "connect_timeout": 1},
    )
    status, result, _ = await put(proxy, "k", b"x")
    assert status == 502
    assert result["error"]["code"] == "upstream_error"
    async with proxy.session.get(proxy("/readyz")) as response:
        assert response.status == 503


async def test_client_disconnect_mid_body_leaves_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await proxy_for(make_proxy, bucket)
    host, port = proxy.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"PUT /uploads/cut HTTP/1.1\r\nHost: x\r\nContent-Length: {6 * PART}\r\n\r\n".encode())
    for _ in range(3 * PART // (1024 * 1024)):
        writer.write(os.urandom(1024 * 1024))
        await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if not s3_server.multipart_uploads(bucket):
            break
    await asyncio.sleep(0.5)
    assert_nothing_left(s3_server, bucket)
