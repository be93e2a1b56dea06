"""The bucket operations: ListObjects and ListObjectsV2 (keys without the route's prefix), HeadBucket,
GetBucketLocation, and CreateBucket, which only ever finds the bucket there already."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..keys import RESERVED
from ..routes import Route
from ..service import SERVICE
from .access import Caller, permit
from .errors import AccessDenied, BucketAlreadyOwnedByYou, InvalidArgument, InvalidBucketName, S3NotImplemented
from .objects import refuse_unsupported
from .responses import list_bucket_result, location
from .settings import is_bucket_name
from .xml_bodies import local, parse, read_xml_body

MAX_KEYS = 1000
LIST_V1_PARAMS = frozenset({"prefix", "delimiter", "marker", "max-keys", "encoding-type"})
"""The query of a ListObjects (version 1) this server answers."""
LIST_PARAMS = LIST_V1_PARAMS - {"marker"} | {"list-type", "continuation-token", "start-after", "fetch-owner"}
"""The query of a ListObjectsV2 this server answers (``fetch-owner`` with no owners)."""


@dataclass(frozen=True)
class _Page:
    """One page of a listing as the client sees it: keys and common prefixes without the route's prefix."""

    contents: list[dict[str, Any]]
    common_prefixes: list[str]
    truncated: bool
    last: str | None
    """The last key or common prefix of the page, where the next page starts after."""
    answer: Mapping[str, Any]
    """The store's own answer."""

    @property
    def ends_hidden(self) -> bool:
        """The page's last entry is a reserved key the client does not see, so it cannot start the next page
        after it."""
        visible = [item["Key"] for item in self.contents] + self.common_prefixes
        return self.last is not None and self.last not in visible


@dataclass(frozen=True)
class _Listing:
    """What both versions of ListObjects ask: the client's ``prefix``, ``delimiter``, ``max-keys`` and
    ``encoding-type``, checked against S3's rules and the credentials' prefix."""

    prefix: str
    delimiter: str | None
    max_keys: int
    encoding: str | None

    @classmethod
    def of(cls, query: Mapping[str, str], caller: Caller) -> _Listing:
        prefix = query.get("prefix", "")
        if not prefix.startswith(caller.credential.prefix):
            raise AccessDenied(
                f"The access key {caller.credential.access_key_id} may list only under {caller.credential.prefix!r}."
            )
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise InvalidArgument("Invalid Encoding Method specified in Request")
        sent = query.get("max-keys", str(MAX_KEYS))
        if not re.fullmatch(r"\d{1,10}", sent):
            raise InvalidArgument("max-keys must be a non-negative integer.")
        return cls(prefix, query.get("delimiter") or None, min(int(sent), MAX_KEYS), encoding)

    async def page(self, request: web.Request, route: Route, start_after: str, token: str | None = None) -> _Page:
        """The page the store lists (with ListObjectsV2) under the route's prefix, after the key ``start_after``
        or from the continuation ``token``."""
        hidden = route.config.prefix
        params: dict[str, Any] = {"MaxKeys": self.max_keys}
        if self.delimiter is not None:
            params["Delimiter"] = self.delimiter
        if start_after:
            params["StartAfter"] = hidden + start_after
        if token:
            params["ContinuationToken"] = token
        answer = await request.app[SERVICE].s3.list_objects(route.config.bucket, hidden + self.prefix, **params)
        listed = answer.get("Contents", [])
        common = answer.get("CommonPrefixes", [])
        ends = [listed[-1]["Key"]] if listed else []
        ends += [common[-1]["Prefix"]] if common else []
        return _Page(
            contents=[
                {**item, "Key": item["Key"].removeprefix(hidden)} for item in listed if not _reserved(item["Key"])
            ],
            common_prefixes=[item["Prefix"].removeprefix(hidden) for item in common if not _reserved(item["Prefix"])],
            truncated=bool(answer.get("IsTruncated")),
            last=max(ends).removeprefix(hidden) if ends else None,
            answer=answer,
        )


def _reserved(key: str) -> bool:
    return key.startswith(RESERVED)


def _next_marker(page: _Page, listing: _Listing) -> str | None:
    """S3 gives ``NextMarker`` on a truncated page of a listing with a delimiter. A page that ends in the server's
    own keys gets one too, past all of them (they share one prefix), naming none."""
    if not page.truncated:
        return None
    if page.ends_hidden:
        return RESERVED + "\U0010ffff"
    return page.last if listing.delimiter is not None else None


async def list_objects_v2(request: web.Request, route: Route, caller: Caller) -> web.StreamResponse:
    listing = _Listing.of(request.query, caller)
    start_after, token = request.query.get("start-after", ""), request.query.get("continuation-token")
    page = await listing.page(request, route, start_after, token)
    fields = {
        "Name": route.config.s3_api_bucket,
        "Prefix": listing.prefix,
        "Delimiter": listing.delimiter,
        "StartAfter": start_after or None,
        "ContinuationToken": token or None,
        "NextContinuationToken": page.answer.get("NextContinuationToken"),
        "KeyCount": len(page.contents) + len(page.common_prefixes),
        "MaxKeys": listing.max_keys,
        "IsTruncated": page.truncated,
        "EncodingType": listing.encoding,
    }
    return list_bucket_result(fields, page.contents, page.common_prefixes)


async def list_objects_v1(request: web.Request, route: Route, caller: Caller) -> web.StreamResponse:
    """ListObjects, version 1, over the store's ListObjectsV2: S3 starts a listing after ``marker`` as after
    ``start-after``. ``NextMarker`` where S3 gives it, on a truncated page of a listing with a delimiter (a
    client without one starts the next page after the page's last key)."""
    listing = _Listing.of(request.query, caller)
    marker = request.query.get("marker", "")
    page = await listing.page(request, route, marker)
    fields = {
        "Name": route.config.s3_api_bucket,
        "Prefix": listing.prefix,
        "Marker": marker,
        "NextMarker": _next_marker(page, listing),
        "MaxKeys": listing.max_keys,
        "Delimiter": listing.delimiter,
        "IsTruncated": page.truncated,
        "EncodingType": listing.encoding,
    }
    return list_bucket_result(fields, page.contents, page.common_prefixes)


async def head_bucket(request: web.Request, route: Route) -> web.StreamResponse:
    service = request.app[SERVICE]
    await service.s3.head_bucket(route.config.bucket)
    return web.Response(headers={"x-amz-bucket-region": service.config.s3.region})


async def get_bucket_location(request: web.Request, route: Route) -> web.StreamResponse:
    return location(request.app[SERVICE].config.s3.region)


def refuse_create_bucket(request: web.Request, caller: Caller, name: str, route: Route | None) -> None:
    """Refuse a CreateBucket as S3 would refuse it before reading its body: a bucket that is no route's cannot be
    made here (`AccessDenied`), the route's only by credentials that may PUT on it; ACLs, grants and object lock
    this server would ignore are `S3NotImplemented`."""
    if not is_bucket_name(name):
        raise InvalidBucketName()
    if route is None:
        raise AccessDenied(
            f"The access key {caller.credential.access_key_id} may not create buckets: "
            "this server has only the buckets it is configured with."
        )
    permit(caller, route.path, name, "PUT")
    refuse_unsupported(request.headers)
    if request.headers.get("x-amz-bucket-object-lock-enabled", "false").strip().lower() != "false":
        raise S3NotImplemented("Object lock is not implemented by this server.")


async def create_bucket(request: web.Request, caller: Caller, name: str, route: Route | None) -> web.StreamResponse:
    """CreateBucket of a bucket its caller owns already, as S3 answers it: ``200`` in us-east-1 (unless it asks
    for another region), else ``409 BucketAlreadyOwnedByYou``. Nothing is created in the route's bucket."""
    refuse_create_bucket(request, caller, name, route)
    body = await read_xml_body(request, caller, "CreateBucket")
    constraint = ""
    if body.strip():
        for child in parse(body, "CreateBucketConfiguration"):
            if local(child.tag) == "LocationConstraint":
                constraint = (child.text or "").strip()
    region = request.app[SERVICE].config.s3.region
    if region == "us-east-1" and constraint in ("", region):
        return web.Response(headers={"Location": f"/{name}"})
    raise BucketAlreadyOwnedByYou()
