"""The headers of tus requests, as :mod:`aiouploader.tus.protocol` reads them."""

from __future__ import annotations

import base64
import hashlib

import pytest

from aiouploader.errors import BadRequest
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
