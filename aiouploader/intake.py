"""What a request says about the upload it carries: its credentials' grant, the Upload, its limits."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote, unquote

from aiohttp import web

from . import conditions
from .auth import Grant
from .errors import BadRequest, Forbidden
from .hookspecs import Upload
from .middlewares import attempts, request_id
from .routes import Route, target
from .s3 import KEPT_HEADERS
from .service import SERVICE
from .session import UploadSession

GRANT: web.RequestKey[Grant | None] = web.RequestKey("grant")


def content_type(sent: str | None) -> str | None:
    """A Content-Type as sent, parameters (such as charset) included; it must be printable ASCII."""
    sent = (sent or "").strip()
    if not (sent.isascii() and sent.isprintable()):
        raise BadRequest("The Content-Type must be printable ASCII, e.g. text/plain; charset=utf-8.")
    return sent or None


def check_kept_headers(request: web.Request) -> None:
    """400 for a header that S3 would keep with the object (Content-Disposition, ...) that is not printable ASCII,
    which S3 cannot store; a form's are the form's, not its files'."""
    if is_form(request, target(request).raw_key):
        return
    for name in KEPT_HEADERS:
        value = request.headers.get(name, "")
        if not (value.isascii() and value.isprintable()):
            hint = " (a file name that is not ASCII goes in filename*=UTF-8''..., RFC 6266)"
            raise BadRequest(f"The {name} must be printable ASCII{hint if name == 'Content-Disposition' else ''}.")


def upload_for(request: web.Request, route: Route, key: str, content_type: str | None) -> Upload:
    check_kept_headers(request)
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


def is_form(request: web.Request, raw_key: str | None) -> bool:
    """A POST of files in a multipart/form-data body, each limited as it streams rather than by Content-Length."""
    return request.method == "POST" and raw_key is None and request.content_type == "multipart/form-data"


def authorize(request: web.Request) -> Grant | None:
    """Check the request's credentials against its route (once per request)."""
    if GRANT not in request:
        found = target(request)
        route, raw_key = found.route, found.raw_key
        if not route.config.auth:
            request[GRANT] = None  # an open route: nothing of the request to read
            return None
        request[GRANT] = request.app[SERVICE].authorizer.check(
            schemes=list(route.config.auth),
            method=request.method,
            route=route.path,
            key=None if raw_key is None else unquote(raw_key),
            headers=request.headers,
            query=request.query,
            content_length=None if is_form(request, raw_key) else request.content_length,
        )
    return request[GRANT]


def key_prefix(request: web.Request) -> str:
    grant = authorize(request)
    return grant.key_prefix if grant else ""


def check_type(grant: Grant | None, sent: str | None) -> None:
    if grant and grant.content_type and (sent or "").strip() != grant.content_type:
        raise Forbidden(f"These credentials allow only Content-Type {grant.content_type}, exactly as signed.")


def location(route: Route, key: str) -> str:
    return f"{route.path}/{quote(key, safe='/')}"


def session_for(request: web.Request, route: Route, upload: Upload, max_size: int | None = None) -> UploadSession:
    """The session of ``upload``: within ``max_size`` bytes when given, else within the credentials' limit."""
    if max_size is None and (grant := authorize(request)):
        max_size = grant.max_size
    service = request.app[SERVICE]
    if_none_match = route.config.if_none_match or conditions.only_if_absent(request.headers)
    attempts(request).uploads.append(upload)
    limits = service.limits
    if (max_size, if_none_match) != (limits.max_size, limits.if_none_match):
        limits = dataclasses.replace(limits, max_size=max_size, if_none_match=if_none_match)
    return UploadSession(service.s3, route.chain, upload, limits)
