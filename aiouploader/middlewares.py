"""What every request carries: its id, what it tried to store, how it ended; JSON errors for every response."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import MethodNotAllowed, NotFound, UploadError
from .hookspecs import Upload, UploadResult

log = logging.getLogger(__name__)
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
REQUEST_ID = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
ERROR = web.RequestKey("error", UploadError)
CUT = web.RequestKey("cut", bool)
"""Set when a response was cut part-way, its status already sent."""
_UUID4_BITS = (0x4 << 76) | (0x8 << 60)
_UUID4_MASK = ~((0xF << 76) | (0xC << 60))


def new_request_id() -> str:
    """A random UUID (version 4) as 32 hex digits, as ``uuid.uuid4().hex`` makes it, without a UUID object."""
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_MASK | _UUID4_BITS:032x}"


@dataclass
class Attempts:
    """What a request tried to store, for its log line and metrics."""

    uploads: list[Upload] = field(default_factory=list)
    results: list[UploadResult] = field(default_factory=list)


ATTEMPTS = web.RequestKey("attempts", Attempts)


def attempts(request: web.Request) -> Attempts:
    if ATTEMPTS not in request:
        request[ATTEMPTS] = Attempts()
    return request[ATTEMPTS]


def cancelled_outcome(request: web.Request) -> str:
    """How a request whose handler was cancelled ended: the client went away (its connection is gone), or the
    server cancelled it (the drain)."""
    return "disconnected" if request.transport is None or request.transport.is_closing() else "cancelled"


def outcome(request: web.Request, status: int) -> str:
    """How a request that was answered with ``status`` ended, as logs and metrics name it."""
    if CUT in request:
        return "cut"
    if status == 201:
        return "created"
    if status == 307:
        return "redirected"
    if status < 400:
        return "ok"
    return request[ERROR].code if ERROR in request else str(status)


def request_id(request: web.Request) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a new one; the same for the whole request."""
    if REQUEST_ID_KEY not in request:
        sent = request.headers.get(REQUEST_ID, "")
        request[REQUEST_ID_KEY] = sent if _SANE_ID.fullmatch(sent) else new_request_id()
    return request[REQUEST_ID_KEY]


def error_response(request: web.Request, error: UploadError) -> web.Response:
    request[ERROR] = error
    response = web.json_response(error.to_json(), status=error.status, headers=error.headers)
    response.headers[REQUEST_ID] = request_id(request)
    return response


def _from_http_exception(exc: web.HTTPException) -> UploadError:
    if exc.status == 404:
        return NotFound("No such route or object.")
    if exc.status == 405:
        return MethodNotAllowed("This method is not allowed here.", headers={"Allow": exc.headers.get("Allow", "")})
    error = UploadError(exc.reason)
    error.status = exc.status
    error.code = exc.reason.lower().replace(" ", "_").replace("-", "_")
    return error


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id(request)
    try:
        response = await handler(request)
    except Exception as exc:
        if request.writer.output_size:
            log.warning("request %s: response cut mid-stream: %s", rid, exc)
            raise
        response = _error_for(request, exc)
        if request.body_exists and not request.content.at_eof():
            response.force_close()  # "Connection: close": the rest of the body is read and dropped
        return response
    if not response.prepared:
        response.headers[REQUEST_ID] = rid
    return response


def _error_for(request: web.Request, exc: Exception) -> web.StreamResponse:
    if isinstance(exc, UploadError):
        return error_response(request, exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(request, _from_http_exception(exc))
    log.error("request %s failed", request_id(request), exc_info=exc)
    return error_response(request, UploadError("The server failed to handle the request."))
