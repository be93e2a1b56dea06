"""S3 clients for the tests: boto3 clients whose requests are captured as sent (and answered 200, empty) instead
of sent, clients of a test proxy's S3 API, and requests signed by botocore with any declared payload."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from multidict import CIMultiDict

from aiouploader.s3api import VerifiedRequest, verify_request

AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {AKID: SECRET}


class _EmptyBody:
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield b""


def captured_client(endpoint: str) -> tuple[Any, list[tuple[Any, bytes]]]:
    """An S3 client (SigV4, path-style) and the list its requests land in, each with its body as sent."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    sent: list[tuple[Any, bytes]] = []

    def capture(request: Any, **kwargs: Any) -> AWSResponse:
        body = request.body
        sent.append((request, body.read() if hasattr(body, "read") else bytes(body or b"")))
        return AWSResponse(request.url, 200, {}, _EmptyBody())

    s3.meta.events.register("before-send.s3", capture)
    return s3, sent


def headers_of(request: Any) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict(
        (name, value.decode() if isinstance(value, bytes) else value) for name, value in request.headers.items()
    )
    headers.setdefault("Host", urlsplit(request.url).netloc)
    return headers


def verify_sent(request: Any, when: dt.datetime | None = None) -> VerifiedRequest:
    parts = urlsplit(request.url)
    return verify_request(
        request.method, parts.path, parts.query, headers_of(request), KEYS.get, when or dt.datetime.now(dt.UTC)
    )


SCOPED_AKID, SCOPED_SECRET = "SCOPEDKEY", "scoped-secret-of-the-ci-prefix"
CREDENTIALS = [
    {"access_key_id": AKID, "secret_access_key": SECRET},
    {"access_key_id": SCOPED_AKID, "secret_access_key": SCOPED_SECRET, "prefix": "ci/", "methods": ["PUT", "GET"]},
]
"""``[[s3_api.credentials]]`` for a test proxy: one for everything, one for PUT and GET under ci/ only."""


def client(endpoint: str, akid: str = AKID, secret: str = SECRET, verify: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client with its defaults (checksums, aws-chunked over HTTPS), path-style, for the S3 API at
    ``endpoint``; ``verify``: the CA bundle of an HTTPS one."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def default_client(endpoint: str, akid: str = AKID, secret: str = SECRET) -> Any:
    """A boto3 S3 client with nothing set but the endpoint and the keys: it presigns with Signature Version 2."""
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=akid, aws_secret_access_key=secret)


class _Declaring(S3SigV4Auth):  # type: ignore[misc]
    """botocore's S3 signer, declaring the payload it is told to rather than hashing the body."""

    def __init__(self, credentials: Credentials, payload: str, when: dt.datetime | None) -> None:
        super().__init__(credentials, "s3", "us-east-1")
        self._declared = payload
        self._when = when

    def payload(self, request: Any) -> str:
        return self._declared

    def _modify_request_before_signing(self, request: Any) -> None:
        if self._when is not None:
            request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        super()._modify_request_before_signing(request)


def signed_headers(
    method: str,
    url: str,
    payload: str,
    headers: dict[str, str] | None = None,
    secret: str = SECRET,
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers of a request to ``url`` signed by botocore (at ``when``, else now), with
    ``x-amz-content-sha256: payload``."""
    request = AWSRequest(method=method, url=url, headers=headers or {})
    _Declaring(Credentials(AKID, secret), payload, when).add_auth(request)
    return dict(request.headers.items())


def streaming_put(
    url: str, chunks: list[bytes], trailer: tuple[str, str] | None = None
) -> tuple[dict[str, str], bytes]:
    """A PutObject in STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] mode: headers and the aws-chunked body."""
    from tests.test_s3api_chunked import encode_signed

    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    framing = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(sum(map(len, chunks)))}
    if trailer is not None:
        framing["x-amz-trailer"] = trailer[0]
    headers = signed_headers("PUT", url, mode, framing)
    parts = urlsplit(url)
    verified = verify_request(
        "PUT", parts.path, parts.query, {**headers, "Host": parts.netloc}, KEYS.get, dt.datetime.now(dt.UTC)
    )
    return headers, encode_signed(verified, chunks, trailer)
