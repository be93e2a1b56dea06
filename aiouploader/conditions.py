"""Conditional requests (RFC 9110, section 13): the ``If-*`` headers against a stored object."""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Mapping

from .errors import BadRequest

_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


def _tags(header: str) -> list[tuple[bool, str]] | None:
    """``(weak, opaque tag)`` for each entity tag of a list; ``None`` for ``*``."""
    if header.strip() == "*":
        return None
    return [(bool(weak), tag) for weak, tag in _TAG.findall(header)]


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    tags = _tags(header)
    if tags is None:
        return True
    current = _tags(etag) or [(False, etag.strip('"'))]
    current_weak, current_tag = current[0]
    return any(tag == current_tag and (weak or not (is_weak or current_weak)) for is_weak, tag in tags)


def _date(header: str | None) -> datetime.datetime | None:
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


def _changed_since(last_modified: datetime.datetime | None, header: str | None) -> bool | None:
    """Whether the object changed after the header's date; ``None`` when either is unknown."""
    date = _date(header)
    if last_modified is None or date is None:
        return None
    return last_modified.replace(microsecond=0) > date


def status(headers: Mapping[str, str], method: str, etag: str, last_modified: datetime.datetime | None) -> int | None:
    """412 or 304 when the request's preconditions fail against the object, else ``None`` (RFC 9110, 13.2.2)."""
    if "If-Match" in headers:
        if not _matches(headers["If-Match"], etag, weak=False):
            return 412
    elif _changed_since(last_modified, headers.get("If-Unmodified-Since")):
        return 412
    if "If-None-Match" in headers:
        if _matches(headers["If-None-Match"], etag, weak=True):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD") and _changed_since(last_modified, headers.get("If-Modified-Since")) is False:
        return 304
    return None


def range_applies(headers: Mapping[str, str], etag: str, last_modified: datetime.datetime | None) -> bool:
    """Whether ``Range`` is to be served: ``If-Range`` names the object as it is (RFC 9110, 13.1.5)."""
    condition = headers.get("If-Range")
    if condition is None:
        return True
    if condition.lstrip().startswith(('"', "W/")):
        return _matches(condition, etag, weak=False)  # strong comparison: a weak tag never matches
    date = _date(condition)
    return date is not None and last_modified is not None and last_modified.replace(microsecond=0) == date


def only_if_absent(headers: Mapping[str, str]) -> bool:
    """Whether an upload asks to be stored only where no object is (``If-None-Match: *``).

    S3 can make no other condition part of the write, so any other is refused
    rather than ignored.
    """
    if_none_match, if_match = headers.get("If-None-Match"), headers.get("If-Match")
    if if_match is not None or (if_none_match is not None and if_none_match.strip() != "*"):
        raise BadRequest("Uploads understand only the condition 'If-None-Match: *' (store only if no object is there).")
    return if_none_match is not None
