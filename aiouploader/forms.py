"""POST of a multipart/form-data body: each file field streamed into an object of its own."""

from __future__ import annotations

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .auth import Grant
from .body import Read
from .errors import BadRequest, PayloadTooLarge, UploadError
from .hookspecs import UploadResult
from .intake import authorize, check_type, content_type, key_prefix, location, session_for, upload_for
from .keys import form_filename, key_for_file
from .middlewares import attempts
from .routes import Route
from .service import SERVICE
from .session import UploadSession


async def handle_form(request: web.Request, route: Route) -> web.StreamResponse:
    """Each file field of a multipart/form-data body streamed into its own object.

    The objects show only once every file is in S3, so a form that fails
    part-way leaves the keys as they were.
    """
    service = request.app[SERVICE]
    max_size, bounded_by = _form_bound(authorize(request), service.config.upload.max_form_size)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise _malformed(exc) from None
    staged: list[UploadSession] = []
    committed: list[UploadSession] = []
    results: list[UploadResult] = []
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
            key = key_prefix(request) + key_for_file(filename, route.config.form_keys)
            if len(staged) == service.config.upload.max_form_files:
                raise BadRequest(
                    f"The form holds more than {len(staged)} files (upload.max_form_files); send them in several forms."
                )
            if any(earlier.upload.key == key for earlier in staged):
                raise BadRequest(f"The form holds two files for the key {key!r}; give each file its own name.")
            check_type(authorize(request), part.headers.get("Content-Type"))
            upload = upload_for(request, route, key, content_type(part.headers.get("Content-Type")))
            upload.content_length = None
            upload.form_field = part.name or ""
            left = None if max_size is None else max_size - sum(earlier.upload.size for earlier in staged)
            session = session_for(request, route, upload, max_size=left)
            try:
                await session.stage(_part_reader(part, service.config.upload.block_size), send_all=True)
                staged.append(session)
            except PayloadTooLarge:
                if left is None or upload.size <= left:
                    raise
                raise PayloadTooLarge(f"The form's files are larger than the {max_size} bytes {bounded_by}.") from None
        if not staged:
            raise BadRequest("The form has no file field.")
        while staged:
            results.append(await staged[0].commit())
            committed.append(staged.pop(0))
    except BaseException:
        for pending in staged:
            await pending.discard(UploadError("Another file of the form failed; none of its files was stored."))
        for done in committed:
            await done.retract()
        raise
    attempts(request).results.extend(results)
    headers = {}
    if len(results) == 1:
        headers = {
            "Location": location(route, results[0]["key"][len(route.config.prefix) :]),
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
