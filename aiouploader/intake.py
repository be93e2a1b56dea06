"""What a request says about the upload it carries: its credentials' grant, the Upload, its limits."""

from __future__ import annotations

from urllib.parse import quote, unquote

from aiohttp import web

from . import conditions
from .auth import Grant
from .errors import BadRequest, Forbidden
from .hookspecs import Upload
from .middlewares import request_id
from .routes import Route, target
from .service import SERVICE
from .upload import Read, Staged, stage

GRANT: web.RequestKey[Grant | None] = web.RequestKey("grant")
STARTED = web.RequestKey("started", bool)


def content_type(sent: str | None) -> str | None:
    """A Content-Type as sent, parameters (such as charset) included; it must be printable ASCII."""
    sent = (sent or "").strip()
    if not (sent.isascii() and sent.isprintable()):
        raise BadRequest("The Content-Type must be printable ASCII, e.g. text/plain; charset=utf-8.")
    return sent or None


def upload_for(request: web.Request, route: Route, key: str, content_type: str | None) -> Upload:
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


async def stage_for(
    request: web.Request,
    route: Route,
    upload: Upload,
    read: Read,
    send_all: bool = False,
    max_size: int | None = None,
) -> Staged:
    """Stage ``upload``: within ``max_size`` bytes when given, else within the credentials' limit."""
    if max_size is None and (grant := authorize(request)):
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
