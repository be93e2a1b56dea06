"""S3's XML answers: error bodies, ``ListBucketResult`` (of both versions), ``LocationConstraint``; the server's
errors as S3's.

An error of the server (:mod:`aiouploader.errors`) keeps its status and gets S3's code where S3 has one for
it (``NoSuchKey``, ``EntityTooLarge``, ``BadDigest``, ``AccessDenied``, ``SlowDown``, …); any other, a
plugin's veto above all, gets a code named after it (``infected`` → ``Infected``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

from ..errors import ClientFault, UploadError
from .errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_CODES = {
    "not_found": "NoSuchKey",
    "payload_too_large": "EntityTooLarge",
    "checksum_mismatch": "BadDigest",
    "unauthorized": "AccessDenied",
    "forbidden": "AccessDenied",
    "method_not_allowed": "MethodNotAllowed",
    "request_timeout": "RequestTimeout",
    "precondition_failed": "PreconditionFailed",
    "range_not_satisfiable": "InvalidRange",
    "bad_request": "InvalidRequest",
    "invalid_key": "InvalidArgument",
    "overloaded": "SlowDown",
    "draining": "ServiceUnavailable",
    "not_ready": "ServiceUnavailable",
    "internal_error": "InternalError",
}
_ENCODED = ("Prefix", "Delimiter", "StartAfter", "Marker", "NextMarker")
"""The elements of a ``ListBucketResult`` that hold keys, URL-encoded with the keys for ``encoding-type=url``."""


class Refused(ClientFault):
    """An `S3Error` as the upload session and the logs take errors: the plugins hear it as ``upload_failed``."""

    def __init__(self, error: S3Error) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.code = error.code
        self.s3_error = error


def s3_code(error: UploadError) -> str:
    if isinstance(error, Refused):
        return error.code
    return _CODES.get(error.code) or "".join(word.capitalize() for word in error.code.split("_"))


def error_response(error: S3Error | UploadError, resource: str, request_id: str, head: bool = False) -> web.Response:
    code = error.code if isinstance(error, S3Error) else s3_code(error)
    headers = dict(error.headers) if isinstance(error, UploadError) else {}
    headers["x-amz-request-id"] = request_id
    if head:
        return web.Response(status=error.status, headers=headers)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(error.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{escape(request_id)}</RequestId></Error>"
    )
    return web.Response(status=error.status, text=body, content_type="application/xml", headers=headers)


def xml_response(root: str, children: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">{children}</{root}>'
    return web.Response(text=body, content_type="application/xml", headers=headers)


def element(name: str, value: object) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return f"<{name}>{escape(str(value))}</{name}>"


def list_bucket_result(
    fields: Mapping[str, Any], contents: Iterable[Mapping[str, Any]], common_prefixes: Iterable[str]
) -> web.Response:
    """A ``ListBucketResult`` of ListObjects or ListObjectsV2: ``fields`` in S3's element names and order (those
    that are ``None`` left out), keys already without the route's prefix."""
    url = fields.get("EncodingType") == "url"

    def encoded(text: str) -> str:
        return quote(text, safe="/~") if url else text

    parts = [
        element(name, encoded(value) if name in _ENCODED else value)
        for name, value in fields.items()
        if value is not None
    ]
    for item in contents:
        parts.append(
            "<Contents>"
            + element("Key", encoded(item["Key"]))
            + element("LastModified", item["LastModified"])
            + element("ETag", item["ETag"])
            + element("Size", item["Size"])
            + element("StorageClass", item.get("StorageClass", "STANDARD"))
            + "</Contents>"
        )
    for prefix in common_prefixes:
        parts.append("<CommonPrefixes>" + element("Prefix", encoded(prefix)) + "</CommonPrefixes>")
    return xml_response("ListBucketResult", "".join(parts))


def location(region: str) -> web.Response:
    """``GetBucketLocation``: S3 answers an empty constraint for us-east-1."""
    return xml_response("LocationConstraint", "" if region == "us-east-1" else escape(region))
