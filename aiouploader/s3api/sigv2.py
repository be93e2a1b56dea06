"""Verifying a presigned URL of AWS Signature Version 2 (``AWSAccessKeyId``, ``Expires``, ``Signature``), as S3 does.

boto3 and aws-cli v1 presign this way unless told to use version 4. The string to sign is S3's: the method,
the ``Content-MD5`` and ``Content-Type`` headers and ``Expires``, the ``x-amz-*`` headers, and the resource (the
path as sent, with the sub-resources of the query that S3 signs). botocore also copies the headers it signed
into the URL's query; those copies sign nothing, so a client sends the headers as signed. The HMAC-SHA1 of the
string, in base64, must be the ``Signature``. A URL expires at ``Expires`` (seconds since the epoch), at most a
week ahead, as a version 4 URL does. Only presigned URLs: a version 2 ``Authorization`` header is not taken.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping

from botocore.auth import HmacV1Auth

from .auth_fields import MAX_EXPIRES, each_once
from .errors import AccessDenied, AuthorizationQueryParametersError, InvalidAccessKeyId, SignatureDoesNotMatch

PARAMETERS = ("AWSAccessKeyId", "Expires", "Signature")
SIGNED_ALONG = (*PARAMETERS, "content-type", "content-md5")
"""A version 2 URL's parameters that are not an operation's: its own, and botocore's copies of headers it signed."""
SUB_RESOURCES = frozenset(HmacV1Auth.QSAOfInterest)
"""The query parameters that S3 signs as part of the resource (botocore's list, as it presigns)."""

_UNKNOWN_KEY_SECRET = secrets.token_urlsafe(30)


def is_presigned(names: Iterable[str]) -> bool:
    """Whether a query with these parameter names is a version 2 presigned URL's."""
    return "AWSAccessKeyId" in names


def verify_presigned(
    method: str,
    path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    credentials: Callable[[str], str | None],
    now: dt.datetime,
) -> str:
    """Check a version 2 presigned URL; the access key id it authorises, or S3's error.

    :param path: the path as sent, percent-encoding intact.
    :param pairs: the query's decoded name and value pairs.
    """
    one = each_once(pairs, PARAMETERS)
    if one is None:
        raise AuthorizationQueryParametersError(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
        )
    akid, expires, signature = (one[name] for name in PARAMETERS)
    if not re.fullmatch(r"\d{1,12}", expires):
        raise AuthorizationQueryParametersError("Expires should be a number of seconds since the epoch")
    left = int(expires) - now.timestamp()
    if left < 0:
        raise AccessDenied("Request has expired")
    if left > MAX_EXPIRES:
        raise AuthorizationQueryParametersError("Expires must be less than a week (604800 seconds) ahead")
    secret = credentials(akid)
    matched = False
    for resource in _resources(path):
        expected = _signature(_string_to_sign(method, resource, pairs, headers, expires), secret or _UNKNOWN_KEY_SECRET)
        matched |= hmac.compare_digest(expected.encode(), signature.encode())
    if secret is None:
        raise InvalidAccessKeyId()
    if not matched:
        raise SignatureDoesNotMatch()
    return akid


def _resources(path: str) -> list[str]:
    """The resource as signed: the path, and for a bucket (``/name``) also ``/name/``, which botocore signs for
    the bucket's operations though their URL has no ``/`` at the end."""
    return [path, path + "/"] if path.count("/") == 1 and len(path) > 1 else [path]


def _string_to_sign(
    method: str, resource: str, pairs: list[tuple[str, str]], headers: Mapping[str, str], expires: str
) -> str:
    """S3's string to sign, from the request's headers (what a URL carries of them in its query signs nothing)."""
    sent = {name.lower(): value for name, value in headers.items()}
    standard = [sent.get(name, "").strip() for name in ("content-md5", "content-type")]
    amz = {
        name: ",".join(v.strip() for n, v in headers.items() if n.lower() == name)
        for name in sorted(name for name in sent if name.startswith("x-amz-"))
    }
    signed = sorted((name, value) for name, value in pairs if name in SUB_RESOURCES)
    if signed:
        resource += "?" + "&".join(f"{n}={v}" if v else n for n, v in signed)
    amz_lines = [f"{name}:{value}" for name, value in amz.items()]
    return "\n".join([method.upper(), *standard, expires, *amz_lines, resource])


def _signature(string_to_sign: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
