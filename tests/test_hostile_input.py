"""A corpus of hostile and malformed requests, sent over raw sockets.

Every case must end in a 4xx (never a 5xx, never a hang) with the JSON error
body and ``X-Request-ID``, also where aiohttp's parser rejects the request
before the application sees it, and must leave no object and no multipart
upload behind, except the few cases that legitimately store and check what
they stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aiouploader.runner import _one_line
from aiouploader.testing import MakeProxy, S3Server

from .serving import serve

SEED_KEY = "r"
SEED = b"0123456789"
LIMIT = 1024**2
ROUTE: dict[str, Any] = {
    "path": "/uploads",
    "plugins": ["size_limit", "checksum"],
    "plugin_settings": {"size_limit": {"max_size": "1MiB"}},
}
SERVER = {"body_idle_timeout": 3, "body_timeout": 6}


# --- raw HTTP ---------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None
    """``None``: the connection closed without a response."""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    interim: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_answer(reader: asyncio.StreamReader, *, no_body: bool = False) -> Answer:
    interim: list[int] = []
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            assert not exc.partial, f"truncated response head: {exc.partial!r}"
            return Answer(None, interim=interim)
        except ConnectionError:
            return Answer(None, interim=interim)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            interim.append(status)
            continue
        if no_body or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")
        else:
            body = await reader.read()
        return Answer(status, headers, body, interim)


async def exchange(url: str, request: bytes, *, half_close: bool = False, wait: float = 15.0) -> Answer:
    """Send ``request`` as is and read one final response (or see the connection close)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
            if half_close:
                writer.write_eof()
        async with asyncio.timeout(wait):
            return await _read_answer(reader, no_body=request.startswith(b"HEAD "))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def message(line: str | bytes, headers: Sequence[str | bytes] = (), body: bytes = b"", *, host: bool = True) -> bytes:
    """A request: ``line``, a Host header (unless not wanted), ``headers`` as given, a blank line, ``body``."""
    lines = [line, *(["Host: test"] if host else []), *headers]
    raw = b"".join((item.encode() if isinstance(item, str) else item) + b"\r\n" for item in lines)
    return raw + b"\r\n" + body


def put(target: str | bytes, body: bytes = b"hello", headers: Sequence[str | bytes] = ()) -> bytes:
    line = b"PUT " + (target.encode() if isinstance(target, str) else target) + b" HTTP/1.1"
    return message(line, [f"Content-Length: {len(body)}", *headers], body)


def chunked(body: bytes, headers: Sequence[str] = ("Transfer-Encoding: chunked",)) -> bytes:
    return message("PUT /uploads/c HTTP/1.1", headers, body)


def form(body: bytes, content_type: str = "multipart/form-data; boundary=B") -> bytes:
    return message("POST /uploads/ HTTP/1.1", [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"], body)


def part(disposition: bytes, content: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"--B\r\nContent-Disposition: " + disposition + b"\r\n" + extra + b"\r\n" + content + b"\r\n"


def get(target: str, *headers: str) -> bytes:
    return message(f"GET {target} HTTP/1.1", headers)


# --- checks of what a case stored -------------------------------------------------------------------------------

Check = Callable[[Answer, S3Server, str], None]


def stored_one(name_is: Callable[[str], bool], content: bytes = b"hello") -> Check:
    """The case legitimately stored one object: 201, a key that passes ``name_is``, the bytes as sent."""

    def check(answer: Answer, s3: S3Server, bucket: str) -> None:
        assert answer.status == 201, answer
        keys = s3.keys(bucket)
        assert len(keys) == 1 and name_is(keys[0]), keys
        assert ".." not in keys[0].split("/") and "\\" not in keys[0] and "\x00" not in keys[0], keys
        assert s3.get(bucket, keys[0]) == content

    return check


def quotes_nothing_of(sent: bytes) -> Check:
    """The case is refused without quoting what the client sent, and stores nothing."""

    def check(answer: Answer, s3: S3Server, bucket: str) -> None:
        assert sent not in answer.body, answer.body
        assert s3.keys(bucket) == []

    return check


def without_interim(then: Check) -> Check:
    """No 1xx answer came before the final one, which ``then`` checks."""

    def check(answer: Answer, s3: S3Server, bucket: str) -> None:
        assert answer.interim == [], answer.interim
        then(answer, s3, bucket)

    return check


def last_segment(expected: str) -> Callable[[str], bool]:
    return lambda key: key.rsplit("/", 1)[-1] == expected


# --- the corpus -------------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    request: bytes
    status: int | tuple[int, ...] = 400
    code: str | None = None
    """The JSON error code the application must answer with."""
    closed_ok: bool = False
    """Not valid HTTP at all: a close without a response is acceptable."""
    half_close: bool = False
    seed: bool = False
    route: dict[str, Any] = field(default_factory=dict)
    check: Check | None = None
    xfail: str | None = None


def bad_key(name: str, key: str, code: str = "invalid_key", status: int = 400, **kw: Any) -> Case:
    return Case(f"key-{name}", put("/uploads/" + key), status, code, **kw)


def parser_error(name: str, request: bytes, **kw: Any) -> Case:
    """A request aiohttp's parser rejects; sent and then half-closed, it may get a close instead of the 400."""
    kw.setdefault("closed_ok", kw.get("half_close", False))
    return Case(name, request, 400, "bad_request", **kw)


def range_case(name: str, header: str, status: int, body: bytes | None = None) -> Case:
    def check(answer: Answer, s3: S3Server, bucket: str) -> None:
        if body is not None:
            assert answer.body == body
        assert s3.keys(bucket) == [SEED_KEY]

    code = "range_not_satisfiable" if status == 416 else None
    return Case(f"range-{name}", get(f"/uploads/{SEED_KEY}", f"Range: {header}"), status, code, seed=True, check=check)


BIG = 2**64
GZIPPED = gzip.compress(b"compressible " * 1000)

CASES: list[Case] = [
    # keys: traversal in every encoding
    bad_key("dotdot", ".."),
    bad_key("dotdot-slash", "../x"),
    bad_key("trailing-dotdot", "x/.."),
    bad_key("middle-dotdot", "a/../b"),
    bad_key("deep-dotdot", "../../../../etc/passwd"),
    bad_key("dot", "."),
    bad_key("dot-segment", "a/./b"),
    bad_key("pct-2e2e", "%2e%2e"),
    bad_key("pct-2E2e-slash", "%2E%2e/x"),
    bad_key("dot-pct2e", ".%2e/x"),
    bad_key("pct2e-dot", "%2e./x"),
    bad_key("dotdot-pct2f", "..%2fx"),
    bad_key("all-encoded", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    bad_key("encoded-middle", "a%2f%2e%2e%2fb"),
    bad_key("pct-dot-segment", "a/%2e/b"),
    bad_key("leading-slash", "/x"),
    bad_key("double-slash", "a//b"),
    bad_key("encoded-double-slash", "a%2f%2fb"),
    bad_key("trailing-slash", "a/"),
    Case("key-empty", put("/uploads/"), 400, "invalid_key"),
    bad_key("backslash-raw", "..\\x"),
    bad_key("backslash-pct5c", "..%5cx"),
    bad_key("backslash-encoded-all", "%2e%2e%5c%2e%2e%5cwindows"),
    # keys: NUL, control characters, DEL
    bad_key("nul", "a%00b"),
    bad_key("nul-extension", "x.txt%00.jpg"),
    bad_key("lf", "a%0ab"),
    bad_key("cr", "a%0db"),
    bad_key("crlf-injection", "a%0d%0aX-Injected:%201"),
    bad_key("tab", "a%09b"),
    bad_key("escape-sequence", "%1b%5b31m"),
    bad_key("unit-separator", "%1f"),
    bad_key("del", "a%7fb"),
    bad_key("c1-nel", "a%c2%85b"),
    parser_error("key-raw-nul", put(b"/uploads/a\x00b")),
    parser_error("key-raw-ctl", put(b"/uploads/a\x01b")),
    parser_error("key-raw-del", put(b"/uploads/a\x7fb")),
    parser_error("key-raw-tab", put(b"/uploads/a\tb")),
    # keys: length
    bad_key("overlong-1025", "a" * 1025),
    bad_key("overlong-4096", "b" * 4096),
    bad_key("overlong-multibyte", "%C3%A9" * 513),
    Case(
        "key-overlong-with-prefix",
        put("/uploads/" + "a" * 1020),
        400,
        "invalid_key",
        route={"prefix": "raw/x/"},
    ),
    parser_error("key-over-line-limit", put("/uploads/" + "c" * 9000)),
    # keys: invalid UTF-8 and malformed percent escapes
    bad_key("utf8-ff", "%ff"),
    bad_key("utf8-truncated", "%c3"),
    bad_key("utf8-bad-continuation", "%c3%28"),
    bad_key("utf8-overlong-slash", "..%c0%afx"),
    bad_key("utf8-overlong-dots", "%c0%ae%c0%ae/x"),
    bad_key("utf8-surrogate", "%ed%a0%80"),
    bad_key("utf8-beyond-unicode", "%f4%90%80%80"),
    parser_error("key-raw-invalid-utf8", put(b"/uploads/a\xffb")),
    bad_key("lone-percent", "a%"),
    bad_key("percent-zz", "%zz"),
    bad_key("percent-one-digit", "x%2"),
    Case(
        "key-double-encoded-stored-literally",
        put("/uploads/%252e%252e"),
        201,
        check=stored_one(lambda key: key == "%2e%2e"),
    ),
    Case(
        "key-post-with-key",
        message("POST /uploads/x HTTP/1.1", ["Content-Length: 5"], b"hello"),
        405,
        "method_not_allowed",
    ),
    # routes
    Case("route-unknown", put("/elsewhere/x"), 404, "not_found"),
    Case("route-traversal-out", put("/uploads/../elsewhere/x"), 400, "invalid_key"),
    Case("route-traversal-in", put("/elsewhere/../uploads/x"), 404, "not_found"),
    Case("route-prefix-lookalike", put("/uploadsx/y"), 404, "not_found"),
    Case("route-network-path", put("//uploads/x"), 404, "not_found"),
    # headers
    parser_error("header-oversize-value", put("/uploads/h", headers=["X-Big: " + "a" * 9000])),
    parser_error("header-oversize-name", put("/uploads/h", headers=["X" * 9000 + ": 1"])),
    parser_error("header-too-many", put("/uploads/h", headers=[f"X-H{i}: {i}" for i in range(500)])),
    parser_error("header-without-colon", put("/uploads/h", headers=["NoColonHere"])),
    parser_error("header-space-before-colon", put("/uploads/h", headers=["X-A : 1"])),
    parser_error("header-obs-fold", put("/uploads/h", headers=["X-A: a", " b"])),
    parser_error("header-obs-fold-tab", put("/uploads/h", headers=["X-A: a", "\tb"])),
    parser_error("header-obs-fold-first", message("PUT /uploads/h HTTP/1.1", [" X-A: a", "Content-Length: 0"])),
    parser_error("header-non-ascii-name", put("/uploads/h", headers=["X-Ä: 1".encode()])),
    parser_error("header-nul-in-value", put("/uploads/h", headers=[b"X-A: a\x00b"])),
    parser_error("header-cr-in-value", put("/uploads/h", headers=[b"X-A: a\rb"])),
    parser_error(
        "header-content-length-twice",
        message("PUT /uploads/h HTTP/1.1", ["Content-Length: 5", "Content-Length: 6"], b"hello!"),
    ),
    parser_error("header-content-length-list", message("PUT /uploads/h HTTP/1.1", ["Content-Length: 5, 6"], b"hello!")),
    parser_error(
        "header-content-length-and-chunked",
        message(
            "PUT /uploads/h HTTP/1.1", ["Content-Length: 5", "Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"
        ),
    ),
    parser_error(
        "header-content-length-negative", message("PUT /uploads/h HTTP/1.1", ["Content-Length: -5"], b"hello")
    ),
    parser_error("header-content-length-alpha", message("PUT /uploads/h HTTP/1.1", ["Content-Length: abc"], b"hello")),
    parser_error("header-content-length-plus", message("PUT /uploads/h HTTP/1.1", ["Content-Length: +5"], b"hello")),
    parser_error("header-content-length-hex", message("PUT /uploads/h HTTP/1.1", ["Content-Length: 0x5"], b"hello")),
    parser_error("header-content-length-inner-space", message("PUT /uploads/h HTTP/1.1", ["Content-Length: 5 5"])),
    parser_error("header-content-length-overflow", message("PUT /uploads/h HTTP/1.1", [f"Content-Length: {BIG**2}"])),
    Case(
        "header-content-length-huge",
        message("PUT /uploads/h HTTP/1.1", ["Content-Length: 10000000000000000"]),
        413,
        "payload_too_large",
    ),
    Case(
        "header-content-length-over-limit",
        message("PUT /uploads/h HTTP/1.1", [f"Content-Length: {LIMIT + 1}"]),
        413,
        "payload_too_large",
    ),
    Case(
        "header-te-gzip-chunked",
        chunked(b"5\r\nhello\r\n0\r\n\r\n", ["Transfer-Encoding: gzip, chunked"]),
        (400, 501),
    ),
    parser_error(
        "header-te-chunked-identity", chunked(b"5\r\nhello\r\n0\r\n\r\n", ["Transfer-Encoding: chunked, identity"])
    ),
    parser_error("header-te-unknown", message("PUT /uploads/h HTTP/1.1", ["Transfer-Encoding: foo"], b"hello")),
    parser_error("header-te-identity", message("PUT /uploads/h HTTP/1.1", ["Transfer-Encoding: identity"], b"hello")),
    parser_error("header-te-space-before-colon", chunked(b"5\r\nhello\r\n0\r\n\r\n", ["Transfer-Encoding : chunked"])),
    Case(
        "header-bad-request-id-not-echoed",
        put("/uploads/%2e%2e", headers=["X-Request-ID: <script>alert(1)</script>"]),
        400,
        "invalid_key",
        check=lambda answer, s3, bucket: None if "<" not in answer.headers["x-request-id"] else pytest.fail("echoed"),
    ),
    # methods
    Case("method-lowercase-put", put("/uploads/m").replace(b"PUT", b"put", 1), (400, 405)),
    Case("method-brew", message("BREW /uploads/m HTTP/1.1", ["Content-Length: 0"]), (400, 405)),
    Case("method-trace", message("TRACE /uploads/m HTTP/1.1"), 405, "method_not_allowed"),
    Case(
        "method-patch", message("PATCH /uploads/m HTTP/1.1", ["Content-Length: 5"], b"hello"), 405, "method_not_allowed"
    ),
    Case("method-propfind", message("PROPFIND /uploads/m HTTP/1.1"), 405, "method_not_allowed"),
    Case(
        "method-options-without-cors",
        message("OPTIONS /uploads/m HTTP/1.1", ["Origin: http://evil", "Access-Control-Request-Method: PUT"]),
        405,
        "method_not_allowed",
    ),
    Case("method-options-asterisk", message("OPTIONS * HTTP/1.1"), (400, 404), "not_found"),
    Case("method-connect-path", message("CONNECT /uploads/m HTTP/1.1"), (400, 404, 405)),
    Case("method-connect-authority", message("CONNECT example.com:443 HTTP/1.1"), (400, 404)),
    Case("method-delete-not-allowed", message("DELETE /uploads/r HTTP/1.1"), 405, "method_not_allowed", seed=True),
    Case("method-head-route-root", message("HEAD /uploads/ HTTP/1.1"), 405, None),
    Case("method-long-100", message("A" * 100 + " /uploads/m HTTP/1.1"), (400, 405)),
    parser_error("method-long-9000", message("A" * 9000 + " /uploads/m HTTP/1.1")),
    parser_error("method-non-ascii", message("PÜT /uploads/m HTTP/1.1".encode())),
    Case("get-missing-object", get("/uploads/nope"), 404, "not_found"),
    # request line
    parser_error("line-http09", b"GET /uploads/r\r\n\r\n", half_close=True),
    parser_error("line-http09-version", message("GET /uploads/r HTTP/0.9"), half_close=True),
    Case(
        "line-http2-version",
        put("/uploads/v").replace(b"HTTP/1.1", b"HTTP/2.0"),
        (400, 505),
    ),
    Case(
        "line-http3-version",
        put("/uploads/v").replace(b"HTTP/1.1", b"HTTP/3.0"),
        (400, 505),
    ),
    parser_error("line-http-garbage-version", put("/uploads/v").replace(b"HTTP/1.1", b"HTTX/1.1")),
    parser_error("line-http-version-suffix", put("/uploads/v").replace(b"HTTP/1.1", b"HTTP/1.1x")),
    parser_error(
        "line-missing-version",
        put("/uploads/v").replace(b" HTTP/1.1", b""),
    ),
    parser_error("line-space-in-target", put("/uploads/a b")),
    # RFC 9112 section 3 lets a recipient split the request line on whitespace runs: a legitimate store
    Case(
        "line-double-space",
        put("/uploads/v").replace(b"PUT ", b"PUT  "),
        201,
        check=stored_one(lambda key: key == "v"),
    ),
    parser_error("line-tabs", put("/uploads/v").replace(b" ", b"\t", 2)),
    parser_error("line-tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), half_close=True),
    parser_error("line-binary-garbage", bytes(range(256)) * 4, half_close=True),
    Case("line-absolute-form", put("http://test/uploads/v"), 201, check=stored_one(last_segment("v"), b"hello")),
    Case(
        "line-absolute-form-query",
        put("http://other.example:8080/uploads/q%20r?x=1"),
        201,
        check=stored_one(last_segment("q r"), b"hello"),
    ),
    Case("line-absolute-form-no-route", put("http://test/elsewhere/v"), 404, "not_found"),
    Case("line-absolute-form-traversal", put("http://test/uploads/%2e%2e/x"), 400, "invalid_key"),
    Case("line-absolute-form-dot-segments", put("http://test/uploads/../x"), 400, "invalid_key"),
    Case("line-asterisk-put", put("*"), (400, 404)),
    Case("line-target-without-slash", put("uploads/v"), (400, 404)),
    # chunked bodies
    parser_error("chunk-bad-hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n")),
    parser_error("chunk-0x-prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    parser_error("chunk-missing-crlf-after-data", chunked(b"5\r\nhelloXX0\r\n\r\n")),
    parser_error("chunk-missing-crlf-after-size", chunked(b"5hello\r\n0\r\n\r\n")),
    parser_error("chunk-bare-lf", chunked(b"5\nhello\n0\n\n")),
    parser_error("chunk-negative-size", chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    parser_error("chunk-size-overflow", chunked(b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n")),
    # chunk extensions are skipped by the streaming parser (not buffered): accepted, the body stored exactly
    Case(
        "chunk-ext-huge",
        chunked(b"5;" + b"a" * 20000 + b"\r\nhello\r\n0\r\n\r\n"),
        201,
        check=stored_one(lambda key: key == "c"),
    ),
    Case(
        "chunk-ext-many",
        chunked(b"5" + b";a=b" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
        201,
        check=stored_one(lambda key: key == "c"),
    ),
    parser_error("chunk-ext-bare-lf", chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n")),
    parser_error("chunk-ext-nul", chunked(b"5;a\x00b\r\nhello\r\n0\r\n\r\n")),
    parser_error("chunk-ext-bad-quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n')),
    Case(
        "chunk-larger-than-data-then-close",
        chunked(b"100\r\nhello"),
        400,
        "bad_request",
        half_close=True,
        closed_ok=True,
    ),
    Case(
        "chunk-no-last-chunk-then-close",
        chunked(b"5\r\nhello\r\n"),
        400,
        "bad_request",
        half_close=True,
        closed_ok=True,
    ),
    parser_error("chunk-trailer-garbage", chunked(b"5\r\nhello\r\n0\r\ngarbage\r\n\r\n")),
    parser_error("chunk-trailer-nul", chunked(b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n")),
    parser_error("chunk-trailer-obs-fold", chunked(b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n")),
    # multipart/form-data
    Case(
        "form-no-boundary",
        form(part(b'form-data; name="f"; filename="a"') + b"--B--\r\n", "multipart/form-data"),
        400,
        "bad_request",
    ),
    Case(
        "form-empty-boundary",
        form(b"--\r\n", "multipart/form-data; boundary="),
        400,
        "bad_request",
    ),
    Case(
        "form-truncated-non-file-part",
        form(b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nhel'),
        400,
        "bad_request",
    ),
    Case(
        "form-boundary-mismatch",
        form(part(b'form-data; name="f"; filename="a"') + b"--B--\r\n", "multipart/form-data; boundary=X"),
        400,
        "bad_request",
    ),
    Case("form-missing-final-boundary", form(part(b'form-data; name="f"; filename="a"')), 400, "bad_request"),
    Case(
        "form-truncated-part",
        form(b'--B\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\nhel'),
        400,
        "bad_request",
    ),
    Case(
        "form-headers-without-blank-line",
        form(b'--B\r\nContent-Disposition: form-data; name="f"; filename="a"\r\nhello\r\n--B--\r\n'),
        400,
        "bad_request",
    ),
    Case(
        "form-nested-multipart",
        form(
            part(
                b'form-data; name="f"',
                b'--I\r\nContent-Disposition: form-data; name="g"; filename="a"\r\n\r\nhello\r\n--I--',
                b"Content-Type: multipart/mixed; boundary=I\r\n",
            )
            + b"--B--\r\n"
        ),
        400,
        "bad_request",
    ),
    Case("form-no-file-field", form(part(b'form-data; name="f"') + b"--B--\r\n"), 400, "bad_request"),
    Case("form-no-disposition", form(b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n"), 400, "bad_request"),
    Case("form-empty-body", form(b""), 400, "bad_request"),
    Case("form-preamble-only", form(b"garbage without any boundary\r\n"), 400, "bad_request"),
    Case(
        "form-second-part-malformed-removes-first",
        form(part(b'form-data; name="f"; filename="a"') + b"--B\r\nno blank line\r\n--B--\r\n"),
        400,
        "bad_request",
    ),
    Case(
        "form-part-header-line-huge",
        form(part(b'form-data; name="f"; filename="a"', extra=b"X-Big: " + b"a" * 200_000 + b"\r\n") + b"--B--\r\n"),
        (400, 413),
        "bad_request",
    ),
    Case(
        "form-disposition-without-name",
        form(part(b'form-data; filename="a.txt"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("a.txt")),
    ),
    Case(
        "form-filename-traversal",
        form(part(b'form-data; name="f"; filename="../../etc/passwd"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("passwd")),
    ),
    Case(
        "form-filename-traversal-encoded",
        form(part(b'form-data; name="f"; filename="..%2f..%2fetc%2fpasswd"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("passwd")),
    ),
    Case(
        "form-filename-traversal-backslash",
        form(part(b'form-data; name="f"; filename="..\\\\..\\\\win.ini"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("win.ini")),
    ),
    Case(
        "form-filename-rfc5987-traversal",
        form(part(b"form-data; name=\"f\"; filename*=UTF-8''..%2F..%2Fx.txt") + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("x.txt")),
    ),
    Case(
        "form-filename-dotdot-only",
        form(part(b'form-data; name="f"; filename=".."') + b"--B--\r\n"),
        201,
        check=stored_one(lambda key: len(key) == 32 and "." not in key),
    ),
    Case(
        "form-filename-traversal-filename-keys",
        form(part(b'form-data; name="f"; filename="../../x.txt"') + b"--B--\r\n"),
        201,
        route={"form_keys": "filename", "prefix": "in/"},
        check=stored_one(lambda key: key == "in/x.txt"),
    ),
    Case(
        "form-filename-nul-raw",
        form(part(b'form-data; name="f"; filename="a\x00b.txt"') + b"--B--\r\n"),
        (201, 400),
        check=None,
    ),
    Case(
        "form-filename-nul-encoded",
        form(part(b'form-data; name="f"; filename="a%00b.txt"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("ab.txt")),
    ),
    Case(
        "form-filename-10k",
        form(part(b'form-data; name="f"; filename="' + b"n" * 10_000 + b'"') + b"--B--\r\n"),
        400,
        "bad_request",  # the part's header line passes aiohttp's 8190-byte limit
        check=quotes_nothing_of(b"nnnnnnnn"),
    ),
    Case(
        "form-bad-boundary-not-quoted",
        form(b"--X\r\nsecret-looking-line\r\n--X--\r\n"),
        400,
        "bad_request",
        check=quotes_nothing_of(b"secret-looking-line"),
    ),
    # Content-Type: printable ASCII only, never stored or sent back raw
    Case(
        "content-type-non-ascii", put("/uploads/t", headers=["Content-Type: text/\u00e9".encode()]), 400, "bad_request"
    ),
    Case("content-type-not-utf8", put("/uploads/t", headers=[b"Content-Type: text/\xff"]), 400, "bad_request"),
    Case("content-type-control", put("/uploads/t", headers=[b"Content-Type: text/plain\x7f"]), 400, "bad_request"),
    # and so are the headers S3 keeps with the object (they were dropped without a word)
    Case(
        "content-disposition-non-ascii",
        put("/uploads/t", headers=['Content-Disposition: attachment; filename="caf\u00e9"'.encode()]),
        400,
        "bad_request",
    ),
    Case("cache-control-not-utf8", put("/uploads/t", headers=[b"Cache-Control: max-age=\xff"]), 400, "bad_request"),
    Case(
        "content-disposition-rfc-6266",
        put("/uploads/t", headers=["Content-Disposition: attachment; filename*=UTF-8''caf%C3%A9"]),
        201,
        check=stored_one(lambda key: key == "t"),
    ),
    Case(
        "form-part-content-type-non-ascii",
        form(part(b'form-data; name="f"; filename="a"', extra="Content-Type: text/\u00e9\r\n".encode()) + b"--B--\r\n"),
        400,
        "bad_request",
    ),
    # RFC 9110 10.1.1: no 100 Continue for an HTTP/1.0 client
    Case(
        "expect-100-continue-http-1.0",
        message("PUT /uploads/old HTTP/1.0", ["Content-Length: 5", "Expect: 100-continue"], b"hello"),
        201,
        check=without_interim(stored_one(lambda key: key == "old")),
    ),
    Case(
        "form-filename-8k",
        form(part(b'form-data; name="f"; filename="' + b"n" * 8000 + b'"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("n" * 200)),
    ),
    Case(
        "form-filename-10k-multibyte",
        form(part(b'form-data; name="f"; filename="' + "\U0001d49c".encode() * 1500 + b'"') + b"--B--\r\n"),
        201,
        check=stored_one(last_segment("\U0001d49c" * 50)),  # cut to 200 bytes, within any store's segment limit
    ),
    # Content-Encoding: stored as sent, never decompressed
    Case(
        "encoding-gzip-stored-as-sent",
        put("/uploads/z.gz", GZIPPED, ["Content-Encoding: gzip"]),
        201,
        check=stored_one(lambda key: key == "z.gz", GZIPPED),
    ),
    Case(
        "encoding-gzip-invalid-stored-as-sent",
        put("/uploads/bad.gz", b"not gzip at all", ["Content-Encoding: gzip"]),
        201,
        check=stored_one(lambda key: key == "bad.gz", b"not gzip at all"),
    ),
    Case(
        "encoding-unknown-stored-as-sent",
        put("/uploads/z.x", b"opaque", ["Content-Encoding: x-custom"]),
        201,
        check=stored_one(lambda key: key == "z.x", b"opaque"),
    ),
    # Range on GET (invalid ranges are ignored as RFC 9110 section 14.2 allows; unsatisfiable ones are 416)
    range_case("reversed", "bytes=5-1", 200, SEED),
    range_case("suffix-zero", "bytes=-0", 416),
    range_case("letters", "bytes=a-b", 200, SEED),
    range_case("empty-spec", "bytes=", 200, SEED),
    range_case("unknown-unit", "items=0-1", 200, SEED),
    range_case("many-ranges", "bytes=" + ",".join(f"{i}-{i}" for i in range(1000)), 200, SEED),
    range_case("two-ranges", "bytes=0-0,-1", 200, SEED),
    range_case("huge-end", f"bytes=0-{BIG**2}", 206, SEED),
    range_case("huge-start", f"bytes={BIG**2}-", 416),
    range_case("huge-suffix", f"bytes=-{BIG**2}", 206, SEED),
    range_case("start-at-size", "bytes=10-", 416),
    range_case("negative-start", "bytes=-5-3", 200, SEED),
    Case(
        "range-5000-digits",
        get(f"/uploads/{SEED_KEY}", "Range: bytes=" + "9" * 5000 + "-"),
        416,
        "range_not_satisfiable",
        seed=True,
        check=lambda answer, s3, bucket: None,
    ),
    Case("range-missing-object", get("/uploads/nope", "Range: bytes=0-1"), 404, "not_found"),
    # Expect
    Case("expect-200-ok", put("/uploads/e", headers=["Expect: 200-ok"]), 417, "expectation_failed"),
    Case("expect-list", put("/uploads/e", headers=["Expect: 100-continue, foo"]), 417, "expectation_failed"),
    Case("expect-suffix", put("/uploads/e", headers=["Expect: 100-continuex"]), 417, "expectation_failed"),
    Case("expect-on-get", get(f"/uploads/{SEED_KEY}", "Expect: 102-processing"), 417, "expectation_failed", seed=True),
    Case(
        "expect-continue-bad-key",
        message("PUT /uploads/%2e%2e HTTP/1.1", ["Content-Length: 5", "Expect: 100-continue"]),
        400,
        "invalid_key",
        check=lambda answer, s3, bucket: None if not answer.interim else pytest.fail("100 Continue sent"),
    ),
    Case(
        "expect-continue-too-large",
        message("PUT /uploads/e HTTP/1.1", [f"Content-Length: {LIMIT + 1}", "Expect: 100-continue"]),
        413,
        "payload_too_large",
        check=lambda answer, s3, bucket: None if not answer.interim else pytest.fail("100 Continue sent"),
    ),
]


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("case", _params())
async def test_hostile_request(make_proxy: MakeProxy, s3_server: S3Server, bucket: str, case: Case) -> None:
    if case.seed:
        s3_server.client.put_object(Bucket=bucket, Key=SEED_KEY, Body=SEED)
    proxy = await make_proxy(routes=[{**ROUTE, "bucket": bucket, **case.route}], server=SERVER)
    answer = await exchange(proxy.url, case.request, half_close=case.half_close)
    allowed = case.status if isinstance(case.status, tuple) else (case.status,)
    if answer.status is None:
        assert case.closed_ok, "the server closed the connection without a response"
    else:
        assert answer.status in allowed, (answer.status, answer.body[:500])
        assert answer.status < 500
        assert "x-request-id" in answer.headers, answer.headers
        if answer.status >= 400:
            assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
            if not case.request.startswith(b"HEAD "):  # a HEAD answer has no body
                error = answer.json()["error"]
                assert set(error) == {"code", "message"} and error["message"], error
                if case.code is not None:
                    assert error["code"] == case.code, error
    if case.check is not None:
        case.check(answer, s3_server, bucket)
    else:
        assert s3_server.keys(bucket) == ([SEED_KEY] if case.seed else [])
    assert s3_server.multipart_uploads(bucket) == []


def test_the_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


# --- Content-Encoding through the server as it really runs (the CLI's AppRunner settings) ------------------------


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_gzip_body_is_stored_as_sent_by_the_real_server(tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    served = serve(tmp_path, s3_server, bucket)
    try:
        answer = await exchange(
            served.url, put("/u/z.gz", GZIPPED, ["Content-Encoding: gzip"]).replace(b"/uploads", b"/u")
        )
        assert answer.status == 201, answer
        assert answer.json()["size"] == len(GZIPPED)
        assert s3_server.get(bucket, "z.gz") == GZIPPED
        bomb = gzip.compress(bytes(20 * LIMIT))
        answer = await exchange(served.url, put("/u/bomb.gz", bomb, ["Content-Encoding: gzip"]))
        assert answer.status == 201 and s3_server.get(bucket, "bomb.gz") == bomb
    finally:
        served.stop()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_the_real_server_answers_a_request_it_cannot_parse_with_the_json_error(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    served = serve(tmp_path, s3_server, bucket)
    try:
        answer = await exchange(served.url, message("PUT /u/h HTTP/1.1", ["Content-Length: abc"], b"hello"))
    finally:
        served.stop()
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == "bad_request"
    assert "Content-Length" in error["message"], error
    logged = [json.loads(line) for line in served.log.read_text().splitlines() if line.startswith("{")]
    assert any(answer.headers["x-request-id"] in entry["message"] for entry in logged), logged
    assert s3_server.keys(bucket) == []


# --- slowloris --------------------------------------------------------------------------------------------------


async def _trickle_headers(url: str, seconds: float) -> tuple[bool, float]:
    """Send an endless header one byte per 100 ms for up to ``seconds``; (cut off by the server?, when)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    start = time.monotonic()
    try:
        writer.write(b"PUT /uploads/slow HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        while time.monotonic() - start < seconds:
            try:
                writer.write(b"a")
                await writer.drain()
                async with asyncio.timeout(0.1):
                    await reader.read(1)  # a response or the end of the connection: the server cut us off
                return True, time.monotonic() - start
            except TimeoutError:
                continue
            except ConnectionError:
                return True, time.monotonic() - start
        return False, time.monotonic() - start
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_slowloris_headers_are_cut_off_after_keepalive_timeout(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(routes=[{**ROUTE, "bucket": bucket}], server={"keepalive_timeout": 1})
    cut, after = await _trickle_headers(proxy.url, seconds=6)
    assert cut and 0.9 < after < 3, (cut, after)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_body_trickle_gets_408_and_stores_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(
        routes=[{**ROUTE, "bucket": bucket}], server={"body_idle_timeout": 0.5, "body_timeout": 1.5}
    )
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"PUT /uploads/trickle HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
        start = time.monotonic()
        answering = asyncio.ensure_future(_read_answer(reader))
        with contextlib.suppress(ConnectionError):
            while time.monotonic() - start < 5 and not answering.done():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        async with asyncio.timeout(10):
            answer = await answering
        assert answer.status == 408 and answer.json()["error"]["code"] == "request_timeout"
        assert "within 1.5 seconds" in answer.json()["error"]["message"]
        assert "x-request-id" in answer.headers
        assert time.monotonic() - start < 4
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("Got more than 8190 bytes (9000) when reading Status line is too long: bytearray(b'/u/aaa')", "/u/aaa"),
        ("Invalid method encountered:\n\n  b'FOO'\n    ^", "Invalid method encountered: FOO"),
    ],
)
def test_a_parser_message_is_shown_without_python_reprs(message: str, shown: str) -> None:
    detail = _one_line(message)
    assert shown in detail and "b'" not in detail and "bytearray" not in detail and "\n" not in detail
