"""The S3 API's listener: path-style requests (``/{bucket}/{key}``) to the operations, S3's XML errors.

A second aiohttp application in the process, beside the HTTP API's: it shares that application's routes,
their plugin chains, the S3 client and the admission of uploads (`aiouploader.service.Service`), so an
upload counts against the same limits and a drain waits for it too. Its requests are logged and counted
by the same middlewares.

Multipart uploads (`.parts`, `.multipart`) live in this process: a deployment of several replicas routes
every request of one upload id to the same replica. An operation this server does not implement is answered
with S3's ``NotImplemented`` (501), never with a silent success.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler

from ..config import Config
from ..errors import UploadError
from ..keys import key_from_path
from ..logs import access
from ..metrics import METRICS, count_uploads
from ..middlewares import ERROR, REQUEST_ID, request_id
from ..routes import ROUTES, TARGET, Route, Target
from ..service import SERVICE
from . import bucket, objects, parts, sigv2
from .access import Caller, authenticate, permit
from .errors import InvalidRequest, NoSuchBucket, S3Error, S3NotImplemented
from .multipart import MULTIPARTS, Multiparts
from .responses import Refused, error_response
from .settings import S3ApiConfig

log = logging.getLogger(__name__)
SETTINGS = web.AppKey("s3_api_settings", S3ApiConfig)
BUCKETS: web.AppKey[dict[str, Route]] = web.AppKey("s3_api_buckets")
CALLER = web.RequestKey("s3_api_caller", Caller)
REFUSED: web.RequestKey[S3Error | UploadError] = web.RequestKey("s3_api_refused")
"""Set when ``Expect: 100-continue`` was not granted, to the refusal."""


@dataclass(frozen=True)
class Addressed:
    """What a path-style request names: a bucket (``""`` for the service) and a key (``None`` for the bucket)."""

    bucket: str
    raw_key: str | None

    @classmethod
    def of(cls, request: web.Request) -> Addressed:
        path = request.raw_path.partition("?")[0] if request.raw_path.startswith("/") else request.rel_url.raw_path
        name, slash, raw_key = path.removeprefix("/").partition("/")
        return cls(unquote(name), raw_key if slash and raw_key else None)


def make_s3_api_app(main: web.Application, config: Config) -> web.Application:
    """The S3 API's application, serving ``main``'s routes once ``main`` has started (its service is shared)."""
    assert config.s3_api is not None
    app = web.Application(middlewares=[_target, access, count_uploads, _errors])
    app[SETTINGS] = config.s3_api
    app[BUCKETS] = {r.config.s3_api_bucket: r for r in main[ROUTES] if r.config.s3_api_bucket is not None}
    app[METRICS] = main[METRICS]

    async def share_service(app: web.Application) -> None:
        app[SERVICE] = main[SERVICE]
        app[MULTIPARTS] = Multiparts(app[SERVICE], app[SETTINGS].multipart_idle_timeout)

    async def discard_multipart_uploads(app: web.Application) -> None:
        await app[MULTIPARTS].close()

    app.on_startup.append(share_service)
    app.on_cleanup.append(discard_multipart_uploads)
    app.router.add_route("*", r"/{tail:[\s\S]*}", _dispatch, expect_handler=_expect)
    return app


def _route(request: web.Request) -> Route:
    addressed = Addressed.of(request)
    if not addressed.bucket:
        raise S3NotImplemented("Requests to the service itself (ListBuckets) are not implemented.")
    route = request.app[BUCKETS].get(addressed.bucket)
    if route is None:
        raise NoSuchBucket()
    return route


def _caller(request: web.Request) -> Caller:
    if CALLER not in request:
        request[CALLER] = authenticate(request, request.app[SETTINGS])
    return request[CALLER]


def _creates_bucket(request: web.Request, addressed: Addressed, query: list[str]) -> bool:
    return request.method == "PUT" and bool(addressed.bucket) and addressed.raw_key is None and not query


def _operation_query(request: web.Request) -> list[str]:
    """The query's parameters that choose or change an operation: not a presigned URL's, not an SDK's ``x-id``."""
    presigned = sigv2.SIGNED_ALONG if sigv2.is_presigned(request.query) else ()
    return [name for name in request.query if not name.startswith("X-Amz-") and name not in ("x-id", *presigned)]


async def _expect(request: web.Request) -> None:
    """Grant ``100 Continue`` only to a PutObject its caller may make, or a part of an upload this process holds:
    a refused body is never sent."""
    try:
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise InvalidRequest("Only 'Expect: 100-continue' is understood.")
        caller = _caller(request)
        addressed, query = Addressed.of(request), _operation_query(request)
        if _creates_bucket(request, addressed, query):
            bucket.refuse_create_bucket(request, caller, addressed.bucket, request.app[BUCKETS].get(addressed.bucket))
        route = _route(request)
        if request.method == "PUT" and addressed.raw_key is not None:
            key = key_from_path(addressed.raw_key, route.config.prefix)
            if not query or set(query) == {"partNumber", "uploadId"}:
                permit(caller, route.path, addressed.bucket, request.method, key)
            if not query:
                objects.refuse_unsupported(request.headers)
            elif set(query) == {"partNumber", "uploadId"}:
                request.app[MULTIPARTS].get(request.query["uploadId"], route, key)
    except (S3Error, UploadError) as refusal:
        request[REFUSED] = refusal
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0


async def _dispatch(request: web.Request) -> web.StreamResponse:
    if REFUSED in request:
        raise request[REFUSED]
    caller = _caller(request)
    addressed, method, query = Addressed.of(request), request.method, _operation_query(request)
    if _creates_bucket(request, addressed, query):
        return await bucket.create_bucket(request, caller, addressed.bucket, request.app[BUCKETS].get(addressed.bucket))
    route = _route(request)
    if addressed.raw_key is None:
        permit(caller, route.path, addressed.bucket, "GET" if method == "HEAD" else method)
        if method == "GET" and query == ["location"]:
            return await bucket.get_bucket_location(request, route)
        if method == "GET" and request.query.get("list-type") == "2" and set(query) <= bucket.LIST_PARAMS:
            return await bucket.list_objects_v2(request, route, caller)
        if method == "GET" and set(query) <= bucket.LIST_V1_PARAMS:
            return await bucket.list_objects_v1(request, route, caller)
        if method == "HEAD" and not query:
            return await bucket.head_bucket(request, route)
        if method == "GET" and "uploads" in query and set(query) <= {*parts.LIST_UPLOADS_PARAMS, "encoding-type"}:
            return await parts.list_multipart_uploads(request, route, caller)
        raise S3NotImplemented(
            f"This bucket operation ({method} {', '.join(query) or 'without a query'}) is not implemented."
        )
    key = key_from_path(addressed.raw_key, route.config.prefix)
    if query:
        return await _multipart(request, route, key, caller, method, set(query))
    permit(caller, route.path, addressed.bucket, method, key)
    if method == "PUT":
        return await objects.put_object(request, route, key, caller)
    if method in ("GET", "HEAD"):
        return await objects.get_object(request, route, key)
    if method == "DELETE":
        return await objects.delete_object(request, route, key)
    raise S3NotImplemented(f"{method} on an object is not implemented.")


async def _multipart(
    request: web.Request, route: Route, key: str, caller: Caller, method: str, query: set[str]
) -> web.StreamResponse:
    """The multipart operations; a PUT-credential may make, complete and abort an upload, a GET one list it."""
    name = route.config.s3_api_bucket or ""
    permit(caller, route.path, name, "GET" if method == "GET" else "PUT", key)
    if method == "POST" and query == {"uploads"}:
        return await parts.create_multipart_upload(request, route, key, caller)
    if method == "PUT" and query == {"partNumber", "uploadId"}:
        return await parts.upload_part(request, route, key, caller, request.app[SETTINGS])
    if method == "POST" and query == {"uploadId"}:
        return await parts.complete_multipart_upload(request, route, key, caller)
    if method == "DELETE" and query == {"uploadId"}:
        return await parts.abort_multipart_upload(request, route, key)
    if method == "GET" and "uploadId" in query and query <= {"uploadId", "max-parts", "part-number-marker"}:
        return await parts.list_parts(request, route, key)
    raise S3NotImplemented(f"The object operation {method} ?{'&'.join(sorted(query))} is not implemented.")


@web.middleware
async def _target(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The route a request is for, as the HTTP API's logs and metrics find it."""
    addressed = Addressed.of(request)
    route = request.app[BUCKETS].get(addressed.bucket)
    request[TARGET] = None if route is None else Target(route, addressed.raw_key)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id(request)
    try:
        response = await handler(request)
    except Exception as exc:
        if request.writer.output_size:
            raise
        if not isinstance(exc, S3Error | UploadError):
            log.error("request %s failed", rid, exc_info=exc)
            exc = UploadError("The server failed to handle the request.")
        error = exc if isinstance(exc, UploadError) else Refused(exc)
        request[ERROR] = error
        response = error_response(exc, request.path, rid, head=request.method == "HEAD")
        response.headers[REQUEST_ID] = rid
        if REFUSED in request:
            return await _answer_without_body(request, response)
        if request.body_exists and not request.content.at_eof():
            response.force_close()
        return response
    if not response.prepared:
        response.headers[REQUEST_ID] = rid
        response.headers["x-amz-request-id"] = rid
    return response


async def _answer_without_body(request: web.Request, response: web.Response) -> web.Response:
    """Answer a request denied ``100 Continue`` and close: its body is not coming."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()
    return response
