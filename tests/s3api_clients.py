"""boto3 clients whose requests are captured as sent (and answered 200, empty) instead of sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
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
