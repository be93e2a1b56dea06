"""The object operations: PutObject through the route's plugins, GetObject and HeadObject, DeleteObject."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDict

from .. import conditions
from ..downloads import handle_get
from ..errors import MethodNotAllowed, PreconditionFailed
from ..hookspecs import Upload
from ..intake import content_type
from ..middlewares import attempts, request_id
from ..routes import Route
from ..service import SERVICE
from ..session import UploadLimits, UploadSession
from .access import Caller
from .errors import S3NotImplemented
from .payload import Payload

_UNSUPPORTED = (
    "x-amz-copy-source",
    "x-amz-tagging",
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
    "x-amz-website-redirect-location",
    "x-amz-grant-",
    "x-amz-write-offset-bytes",
)
"""Headers of a PutObject this server would otherwise ignore (a name ending in ``-``: every one it starts)."""
_FRAMING = ("content-length", "content-encoding", "x-amz-decoded-content-length", "x-amz-trailer")


def refuse_unsupported(headers: Mapping[str, str]) -> None:
    """`S3NotImplemented` for what S3 would do with a PutObject and this server cannot: copy, tags, SSE, ACLs …"""
    for name, value in headers.items():
        lower = name.lower()
        if any(lower == h or (h.endswith("-") and lower.startswith(h)) for h in _UNSUPPORTED):
            raise S3NotImplemented(f"The header {name} is not implemented by this server.")
        if lower == "x-amz-acl" and value.strip() != "private":
            raise S3NotImplemented("Only the private canned ACL is implemented.")
        if lower == "x-amz-storage-class" and value.strip() != "STANDARD":
            raise S3NotImplemented("Only the STANDARD storage class is implemented.")


def object_headers(request: web.Request, content_length: int | None) -> CIMultiDict[str]:
    """The request's headers as they describe the object: without the ``aws-chunked`` framing."""
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _FRAMING)
    codings = [c.strip() for c in request.headers.get("Content-Encoding", "").split(",") if c.strip()]
    if kept := [c for c in codings if c.lower() != "aws-chunked"]:
        headers["Content-Encoding"] = ", ".join(kept)
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    return headers


def new_upload(request: web.Request, route: Route, key: str, content_length: int | None) -> Upload:
    """The upload a PutObject or CreateMultipartUpload request describes."""
    return Upload(
        request_id=request_id(request),
        route=route.path,
        bucket=route.config.bucket,
        prefix=route.config.prefix,
        key=key,
        content_type=content_type(request.headers.get("Content-Type")) or "binary/octet-stream",
        content_length=content_length,
        headers=object_headers(request, content_length),
        metadata={
            name.lower().removeprefix("x-amz-meta-"): value
            for name, value in request.headers.items()
            if name.lower().startswith("x-amz-meta-")
        },
    )


def upload_limits(request: web.Request, route: Route) -> UploadLimits:
    if_none_match = route.config.if_none_match or conditions.only_if_absent(request.headers)
    return dataclasses.replace(request.app[SERVICE].limits, if_none_match=if_none_match)


async def put_object(request: web.Request, route: Route, key: str, caller: Caller) -> web.StreamResponse:
    refuse_unsupported(request.headers)
    payload = Payload(request, caller.verified)
    service = request.app[SERVICE]
    upload = new_upload(request, route, key, payload.content_length)
    attempts(request).uploads.append(upload)
    limits = upload_limits(request, route)
    with service.in_flight(caller.grant, payload.content_length):
        session = UploadSession(service.s3, route.chain, upload, limits)
        try:
            await session.receive(payload.read)
            checksums = payload.verify()
            await session.seal()
            result = await session.commit()
        except BaseException as exc:
            await session.abandon(exc)
            raise
    attempts(request).results.append(result)
    headers = {"ETag": result["etag"], **checksums}
    if result["version_id"] is not None:
        headers["x-amz-version-id"] = result["version_id"]
    return web.Response(headers=headers)


async def get_object(request: web.Request, route: Route, key: str) -> web.StreamResponse:
    """GetObject and HeadObject: the HTTP API's GET, decrypting where the route can."""
    return await handle_get(request, route, key, metadata=True)


async def delete_object(request: web.Request, route: Route, key: str) -> web.StreamResponse:
    if not route.config.allow_delete:
        raise MethodNotAllowed(f"The bucket {route.config.s3_api_bucket} does not allow DeleteObject.")
    s3, bucket, s3_key = request.app[SERVICE].s3, route.config.bucket, route.config.prefix + key
    if "If-Match" in request.headers:
        info = await s3.head(bucket, s3_key)
        if conditions.status(request.headers, "DELETE", info.etag, info.last_modified):
            raise PreconditionFailed("The object does not meet the request's If-Match.")
    await s3.delete(bucket, s3_key)
    return web.Response(status=204)
