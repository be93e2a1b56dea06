"""The HTTP handlers of the contract: PUT, POST, GET, HEAD, DELETE, health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote
from wsgiref.handlers import format_date_time

from aiohttp import BodyPartReader, HttpVersion10, HttpVersion11, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from . import allocator, conditions
from .auth import Authorizer, Grant
from .config import Config
from .errors import (
    BadRequest,
    Draining,
    ExpectationFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    NotReady,
    ObjectChanged,
    Overloaded,
    PayloadTooLarge,
    PreconditionFailed,
    RangeNotSatisfiable,
    UploadError,
)
from .hookspecs import Download, Upload
from .keys import form_filename, generated_key, key_for_file, key_from_path
from .lifespan import within_grace
from .middlewares import CUT, REQUEST_ID, attempts, error_response, request_id
from .routes import PROBES, Route, target
from .s3 import S3, part_size_for, translate
from .upload import Read, Staged, stage

log = logging.getLogger(__name__)

READY_CACHE_SECONDS = 3.0
ABORT_WAIT_SECONDS = 60.0
READ_ATTEMPTS = 3
"""Times a GET starts over when the object is replaced before its answer starts."""
IDLE_BEFORE_GIVING_BACK = 0.2
"""Seconds without uploads after which freed memory goes back to the system."""
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
"""Uploaded files are served as data: a browser neither guesses their type nor runs their scripts."""


@dataclass
class Service:
    config: Config
    routes: list[Route]
    s3: S3
    draining: bool = False
    uploads: set[asyncio.Task[Any]] = field(default_factory=set)
    """The tasks of the upload requests being handled."""
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _ready_at: float = field(default=-1e9)
    _ready_error: str | None = None
    authorizer: Authorizer = field(init=False)
    _by_client: Counter[str] = field(default_factory=Counter)
    _reserved: int = 0
    _downloads: int = 0
    _give_back: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.authorizer = Authorizer(self.config.auth)

    def buffer_need(self, content_length: int | None) -> int:
        """The most an upload of ``content_length`` bytes (``None``: unknown) may hold in memory.

        A length over ``part_size`` x 10,000 needs larger parts, and as many more bytes.
        """
        s3, block = self.config.s3, self.config.upload.block_size
        if content_length is None:
            return self.config.upload_bound
        part = part_size_for(1, s3.part_size, content_length)
        return min(part * (s3.parts_in_flight + 1) + block, content_length + block)

    def admit(self, grant: Grant | None, content_length: int | None = None) -> None:
        """Refuse an upload beyond the limits of the server or of the client's credentials."""
        if self.draining:
            raise Draining("The server is shutting down; retry on another instance.")
        if len(self.uploads) >= self.config.server.max_uploads:
            raise Overloaded("The server is handling as many uploads as it may; retry shortly.", retry_after=1)
        if grant and grant.max_uploads is not None and self._by_client[grant.who] >= grant.max_uploads:
            raise Overloaded(f"{grant.who} has {grant.max_uploads} uploads in progress already.", retry_after=1)
        need, budget = self.buffer_need(content_length), self.config.server.max_buffered
        if need > budget:
            raise PayloadTooLarge(
                f"An upload of {content_length} bytes needs parts so large (S3 takes at most 10,000) that they "
                f"would hold {need} bytes of memory, more than server.max_buffered ({budget} bytes) allows."
            )
        if self._reserved + need > budget:
            raise Overloaded("The server's memory for uploads is taken; retry shortly.", retry_after=1)

    @contextlib.contextmanager
    def in_flight(self, grant: Grant | None = None, content_length: int | None = None) -> Iterator[None]:
        """Count the current task as an upload: for the limits, and for :meth:`drain` to wait for."""
        self.admit(grant, content_length)
        task = asyncio.current_task()
        assert task is not None
        self.uploads.add(task)
        who = grant.who if grant else ""
        need = self.buffer_need(content_length)
        self._by_client[who] += 1
        self._reserved += need
        self._idle.clear()
        if self._give_back is not None:
            self._give_back.cancel()
        try:
            yield
        finally:
            self.uploads.discard(task)
            self._by_client[who] -= 1
            self._reserved -= need
            if not self.uploads:
                self._idle.set()
                self._give_back = asyncio.get_running_loop().call_later(IDLE_BEFORE_GIVING_BACK, allocator.give_back)

    @contextlib.contextmanager
    def downloading(self) -> Iterator[None]:
        """Count a download against ``server.max_downloads``, whose S3 connections uploads never wait for."""
        if self._downloads >= self.config.server.max_downloads:
            raise Overloaded("The server is serving as many downloads as it may; retry shortly.", retry_after=1)
        self._downloads += 1
        try:
            yield
        finally:
            self._downloads -= 1

    async def _until_idle(self, seconds: float, hurry: asyncio.Event | None = None) -> None:
        if self.uploads:
            await within_grace(self._idle.wait(), seconds, hurry)

    async def drain(self, grace: float, hurry: asyncio.Event | None = None) -> int:
        """Refuse new uploads; give those in flight ``grace`` seconds, then cancel them.

        A cancelled upload aborts its S3 upload before its task lets go of it;
        this waits for that too. ``hurry`` set ends the grace early. Returns how
        many uploads were cancelled.
        """
        self.draining = True
        await self._until_idle(grace, hurry)
        cancelled = list(self.uploads)
        for task in cancelled:
            task.cancel()
        await self._until_idle(ABORT_WAIT_SECONDS)
        return len(cancelled)

    async def ready(self) -> str | None:
        """``None`` when every route's bucket answers, else why not; cached briefly."""
        if time.monotonic() - self._ready_at > READY_CACHE_SECONDS:
            self._ready_error = None
            try:
                async with asyncio.timeout(self.config.s3.connect_timeout):
                    for bucket in sorted({route.config.bucket for route in self.routes}):
                        try:
                            await self.s3.head_bucket(bucket)
                        except Exception as exc:
                            self._ready_error = f"bucket {bucket}: {translate(exc, 'checking the bucket').message}"
                            break
            except TimeoutError:
                self._ready_error = "S3 did not answer in time."
            self._ready_at = time.monotonic()
        return self._ready_error


SERVICE = web.AppKey("service", Service)
UPLOAD = web.RequestKey("upload", Upload)
GRANT: web.RequestKey[Grant | None] = web.RequestKey("grant")
STARTED = web.RequestKey("started", bool)
WITHOUT_BODY: web.RequestKey[UploadError | None] = web.RequestKey("without_body")
"""Set when ``Expect: 100-continue`` was not granted, to the refusal (``None`` for a direct route's redirect)."""


def _content_type(sent: str | None) -> str | None:
    """A Content-Type as sent, parameters (such as charset) included; it must be printable ASCII."""
    sent = (sent or "").strip()
    if not (sent.isascii() and sent.isprintable()):
        raise BadRequest("The Content-Type must be printable ASCII, e.g. text/plain; charset=utf-8.")
    return sent or None


def _upload_for(request: web.Request, route: Route, key: str, content_type: str | None) -> Upload:
    return Upload(
        request_id=request_id(request),
        route=route.path,
        bucket=route.config.bucket,
        prefix=route.config.prefix,
        key=key,
        content_type=content_type or "application/octet-stream",
        content_length=request.content_length,
        headers=request.headers,
    )


def _target(request: web.Request) -> tuple[Route, str | None]:
    found = target(request)
    return found.route, found.raw_key


def _is_form(request: web.Request, raw_key: str | None) -> bool:
    """A POST of files in a multipart/form-data body, each limited as it streams rather than by Content-Length."""
    return request.method == "POST" and raw_key is None and request.content_type == "multipart/form-data"


def _authorize(request: web.Request) -> Grant | None:
    """Check the request's credentials against its route (once per request)."""
    if GRANT not in request:
        route, raw_key = _target(request)
        request[GRANT] = request.app[SERVICE].authorizer.check(
            schemes=list(route.config.auth),
            method=request.method,
            route=route.path,
            key=None if raw_key is None else unquote(raw_key),
            headers=request.headers,
            query=request.query,
            content_length=None if _is_form(request, raw_key) else request.content_length,
        )
    return request[GRANT]


def _key_prefix(request: web.Request) -> str:
    grant = _authorize(request)
    return grant.key_prefix if grant else ""


def _prepare_upload(request: web.Request) -> Upload | None:
    """Check what can be checked before the body is read; the upload for PUT and raw POST."""
    route, raw_key = _target(request)
    grant = _authorize(request)
    conditions.only_if_absent(request.headers)
    if request.method == "PUT":
        key = key_from_path(raw_key or "", route.config.prefix)
        upload = _upload_for(request, route, key, _content_type(request.headers.get("Content-Type")))
    elif request.method == "POST" and raw_key is None:
        if _is_form(request, raw_key):
            return None
        key = _key_prefix(request) + generated_key()
        upload = _upload_for(request, route, key, _content_type(request.headers.get("Content-Type")))
    else:
        return None
    _check_type(grant, request.headers.get("Content-Type"))
    request[UPLOAD] = upload
    attempts(request).uploads.append(upload)
    return upload


def _check_type(grant: Grant | None, sent: str | None) -> None:
    if grant and grant.content_type and (sent or "").strip() != grant.content_type:
        raise Forbidden(f"These credentials allow only Content-Type {grant.content_type}, exactly as signed.")


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` only once the upload may go ahead.

    Otherwise (a refusal, or a direct route's redirect) no ``100 Continue``
    is sent: :func:`handle` answers within the middlewares, as any request
    (logged, counted), and the connection closes after the answer.
    """
    try:
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise ExpectationFailed("Only 'Expect: 100-continue' is understood.")
        if request.version < HttpVersion11:
            return None  # RFC 9110 10.1.1: an HTTP/1.0 client's 100-continue is ignored
        if request.method in ("PUT", "POST"):
            request.app[SERVICE].admit(_authorize(request), request.content_length)
        if (upload := _prepare_upload(request)) is not None:
            route = _target(request)[0]
            try:
                route.chain.started(upload)
            except UploadError as exc:
                route.chain.failed(upload, exc)
                raise
            request[STARTED] = True
            if route.config.direct_upload and request.method == "PUT":
                request[WITHOUT_BODY] = None
                return None
    except UploadError as exc:
        request[WITHOUT_BODY] = exc
        return None
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0
    return None


def _location(route: Route, key: str) -> str:
    return f"{route.path}/{quote(key, safe='/')}"


async def _stage(
    request: web.Request,
    route: Route,
    upload: Upload,
    read: Read,
    send_all: bool = False,
    max_size: int | None = None,
) -> Staged:
    """Stage ``upload``: within ``max_size`` bytes when given, else within the credentials' limit."""
    if max_size is None and (grant := _authorize(request)):
        max_size = grant.max_size
    service = request.app[SERVICE]
    return await stage(
        service.s3,
        route.chain,
        upload,
        read,
        block_size=service.config.upload.block_size,
        idle_timeout=service.config.server.body_idle_timeout,
        total_timeout=service.config.server.body_timeout,
        started=request.get(STARTED, False),
        if_none_match=route.config.if_none_match or conditions.only_if_absent(request.headers),
        max_size=max_size,
        send_all=send_all,
    )


async def handle(request: web.Request) -> web.StreamResponse:
    if WITHOUT_BODY in request:
        return await _answer_without_body(request)
    if request.version not in (HttpVersion10, HttpVersion11):
        raise BadRequest("Only HTTP/1.0 and HTTP/1.1 requests are served here.")
    if request.headers.get("Transfer-Encoding", "chunked").replace(" ", "").lower() != "chunked":
        raise BadRequest("Only the chunked transfer coding is understood; send the body as it is, or chunked.")
    if request.path == "/metrics" and request.app[SERVICE].config.server.metrics_port is not None:
        raise NotFound("/metrics is served on server.metrics_port.")
    if request.path in PROBES:
        raise MethodNotAllowed(f"{request.path} answers GET and HEAD.", headers={"Allow": "GET, HEAD"})
    route, raw_key = _target(request)
    _authorize(request)
    method = request.method
    if method in ("PUT", "POST"):
        return await _handle_upload(request, route, raw_key)
    if raw_key is None:
        raise MethodNotAllowed(f"{method} needs a key: {route.path}/<key>.", headers={"Allow": "POST"})
    key = key_from_path(raw_key, route.config.prefix)
    if method in ("GET", "HEAD"):
        return await _handle_get(request, route, key)
    if method == "DELETE":
        if not route.config.allow_delete:
            raise MethodNotAllowed(f"The route {route.path} does not allow DELETE.", headers={"Allow": _allowed(route)})
        service = request.app[SERVICE]
        info = await service.s3.head(route.config.bucket, route.config.prefix + key)
        if conditions.status(request.headers, method, info.etag, info.last_modified):
            raise PreconditionFailed("The object does not meet the request's If-Match or If-Unmodified-Since.")
        await service.s3.delete(route.config.bucket, route.config.prefix + key)
        return web.Response(status=204)
    raise MethodNotAllowed(f"{method} is not supported on a key.", headers={"Allow": _allowed(route)})


async def _answer_without_body(request: web.Request) -> web.StreamResponse:
    """Answer a request denied ``100 Continue``, then close: its body is not coming."""
    try:
        if (refusal := request[WITHOUT_BODY]) is not None:
            raise refusal
        response = await _redirect_to_s3(request, _target(request)[0], request[UPLOAD])
    except UploadError as exc:
        response = error_response(request, exc)
    response.headers[REQUEST_ID] = request_id(request)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()  # no lingering: aiohttp would wait for the body
    return response


def _allowed(route: Route) -> str:
    """The methods a key of ``route`` answers."""
    return "GET, HEAD, PUT, DELETE" if route.config.allow_delete else "GET, HEAD, PUT"


async def _handle_upload(request: web.Request, route: Route, raw_key: str | None) -> web.StreamResponse:
    if request.method == "POST" and raw_key is not None:
        raise MethodNotAllowed(f"POST goes to the route itself: {route.path}/.", headers={"Allow": _allowed(route)})
    with request.app[SERVICE].in_flight(_authorize(request), request.content_length):
        return await _handle_upload_in_flight(request, route)


async def _handle_upload_in_flight(request: web.Request, route: Route) -> web.StreamResponse:
    upload = request.get(UPLOAD) or _prepare_upload(request)
    if upload is None:
        return await _handle_form(request, route)
    if route.config.direct_upload and request.method == "PUT":
        return await _redirect_to_s3(request, route, upload)
    result = await (await _stage(request, route, upload, request.content.readany)).commit()
    attempts(request).results.append(result)
    return web.json_response(
        result,
        status=201,
        headers={"Location": _location(route, upload.key), "ETag": result["etag"]},
    )


async def _redirect_to_s3(request: web.Request, route: Route, upload: Upload) -> web.StreamResponse:
    """``307`` to a presigned PutObject URL for this key, once credentials and lifecycle hooks agree."""
    grant = _authorize(request)
    params: dict[str, Any] = {"Bucket": upload.bucket, "Key": upload.s3_key}
    if grant and grant.max_size is not None:
        if request.content_length is None:
            raise BadRequest("These credentials limit the size: send the body with a Content-Length, not chunked.")
        params["ContentLength"] = request.content_length
    if not request.get(STARTED, False):
        route.chain.started(upload)
    if request.headers.get("Content-Type"):
        params["ContentType"] = upload.content_type
    if conditions.only_if_absent(request.headers):
        params["IfNoneMatch"] = "*"
    expires_in = route.config.direct_upload_expires
    if grant and grant.expires is not None:
        expires_in = min(expires_in, math.floor(grant.expires - time.time()))
        if expires_in < 1:
            raise Forbidden("The signed URL has expired.")
    url = await request.app[SERVICE].s3.client.generate_presigned_url(
        ClientMethod="put_object", Params=params, ExpiresIn=expires_in
    )
    return web.Response(status=307, headers={"Location": url})


async def _handle_form(request: web.Request, route: Route) -> web.StreamResponse:
    """Each file field of a multipart/form-data body streamed into its own object.

    The objects show only once every file is in S3, so a form that fails
    part-way leaves the keys as they were.
    """
    service = request.app[SERVICE]
    max_size, bounded_by = _form_bound(_authorize(request), service.config.upload.max_form_size)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise _malformed(exc) from None
    staged: list[Staged] = []
    results: list[dict[str, Any]] = []
    try:
        while True:
            try:
                part = await reader.next()
                if part is not None and not isinstance(part, MultipartReader) and part.filename is None:
                    await part.release()
                    continue
            except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
                raise _malformed(exc) from None
            if part is None:
                break
            if isinstance(part, MultipartReader):
                raise BadRequest("Nested multipart bodies are not accepted.")
            filename = form_filename(part.headers.get("Content-Disposition", ""), part.filename)
            key = _key_prefix(request) + key_for_file(filename, route.config.form_keys)
            if len(staged) == service.config.upload.max_form_files:
                raise BadRequest(
                    f"The form holds more than {len(staged)} files (upload.max_form_files); send them in several forms."
                )
            if any(earlier.upload.key == key for earlier in staged):
                raise BadRequest(f"The form holds two files for the key {key!r}; give each file its own name.")
            _check_type(_authorize(request), part.headers.get("Content-Type"))
            upload = _upload_for(request, route, key, _content_type(part.headers.get("Content-Type")))
            upload.content_length = None
            upload.form_field = part.name or ""
            attempts(request).uploads.append(upload)
            read = _part_reader(part, service.config.upload.block_size)
            left = None if max_size is None else max_size - sum(earlier.upload.size for earlier in staged)
            try:
                staged.append(await _stage(request, route, upload, read, send_all=True, max_size=left))
            except PayloadTooLarge:
                if left is None or upload.size <= left:
                    raise
                raise PayloadTooLarge(f"The form's files are larger than the {max_size} bytes {bounded_by}.") from None
        if not staged:
            raise BadRequest("The form has no file field.")
        while staged:
            results.append(await staged.pop(0).commit())
    except BaseException:
        for pending in staged:
            await pending.discard(UploadError("Another file of the form failed; none of its files was stored."))
        for result in results:
            await asyncio.shield(service.s3.delete(result["bucket"], result["key"], result["version_id"]))
        raise
    attempts(request).results.extend(results)
    headers = {}
    if len(results) == 1:
        headers = {
            "Location": _location(route, results[0]["key"][len(route.config.prefix) :]),
            "ETag": results[0]["etag"],
        }
    return web.json_response({"uploads": results}, status=201, headers=headers)


def _form_bound(grant: Grant | None, max_form_size: int) -> tuple[int | None, str]:
    """The most a form's files may hold together, and what sets it."""
    signed = grant.max_size if grant else None
    if max_form_size and (signed is None or max_form_size < signed):
        return max_form_size, "upload.max_form_size allows"
    return signed, "its credentials allow"


def _malformed(exc: Exception) -> BadRequest:
    """The parser's words quote the body (a header line, a boundary): say what is wrong without them."""
    if isinstance(exc, HttpProcessingError):
        return BadRequest("The multipart/form-data body is malformed: a part's header is too long or unreadable.")
    return BadRequest(
        "The multipart/form-data body is malformed: its boundary or a part's headers do not follow RFC 7578."
    )


def _part_reader(part: BodyPartReader, size: int) -> Read:
    async def read() -> bytes:
        return await part.read_chunk(size)

    return read


def _position(digits: str) -> int:
    """A range bound; past S3's largest object every bound is the same."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 10**19


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
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


async def _handle_get(request: web.Request, route: Route, key: str) -> web.StreamResponse:
    """Answer from one object: when another replaces it before the answer starts, again from the new one."""
    with request.app[SERVICE].downloading():
        for _ in range(READ_ATTEMPTS - 1):
            with contextlib.suppress(ObjectChanged):
                return await _answer_get(request, route, key)
        return await _answer_get(request, route, key)


async def _answer_get(request: web.Request, route: Route, key: str) -> web.StreamResponse:
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
    download = Download(request_id(request), route.path, bucket, s3_key, info.metadata, headers)
    read, size = await route.chain.open_download(download, fetch, info.size)
    span = None
    if request.method == "GET" and conditions.range_applies(request.headers, info.etag, info.last_modified):
        span = _parse_range(request.headers.get("Range"), size)
    start, end = span or (0, size)
    response = web.StreamResponse(status=206 if span else 200)
    response.headers.update(download.headers)
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


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if service.draining:
        return error_response(request, Draining("The server is shutting down."))
    problem = await service.ready()
    if problem:
        return error_response(request, NotReady(f"S3 is not ready: {problem}"))
    return web.json_response({"status": "ready"})
