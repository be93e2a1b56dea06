"""The bucket operations: ListObjectsV2 (keys without the route's prefix), HeadBucket, GetBucketLocation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..keys import RESERVED
from ..routes import Route
from ..service import SERVICE
from .access import Caller
from .errors import AccessDenied, InvalidArgument
from .responses import list_bucket_result, location

MAX_KEYS = 1000
LIST_PARAMS = ("list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "encoding-type")
"""The query of a ListObjectsV2 this server answers (``fetch-owner`` too, with no owners)."""


def _max_keys(query: Mapping[str, str]) -> int:
    sent = query.get("max-keys", str(MAX_KEYS))
    if not re.fullmatch(r"\d{1,10}", sent):
        raise InvalidArgument("max-keys must be a non-negative integer.")
    return min(int(sent), MAX_KEYS)


async def list_objects_v2(request: web.Request, route: Route, caller: Caller) -> web.StreamResponse:
    query = request.query
    prefix = query.get("prefix", "")
    if not prefix.startswith(caller.credential.prefix):
        raise AccessDenied(
            f"The access key {caller.credential.access_key_id} may list only under {caller.credential.prefix!r}."
        )
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    hidden = route.config.prefix
    params: dict[str, Any] = {"MaxKeys": _max_keys(query)}
    if delimiter := query.get("delimiter"):
        params["Delimiter"] = delimiter
    if token := query.get("continuation-token"):
        params["ContinuationToken"] = token
    if start_after := query.get("start-after"):
        params["StartAfter"] = hidden + start_after
    page = await request.app[SERVICE].s3.list_objects(route.config.bucket, hidden + prefix, **params)
    contents = [
        {**item, "Key": item["Key"].removeprefix(hidden)}
        for item in page.get("Contents", [])
        if not item["Key"].startswith(RESERVED)
    ]
    common = [
        item["Prefix"].removeprefix(hidden)
        for item in page.get("CommonPrefixes", [])
        if not item["Prefix"].startswith(RESERVED)
    ]
    answer = {
        "Name": route.config.s3_api_bucket,
        "Prefix": prefix,
        "Delimiter": delimiter or None,
        "StartAfter": start_after or None,
        "ContinuationToken": token or None,
        "NextContinuationToken": page.get("NextContinuationToken"),
        "KeyCount": len(contents) + len(common),
        "MaxKeys": params["MaxKeys"],
        "IsTruncated": bool(page.get("IsTruncated")),
        "EncodingType": encoding,
    }
    return list_bucket_result(answer, contents, common)


async def head_bucket(request: web.Request, route: Route) -> web.StreamResponse:
    service = request.app[SERVICE]
    await service.s3.head_bucket(route.config.bucket)
    return web.Response(headers={"x-amz-bucket-region": service.config.s3.region})


async def get_bucket_location(request: web.Request, route: Route) -> web.StreamResponse:
    return location(request.app[SERVICE].config.s3.region)
