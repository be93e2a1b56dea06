"""The IETF draft "Resumable Uploads for HTTP" as tus-js-client speaks it, read onto the same uploads as tus.

A request of the draft names its version in ``Upload-Draft-Interop-Version``:
5 is draft-ietf-httpbis-resumable-upload-03, 6 is -05. It differs from tus in
the headers only: ``Upload-Complete: ?1`` says the request carries the
upload's last byte (so the length may be unknown until then), an append's
body is ``application/partial-upload`` (version 6) and the state comes back as
``Upload-Offset``, ``Upload-Complete`` and, once known, ``Upload-Length``.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest, UnsupportedMediaType
from . import protocol

VERSIONS = {"5": "draft-ietf-httpbis-resumable-upload-03", "6": "draft-ietf-httpbis-resumable-upload-05"}
"""``Upload-Draft-Interop-Version`` values served, and the draft each stands for."""
INTEROP = "Upload-Draft-Interop-Version"
PATCH_TYPE = "application/partial-upload"
"""The media type of an append's body from interop version 6 on."""


def version(request: web.Request) -> str | None:
    """The request's interop version, when it speaks the draft; 400 for a version not served."""
    sent = request.headers.get(INTEROP)
    if sent is None:
        return None
    sent = sent.strip()
    if sent not in VERSIONS:
        raise BadRequest(f"{INTEROP} is one of {', '.join(VERSIONS)}: {', '.join(VERSIONS.values())}.")
    return sent


def complete(request: web.Request) -> bool | None:
    """``Upload-Complete`` (a structured-field boolean); ``None`` when absent."""
    sent = request.headers.get("Upload-Complete")
    if sent is None:
        return None
    sent = sent.strip()
    if sent not in ("?0", "?1"):
        raise BadRequest("Upload-Complete is ?1 (this request ends the upload) or ?0.")
    return sent == "?1"


def length(request: web.Request, offset: int, known: int | None) -> tuple[int | None, bool]:
    """The upload's length after this request (``None`` while unknown), and whether the request ends it.

    ``Upload-Length`` (sent by tus-js-client whatever the version) gives it; so
    does ``Upload-Complete: ?1`` with a ``Content-Length``. Without either, a
    request that says it is the last ends the upload where its body ends.
    """
    ends = complete(request)
    if ends is None and request.method == "POST":
        raise BadRequest("A draft's creation says whether it carries the whole upload: Upload-Complete: ?0 or ?1.")
    sent = protocol.number(request, "Upload-Length")
    if ends and request.content_length is not None:
        total = offset + request.content_length
        if sent is not None and sent != total:
            raise BadRequest(f"Upload-Length says {sent} bytes, but the upload ends at byte {total}.")
        sent = total
    if sent is not None:
        if known is not None and sent != known:
            raise BadRequest(f"The upload's length is {known} already.")
        if sent > protocol.MAX_SIZE:
            raise BadRequest(f"Upload-Length is over {protocol.MAX_SIZE} bytes, the largest object S3 stores.")
        if sent < offset:
            raise BadRequest(f"The upload has {offset} bytes already, more than Upload-Length.")
    return (known if sent is None else sent), bool(ends)


def check_patch_type(request: web.Request, interop: str) -> None:
    if interop == "5":
        return
    if request.headers.get("Content-Type", "").split(";")[0].strip().lower() != PATCH_TYPE:
        raise UnsupportedMediaType(f"An append carries Content-Type: {PATCH_TYPE}.")


def state(offset: int, length: int | None, done: bool) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Upload-Complete": "?1" if done else "?0"}
    if length is not None:
        headers["Upload-Length"] = str(length)
    return headers
