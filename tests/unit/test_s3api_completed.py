"""The answers kept for a CompleteMultipartUpload sent again: found by upload id, bucket and key, bounded in number
and in time."""

from __future__ import annotations

from typing import cast

import pytest

from aiouploader.routes import Route
from aiouploader.s3api.completed import Completed, fingerprint
from aiouploader.s3api.errors import NoSuchUpload

ROUTE, OTHER = cast(Route, object()), cast(Route, object())
LISTED = [(1, '"abc"', {}), (2, '"def"', {"crc32": "AAAAAA=="})]


def remember(completed: Completed, upload_id: str) -> None:
    completed.remember(upload_id, ROUTE, "k", LISTED, None, "<ETag>x</ETag>", {})


async def test_an_answer_is_found_by_its_upload_id_bucket_and_key() -> None:
    completed = Completed()
    remember(completed, "u1")
    assert completed.recall("u1", ROUTE, "k").children == "<ETag>x</ETag>"
    for upload_id, route, key in (("u2", ROUTE, "k"), ("u1", OTHER, "k"), ("u1", ROUTE, "other")):
        with pytest.raises(NoSuchUpload):
            completed.recall(upload_id, route, key)


async def test_only_the_latest_answers_are_kept() -> None:
    completed = Completed(kept=2)
    for upload_id in ("u1", "u2", "u3"):
        remember(completed, upload_id)
    assert len(completed) == 2
    with pytest.raises(NoSuchUpload):
        completed.recall("u1", ROUTE, "k")
    assert completed.recall("u3", ROUTE, "k").key == "k"


async def test_answers_older_than_the_time_kept_are_gone() -> None:
    completed = Completed(kept_for=0)
    remember(completed, "u1")
    with pytest.raises(NoSuchUpload):
        completed.recall("u1", ROUTE, "k")
    assert len(completed) == 0


def test_a_parts_list_is_the_same_whatever_its_quotes_case_and_spaces() -> None:
    assert fingerprint([(1, " ABC ", {}), (2, '"def"', {"crc32": " AAAAAA=="})]) == fingerprint(LISTED)
    assert fingerprint(LISTED[:1]) != fingerprint(LISTED)
    assert fingerprint([LISTED[0], (2, '"def"', {"crc32": "BBBBBB=="})]) != fingerprint(LISTED)
