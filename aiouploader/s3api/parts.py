"""The multipart operations: CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
ListParts and ListMultipartUploads, over `aiouploader.s3api.multipart`.

The client's parts are not the parts written to S3 (the session's writer has its own): an UploadPart answers
a digest of the client's part as its ETag (`aiouploader.s3api.part_reader`) and the part's checksums;
CompleteMultipartUpload answers S3's form of the multipart ETag (``"<MD5 of the parts' digests>-N"``) and the
upload's checksum (composite: of the parts' checksums, ``-N``; full object: of all the bytes) from what the
client sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from ..checksums import HASHES
from ..errors import ClientFault, UploadError
from ..middlewares import attempts
from ..routes import Route
from ..service import SERVICE
from ..session import UploadSession
from .access import Caller
from .checksums import ALGORITHMS, HEADER_PREFIX, Checksum
from .completed import Listed
from .errors import (
    BadDigest,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchUpload,
    RequestTimeout,
)
from .multipart import MULTIPARTS, MultipartUpload, Part
from .objects import new_upload, refuse_unsupported, upload_limits
from .part_reader import PartReader
from .payload import Payload
from .responses import Refused, element, xml_response
from .settings import S3ApiConfig
from .xml_bodies import local, parse, read_xml_body

MAX_PARTS = 10_000
_XML_NAMES = {algorithm: "Checksum" + algorithm.upper() for algorithm in ALGORITHMS}


class Aborted(ClientFault):
    """What the plugins hear of an upload its client aborted."""

    code = "aborted"


async def create_multipart_upload(request: web.Request, route: Route, key: str, caller: Caller) -> web.Response:
    refuse_unsupported(request.headers)
    algorithm = request.headers.get("x-amz-checksum-algorithm", "").strip().lower() or None
    kind = request.headers.get("x-amz-checksum-type", "").strip().upper()
    if algorithm is not None:
        Checksum(algorithm)
    if kind not in ("", "COMPOSITE", "FULL_OBJECT") or (kind and algorithm is None):
        raise InvalidRequest("x-amz-checksum-type is COMPOSITE or FULL_OBJECT, with x-amz-checksum-algorithm.")
    full = kind == "FULL_OBJECT" or algorithm == "crc64nvme"
    if (full and algorithm in ("sha1", "sha256")) or (kind == "COMPOSITE" and algorithm == "crc64nvme"):
        raise InvalidRequest(f"The {kind or 'COMPOSITE'} checksum type does not go with {algorithm}.")
    service = request.app[SERVICE]
    session = UploadSession(
        service.s3, route.chain, new_upload(request, route, key, None), upload_limits(request, route)
    )
    upload = await request.app[MULTIPARTS].create(route, key, session, caller.grant, algorithm, full)
    headers = {}
    if algorithm is not None:
        headers = {"x-amz-checksum-algorithm": algorithm.upper(), "x-amz-checksum-type": _kind(upload)}
    children = (
        element("Bucket", route.config.s3_api_bucket) + element("Key", key) + element("UploadId", upload.upload_id)
    )
    return xml_response("InitiateMultipartUploadResult", children, headers)


async def upload_part(
    request: web.Request, route: Route, key: str, caller: Caller, settings: S3ApiConfig
) -> web.Response:
    if "x-amz-copy-source" in request.headers:
        refuse_unsupported(request.headers)
    number = _number(request.query.get("partNumber", ""), "partNumber")
    upload = request.app[MULTIPARTS].get(request.query["uploadId"], route, key)
    upload.busy += 1
    try:
        payload = Payload(request, caller.verified)
        done = await upload.take_turn(number, settings.multipart_part_wait)
        part = await (_feed(upload, number, payload, request) if done is None else _again(upload, done, payload))
    finally:
        upload.busy -= 1
        upload.last_active = asyncio.get_running_loop().time()
    return web.Response(headers={"ETag": part.etag, **part.checksums})


async def _feed(upload: MultipartUpload, number: int, payload: Payload, request: web.Request) -> Part:
    """Part ``number``'s bytes through the chain; once they passed, its checks (or the upload is discarded)."""
    part = None
    try:
        if request.transport is None or request.transport.is_closing():
            raise RequestTimeout(f"Part {number}'s connection closed while it waited; nothing of it was read.")
        reader = PartReader(payload, _algorithms(upload, request.headers), upload.whole, request.headers)
        try:
            await upload.session.receive(reader.read)
            part = reader.part(number, request.headers)
        except BaseException as exc:
            error = exc if isinstance(exc, UploadError) else UploadError("The part failed; nothing was stored.")
            await upload.give_up(error)
            raise
    finally:
        await upload.passed(part)
    return part


async def _again(upload: MultipartUpload, done: Part, payload: Payload) -> Part:
    """A part whose bytes passed already, sent again: the same bytes are answered as before, other bytes end the
    upload. Its body is read and checked but goes nowhere."""
    digest, size, idle = HASHES[done.algorithm](), 0, upload.session.limits.idle_timeout
    try:
        while True:
            async with asyncio.timeout(idle):
                if not (data := await payload.read()):
                    break
            digest.update(data)
            size += len(data)
    except TimeoutError:
        raise RequestTimeout(f"Part {done.number} sent nothing for {idle:g} s.") from None
    payload.verify()
    if digest.digest() != done.digest or size != done.size:
        message = f"Part {done.number} came again with other bytes after its bytes had passed; the upload is discarded."
        await upload.give_up(Refused(InvalidPart(message)))
        raise InvalidPart(message)
    return done


async def complete_multipart_upload(request: web.Request, route: Route, key: str, caller: Caller) -> web.Response:
    multiparts, upload_id = request.app[MULTIPARTS], request.query["uploadId"]
    try:
        upload = multiparts.get(upload_id, route, key)
    except NoSuchUpload:
        answer = multiparts.completed.recall(upload_id, route, key)
        return answer.again(await _listed_parts(request, caller), request.headers)
    upload.busy += 1
    try:
        listed = await _listed_parts(request, caller)
        if upload.completing:
            await upload.ended.wait()
            return multiparts.completed.recall(upload_id, route, key).again(listed, request.headers)
        _check_listed(upload, listed)
        _check_whole(upload, request.headers)
        upload.completing, upload.working = True, asyncio.current_task()
        session = upload.session
        attempts(request).uploads.append(session.upload)
        try:
            await session.seal()
            result = await session.commit()
        except BaseException as exc:
            error = exc if isinstance(exc, UploadError) else UploadError("The upload failed; nothing was stored.")
            await upload.give_up(error)
            raise
        attempts(request).results.append(result)
        location = f"{request.scheme}://{request.host}/{route.config.s3_api_bucket}/{quote(key, safe='/~')}"
        children = element("Location", location) + _completed(route, key, upload)
        headers = {} if result["version_id"] is None else {"x-amz-version-id": result["version_id"]}
        multiparts.completed.remember(upload_id, route, key, listed, upload.whole, children, headers)
        await upload.finish()
    finally:
        upload.busy -= 1
    return xml_response("CompleteMultipartUploadResult", children, headers)


def _completed(route: Route, key: str, upload: MultipartUpload) -> str:
    """The elements of CompleteMultipartUploadResult after its Location: S3's multipart ETag, the upload's
    checksum."""
    parts = [upload.parts[number] for number in sorted(upload.parts)]
    etag = hashlib.md5(b"".join(part.digest for part in parts), usedforsecurity=False).hexdigest()
    children = _named(route, key) + element("ETag", f'"{etag}-{len(parts)}"')
    if (checksum := _upload_checksum(upload)) is not None:
        children += element(_XML_NAMES[checksum[0]], checksum[1]) + element("ChecksumType", _kind(upload))
    return children


def _check_listed(upload: MultipartUpload, listed: Listed) -> None:
    numbers = [number for number, _, _ in listed]
    if not listed:
        raise MalformedXML("The CompleteMultipartUpload body lists no part.")
    if numbers != sorted(set(numbers)):
        raise InvalidPartOrder()
    if upload.working is not None or upload.completing:
        raise InvalidPart(f"Part {upload.next_number} is still being received; complete the upload after it.")
    for number, etag, checksums in listed:
        part = upload.parts.get(number)
        if part is None or etag.strip().strip('"') != part.digest.hex():
            raise InvalidPart(
                f"Part {number} was not received with the ETag {etag}. One or more of the specified parts could "
                "not be found, or its entity tag did not match."
            )
        for algorithm, value in checksums.items():
            if part.checksums.get(HEADER_PREFIX + algorithm) not in (None, value.strip()):
                raise InvalidPart(f"Part {number}'s {algorithm.upper()} is not the one it was received with.")
    if numbers != sorted(upload.parts):
        raise InvalidPart(
            f"The upload's parts are 1 to {len(upload.parts)}, and every one passed the plugins: list them all."
        )


def _check_whole(upload: MultipartUpload, headers: Mapping[str, str]) -> None:
    """A checksum the client sent with CompleteMultipartUpload must be the upload's: of all its bytes (full
    object), or of its parts' checksums (composite, with or without its ``-N``)."""
    if upload.whole is not None and (claimed := headers.get(upload.whole.header)) is not None:
        try:
            upload.whole.verify(claimed)
        except BadDigest:
            raise BadDigest(f"The {upload.whole.algorithm.upper()} of the whole object is not the one sent.") from None
    elif (checksum := _upload_checksum(upload)) is not None:
        claimed = headers.get(HEADER_PREFIX + checksum[0])
        if claimed is not None and claimed.strip() not in (checksum[1], checksum[1].rpartition("-")[0]):
            raise BadDigest(f"The {checksum[0].upper()} of the parts' checksums is not the one sent.")


def _upload_checksum(upload: MultipartUpload) -> tuple[str, str] | None:
    if upload.algorithm is None:
        return None
    if upload.whole is not None:
        return upload.algorithm, upload.whole.b64digest()
    combined = Checksum(upload.algorithm)
    for number in sorted(upload.parts):
        combined.update(base64.b64decode(upload.parts[number].checksums[HEADER_PREFIX + upload.algorithm]))
    return upload.algorithm, f"{combined.b64digest()}-{len(upload.parts)}"


async def abort_multipart_upload(request: web.Request, route: Route, key: str) -> web.Response:
    """Discard the upload; one already discarded (a client's abort after a refused part) is gone, as asked."""
    multiparts, upload_id = request.app[MULTIPARTS], request.query["uploadId"]
    if not multiparts.discarded(upload_id, route, key):
        upload = multiparts.get(upload_id, route, key)
        await upload.give_up(Aborted("The client aborted the multipart upload."))
    return web.Response(status=204)


async def list_parts(request: web.Request, route: Route, key: str) -> web.Response:
    upload = request.app[MULTIPARTS].get(request.query["uploadId"], route, key)
    marker = _number(request.query.get("part-number-marker", "0"), "part-number-marker", low=0)
    most = min(_number(request.query.get("max-parts", "1000"), "max-parts", low=0), 1000)
    after = [upload.parts[number] for number in sorted(upload.parts) if number > marker]
    shown, truncated = after[:most], len(after) > most
    children = (
        element("Bucket", route.config.s3_api_bucket)
        + element("Key", key)
        + element("UploadId", upload.upload_id)
        + element("PartNumberMarker", marker)
        + element("NextPartNumberMarker", shown[-1].number if shown else marker)
        + element("MaxParts", most)
        + element("IsTruncated", truncated)
        + element("StorageClass", "STANDARD")
    )
    if upload.algorithm is not None:
        children += element("ChecksumAlgorithm", upload.algorithm.upper()) + element("ChecksumType", _kind(upload))
    for part in shown:
        children += (
            "<Part>"
            + element("PartNumber", part.number)
            + element("LastModified", part.last_modified)
            + element("ETag", part.etag)
            + element("Size", part.size)
            + "".join(element(_XML_NAMES[h.removeprefix(HEADER_PREFIX)], v) for h, v in part.checksums.items())
            + "</Part>"
        )
    return xml_response("ListPartsResult", children)


LIST_UPLOADS_PARAMS = ("uploads", "prefix", "max-uploads", "key-marker", "upload-id-marker")


async def list_multipart_uploads(request: web.Request, route: Route, caller: Caller) -> web.Response:
    """The uploads this process holds for the bucket, with keys in the caller's reach (a page of them)."""
    prefix = request.query.get("prefix", "")
    most = min(_number(request.query.get("max-uploads", "1000"), "max-uploads", low=0), 1000)
    after = (request.query.get("key-marker", ""), request.query.get("upload-id-marker", ""))
    found = [
        upload
        for upload in request.app[MULTIPARTS].of(route)
        if upload.key.startswith(prefix) and upload.key.startswith(caller.credential.prefix)
        if (upload.key, upload.upload_id) > after
    ]
    shown, truncated = found[:most], len(found) > most
    children = (
        element("Bucket", route.config.s3_api_bucket)
        + element("KeyMarker", after[0])
        + element("UploadIdMarker", after[1])
        + element("NextKeyMarker", shown[-1].key if truncated else "")
        + element("NextUploadIdMarker", shown[-1].upload_id if truncated else "")
        + element("Prefix", prefix)
        + element("MaxUploads", most)
        + element("IsTruncated", truncated)
    )
    for upload in shown:
        children += (
            "<Upload>"
            + element("Key", upload.key)
            + element("UploadId", upload.upload_id)
            + element("Initiated", upload.initiated)
            + element("StorageClass", "STANDARD")
            + (element("ChecksumAlgorithm", upload.algorithm.upper()) if upload.algorithm else "")
            + "</Upload>"
        )
    return xml_response("ListMultipartUploadsResult", children)


def _named(route: Route, key: str) -> str:
    return element("Bucket", route.config.s3_api_bucket) + element("Key", key)


def _kind(upload: MultipartUpload) -> str:
    return "FULL_OBJECT" if upload.full_object else "COMPOSITE"


def _algorithms(upload: MultipartUpload, headers: Mapping[str, str]) -> set[str]:
    """The checksums to compute of a part: the upload's algorithm, and those of the part's x-amz-checksum-*."""
    sent = {name.lower().removeprefix(HEADER_PREFIX) for name in headers if name.lower().startswith(HEADER_PREFIX)}
    wanted = {algorithm for algorithm in sent if algorithm in ALGORITHMS}
    return wanted if upload.algorithm is None else wanted | {upload.algorithm}


def _number(value: str, name: str, low: int = 1) -> int:
    if not re.fullmatch(r"\d{1,5}", value.strip()) or not low <= int(value) <= MAX_PARTS:
        raise InvalidArgument(f"{name} must be an integer from {low} to {MAX_PARTS}.")
    return int(value)


async def _listed_parts(request: web.Request, caller: Caller) -> Listed:
    """``(part number, ETag, {algorithm: checksum})`` of each ``<Part>`` a CompleteMultipartUpload lists."""
    root = parse(await read_xml_body(request, caller, "CompleteMultipartUpload"), "CompleteMultipartUpload")
    listed: Listed = []
    for child in root:
        if local(child.tag) != "Part":
            continue
        fields = {local(field.tag): (field.text or "") for field in child}
        if "PartNumber" not in fields or "ETag" not in fields:
            raise MalformedXML("Each Part needs a PartNumber and an ETag.")
        checksums = {a: fields[name] for a, name in _XML_NAMES.items() if name in fields}
        listed.append((_number(fields["PartNumber"], "PartNumber"), fields["ETag"], checksums))
    return listed
