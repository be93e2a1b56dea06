"""tus 1.0.0 as this server speaks it: versions, extensions, and the headers a request sends."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from aiohttp import web

from ..errors import BadRequest, PreconditionFailed, UnsupportedMediaType

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
PATCH_TYPE = "application/offset+octet-stream"
MAX_SIZE = 5 * 1024**4
"""S3's largest object."""
UPLOADS = ".tus"
"""The path segment under a route where its resumable uploads live; no client key may start with it there."""
CORS_METHODS = ("POST", "HEAD", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = (
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "Upload-Checksum",
    "Content-Type",
    "X-Request-ID",
    "Upload-Draft-Interop-Version",
    "Upload-Complete",
    "X-HTTP-Method-Override",
)
CORS_RESPONSE_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Result",
    "Content-Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "X-Request-ID",
    "Upload-Draft-Interop-Version",
    "Upload-Complete",
)
"""What a page's tus client (or one speaking the IETF draft, :mod:`.draft`) sends and reads, beside what a
route's CORS settings allow (``cors.py``)."""


def max_size(upload_limit: int | None) -> int:
    """``Tus-Max-Size``: S3's largest object, or the route's plugins' smaller limit."""
    return MAX_SIZE if upload_limit is None else min(MAX_SIZE, upload_limit)


def is_tus_path(raw_key: str | None) -> bool:
    """Whether a resumable route's request for ``raw_key`` may be tus's: creation, or an upload's URL."""
    return raw_key is None or raw_key == UPLOADS or raw_key.startswith(UPLOADS + "/")


def base_headers() -> dict[str, str]:
    return {"Tus-Resumable": VERSION}


def check_version(request: web.Request) -> None:
    """412 for a request without ``Tus-Resumable: 1.0.0`` (OPTIONS needs none)."""
    if request.headers.get("Tus-Resumable", "").strip() != VERSION:
        raise PreconditionFailed(
            f"Resumable uploads speak tus {VERSION}: send Tus-Resumable: {VERSION}.", headers={"Tus-Version": VERSION}
        )


def check_patch_type(request: web.Request) -> None:
    if request.headers.get("Content-Type", "").split(";")[0].strip().lower() != PATCH_TYPE:
        raise UnsupportedMediaType(f"A PATCH carries Content-Type: {PATCH_TYPE}.")


def number(request: web.Request, name: str) -> int | None:
    """A header holding a non-negative integer; ``None`` when absent."""
    value = request.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise BadRequest(f"{name} must be a non-negative integer.")
    return int(value)


def check_not_concatenated(request: web.Request) -> None:
    """400 for ``Upload-Concat``: this server does not offer the concatenation extension, and would otherwise store
    each partial upload as an object of its own."""
    if "Upload-Concat" in request.headers:
        raise BadRequest("Uploads are not concatenated here (no Upload-Concat): send the file as one upload.")


def length_at_creation(request: web.Request) -> int | None:
    """``Upload-Length``, or ``None`` for ``Upload-Defer-Length: 1``; exactly one of them."""
    length = number(request, "Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length")
    if (length is None) == (deferred is None):
        raise BadRequest("Send either Upload-Length or Upload-Defer-Length: 1.")
    if deferred is not None and deferred.strip() != "1":
        raise BadRequest("Upload-Defer-Length must be 1.")
    if length is not None and length > MAX_SIZE:
        raise BadRequest(f"Upload-Length is over {MAX_SIZE} bytes, the largest object S3 stores.")
    return length


def metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``name base64value`` pairs (the value may be absent)."""
    found: dict[str, str] = {}
    for pair in (header or "").split(","):
        if not pair.strip():
            continue
        name, _, value = pair.strip().partition(" ")
        if name in found:
            raise BadRequest(f"Upload-Metadata names {name!r} more than once.")
        try:
            found[name] = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata's {name!r} is not base64 of UTF-8 text.") from None
    return found


class PatchChecksum:
    """A PATCH's ``Upload-Checksum``, computed over its bytes as they come."""

    def __init__(self, header: str) -> None:
        algorithm, _, expected = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise BadRequest(f"Upload-Checksum's algorithm is one of {', '.join(CHECKSUM_ALGORITHMS)}.")
        try:
            self.expected = base64.b64decode(expected.strip(), validate=True)
        except binascii.Error:
            self.expected = b""
        if not self.expected:
            raise BadRequest("Upload-Checksum's value is not base64 of a digest.")
        self.algorithm = algorithm
        self._hash: Any = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return bool(self._hash.digest() == self.expected)


def patch_checksum(request: web.Request) -> PatchChecksum | None:
    header = request.headers.get("Upload-Checksum")
    return None if header is None else PatchChecksum(header)
