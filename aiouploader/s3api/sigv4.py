"""Verifying an incoming request's AWS Signature Version 4, as S3 does (and version 2 presigned URLs, `.sigv2`).

`verify_request` takes a request as it arrived (method, the raw path and query, the
headers) and either returns a `VerifiedRequest` or raises one of `.errors`. Both of
S3's forms are accepted: the ``Authorization: AWS4-HMAC-SHA256 …`` header and the
presigned query string (``X-Amz-Algorithm`` … ``X-Amz-Signature``).

The canonical request and the string to sign come from botocore's own signer
(`botocore.auth.S3SigV4Auth`): its header canonicalisation (lower-cased names, trimmed
values, repeated headers joined by commas), its query canonicalisation and its string to
sign. botocore builds them for a request it is about to send, so three inputs are
given to it the way the request was received instead:

- *Headers*: botocore chooses what to sign and leaves out ``User-Agent``, ``Expect`` and
  a few more. Here the client chose, so exactly its ``SignedHeaders`` are fed in.
- *Query*: botocore keeps an already-encoded query as it is and sorts the raw pairs. A
  client that encodes differently (``%2f``, a raw ``/``) would not match, so the query is
  decoded here and botocore re-encodes and sorts the pairs itself. A ``+`` is taken
  literally (``%2B``), as the SDKs never send ``+`` for a space.
- *Path*: for S3 the path is signed as sent, never normalised (keys may hold ``//`` or
  ``..``). Some signers re-encode the decoded path instead, so a path whose canonical
  re-encoding (segment by segment: ``%2F`` stays inside its segment) differs from the
  raw one is tried both ways. Any other service (AWS's
  generic test suite) gets botocore's normalise-then-encode rules.

Reading the signature's fields (and S3's checks of form, scope, clock and expiry that
come before any signature) is `.auth_fields`. An unknown access key id is signed for
with a random secret before `InvalidAccessKeyId` is raised, so that it costs what a
known key with a wrong signature costs; signatures are compared with
`hmac.compare_digest`.

The result carries what decoding the body needs: the payload mode the client declared
in ``x-amz-content-sha256``, and for the streaming modes the signing key, scope,
timestamp and seed signature that `.chunked` chains each chunk signature from.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from . import sigv2
from .auth_fields import from_header, from_query, header, parse_credential
from .errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    InvalidURI,
    S3Error,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

CredentialsLookup = Callable[[str], "str | None"]
"""Access key id → secret access key, or None for an unknown key."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UNKNOWN_KEY_SECRET = secrets.token_urlsafe(30)


class PayloadMode(enum.Enum):
    """What the client declared in ``x-amz-content-sha256``."""

    SHA256 = "sha256"  # the hex SHA-256 of the body, checked once the body is read
    UNSIGNED = "UNSIGNED-PAYLOAD"
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

    @property
    def streaming(self) -> bool:
        """The body is ``aws-chunked`` framing, to be decoded by `.chunked`."""
        return self.value.startswith("STREAMING-")

    @property
    def signed_chunks(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def trailer(self) -> bool:
        return self.value.endswith("-TRAILER")


_LITERAL_MODES = {m.value: m for m in PayloadMode if m is not PayloadMode.SHA256}


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature matched, and what checking its body needs."""

    access_key_id: str
    timestamp: str
    """The signed ``YYYYMMDDTHHMMSSZ`` time, as chunk signatures use it."""
    scope: str
    """``date/region/service/aws4_request``."""
    region: str
    signature: str
    """The request's signature: the seed that chunk signatures chain from."""
    signing_key: bytes = field(repr=False)
    payload_mode: PayloadMode
    payload_sha256: str | None
    """For `PayloadMode.SHA256`, the lower-case hex digest the body must have."""
    signed_headers: tuple[str, ...]
    presigned: bool

    def sign(self, string_to_sign: str) -> str:
        return hmac.new(self.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class PayloadSha256:
    """Checks a `PayloadMode.SHA256` body against its declared digest as it streams."""

    def __init__(self, expected_hex: str) -> None:
        self._expected = expected_hex.lower()
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def verify(self) -> None:
        if not hmac.compare_digest(self._hash.hexdigest(), self._expected):
            raise XAmzContentSHA256Mismatch()


def verify_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    credentials: CredentialsLookup,
    now: dt.datetime,
    *,
    region: str | None = None,
    service: str = "s3",
    payload_sha256: str | None = None,
) -> VerifiedRequest:
    """Check a request's SigV4 signature and return what it authorises.

    :param path: the path as sent, percent-encoding intact, without the query.
    :param query: the raw query string, without the ``?``.
    :param headers: every header as received; a multidict's repeated headers are all used.
    :param credentials: finds the secret of an access key id; None for an unknown one.
        An unknown key costs the same signature computation as a known one.
    :param now: the current time, timezone-aware.
    :param region: the only region accepted in the credential scope; None accepts any.
    :param service: ``"s3"``, or another service for AWS's generic test suite, whose
        payload hash is then ``payload_sha256`` (the body's hex SHA-256).
    :raises S3Error: the code S3 would answer with.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    pairs = _parse_query(query)
    header_pairs = [(name.lower(), value) for name, value in headers.items()]
    authorizations = [v for n, v in header_pairs if n == "authorization"]
    names = {name for name, _ in pairs}
    presigned, presigned_v2 = "X-Amz-Algorithm" in names, sigv2.is_presigned(names)
    if sum((bool(authorizations), presigned, presigned_v2)) > 1:
        raise InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
            "parameter or the Authorization header should be specified"
        )
    if presigned:
        auth = from_query(pairs, now)
    elif authorizations:
        auth = from_header(authorizations, header_pairs, now)
    elif presigned_v2:
        return _version_2(sigv2.verify_presigned(method, path, pairs, headers, credentials, now))
    else:
        raise AccessDenied("Anonymous requests are not accepted; sign the request with AWS Signature Version 4.")
    error: type[S3Error] = AuthorizationQueryParametersError if presigned else AuthorizationHeaderMalformed
    akid, date, scope_region, scope_service = parse_credential(auth.credential, error, region, service)
    if auth.timestamp[:8] != date:
        raise error(f"Invalid credential date. Date is not the same as {'X-Amz-Date' if presigned else 'x-amz-date'}.")

    if service != "s3":
        mode, digest = PayloadMode.SHA256, payload_sha256 or header(header_pairs, "x-amz-content-sha256")
        if digest is None:
            raise ValueError("payload_sha256 is needed outside S3")
    elif presigned:
        mode, digest = _payload_mode(dict(pairs).get("X-Amz-Content-Sha256", PayloadMode.UNSIGNED.value))
        if mode.streaming:
            raise InvalidArgument("A presigned URL cannot declare a streaming payload.")
    else:
        declared = header(header_pairs, "x-amz-content-sha256")
        if declared is None:
            raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
        mode, digest = _payload_mode(declared)

    signed = _signed_headers(auth.signed_headers, header_pairs, presigned, error)
    signed_pairs = [(k, v) for k, v in pairs if not (presigned and k == "X-Amz-Signature")]
    paths = _canonical_paths(path, service)
    payload = digest if mode is PayloadMode.SHA256 and digest is not None else mode.value
    canonicaliser = _Canonicaliser(scope_region, scope_service, signed, payload)
    try:
        candidates = [canonicaliser.string_to_sign_for(method, p, signed_pairs, auth.timestamp) for p in paths]
    except UnicodeEncodeError:
        raise InvalidURI() from None

    secret = credentials(akid)
    used_secret = _UNKNOWN_KEY_SECRET if secret is None else secret
    matched = False
    for string_to_sign, request in candidates:
        expected = canonicaliser.signature_of(string_to_sign, request, akid, used_secret)
        matched |= hmac.compare_digest(expected.encode(), auth.signature.encode())
    if secret is None:
        raise InvalidAccessKeyId()
    if not matched:
        raise SignatureDoesNotMatch()
    return VerifiedRequest(
        access_key_id=akid,
        timestamp=auth.timestamp,
        scope=f"{date}/{scope_region}/{scope_service}/aws4_request",
        region=scope_region,
        signature=auth.signature,
        signing_key=signing_key(secret, date, scope_region, scope_service),
        payload_mode=mode,
        payload_sha256=digest.lower() if digest is not None else None,
        signed_headers=tuple(sorted(signed)),
        presigned=presigned,
    )


def _version_2(access_key_id: str) -> VerifiedRequest:
    """What a version 2 presigned URL authorises: its body as it comes (it signs none)."""
    return VerifiedRequest(
        access_key_id=access_key_id,
        timestamp="",
        scope="",
        region="",
        signature="",
        signing_key=b"",
        payload_mode=PayloadMode.UNSIGNED,
        payload_sha256=None,
        signed_headers=(),
        presigned=True,
    )


class _Canonicaliser(S3SigV4Auth):  # type: ignore[misc]
    """botocore's S3 signer, given the request as received instead of choosing for itself."""

    def __init__(self, region: str, service: str, signed: HTTPHeaders, payload: str) -> None:
        super().__init__(None, service, region)
        self._signed = signed
        self._payload = payload

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed

    def payload(self, request: AWSRequest) -> str:
        return self._payload

    def _normalize_url_path(self, path: str) -> str:
        return path  # the candidates from _canonical_paths are already canonical

    def string_to_sign_for(
        self, method: str, path: str, pairs: list[tuple[str, str]], timestamp: str
    ) -> tuple[str, AWSRequest]:
        request = AWSRequest(method=method, url=f"http://verifier{path}", params=pairs)
        if urlsplit(request.url).path != path:
            raise InvalidURI()
        request.context["timestamp"] = timestamp
        canonical_request: str = self.canonical_request(request)
        return self.string_to_sign(request, canonical_request), request

    def signature_of(self, string_to_sign: str, request: AWSRequest, akid: str, secret: str) -> str:
        self.credentials = Credentials(akid, secret)
        signature: str = self.signature(string_to_sign, request)
        return signature


def _signed_headers(
    names: str, header_pairs: list[tuple[str, str]], presigned: bool, error: type[S3Error]
) -> HTTPHeaders:
    wanted = names.split(";")
    if any(n != n.lower() or not n for n in wanted) or "host" not in wanted:
        raise error(f"SignedHeaders {names!r} must be lower-case, separated by ';', and include host.")
    signed: Any = HTTPHeaders()
    for name, value in header_pairs:
        if name in wanted:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidArgument(f"The signed header {name!r} is not valid UTF-8.") from None
            signed[name] = value
    absent = [n for n in wanted if n not in signed]
    if absent:
        raise SignatureDoesNotMatch(f"The signed header {absent[0]!r} is not in the request.")
    unsigned = sorted({n for n, _ in header_pairs if n.startswith("x-amz-") and n not in wanted})
    if presigned and unsigned:
        raise AccessDenied(f"There were headers present in the request which were not signed: {', '.join(unsigned)}")
    return signed


def _canonical_paths(path: str, service: str) -> list[str]:
    if not path.startswith("/"):
        raise InvalidURI()
    try:
        if service != "s3":
            normalised: str = SigV4Auth(None, service, "")._normalize_url_path(path)
            return [normalised]
        # segment by segment, so that an encoded "/" (%2F) never turns into a separator
        reencoded = "/".join(quote(unquote_to_bytes(segment), safe="~") for segment in path.split("/"))
        path.encode()
    except UnicodeEncodeError:
        raise InvalidURI() from None
    return [path] if reencoded == path else [path, reencoded]


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            try:
                pairs.append((unquote(name, errors="strict"), unquote(value, errors="strict")))
            except UnicodeDecodeError:
                raise InvalidURI() from None
    return pairs


def _payload_mode(value: str) -> tuple[PayloadMode, str | None]:
    if value in _LITERAL_MODES:
        return _LITERAL_MODES[value], None
    if _HEX64.fullmatch(value):
        return PayloadMode.SHA256, value
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value."
    )
