"""The object writer over an object store in memory: what it sends, in what parts, and what it claims."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import pytest

from aiouploader.checksums import Data, b64, digest
from aiouploader.config import S3Config
from aiouploader.errors import PreconditionFailed, UpstreamError, UpstreamTimeout
from aiouploader.s3 import MAX_PARTS, MIN_PART_SIZE, ObjectWriter, Stored
from aiouploader.s3.sending import Pieces

from .memory_store import MemoryStore, StoredObject, refusal

MiB = 1024**2
BUCKET, KEY = "bucket", "key"


def writer(store: MemoryStore, *, content_length: int | None = None, if_none_match: bool = False) -> ObjectWriter:
    return ObjectWriter(
        store,
        store.config,
        BUCKET,
        KEY,
        content_type="application/octet-stream",
        metadata={"owner": "test"},
        content_length=content_length,
        if_none_match=if_none_match,
    )


async def write_all(target: ObjectWriter, body: bytes, block: int = MiB) -> Stored:
    for start in range(0, len(body), block):
        await target.write(body[start : start + block])
    return await target.complete()


def stored(store: MemoryStore) -> bytes:
    return store.objects[BUCKET, KEY].body


def tiny_parts(part_size: int, parts_in_flight: int = 16) -> MemoryStore:
    """A store that takes parts far below S3's 5MiB, so that thousands of them are cheap."""
    config = S3Config.model_construct(part_size=part_size, parts_in_flight=parts_in_flight)
    return MemoryStore(config, min_part_size=0)


# One PutObject for what fits one part


async def test_a_body_that_fits_one_part_is_one_put_object() -> None:
    store, body = MemoryStore(), os.urandom(1000)
    result = await write_all(writer(store), body)
    assert store.calls == ["put_object"]
    assert stored(store) == body
    assert result.etag == f'"{hashlib.md5(body).hexdigest()}"'
    assert result.stored_size == 1000


async def test_a_body_of_exactly_one_part_is_still_one_put_object() -> None:
    store = MemoryStore()
    await write_all(writer(store), os.urandom(MIN_PART_SIZE))
    assert store.calls == ["put_object"]


async def test_an_empty_body_is_one_empty_put_object() -> None:
    store = MemoryStore()
    result = await writer(store).complete()
    assert store.calls == ["put_object"]
    assert stored(store) == b"" and result.stored_size == 0


async def test_the_object_keeps_its_content_type_and_metadata() -> None:
    store = MemoryStore()
    await write_all(writer(store), b"x")
    attributes = store.objects[BUCKET, KEY].attributes
    assert (attributes["ContentType"], attributes["Metadata"]) == ("application/octet-stream", {"owner": "test"})


async def test_a_put_object_carries_the_body_checksum_that_the_result_reports() -> None:
    store, body = MemoryStore(), os.urandom(5000)  # the store refuses a wrong Content-MD5 or CRC32C
    result = await write_all(writer(store), body)
    assert result.checksum == {"crc32c": b64(digest("crc32c", body))}


# Multipart: part sizes and order


async def test_a_body_larger_than_a_part_is_sent_in_parts_of_the_part_size() -> None:
    store, body = MemoryStore(), os.urandom(12 * MiB)
    result = await write_all(writer(store), body)
    assert store.objects[BUCKET, KEY].part_sizes == [5 * MiB, 5 * MiB, 2 * MiB]
    assert stored(store) == body
    assert result.etag.endswith('-3"') and result.stored_size == 12 * MiB


class _Recording(MemoryStore):
    """A store that keeps the pieces each part was sent in."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: dict[int, list[Data]] = {}

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, pieces: Pieces, checksums: Mapping[str, str]
    ) -> dict[str, Any]:
        self.pieces[number] = list(pieces)
        return await super().upload_part(bucket, key, upload_id, number, pieces, checksums)


async def test_a_part_is_sent_as_the_blocks_written_the_last_one_cut_where_the_part_ends() -> None:
    store = _Recording()
    blocks = [os.urandom(2 * MiB) for _ in range(3)]
    target = writer(store)
    for block in blocks:
        await target.write(block)
    await target.complete()
    first, second = store.pieces[1], store.pieces[2]
    assert first[0] is blocks[0] and first[1] is blocks[1]  # not copied
    assert [len(piece) for piece in first] == [2 * MiB, 2 * MiB, MiB]
    assert [len(piece) for piece in second] == [MiB]
    assert stored(store) == b"".join(blocks)


async def test_parts_that_arrive_out_of_order_are_completed_in_order() -> None:
    store, body = MemoryStore(), os.urandom(12 * MiB)
    store.part_delay[1] = 0.2
    await write_all(writer(store), body)
    assert store.arrived[0] == 2  # the premise: part 2 got there first
    assert stored(store) == body


async def test_the_multipart_checksum_is_the_checksum_of_the_parts_checksums() -> None:
    store, body = MemoryStore(), os.urandom(11 * MiB)
    result = await write_all(writer(store), body)
    parts = [body[: 5 * MiB], body[5 * MiB : 10 * MiB], body[10 * MiB :]]
    composite = b"".join(digest("crc32c", part) for part in parts)
    assert result.checksum == {"crc32c": f"{b64(digest('crc32c', composite))}-3"}


async def test_a_length_announced_beyond_ten_thousand_parts_gets_larger_parts() -> None:
    store = MemoryStore()
    await write_all(writer(store, content_length=MAX_PARTS * 5 * MiB + 1), os.urandom(13 * MiB))
    assert store.objects[BUCKET, KEY].part_sizes == [6 * MiB, 6 * MiB, 1 * MiB]


async def test_an_unknown_length_doubles_the_part_size_every_900_parts() -> None:
    store = tiny_parts(part_size=64)
    await write_all(writer(store), os.urandom(900 * 64 + 2 * 128 + 1), block=4096)
    sizes = store.objects[BUCKET, KEY].part_sizes
    assert sizes[:900] == [64] * 900 and sizes[900:] == [128, 128, 1]


async def test_ten_thousand_growing_parts_hold_the_largest_body_of_the_schedule() -> None:
    store = tiny_parts(part_size=1)
    schedule = [1 << ((n - 1) // 900) for n in range(1, MAX_PARTS + 1)]
    body = os.urandom(sum(schedule))
    await write_all(writer(store), body, block=64 * 1024)
    assert store.objects[BUCKET, KEY].part_sizes == schedule
    assert stored(store) == body


async def test_a_part_beyond_ten_thousand_is_refused_and_nothing_is_stored() -> None:
    store = tiny_parts(part_size=1)
    target = writer(store)
    with pytest.raises(UpstreamError, match="S3 refused uploading part 10001: InvalidArgument"):
        await write_all(target, os.urandom(sum(1 << ((n - 1) // 900) for n in range(1, MAX_PARTS + 1)) + 1), 65536)
    await target.abort()
    assert not store.objects and not store.uploads


# Failures: the writer raises, and abort leaves nothing behind


async def test_a_refused_part_fails_the_upload_and_abort_leaves_no_multipart_upload() -> None:
    store = MemoryStore()
    store.fail("upload_part", refusal("InternalError", 500))
    target = writer(store)
    with pytest.raises(UpstreamError, match=r"S3 refused uploading part [12]: InternalError"):
        await write_all(target, os.urandom(12 * MiB))
    await target.abort()
    assert store.calls[-1] == "abort"
    assert not store.uploads and not store.objects


async def test_a_multipart_upload_s3_could_not_start_is_an_error_that_stores_nothing() -> None:
    store = MemoryStore()
    store.fail("create_multipart_upload", TimeoutError())
    target = writer(store)
    with pytest.raises(UpstreamTimeout, match="starting the multipart upload; nothing was stored"):
        await write_all(target, os.urandom(12 * MiB))
    await target.abort()
    assert not store.uploads and not store.objects


async def test_abort_stops_the_parts_on_their_way_and_aborts_the_multipart_upload() -> None:
    store = MemoryStore()
    store.part_delay |= {1: 60, 2: 60}
    target = writer(store)
    for _ in range(11):
        await target.write(os.urandom(MiB))
    await asyncio.wait_for(target.abort(), 5)
    assert not store.uploads and not store.objects and not store.arrived


async def test_an_abort_while_s3_creates_the_upload_still_aborts_it() -> None:
    store = MemoryStore()
    store.delay["create_multipart_upload"] = 0.2
    target = writer(store)
    writing = asyncio.create_task(write_all(target, os.urandom(12 * MiB)))
    await asyncio.sleep(0.1)
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)
    await target.abort()
    assert store.calls == ["create_multipart_upload", "abort"]
    assert not store.uploads


@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["put", "multipart"])
async def test_if_none_match_keeps_an_object_already_at_the_key(size: int) -> None:
    store = MemoryStore()
    await write_all(writer(store), b"first")
    with pytest.raises(PreconditionFailed):
        await write_all(writer(store, if_none_match=True), os.urandom(size))
    assert stored(store) == b"first"


# Uncertain outcomes: S3 did not answer a write, so the writer finds out what it did


async def test_a_completion_s3_made_without_answering_is_found_and_confirmed() -> None:
    store, body = MemoryStore(), os.urandom(12 * MiB)
    store.fail("complete_multipart_upload", TimeoutError(), after=True)
    result = await write_all(writer(store), body)
    assert stored(store) == body
    assert result.etag == store.objects[BUCKET, KEY].etag


async def test_a_completion_s3_did_not_make_is_aborted_and_said_to_store_nothing() -> None:
    store = MemoryStore()
    store.fail("complete_multipart_upload", TimeoutError())
    with pytest.raises(UpstreamTimeout, match="completing the multipart upload; nothing was stored"):
        await write_all(writer(store), os.urandom(12 * MiB))
    assert not store.uploads and not store.objects


async def test_a_completion_that_cannot_be_checked_is_not_said_to_store_nothing() -> None:
    store = MemoryStore()
    store.fail("complete_multipart_upload", TimeoutError(), after=True)
    store.fail("abort_multipart_upload", TimeoutError())
    with pytest.raises(UpstreamTimeout, match="this upload may have been stored"):
        await write_all(writer(store), os.urandom(12 * MiB))


async def test_a_completion_whose_key_holds_another_object_is_not_claimed() -> None:
    store = MemoryStore()
    another = StoredObject(b"another", f'"{hashlib.md5(b"another").hexdigest()}"', {"ContentType": "text/plain"})
    replace = functools.partial(store.objects.__setitem__, (BUCKET, KEY), another)
    store.fail("complete_multipart_upload", TimeoutError(), after=True, meanwhile=replace)
    with pytest.raises(UpstreamTimeout, match="this upload may have been stored"):
        await write_all(writer(store), os.urandom(12 * MiB))


async def test_a_put_s3_made_without_answering_is_found_and_confirmed() -> None:
    store, body = MemoryStore(), os.urandom(1000)
    store.fail("put_object", TimeoutError(), after=True)
    result = await write_all(writer(store), body)
    assert result.etag == store.objects[BUCKET, KEY].etag and stored(store) == body


async def test_a_put_s3_did_not_make_is_said_to_store_nothing() -> None:
    store = MemoryStore()
    store.fail("put_object", TimeoutError())
    with pytest.raises(UpstreamTimeout, match="storing the object; nothing was stored"):
        await write_all(writer(store), os.urandom(1000))
    assert not store.objects
