"""The requests of resumable uploads: OPTIONS, creation (POST), HEAD, PATCH, GET of the result, DELETE."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import json
import math
from email.utils import formatdate
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from ..auth import Grant
from ..config import Config
from ..errors import (
    BadRequest,
    CannotResume,
    Forbidden,
    MethodNotAllowed,
    OffsetMismatch,
    PatchChecksumMismatch,
    PayloadTooLarge,
    UploadBusy,
    UploadError,
    UploadIncomplete,
)
from ..intake import authorize, check_type, content_type, key_prefix, session_for, upload_for
from ..keys import key_for_file
from ..routes import Route, found_route
from ..s3.parts import part_size_for
from ..service import SERVICE
from ..session import Phase
from . import draft, protocol
from .protocol import PatchChecksum
from .reader import PatchReader
from .uploads import RESUMABLE_UPLOADS, ResumableUpload, carried_on

_OVERRIDDEN = frozenset({"PATCH", "HEAD", "DELETE"})


@web.middleware
async def method_override(request: web.Request, handler: Handler) -> web.StreamResponse:
    """tus's ``X-HTTP-Method-Override``: a POST to a resumable upload's URL is the request it names (``PATCH``,
    ``DELETE``, ``HEAD``), for clients that cannot send those methods."""
    if request.method != "POST":
        return await handler(request)
    override = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
    found = found_route(request)
    if (
        override in _OVERRIDDEN
        and found is not None
        and found.raw_key is not None
        and is_resumable(request, found.route, found.raw_key)
    ):
        request = request.clone(method=override)
    return await handler(request)


def is_resumable(request: web.Request, route: Route, raw_key: str | None) -> bool:
    """Whether the request is one of a resumable upload's (a POST without ``Tus-Resumable`` or
    ``Upload-Draft-Interop-Version`` is not)."""
    if not route.config.resumable:
        return False
    if raw_key is None:
        return request.method == "OPTIONS" or (
            request.method == "POST" and ("Tus-Resumable" in request.headers or draft.INTEROP in request.headers)
        )
    return protocol.is_tus_path(raw_key)


async def handle(request: web.Request, route: Route, raw_key: str | None) -> web.StreamResponse:
    """Serve a resumable upload's request, in tus or, with ``Upload-Draft-Interop-Version``, the IETF draft."""
    headers = protocol.base_headers()
    try:
        interop = None if request.method == "OPTIONS" else draft.version(request)
        if interop is not None:
            headers = {draft.INTEROP: interop}
        response = await _dispatch(request, route, raw_key, interop)
    except UploadError as exc:
        exc.headers.update(headers)
        raise
    response.headers.update(headers)
    return response


async def _dispatch(request: web.Request, route: Route, raw_key: str | None, interop: str | None) -> web.StreamResponse:
    method = request.method
    if method == "OPTIONS":
        return web.Response(
            status=204,
            headers={
                "Tus-Version": protocol.VERSION,
                "Tus-Extension": protocol.EXTENSIONS,
                "Tus-Max-Size": str(protocol.max_size(route.chain.upload_limit)),
                "Tus-Checksum-Algorithm": ",".join(protocol.CHECKSUM_ALGORITHMS),
            },
        )
    if method == "GET" and raw_key is not None:
        upload = await _upload(request, route, raw_key)
        if upload.result is None:
            raise UploadIncomplete(f"The upload has {upload.offset} bytes; its result comes with its last byte.")
        return web.json_response(upload.result, headers={"Cache-Control": "no-store"})
    if interop is None:
        protocol.check_version(request)
    if raw_key is None:
        if method != "POST":
            raise MethodNotAllowed("Create a resumable upload with POST.", headers={"Allow": "POST, OPTIONS"})
        return await _create(request, route, interop)
    upload = await _upload(request, route, raw_key)
    if method == "HEAD":
        if upload.result is None:
            request.app[RESUMABLE_UPLOADS].count(upload.route, "resumed")
        if interop is not None:
            return web.Response(status=204, headers=_draft_state(upload) | {"Cache-Control": "no-store"})
        return web.Response(headers=_state(upload) | {"Cache-Control": "no-store"})
    if method == "PATCH":
        return await _patch(request, upload, interop)
    if method == "DELETE":
        if upload.busy:
            raise UploadBusy("The upload's bytes are being sent; try again once that request ends.")
        if upload.elsewhere:
            raise CannotResume("another instance holds it, as its checks cannot move; send its requests there")
        await request.app[RESUMABLE_UPLOADS].end(upload, UploadError("The client terminated the upload."), "terminated")
        return web.Response(status=204)
    raise MethodNotAllowed(f"{method} is not served on a resumable upload.", headers={"Allow": _ALLOWED})


_ALLOWED = "GET, HEAD, PATCH, DELETE, OPTIONS"


async def _upload(request: web.Request, route: Route, raw_key: str) -> ResumableUpload:
    """The upload the request's URL names, once its credentials cover the upload's key."""
    upload_id = raw_key[len(protocol.UPLOADS) + 1 :]
    grant = request.app[SERVICE].authorizer.check(
        schemes=list(route.config.auth),
        method="POST",
        route=route.path,
        key=None,
        headers=request.headers,
        query=request.query,
        content_length=None,
    )
    service = request.app[SERVICE]
    carry_on = functools.partial(carried_on, service, route)
    upload = await request.app[RESUMABLE_UPLOADS].find(upload_id, route.path, route.config.bucket, carry_on)
    if grant and not upload.scope.startswith(grant.key_prefix):
        raise Forbidden("These credentials do not cover the upload's key.")
    return upload


def _state(upload: ResumableUpload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Expires": _http_date(upload.expires)}
    if upload.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.length)
    return headers


def _draft_state(upload: ResumableUpload) -> dict[str, str]:
    return draft.state(upload.offset, upload.length, upload.result is not None)


def _answer(upload: ResumableUpload, interop: str | None, status: int, headers: dict[str, str]) -> web.Response:
    """The answer to a request that created or appended to ``upload``, in the client's protocol.

    A draft's client hears the upload's end as a PUT's would: the result as JSON.
    """
    done = upload.result is not None
    if interop is None:
        return web.Response(status=status, headers=headers | _state(upload) | (_result_header(upload) if done else {}))
    headers |= _draft_state(upload)
    if not done:
        return web.Response(status=status, headers=headers)
    return web.json_response(
        upload.result, status=201 if status == 201 else 200, headers=headers | _result_header(upload)
    )


def _http_date(when: float) -> str:
    return formatdate(when, usegmt=True)


async def _create(request: web.Request, route: Route, interop: str | None) -> web.StreamResponse:
    grant = authorize(request)
    if interop is None:
        protocol.check_not_concatenated(request)
        length, ends = protocol.length_at_creation(request), False
    else:
        length, ends = draft.length(request, 0, None)
    if grant and grant.max_size is not None and length is not None and length > grant.max_size:
        raise PayloadTooLarge(f"The upload is larger than the {grant.max_size} bytes its credentials allow.")
    sent = protocol.metadata(request.headers.get("Upload-Metadata"))
    key = key_prefix(request) + key_for_file(sent.get("filename"), route.config.form_keys)
    check_type(grant, sent.get("filetype"))
    upload = upload_for(request, route, key, content_type(sent.get("filetype")))
    upload = dataclasses.replace(upload, content_length=length)
    service = request.app[SERVICE]
    give_back = service.hold(_kept_between_requests(service.config, length))
    try:
        session = session_for(request, route, upload)
        session.limits = dataclasses.replace(session.limits, idle_timeout=math.inf, total_timeout=math.inf)
        session.start()
    except BaseException:
        give_back()
        raise
    uploads = request.app[RESUMABLE_UPLOADS]
    resumable = uploads.add(route.path, session, key, length, route.config.resumable_expires, give_back)
    location = f"{route.path}/{protocol.UPLOADS}/{resumable.id}"
    if query := request.rel_url.raw_query_string:
        location += "?" + query
    headers = {"Location": location, "Upload-Expires": _http_date(resumable.expires)}
    received = request.body_exists or length == 0 or ends
    if received:
        if request.body_exists and interop is None:
            protocol.check_patch_type(request)
        await _receive(request, resumable, grant, protocol.patch_checksum(request), ends)
    else:
        try:
            await uploads.settle(resumable)
        except BaseException as exc:
            await uploads.end(resumable, exc if isinstance(exc, UploadError) else UploadError("The upload failed."))
            raise
    if received or interop is not None:
        return _answer(resumable, interop, 201, headers)
    return web.Response(status=201, headers=headers)


def _kept_between_requests(config: Config, length: int | None) -> int:
    """What an upload holds in memory while no request sends its bytes: the part the writer has not sent yet.

    (A ``PATCH``'s reader keeps its own deadlines, so the session has none: one that passes ends that request,
    not the upload.)
    """
    part = part_size_for(1, config.s3.part_size, length)
    return part if length is None else min(part, length)


async def _patch(request: web.Request, upload: ResumableUpload, interop: str | None) -> web.StreamResponse:
    if interop is None:
        protocol.check_patch_type(request)
    else:
        draft.check_patch_type(request, interop)
    offset = protocol.number(request, "Upload-Offset")
    if offset is None:
        raise BadRequest("A PATCH says where its bytes go: Upload-Offset.")
    if upload.busy:
        raise UploadBusy("Another request is sending this upload's bytes.")
    if offset != upload.offset:
        raise OffsetMismatch(f"The upload has {upload.offset} bytes; send Upload-Offset: {upload.offset}.")
    if upload.result is not None:
        if request.content_length or (request.content_length is None and request.body_exists):
            raise PayloadTooLarge(f"The upload is complete: it has all its {upload.offset} bytes.")
        return _answer(upload, interop, 204, {})
    if interop is None:
        length, ends = protocol.number(request, "Upload-Length"), False
        if length is not None and upload.length is not None and length != upload.length:
            raise BadRequest(f"The upload's length is {upload.length} already.")
        if length is not None and length < upload.offset:
            raise BadRequest(f"The upload has {upload.offset} bytes already, more than Upload-Length.")
    else:
        length, ends = draft.length(request, upload.offset, upload.length)
    if length is not None:
        if (limit := upload.session.limits.max_size) is not None and length > limit:
            raise PayloadTooLarge(f"The upload is larger than the {limit} bytes its credentials allow.")
        upload.length = upload.session.upload.content_length = length
    await _receive(request, upload, None, protocol.patch_checksum(request), ends)
    return _answer(upload, interop, 204, {})


async def _receive(
    request: web.Request, upload: ResumableUpload, grant: Grant | None, checksum: PatchChecksum | None, ends: bool
) -> None:
    """Feed the request's body to the upload's session (``ends``: its end is the upload's, whatever its length).

    The work runs in a task of its own: a client that goes away mid-body
    ends the body early (what came is kept), not the upload.
    """
    upload.busy = True
    upload.received.clear()
    task = asyncio.get_running_loop().create_task(_receive_in_task(request, upload, grant, checksum, ends))
    await asyncio.shield(task)


async def _receive_in_task(
    request: web.Request, upload: ResumableUpload, grant: Grant | None, checksum: PatchChecksum | None, ends: bool
) -> None:
    service, uploads = request.app[SERVICE], request.app[RESUMABLE_UPLOADS]
    session = upload.session
    left = None if upload.length is None else upload.length - upload.offset
    stop = service.cut if uploads.states is not None else None
    reader = PatchReader(request.content.readany, service.config.server, left, checksum, stop)
    # An upload kept in its bucket brings its tail back into memory for the request.
    tail = upload.stored.tail if upload.stored is not None and upload.session.phase is Phase.NEW else 0
    try:
        with service.in_flight(grant, None if left is None else left + tail, cuttable=stop is not None):
            await uploads.take_up(upload)
            await session.receive(reader.read)
            if checksum is not None and (reader.cut or not checksum.matches()):
                await uploads.end(upload, _checksum_error(checksum, reader.cut))
                raise _checksum_error(checksum, reader.cut)
            if ends and not reader.cut and upload.length is None:
                upload.length = session.upload.content_length = upload.offset
            if upload.length is not None and upload.offset == upload.length:
                await session.seal()
                upload.result = await session.commit()
                uploads.completed(upload)
            await uploads.settle(upload)
    except BaseException:
        if session.phase is Phase.FAILED:
            uploads.forget(upload)
            await uploads.remove(upload)
        elif upload.result is None:
            await uploads.let_go(upload)
        raise
    finally:
        upload.busy = False
        upload.received.set()
        uploads.touch(upload)


def _checksum_error(checksum: PatchChecksum, cut: bool) -> PatchChecksumMismatch:
    if cut:
        return PatchChecksumMismatch(
            f"The PATCH ended before its {checksum.algorithm} could be checked, and its first bytes went "
            "through the upload's checks already; the upload was ended: start it again."
        )
    return PatchChecksumMismatch(
        f"The PATCH's bytes do not match its Upload-Checksum ({checksum.algorithm}); they went through the "
        "upload's checks already, so the upload was ended: start it again."
    )


def _result_header(upload: ResumableUpload) -> dict[str, str]:
    """The upload result, as the JSON a PUT answers with, in base64 (``Upload-Result``)."""
    body = json.dumps(upload.result, separators=(",", ":")).encode()
    return {"Upload-Result": base64.b64encode(body).decode(), "Content-Location": _object_location(upload)}


def _object_location(upload: ResumableUpload) -> str:
    return f"{upload.route}/{quote(upload.session.upload.key, safe='/')}"
