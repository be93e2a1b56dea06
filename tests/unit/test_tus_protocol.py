"""The headers of tus requests and the IETF draft's, as :mod:`aiouploader.tus.protocol` and :mod:`.draft` read
them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from aiohttp.test_utils import make_mocked_request

from aiouploader.errors import BadRequest
from aiouploader.tus import draft
from aiouploader.tus.protocol import PatchChecksum, metadata


def test_metadata_pairs_decode_and_a_key_may_come_without_a_value() -> None:
    header = "filename " + base64.b64encode("résumé.pdf".encode()).decode() + ", is_confidential"
    assert metadata(header) == {"filename": "résumé.pdf", "is_confidential": ""}
    assert metadata(None) == {}


@pytest.mark.parametrize("header", ["filename not-base64!", "filename " + base64.b64encode(b"\xff").decode()])
def test_metadata_that_is_not_base64_of_utf8_is_refused(header: str) -> None:
    with pytest.raises(BadRequest):
        metadata(header)


def test_a_checksum_matches_only_its_bytes() -> None:
    expected = base64.b64encode(hashlib.sha256(b"hello world").digest()).decode()
    checksum = PatchChecksum(f"sha256 {expected}")
    checksum.update(b"hello ")
    checksum.update(b"world")
    assert checksum.matches()
    checksum.update(b"!")
    assert not checksum.matches()


@pytest.mark.parametrize("header", ["crc32 AAAAAA==", "sha1 ***", "sha1"])
def test_a_checksum_of_an_unknown_algorithm_or_value_is_refused(header: str) -> None:
    with pytest.raises(BadRequest):
        PatchChecksum(header)


def test_a_draft_request_ends_the_upload_where_upload_complete_says() -> None:
    last = make_mocked_request("PATCH", "/", headers={"Upload-Complete": "?1", "Content-Length": "5"})
    assert draft.length(last, 10, None) == (15, True)
    unknown = make_mocked_request("PATCH", "/", headers={"Upload-Complete": "?1", "Transfer-Encoding": "chunked"})
    assert draft.length(unknown, 10, None) == (None, True)
    more = make_mocked_request("PATCH", "/", headers={"Upload-Complete": "?0", "Upload-Length": "20"})
    assert draft.length(more, 10, None) == (20, False)


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Complete": "?1", "Content-Length": "5", "Upload-Length": "20"},
        {"Upload-Complete": "true"},
        {"Upload-Complete": "?0", "Upload-Length": "5"},
    ],
)
def test_a_draft_request_whose_length_cannot_hold_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        draft.length(make_mocked_request("PATCH", "/", headers=headers), 10, None)
