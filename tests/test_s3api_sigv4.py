"""SigV4 verification: AWS's published test suite, then requests signed by botocore itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiouploader.s3api import PayloadMode, PayloadSha256, VerifiedRequest, verify_request
from aiouploader.s3api.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    S3Error,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)
from aiouploader.s3api.sigv4 import signing_key
from tests.s3api_clients import AKID, KEYS, SECRET, captured_client, verify_sent

SUITE = Path(__file__).parent / "data" / "sigv4"
SUITE_KEYS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
SUITE_NOW = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)

NO_KEYS: dict[str, str] = {}
ENDPOINT = "http://127.0.0.1:9000"


# ---- AWS's SigV4 test suite (service "service": generic rules, not S3's) --------------------------------------


def parse_sreq(text: str) -> tuple[str, str, str, CIMultiDict[str], bytes]:
    """A suite request file: the request line, headers, a blank line, the body.

    A folded header line is read as a repeated value of the header above it, which is how
    the suite's canonical requests treat it (``get-header-value-multiline``)."""
    head, _, body = text.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, _, rest = request_line.partition(" ")
    target = rest.rsplit(" ", 1)[0]
    path, _, query = target.partition("?")
    headers: CIMultiDict[str] = CIMultiDict()
    name = ""
    for line in lines:
        if line[:1] in (" ", "\t"):
            headers.add(name, line.strip())
        else:
            name, _, value = line.partition(":")
            headers.add(name, value)
    return method, path, query, headers, body.encode()


def suite_cases() -> list[Any]:
    return [pytest.param(sreq, id=sreq.stem) for sreq in sorted(SUITE.rglob("*.sreq"))]


def verify_suite_request(method: str, path: str, query: str, headers: CIMultiDict[str], body: bytes) -> VerifiedRequest:
    payload = hashlib.sha256(body).hexdigest()
    return verify_request(
        method, path, query, headers, SUITE_KEYS.get, SUITE_NOW, service="service", payload_sha256=payload
    )


@pytest.mark.parametrize("sreq", suite_cases())
def test_the_suite_signed_request_verifies(sreq: Path) -> None:
    verified = verify_suite_request(*parse_sreq(sreq.read_text("utf-8")))
    authz = sreq.with_suffix(".authz").read_text("utf-8").strip()
    assert authz.endswith(f"Signature={verified.signature}")
    assert verified.scope == "20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize("sreq", suite_cases())
def test_the_suite_canonical_request_and_string_to_sign_come_out_of_botocore(sreq: Path, monkeypatch: Any) -> None:
    seen: list[tuple[str, str]] = []
    original = S3SigV4Auth.string_to_sign

    def capture(self: Any, request: Any, canonical_request: str) -> str:
        result: str = original(self, request, canonical_request)
        seen.append((canonical_request, result))
        return result

    monkeypatch.setattr(S3SigV4Auth, "string_to_sign", capture)
    verify_suite_request(*parse_sreq(sreq.read_text("utf-8")))
    creq = sreq.with_suffix(".creq").read_text("utf-8")
    sts = sreq.with_suffix(".sts").read_text("utf-8")
    assert seen == [(creq, sts)]


@pytest.mark.parametrize("sreq", suite_cases())
def test_the_suite_request_with_one_signature_byte_changed_is_refused(sreq: Path) -> None:
    method, path, query, headers, body = parse_sreq(sreq.read_text("utf-8"))
    authorization = headers["Authorization"]
    last = authorization[-1]
    headers["Authorization"] = authorization[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(SignatureDoesNotMatch):
        verify_suite_request(method, path, query, headers, body)


def test_the_suite_has_its_vectors() -> None:
    assert len(list(SUITE.rglob("*.sreq"))) == 31


# ---- botocore's S3 signer, header form ------------------------------------------------------------------------


def signed_by_botocore(
    method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None, region: str = "us-east-1"
) -> tuple[str, str, CIMultiDict[str]]:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    S3SigV4Auth(Credentials(AKID, SECRET), "s3", region).add_auth(request)
    parts = urlsplit(request.url)
    sent: CIMultiDict[str] = CIMultiDict(request.headers.items())
    sent["Host"] = parts.netloc
    return parts.path, parts.query, sent


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    "url",
    [
        f"{ENDPOINT}/bucket/plain.txt",
        f"{ENDPOINT}/bucket/with%20space/%C3%A9t%C3%A9/%2B%21%27%28%29%2A",
        f"{ENDPOINT}/bucket/a//b/../c",
        f"{ENDPOINT}/bucket?list-type=2&prefix=a%20b%2Fc&delimiter=%2F",
        f"{ENDPOINT}/bucket/key?uploads",
        f"{ENDPOINT}/bucket/key?uploadId=x%2By&partNumber=7",
    ],
)
def test_a_request_signed_by_botocore_verifies(url: str) -> None:
    body = b"hello, world"
    path, query, headers = signed_by_botocore("PUT", url, body=body, headers={"Content-Type": "text/plain"})
    verified = verify_request("PUT", path, query, headers, KEYS.get, now())
    assert verified.access_key_id == AKID
    assert verified.payload_mode is PayloadMode.SHA256
    assert verified.payload_sha256 == hashlib.sha256(body).hexdigest()
    assert not verified.presigned


def test_a_request_dated_by_its_date_header_verifies() -> None:
    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/key", headers={"Date": "now"})
    assert "X-Amz-Date" not in headers
    verify_request("GET", path, query, headers, KEYS.get, now())
    headers["Date"] = "Mon, 01 Jan 2001 00:00:00 GMT"
    with pytest.raises(RequestTimeTooSkewed):
        verify_request("GET", path, query, headers, KEYS.get, now())


def test_a_path_signed_in_its_canonical_encoding_verifies_when_sent_less_encoded() -> None:
    _, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/a%28b%29")
    verify_request("GET", "/bucket/a(b)", query, headers, KEYS.get, now())


def test_an_encoded_slash_is_not_a_separator_for_the_signature() -> None:
    _, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/a/b")
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", "/bucket/a%2Fb", query, headers, KEYS.get, now())
    _, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/a%2Fb")
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", "/bucket/a/b", query, headers, KEYS.get, now())


def test_the_signing_key_is_the_one_botocore_signs_with() -> None:
    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/key", region="eu-central-1")
    verified = verify_request("GET", path, query, headers, KEYS.get, now())
    assert verified.signing_key == signing_key(SECRET, verified.timestamp[:8], "eu-central-1", "s3")
    assert verified.region == "eu-central-1"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda h: h.__setitem__("Host", "elsewhere:9000"), SignatureDoesNotMatch),
        (lambda h: h.__setitem__("Content-Type", "text/html"), SignatureDoesNotMatch),
        (lambda h: h.__setitem__("X-Amz-Content-SHA256", hashlib.sha256(b"other").hexdigest()), SignatureDoesNotMatch),
        (lambda h: h.__setitem__("Authorization", h["Authorization"].replace(AKID, "AKIAUNKNOWN")), InvalidAccessKeyId),
        (lambda h: h.__setitem__("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl"), InvalidArgument),
        (
            lambda h: h.__setitem__("Authorization", h["Authorization"].replace("SignedHeaders", "Signed")),
            AuthorizationHeaderMalformed,
        ),
        (
            lambda h: h.__setitem__("Authorization", h["Authorization"].replace("/s3/", "/s4/")),
            AuthorizationHeaderMalformed,
        ),
        (
            lambda h: h.__setitem__("Authorization", h["Authorization"].replace("host;", "")),
            AuthorizationHeaderMalformed,
        ),
        (lambda h: h.popall("X-Amz-Content-SHA256"), InvalidRequest),
        (lambda h: h.__setitem__("X-Amz-Content-SHA256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"), InvalidArgument),
        (lambda h: h.popall("X-Amz-Date"), AccessDenied),
        (lambda h: h.popall("Authorization"), AccessDenied),
    ],
)
def test_a_changed_request_is_refused_with_s3s_error(change: Any, error: type[S3Error]) -> None:
    path, query, headers = signed_by_botocore("PUT", f"{ENDPOINT}/bucket/key", headers={"Content-Type": "text/plain"})
    change(headers)
    with pytest.raises(error) as raised:
        verify_request("PUT", path, query, headers, KEYS.get, now())
    assert raised.value.code == error.code


def test_a_changed_path_or_query_is_refused() -> None:
    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket?prefix=a")
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", "/bucket2", query, headers, KEYS.get, now())
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", path, "prefix=b", headers, KEYS.get, now())
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("DELETE", path, query, headers, KEYS.get, now())


@pytest.mark.parametrize("minutes", [-16, 16])
def test_clock_skew_beyond_15_minutes_is_refused(minutes: int) -> None:
    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/key")
    verify_request("GET", path, query, headers, KEYS.get, now() + dt.timedelta(minutes=minutes // 2))
    with pytest.raises(RequestTimeTooSkewed) as raised:
        verify_request("GET", path, query, headers, KEYS.get, now() + dt.timedelta(minutes=minutes))
    assert raised.value.status == 403


def test_a_region_other_than_the_configured_one_is_refused() -> None:
    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/key", region="eu-west-1")
    with pytest.raises(AuthorizationHeaderMalformed, match="expecting 'us-east-1'"):
        verify_request("GET", path, query, headers, KEYS.get, now(), region="us-east-1")


def test_an_unknown_key_costs_the_same_signature_computation_as_a_bad_signature(monkeypatch: Any) -> None:
    calls: list[str] = []
    original = S3SigV4Auth.signature

    def counting(self: Any, string_to_sign: str, request: Any) -> str:
        calls.append(self.credentials.access_key)
        result: str = original(self, string_to_sign, request)
        return result

    path, query, headers = signed_by_botocore("GET", f"{ENDPOINT}/bucket/key")
    monkeypatch.setattr(S3SigV4Auth, "signature", counting)
    bad = CIMultiDict(headers)
    bad["Authorization"] = headers["Authorization"][:-1] + ("0" if headers["Authorization"][-1] != "0" else "1")
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", path, query, bad, KEYS.get, now())
    with pytest.raises(InvalidAccessKeyId):
        verify_request("GET", path, query, headers, NO_KEYS.get, now())
    assert calls == [AKID, AKID]


def test_a_signed_payload_digest_is_checked_against_the_body() -> None:
    check = PayloadSha256(hashlib.sha256(b"hello").hexdigest())
    check.update(b"hel")
    check.update(b"lo")
    check.verify()
    wrong = PayloadSha256(hashlib.sha256(b"hello").hexdigest())
    wrong.update(b"hellO")
    with pytest.raises(XAmzContentSHA256Mismatch) as raised:
        wrong.verify()
    assert raised.value.status == 400


# ---- boto3 clients: what they really send ---------------------------------------------------------------------


def test_boto3_put_object_verifies() -> None:
    s3, sent = captured_client(ENDPOINT)
    s3.put_object(Bucket="bucket", Key="dir/ä b+c.txt", Body=b"payload", Metadata={"k": "v"})
    verified = verify_sent(sent[0][0])
    assert verified.payload_mode in (PayloadMode.SHA256, PayloadMode.STREAMING_UNSIGNED_TRAILER)


def test_boto3_put_object_over_https_declares_a_trailer_and_verifies() -> None:
    s3, sent = captured_client("https://127.0.0.1:9443")
    s3.put_object(Bucket="bucket", Key="key", Body=io.BytesIO(b"x" * 100_000))
    verified = verify_sent(sent[0][0])
    assert verified.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    assert sent[0][0].headers["x-amz-trailer"] in ("x-amz-checksum-crc32", b"x-amz-checksum-crc32")


def test_boto3_list_objects_v2_verifies() -> None:
    s3, sent = captured_client(ENDPOINT)
    s3.list_objects_v2(Bucket="bucket", Prefix="a b/ü~*", Delimiter="/", StartAfter="x=y&z")
    assert verify_sent(sent[0][0]).payload_mode is PayloadMode.SHA256


KEY_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def boto3_capture() -> tuple[Any, list[tuple[Any, bytes]]]:
    """One client for all of a property's examples: making a boto3 client costs more than the example."""
    return captured_client(ENDPOINT)


@settings(max_examples=60, deadline=None)
@given(key=KEY_TEXT, prefix=KEY_TEXT, marker=KEY_TEXT)
def test_any_key_and_query_boto3_sends_verifies(
    boto3_capture: tuple[Any, list[tuple[Any, bytes]]], key: str, prefix: str, marker: str
) -> None:
    s3, sent = boto3_capture
    sent.clear()
    s3.put_object(Bucket="bucket", Key=key, Body=b"x")
    s3.list_objects(Bucket="bucket", Prefix=prefix, Marker=marker, Delimiter="/")
    assert len(sent) == 2
    for request, _ in sent:
        verify_sent(request)


@pytest.mark.parametrize("operation", ["get_object", "put_object"])
def test_a_boto3_presigned_url_verifies_until_it_expires(operation: str) -> None:
    s3, _ = captured_client(ENDPOINT)
    url = s3.generate_presigned_url(operation, Params={"Bucket": "bucket", "Key": "a b/ü+c"}, ExpiresIn=60)
    parts = urlsplit(url)
    headers = CIMultiDict({"Host": parts.netloc})
    method = "GET" if operation == "get_object" else "PUT"
    verified = verify_request(method, parts.path, parts.query, headers, KEYS.get, now())
    assert verified.presigned and verified.payload_mode is PayloadMode.UNSIGNED
    verify_request(method, parts.path, parts.query, headers, KEYS.get, now() + dt.timedelta(seconds=59))
    with pytest.raises(AccessDenied, match="not valid yet"):
        verify_request(method, parts.path, parts.query, headers, KEYS.get, now() - dt.timedelta(minutes=16))
    with pytest.raises(AccessDenied, match="Request has expired") as raised:
        verify_request(method, parts.path, parts.query, headers, KEYS.get, now() + dt.timedelta(seconds=62))
    assert raised.value.status == 403


def test_a_tampered_presigned_url_is_refused() -> None:
    s3, _ = captured_client(ENDPOINT)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "key"}, ExpiresIn=60)
    parts = urlsplit(url)
    headers = CIMultiDict({"Host": parts.netloc})
    with pytest.raises(SignatureDoesNotMatch):
        verify_request("GET", "/bucket/other", parts.query, headers, KEYS.get, now())
    with pytest.raises(SignatureDoesNotMatch):
        verify_request(
            "GET", parts.path, parts.query.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"), headers, KEYS.get, now()
        )
    with pytest.raises(InvalidAccessKeyId):
        verify_request("GET", parts.path, parts.query, headers, NO_KEYS.get, now())
    with pytest.raises(AccessDenied, match="not signed"):
        verify_request(
            "GET", parts.path, parts.query, CIMultiDict({**headers, "x-amz-acl": "public-read"}), KEYS.get, now()
        )
    with pytest.raises(InvalidArgument, match="Only one auth mechanism"):
        verify_request(
            "GET",
            parts.path,
            parts.query,
            CIMultiDict({**headers, "Authorization": "AWS4-HMAC-SHA256"}),
            KEYS.get,
            now(),
        )


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("X-Amz-Expires=60", "X-Amz-Expires=604801"), "less than a week"),
        (("X-Amz-Expires=60", "X-Amz-Expires=-1"), "non-negative"),
        (("X-Amz-Expires=60", "X-Amz-Expires=soon"), "should be a number"),
        (("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"), "only supports"),
        (("X-Amz-Date=", "X-Amz-Date=2"), "ISO8601"),
        (("X-Amz-SignedHeaders=host&", ""), "requires the X-Amz-Algorithm"),
        (("%2Fs3%2F", "%2Fs4%2F"), "incorrect service"),
    ],
)
def test_bad_presigned_parameters_are_refused_as_s3_does(replace: tuple[str, str], message: str) -> None:
    s3, _ = captured_client(ENDPOINT)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "key"}, ExpiresIn=60)
    parts = urlsplit(url)
    assert replace[0] in parts.query
    with pytest.raises(AuthorizationQueryParametersError, match=message) as raised:
        verify_request("GET", parts.path, parts.query.replace(*replace), {"Host": parts.netloc}, KEYS.get, now())
    assert raised.value.status == 400
