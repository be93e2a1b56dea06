"""Where a SigV4 signature's fields come from: the ``Authorization`` header or a presigned query.

Each parser checks what S3 checks before any signature is computed (the form, the
credential scope, the clock, a presigned URL's expiry) and raises S3's error for it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidArgument,
    RequestTimeTooSkewed,
    S3Error,
)

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=15)
MAX_EXPIRES = 604800
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")


@dataclass(frozen=True)
class Auth:
    """A signature's fields as the client sent them, not yet checked against a secret."""

    credential: str
    signed_headers: str
    signature: str
    timestamp: str


def from_header(values: list[str], header_pairs: list[tuple[str, str]], now: dt.datetime) -> Auth:
    """The ``Authorization`` header's fields; its time is ``x-amz-date`` (else ``Date``), within `MAX_SKEW`."""
    if len(values) != 1:
        raise InvalidArgument("Only one Authorization header is allowed.")
    algorithm, _, rest = values[0].strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidArgument("Unsupported Authorization Type")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name in fields or name not in ("Credential", "SignedHeaders", "Signature"):
            raise AuthorizationHeaderMalformed(f"The authorization header is malformed; unexpected {part.strip()!r}.")
        fields[name] = value
    if len(fields) != 3:
        raise AuthorizationHeaderMalformed(
            "The authorization header is malformed; it needs Credential, SignedHeaders and Signature."
        )
    timestamp = header_timestamp(header_pairs)
    when = dt.datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    if abs(now - when) > MAX_SKEW:
        raise RequestTimeTooSkewed()
    return Auth(fields["Credential"], fields["SignedHeaders"], fields["Signature"], timestamp)


def header_timestamp(header_pairs: list[tuple[str, str]]) -> str:
    invalid = AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    amz_date = header(header_pairs, "x-amz-date")
    if amz_date is not None:
        if not _TIMESTAMP.fullmatch(amz_date.strip()):
            raise invalid
        try:
            dt.datetime.strptime(amz_date.strip(), TIMESTAMP_FORMAT)
        except ValueError:
            raise invalid from None
        return amz_date.strip()
    date = header(header_pairs, "date")
    try:
        parsed = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise invalid
    if parsed.tzinfo is None:  # "-0000", as botocore writes it: UTC
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def each_once(pairs: list[tuple[str, str]], names: tuple[str, ...]) -> dict[str, str] | None:
    """The values of ``names`` in a query's ``pairs`` when each is there exactly once; ``None`` otherwise."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in names:
            values.setdefault(name, []).append(value)
    if any(len(values.get(name, ())) != 1 for name in names):
        return None
    return {name: found[0] for name, found in values.items()}


def from_query(pairs: list[tuple[str, str]], now: dt.datetime) -> Auth:
    """A presigned URL's fields: each ``X-Amz-*`` parameter once, not expired, not dated ahead beyond `MAX_SKEW`."""
    one = each_once(pairs, (*_PRESIGN_PARAMS, "X-Amz-Signature"))
    if one is None:
        raise AuthorizationQueryParametersError(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if one["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthorizationQueryParametersError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    timestamp = one["X-Amz-Date"]
    try:
        if not _TIMESTAMP.fullmatch(timestamp):
            raise ValueError(timestamp)
        when = dt.datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        ) from None
    expires = one["X-Amz-Expires"]
    if not re.fullmatch(r"-?\d{1,12}", expires):
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number")
    seconds = int(expires)
    if seconds < 0:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if seconds > MAX_EXPIRES:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if when - now > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    if now > when + dt.timedelta(seconds=seconds):
        raise AccessDenied("Request has expired")
    return Auth(one["X-Amz-Credential"], one["X-Amz-SignedHeaders"], one["X-Amz-Signature"], timestamp)


def parse_credential(
    credential: str, error: type[S3Error], region: str | None, service: str
) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise error(
            f'The credential {credential!r} is malformed; expected "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    akid, date, scope_region, scope_service, terminal = parts
    if terminal != "aws4_request":
        raise error(f"The credential is malformed; incorrect terminal '{terminal}'. This endpoint uses 'aws4_request'.")
    if scope_service != service:
        raise error(
            f"The credential is malformed; incorrect service '{scope_service}'. This endpoint uses '{service}'."
        )
    if region is not None and scope_region != region:
        raise error(f"The authorization is malformed; the region '{scope_region}' is wrong; expecting '{region}'")
    if not re.fullmatch(r"\d{8}", date):
        raise error(f"The credential is malformed; invalid date '{date}'.")
    return akid, date, scope_region, scope_service


def header(header_pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [v for n, v in header_pairs if n == name]
    if len(values) > 1:
        raise InvalidArgument(f"The header {name} may appear only once.")
    return values[0] if values else None
