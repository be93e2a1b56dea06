"""GET and HEAD of a stored object: conditional requests, a single Range, the download stages, streaming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from wsgiref.handlers import format_date_time

from aiohttp import web

from . import conditions, tags
from .digests import repr_digest
from .errors import ObjectChanged, PreconditionFailed, RangeNotSatisfiable, UploadError
from .hookspecs import Download
from .middlewares import CUT, REQUEST_ID, request_id
from .routes import Route
from .service import SERVICE

log = logging.getLogger(__name__)

READ_ATTEMPTS = 3
"""Times a GET starts over when the object is replaced before its answer starts."""
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
"""Uploaded files are served as data: a browser neither guesses their type nor runs their scripts."""


def _position(digits: str) -> int:
    """A range bound; past S3's largest object every bound is the same."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 10**19


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range, ``None`` for the whole object."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, size - _position(last)), size
    else:
        start, end = _position(first), size if last == "" else min(size, _position(last) + 1)
        if last != "" and _position(last) < start:
            return None
    if start >= size or start >= end:
        raise RangeNotSatisfiable(
            f"The range lies outside the object's {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


async def handle_get(request: web.Request, route: Route, key: str, *, metadata: bool = False) -> web.StreamResponse:
    """Answer from one object: when another replaces it before the answer starts, again from the new one.

    With ``metadata`` (the S3 API's GetObject and HeadObject), the object's user metadata goes along as
    ``x-amz-meta-*`` headers, and a HEAD's Range is answered as a GET's.
    """
    with request.app[SERVICE].downloading():
        for _ in range(READ_ATTEMPTS - 1):
            with contextlib.suppress(ObjectChanged):
                return await _answer_get(request, route, key, metadata)
        return await _answer_get(request, route, key, metadata)


async def _answer_get(request: web.Request, route: Route, key: str, metadata: bool) -> web.StreamResponse:
    service = request.app[SERVICE]
    bucket, s3_key = route.config.bucket, route.config.prefix + key
    info = await service.s3.head(bucket, s3_key)

    def fetch(start: int, end: int) -> Any:
        return service.s3.read(bucket, s3_key, info.etag, start, end)

    validators = {"ETag": info.etag}
    if info.last_modified is not None:
        validators["Last-Modified"] = format_date_time(info.last_modified.timestamp())
    answer = conditions.status(request.headers, request.method, info.etag, info.last_modified)
    if answer == 304:
        cache = {"Cache-Control": info.headers["Cache-Control"]} if "Cache-Control" in info.headers else {}
        return web.Response(status=304, headers={**validators, **cache})
    if answer == 412:
        raise PreconditionFailed("The object does not meet the request's If-Match or If-Unmodified-Since.")
    headers = {"Content-Type": info.content_type, **info.headers}
    if info.tag_count and (digest := repr_digest(await tags.read(service.s3, bucket, s3_key, info.version_id))):
        headers["Repr-Digest"] = digest
    download = Download(request_id(request), route.path, bucket, s3_key, info.metadata, headers)
    read, size = await route.chain.open_download(download, fetch, info.size)
    span = None
    ranged = request.method == "GET" or metadata  # RFC 9110 ranges GETs only; S3 answers HeadObject's Range too
    if ranged and conditions.range_applies(request.headers, info.etag, info.last_modified):
        span = parse_range(request.headers.get("Range"), size)
    start, end = span or (0, size)
    response = web.StreamResponse(status=206 if span else 200)
    response.headers.update(download.headers)
    if metadata:
        sendable = {f"x-amz-meta-{name}": value for name, value in info.metadata.items() if value.isprintable()}
        response.headers.update({name: value for name, value in sendable.items() if (name + value).isascii()})
    response.content_length = end - start
    response.headers.update(validators)
    response.headers.update({"Accept-Ranges": "bytes", REQUEST_ID: request_id(request), **DOWNLOAD_HEADERS})
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    chunks = read(start, end).__aiter__()
    try:
        first = await anext(chunks, b"")
        await response.prepare(request)
        await _send(request, response, first, chunks)
    finally:
        if (close := getattr(chunks, "aclose", None)) is not None:
            await close()  # its S3 connection goes back now, however the answer ended
    return response


async def _send(request: web.Request, response: web.StreamResponse, first: bytes, rest: AsyncIterator[bytes]) -> None:
    """Send the body; a failure now cuts the connection short of Content-Length, all the client can be told."""
    idle = request.app[SERVICE].config.server.body_idle_timeout
    try:
        async with asyncio.timeout(idle):
            await response.write(first)
        async for chunk in rest:
            async with asyncio.timeout(idle):
                await response.write(chunk)
    except (UploadError, ConnectionError, TimeoutError) as exc:
        request[CUT] = True
        if isinstance(exc, UploadError):
            log.warning("request %s: response cut mid-stream: %s", request_id(request), exc)
        else:
            gone = "went away" if isinstance(exc, ConnectionError) else f"took nothing for {idle:g} seconds"
            log.info("request %s: response cut mid-stream: the client %s", request_id(request), gone)
        if request.transport is not None:
            request.transport.close()
        return
    await response.write_eof()
