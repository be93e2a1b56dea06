"""Version 2 presigned URLs against AWS's own example, and what their signature covers."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from aiouploader.s3api import sigv2
from aiouploader.s3api.errors import AccessDenied, InvalidAccessKeyId, S3Error, SignatureDoesNotMatch

AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# The query string authentication example of the S3 developer guide (RESTAuthentication, Signature Version 2).
EXAMPLE_PATH = "/johnsmith/photos/puppy.jpg"
EXAMPLE = [("AWSAccessKeyId", AKID), ("Expires", "1175139620"), ("Signature", "NpgCjnDzrM+WFzoENXmpNDUsSn8=")]
BEFORE = dt.datetime(2007, 3, 28, tzinfo=dt.UTC)


def secrets(akid: str) -> str | None:
    return SECRET if akid == AKID else None


def verify(
    method: str = "GET", path: str = EXAMPLE_PATH, pairs: list[tuple[str, str]] = EXAMPLE, **headers: str
) -> str:
    return sigv2.verify_presigned(method, path, pairs, headers, secrets, BEFORE)


def test_the_example_of_the_s3_developer_guide_verifies() -> None:
    assert verify() == AKID


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"method": "PUT"}, SignatureDoesNotMatch),
        ({"path": "/johnsmith/photos/kitten.jpg"}, SignatureDoesNotMatch),
        ({"Content-Type": "image/jpeg"}, SignatureDoesNotMatch),
        ({"x-amz-meta-unsigned": "1"}, SignatureDoesNotMatch),
        ({"pairs": [*EXAMPLE, ("uploadId", "u")]}, SignatureDoesNotMatch),
        ({"pairs": [(n, "AKIDUNKNOWN" if n == "AWSAccessKeyId" else v) for n, v in EXAMPLE]}, InvalidAccessKeyId),
    ],
    ids=["method", "path", "content-type", "amz-header", "sub-resource", "unknown-key"],
)
def test_what_the_signature_covers_cannot_change(change: dict[str, object], error: type[S3Error]) -> None:
    with pytest.raises(error):
        verify(**change)  # type: ignore[arg-type]


def test_a_parameter_outside_the_signed_resource_may_be_added() -> None:
    assert verify(pairs=[*EXAMPLE, ("x-id", "GetObject")]) == AKID


def test_the_headers_botocore_copies_into_the_query_are_signed_only_as_headers() -> None:
    request = AWSRequest(method="PUT", url="http://s3.test/files/pinned.txt", headers={"Content-Type": "image/png"})
    HmacV1QueryAuth(Credentials(AKID, SECRET), expires=60).add_auth(request)
    url = URL(request.url, encoded=True)
    pairs = list(url.query.items())
    assert ("content-type", "image/png") in pairs
    now = dt.datetime.now(dt.UTC)
    assert sigv2.verify_presigned("PUT", url.raw_path, pairs, {"Content-Type": "image/png"}, secrets, now) == AKID
    with pytest.raises(SignatureDoesNotMatch):  # the query's copy does not stand in for the header
        sigv2.verify_presigned("PUT", url.raw_path, pairs, {}, secrets, now)


def test_an_expired_url_is_access_denied() -> None:
    with pytest.raises(AccessDenied, match="expired"):
        sigv2.verify_presigned("GET", EXAMPLE_PATH, EXAMPLE, {}, secrets, dt.datetime(2008, 1, 1, tzinfo=dt.UTC))
