"""aws-chunked bodies: AWS's published examples, boto3's own bodies, tampering, framing, any split."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
import zlib
from typing import Any

import pytest
from botocore.httpchecksum import Crc32Checksum, Sha1Checksum, Sha256Checksum
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiouploader.s3api import ChunkedDecoder, PayloadMode, VerifiedRequest, verify_request
from aiouploader.s3api.checksums import Checksum, crc64nvme_available
from aiouploader.s3api.errors import (
    BadDigest,
    IncompleteBody,
    InvalidArgument,
    InvalidRequest,
    MissingContentLength,
    S3Error,
    S3NotImplemented,
    SignatureDoesNotMatch,
)
from aiouploader.s3api.sigv4 import EMPTY_SHA256, signing_key
from tests.s3api_clients import AKID, KEYS, SECRET, captured_client, headers_of, verify_sent

# ---- AWS's published examples: sigv4-streaming and sigv4-streaming-trailers (S3 API reference) ----------------
# PUT of 65 KiB of "a" in 64 KiB chunks, 20130524T000000Z, us-east-1, the documentation's example keys.

EXAMPLE_HEADERS = {
    "Host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "Content-Encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "Content-Length": "66824",
}
SCOPE = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
STREAMING = {
    **EXAMPLE_HEADERS,
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "Authorization": f"AWS4-HMAC-SHA256 {SCOPE},SignedHeaders=content-encoding;content-length;host;"
    "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
}
STREAMING_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)
TRAILER = {
    **EXAMPLE_HEADERS,
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "x-amz-trailer": "x-amz-checksum-crc32c",
    "Authorization": f"AWS4-HMAC-SHA256 {SCOPE},SignedHeaders=content-encoding;host;x-amz-content-sha256;"
    "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
    "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
}
TRAILER_BODY = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
)
PAYLOAD = b"a" * 66560
EXAMPLES = {"signed": (STREAMING, STREAMING_BODY), "signed-trailer": (TRAILER, TRAILER_BODY)}


def example(name: str) -> tuple[ChunkedDecoder, bytes]:
    headers, body = EXAMPLES[name]
    verified = verify_request(
        "PUT", "/examplebucket/chunkObject.txt", "", headers, KEYS.get, dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
    )
    return ChunkedDecoder.for_request(verified, headers), body


def decode(decoder: ChunkedDecoder, body: bytes, step: int | None = None) -> bytes:
    step = step or len(body) or 1
    out = b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))
    decoder.finish()
    return out


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("step", [None, 1, 7, 65536 + 90])
def test_the_aws_example_decodes_in_any_split(name: str, step: int | None) -> None:
    decoder, body = example(name)
    assert decode(decoder, body, step) == PAYLOAD


def test_the_aws_trailer_example_exposes_its_checksum() -> None:
    decoder, body = example("signed-trailer")
    decode(decoder, body)
    assert decoder.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    assert decoder.checksums == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def flip(body: bytes, index: int) -> bytes:
    changed = body[index] ^ 0x01
    if chr(changed) in "0123456789abcdef" or body[index] not in b"0123456789abcdef":
        return body[:index] + bytes([changed]) + body[index + 1 :]
    return body[:index] + (b"0" if body[index] != ord("0") else b"1") + body[index + 1 :]


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize(
    "where",
    [
        "first chunk's first byte",
        "first chunk's last byte",
        "second chunk's data",
        "first chunk-signature",
        "second chunk-signature",
        "final chunk-signature",
    ],
)
def test_a_tampered_chunk_or_chunk_signature_is_refused(name: str, where: str) -> None:
    decoder, body = example(name)
    signatures = [i + len(b"chunk-signature=") for i in range(len(body)) if body.startswith(b"chunk-signature=", i)]
    index = {
        "first chunk's first byte": body.index(b"\r\n") + 2,
        "first chunk's last byte": body.index(b"\r\n") + 2 + 65535,
        "second chunk's data": signatures[1] + 64 + 2 + 500,
        "first chunk-signature": signatures[0] + 10,
        "second chunk-signature": signatures[1],
        "final chunk-signature": signatures[2] + 63,
    }[where]
    with pytest.raises(SignatureDoesNotMatch) as raised:
        decode(decoder, flip(body, index))
    assert raised.value.status == 403


def test_a_tampered_trailing_checksum_or_trailer_signature_is_refused() -> None:
    decoder, body = example("signed-trailer")
    with pytest.raises(SignatureDoesNotMatch):
        decode(decoder, body.replace(b"sOO8/Q==", b"sOO8/A=="))
    decoder, body = example("signed-trailer")
    with pytest.raises(SignatureDoesNotMatch):
        decode(decoder, body.replace(b"d81f82fc", b"d81f82fd"))
    decoder, body = example("signed-trailer")
    without_signature = body.replace(body[body.index(b"x-amz-trailer-signature") : -2], b"")
    with pytest.raises(SignatureDoesNotMatch, match="no x-amz-trailer-signature"):
        decode(decoder, without_signature)


def test_after_an_error_the_decoder_refuses_everything() -> None:
    decoder, body = example("signed")
    tampered = flip(body, 200)
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(tampered[:70000])
    with pytest.raises(SignatureDoesNotMatch):
        decoder.feed(tampered[70000:])
    with pytest.raises(SignatureDoesNotMatch):
        decoder.finish()


def test_the_final_chunk_cannot_be_dropped() -> None:
    decoder, body = example("signed")
    with pytest.raises(IncompleteBody):
        decode(decoder, body[: body.index(b"0;chunk-signature")])


# ---- botocore's own aws-chunked bodies (STREAMING-UNSIGNED-PAYLOAD-TRAILER) ----------------------------------


def boto3_put(payload: bytes, **params: Any) -> tuple[VerifiedRequest, CIMultiDict[str], bytes]:
    """What boto3's put_object sends over https, verified, with its body as sent."""
    s3, sent = captured_client("https://127.0.0.1:9443")
    s3.put_object(Bucket="bucket", Key="key", Body=io.BytesIO(payload), **params)
    request, body = sent[0]
    return verify_sent(request), headers_of(request), body


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
@pytest.mark.parametrize("size", [0, 1, 100_000, 2 * 1024 * 1024 + 3])
def test_a_boto3_aws_chunked_body_decodes_and_its_trailing_checksum_verifies(algorithm: str, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    verified, headers, body = boto3_put(payload, ChecksumAlgorithm=algorithm)
    assert verified.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    decoder = ChunkedDecoder.for_request(verified, headers)
    assert decode(decoder, body, 4093) == payload
    assert set(decoder.trailers) == {f"x-amz-checksum-{algorithm.lower()}"}


def test_a_wrong_trailing_checksum_in_a_boto3_body_is_bad_digest() -> None:
    verified, headers, body = boto3_put(b"hello world")
    good = base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big"))
    bad = base64.b64encode(zlib.crc32(b"hello World").to_bytes(4, "big"))
    assert good in body
    with pytest.raises(BadDigest) as raised:
        decode(ChunkedDecoder.for_request(verified, headers), body.replace(good, bad))
    assert raised.value.code == "BadDigest"


def test_a_changed_byte_in_a_boto3_body_is_bad_digest() -> None:
    verified, headers, body = boto3_put(b"hello world")
    with pytest.raises(BadDigest):
        decode(ChunkedDecoder.for_request(verified, headers), body.replace(b"hello", b"jello"))


# ---- framing -------------------------------------------------------------------------------------------------


def unsigned(trailer: str | None = None, length: int | None = 3) -> ChunkedDecoder:
    return ChunkedDecoder(
        PayloadMode.STREAMING_UNSIGNED_TRAILER, decoded_content_length=length, trailers=(trailer,) if trailer else ()
    )


CRC_ABC = base64.b64encode(zlib.crc32(b"abc").to_bytes(4, "big"))


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", InvalidRequest, "bad chunk header"),
        (b"3;ext=1\r\nabc\r\n0\r\n\r\n", InvalidRequest, "bad chunk header"),
        (b"3\nabc\r\n0\r\n\r\n", InvalidRequest, "without CRLF"),
        (b"3\r\nabcX\r\n0\r\n\r\n", InvalidRequest, "not followed by CRLF"),
        (b"3\r\nabc\r\n0\r\n\r\nmore", InvalidRequest, "after the end"),
        (b"3" * 2000, InvalidRequest, "longer than 1024"),
        (b"3;chunk-signature=" + b"0" * 64 + b"\r\nabc\r\n0\r\n\r\n", InvalidRequest, "chunk-signature in an unsigned"),
        (b"4\r\nabcd\r\n0\r\n\r\n", IncompleteBody, "longer than its x-amz-decoded-content-length"),
        (b"2\r\nab\r\n0\r\n\r\n", IncompleteBody, "not the 3"),
        (b"3\r\nabc\r\n", IncompleteBody, "ended before"),
        (b"3\r\nabc\r\n0\r\nx-amz-checksum-sha1:AAAA\r\n\r\n", InvalidRequest, "not declared"),
        (b"3\r\nabc\r\n0\r\nx-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n", InvalidRequest, "unsigned"),
    ],
)
def test_bad_framing_is_refused_with_a_clear_error(body: bytes, error: type[S3Error], message: str) -> None:
    decoder = unsigned()
    with pytest.raises(error, match=message):
        decode(decoder, body, 5)


def test_a_declared_trailer_must_arrive() -> None:
    with pytest.raises(IncompleteBody, match="was not sent"):
        decode(unsigned("x-amz-checksum-crc32"), b"3\r\nabc\r\n0\r\n\r\n\r\n")


def test_a_blank_line_before_the_trailers_is_tolerated() -> None:
    body = b"3\r\nabc\r\n0\r\n\r\nx-amz-checksum-crc32:" + CRC_ABC + b"\r\n\r\n"
    assert decode(unsigned("x-amz-checksum-crc32"), body, 1) == b"abc"


def test_a_malformed_trailing_checksum_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="header is invalid"):
        decode(unsigned("x-amz-checksum-crc32"), b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAAAA\r\n\r\n")


def test_decoder_for_request_needs_the_decoded_length_and_known_trailers() -> None:
    decoder, _ = example("signed")
    verified = decoder._signing
    assert verified is not None
    with pytest.raises(MissingContentLength) as raised:
        ChunkedDecoder.for_request(verified, {})
    assert raised.value.status == 411
    with pytest.raises(InvalidArgument, match="x-amz-trailer needs"):
        ChunkedDecoder.for_request(
            verified, {"x-amz-decoded-content-length": "1", "x-amz-trailer": "x-amz-checksum-crc32"}
        )
    with pytest.raises(InvalidArgument, match="Unsupported trailing header"):
        ChunkedDecoder(PayloadMode.STREAMING_UNSIGNED_TRAILER, trailers=("x-amz-meta-a",))


# ---- any split of any stream ---------------------------------------------------------------------------------


def signed_context() -> VerifiedRequest:
    key = signing_key(SECRET, "20130524", "us-east-1", "s3")
    return VerifiedRequest(
        access_key_id=AKID,
        timestamp="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
        region="us-east-1",
        signature="4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        signing_key=key,
        payload_mode=PayloadMode.STREAMING_SIGNED_TRAILER,
        payload_sha256=None,
        signed_headers=(),
        presigned=False,
    )


def encode_signed(context: VerifiedRequest, chunks: list[bytes], checksum: tuple[str, str] | None) -> bytes:
    """A signed aws-chunked body, for property tests (anchored by the AWS examples above)."""
    previous, out = context.signature, []
    for chunk in [*chunks, b""]:
        digest = hashlib.sha256(chunk).hexdigest()
        sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{context.timestamp}\n{context.scope}\n{previous}\n{EMPTY_SHA256}\n{digest}"
        previous = context.sign(sts)
        out.append(b"%x;chunk-signature=%s\r\n%s" % (len(chunk), previous.encode(), chunk))
        out.append(b"\r\n" if chunk else b"")
    if checksum is not None:
        canonical = f"{checksum[0]}:{checksum[1]}\n"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        sts = f"AWS4-HMAC-SHA256-TRAILER\n{context.timestamp}\n{context.scope}\n{previous}\n{digest}"
        out.append(f"{checksum[0]}:{checksum[1]}\r\nx-amz-trailer-signature:{context.sign(sts)}\r\n".encode())
    out.append(b"\r\n")
    return b"".join(out)


def splits(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_a_signed_stream_decodes_to_its_payload_in_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    context = signed_context()
    payload = b"".join(chunks)
    crc = Checksum("crc32")
    crc.update(payload)
    body = encode_signed(context, chunks, ("x-amz-checksum-crc32", crc.b64digest()))
    decoder = ChunkedDecoder(
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=context,
        decoded_content_length=len(payload),
        trailers=("x-amz-checksum-crc32",),
    )
    assert b"".join(decoder.feed(piece) for piece in splits(body, cuts)) == payload
    assert decoder.finish() == {"x-amz-checksum-crc32": crc.b64digest()}


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_an_unsigned_stream_decodes_to_its_payload_in_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    payload = b"".join(chunks)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))
    body = b"".join(b"%X\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % crc
    decoder = unsigned("x-amz-checksum-crc32", len(payload))
    assert b"".join(decoder.feed(piece) for piece in splits(body, cuts)) == payload
    decoder.finish()


# ---- checksums -----------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(pieces=st.lists(st.binary(max_size=200), max_size=5))
def test_checksums_agree_with_botocore_in_any_split(pieces: list[bytes]) -> None:
    for algorithm, reference_class in (("crc32", Crc32Checksum), ("sha1", Sha1Checksum), ("sha256", Sha256Checksum)):
        ours, reference = Checksum(algorithm), reference_class()
        for piece in pieces:
            ours.update(piece)
        reference.update(b"".join(pieces))
        assert ours.b64digest() == reference.b64digest()


def test_crc32c_is_the_aws_examples() -> None:
    checksum = Checksum.for_header("x-amz-checksum-crc32c")
    for _ in range(65):
        checksum.update(b"a" * 1024)
    assert checksum.b64digest() == "sOO8/Q=="


@pytest.mark.skipif(crc64nvme_available(), reason="awscrt is installed")
def test_crc64nvme_is_refused_without_awscrt() -> None:
    with pytest.raises(S3NotImplemented, match="awscrt") as raised:
        unsigned("x-amz-checksum-crc64nvme")
    assert raised.value.status == 501
