"""The dispatching handlers of the contract: PUT and POST uploads (a body, Expect: 100-continue, a 307), DELETE."""

from __future__ import annotations

import math
import time

from aiohttp import HttpVersion10, HttpVersion11, web

from . import conditions
from .downloads import handle_get
from .errors import (
    BadRequest,
    ExpectationFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    UploadError,
)
from .forms import handle_form
from .intake import authorize, check_type, content_type, is_form, key_prefix, location, session_for, upload_for
from .keys import generated_key, key_from_path
from .middlewares import REQUEST_ID, attempts, error_response, request_id
from .routes import PROBES, Route, found_route, target
from .service import SERVICE
from .session import UploadSession
from .tus import handlers as tus

SESSION = web.RequestKey("session", UploadSession)
"""The upload of a PUT or raw POST, from the ``Expect: 100-continue`` handler on, when there is one."""
WITHOUT_BODY: web.RequestKey[UploadError | None] = web.RequestKey("without_body")
"""Set when ``Expect: 100-continue`` was not granted, to the refusal (``None`` for a direct route's redirect)."""


def _session(request: web.Request) -> UploadSession | None:
    """Check what can be checked before the body is read; the session of a PUT or raw POST (once per request)."""
    if SESSION in request:
        return request[SESSION]
    found = target(request)
    route, raw_key = found.route, found.raw_key
    grant = authorize(request)
    conditions.only_if_absent(request.headers)
    if request.method == "PUT":
        key = key_from_path(raw_key or "", route.config.prefix)
    elif request.method == "POST" and raw_key is None and not is_form(request, raw_key):
        key = key_prefix(request) + generated_key()
    else:
        return None
    upload = upload_for(request, route, key, content_type(request.headers.get("Content-Type")))
    check_type(grant, request.headers.get("Content-Type"))
    request[SESSION] = session = session_for(request, route, upload)
    return session


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` only once the upload may go ahead.

    Otherwise (a refusal, or a direct route's redirect) no ``100 Continue``
    is sent: :func:`handle` answers within the middlewares, as any request
    (logged, counted), and the connection closes after the answer.
    """
    try:
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise ExpectationFailed("Only 'Expect: 100-continue' is understood.")
        if (found := found_route(request)) is not None and tus.is_resumable(request, found.route, found.raw_key):
            await _continue(request)
            return None
        if request.version < HttpVersion11:
            return None  # RFC 9110 10.1.1: an HTTP/1.0 client's 100-continue is ignored
        if request.method in ("PUT", "POST"):
            request.app[SERVICE].admit(authorize(request), request.content_length)
        if (session := _session(request)) is not None:
            session.start()
            if target(request).route.config.direct_upload and request.method == "PUT":
                request[WITHOUT_BODY] = None
                return None
    except UploadError as exc:
        request[WITHOUT_BODY] = exc
        return None
    await _continue(request)
    return None


async def _continue(request: web.Request) -> None:
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0


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
    found = target(request)
    route, raw_key = found.route, found.raw_key
    if tus.is_resumable(request, route, raw_key):
        return await tus.handle(request, route, raw_key)
    authorize(request)
    method = request.method
    if method in ("PUT", "POST"):
        return await _handle_upload(request, route, raw_key)
    if raw_key is None:
        raise MethodNotAllowed(f"{method} needs a key: {route.path}/<key>.", headers={"Allow": "POST"})
    key = key_from_path(raw_key, route.config.prefix)
    if method in ("GET", "HEAD"):
        return await handle_get(request, route, key)
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
        response = await _redirect_to_s3(request, target(request).route, request[SESSION])
    except UploadError as exc:
        if SESSION in request:
            await request[SESSION].abandon(exc)
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
    try:
        with request.app[SERVICE].in_flight(authorize(request), request.content_length):
            return await _handle_upload_in_flight(request, route)
    except BaseException as exc:
        if SESSION in request:
            await request[SESSION].abandon(exc)  # one started by the 100-continue handler, then refused
        raise


async def _handle_upload_in_flight(request: web.Request, route: Route) -> web.StreamResponse:
    session = _session(request)
    if session is None:
        return await handle_form(request, route)
    if route.config.direct_upload and request.method == "PUT":
        return await _redirect_to_s3(request, route, session)
    await session.stage(request.content.readany)
    result = await session.commit()
    attempts(request).results.append(result)
    return web.json_response(
        result,
        status=201,
        headers={"Location": location(route, session.upload.key), "ETag": result["etag"]},
    )


async def _redirect_to_s3(request: web.Request, route: Route, session: UploadSession) -> web.StreamResponse:
    """``307`` to a presigned PutObject URL for this key, once credentials and lifecycle hooks agree."""
    grant, upload = authorize(request), session.upload
    content_length = None
    if grant and grant.max_size is not None:
        if request.content_length is None:
            raise BadRequest("These credentials limit the size: send the body with a Content-Length, not chunked.")
        content_length = request.content_length
    session.start()
    expires_in = route.config.direct_upload_expires
    if grant and grant.expires is not None:
        expires_in = min(expires_in, math.floor(grant.expires - time.time()))
        if expires_in < 1:
            raise Forbidden("The signed URL has expired.")
    url = await session.hand_off(
        expires_in=expires_in,
        content_length=content_length,
        content_type=upload.content_type if request.headers.get("Content-Type") else None,
    )
    return web.Response(status=307, headers={"Location": url})
