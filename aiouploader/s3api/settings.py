"""The S3 API's settings: ``[s3_api]``, its ``[[s3_api.credentials]]``, and a route's ``s3_api_bucket``.

`aiouploader.config.Config` holds them (``s3_api``, absent: no S3 listener) and calls `check` once the
whole configuration is read, for what spans sections.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ..hosts import Host

if TYPE_CHECKING:
    from ..config import Config

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def is_bucket_name(value: str) -> bool:
    """Whether S3 takes ``value`` as a bucket's name."""
    return bool(_BUCKET.fullmatch(value)) and ".." not in value and not re.fullmatch(r"[0-9.]+", value)


def _bucket_name(value: str) -> str:
    if not is_bucket_name(value):
        raise ValueError(
            "must be an S3 bucket name: 3 to 63 lowercase letters, digits, . and -, starting and ending with a "
            "letter or digit"
        )
    return value


BucketName = Annotated[str, AfterValidator(_bucket_name)]
"""A route's ``s3_api_bucket``: the bucket name clients of the S3 API use for it."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3ApiCredential(_Settings):
    """An access key of the S3 API, scoped as ``[[auth.tokens]]`` are."""

    access_key_id: str = Field(pattern=r"^[A-Za-z0-9._-]{3,128}$")
    secret_access_key: str = Field(min_length=8)
    """Best set from the environment: ``AIOUPLOADER_S3_API__CREDENTIALS__0__SECRET_ACCESS_KEY``."""
    routes: list[str] = []
    """Paths of the routes (buckets) it may use; empty: every route with an ``s3_api_bucket``."""
    methods: list[Literal["GET", "HEAD", "PUT", "POST", "DELETE"]] = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    """HTTP methods: GET (GetObject, ListObjects of both versions, ListParts, ListMultipartUploads; covers HEAD),
    PUT (PutObject, CreateBucket and the multipart operations that write: Create, UploadPart, Complete, Abort),
    DELETE (DeleteObject)."""
    prefix: str = ""
    """Keys (under the route's prefix) it may touch start with this; listings must ask within it."""


class S3ApiConfig(_Settings):
    host: Host = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    credentials: list[S3ApiCredential] = Field(min_length=1)
    multipart_idle_timeout: float = Field(default=3600.0, gt=0)
    """Seconds a multipart upload may receive no request before it is discarded (its S3 upload aborted)."""
    multipart_part_wait: float = Field(default=60.0, gt=0)
    """Seconds an UploadPart waits for the parts before it to pass the plugins; then ``RequestTimeout``."""

    @field_validator("credentials")
    @classmethod
    def _distinct_keys(cls, value: list[S3ApiCredential]) -> list[S3ApiCredential]:
        seen: set[str] = set()
        for i, credential in enumerate(value):
            if credential.access_key_id in seen:
                raise ValueError(f"[{i}].access_key_id {credential.access_key_id!r} is there twice")
            seen.add(credential.access_key_id)
        return value


def check(config: Config) -> None:
    """What spans sections: distinct bucket names, credentials for routes that are buckets, a port of its own."""
    buckets: dict[str, str] = {}
    for i, route in enumerate(config.routes):
        if route.s3_api_bucket is None:
            continue
        if route.s3_api_bucket in buckets:
            raise ValueError(
                f"routes[{i}].s3_api_bucket: {route.s3_api_bucket!r} is the bucket of {buckets[route.s3_api_bucket]} "
                "already; each route needs a name of its own"
            )
        buckets[route.s3_api_bucket] = route.path
    api = config.s3_api
    if api is None:
        return
    if not buckets:
        raise ValueError('s3_api: no route has an s3_api_bucket = "NAME"; the S3 API would serve nothing')
    for i, credential in enumerate(api.credentials):
        for path in credential.routes:
            if path not in buckets.values():
                raise ValueError(
                    f"s3_api.credentials[{i}].routes: {path} is not a route with an s3_api_bucket "
                    f"(those are: {', '.join(sorted(buckets.values()))})"
                )
    server = config.server
    for name, host, port in (
        ("server.port", server.host, server.port),
        ("server.metrics_port", server.metrics_host, server.metrics_port),
    ):
        if port and port == api.port and host == api.host:
            raise ValueError(f"s3_api.port: {api.port} is {name} already; the S3 API needs a port of its own")
