"""The writer compares the checksum the store says it stored with its own, over an object store in memory."""

from __future__ import annotations

import os

import pytest

from aiouploader.checksums import HASHES, b64, combine_crc64nvme, digest
from aiouploader.config import S3Config
from aiouploader.errors import UpstreamError
from aiouploader.s3 import MIN_PART_SIZE, ObjectWriter, Stored

from .memory_store import MemoryStore

MiB = 1024**2
BUCKET, KEY = "bucket", "key"
needs_crc64nvme = pytest.mark.skipif("crc64nvme" not in HASHES, reason="awscrt is not installed")


def writer(store: MemoryStore, mismatches: list[str] | None = None) -> ObjectWriter:
    return ObjectWriter(
        store,
        store.config,
        BUCKET,
        KEY,
        content_type="application/octet-stream",
        metadata={},
        on_mismatch=(mismatches if mismatches is not None else []).append,
    )


async def write_all(target: ObjectWriter, body: bytes) -> Stored:
    for start in range(0, len(body), MiB):
        await target.write(body[start : start + MiB])
    return await target.complete()


def store_for(algorithm: str = "crc32c", **settings: object) -> MemoryStore:
    return MemoryStore(S3Config(part_size=MIN_PART_SIZE, parts_in_flight=2, checksum_algorithm=algorithm, **settings))


async def test_content_md5_is_not_sent_by_default_and_the_checksum_is() -> None:
    store = store_for()
    await write_all(writer(store), os.urandom(1000))
    attributes = store.objects[BUCKET, KEY].attributes
    assert "ContentMD5" not in attributes and "ChecksumCRC32C" in attributes


@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["put", "multipart"])
async def test_a_matching_stored_checksum_is_a_success_that_reports_it(size: int) -> None:
    store, mismatches = store_for(), list[str]()
    result = await write_all(writer(store, mismatches), os.urandom(size))
    assert result.checksum["crc32c"] == store.objects[BUCKET, KEY].checksums["ChecksumCRC32C"]
    assert mismatches == []


async def test_a_part_stored_with_another_checksum_fails_the_upload_and_is_aborted() -> None:
    store, mismatches = store_for(), list[str]()
    store.wrong_checksum.add("upload_part")
    target = writer(store, mismatches)
    with pytest.raises(UpstreamError, match=r"S3 stored part \d with the checksum .*nothing was stored") as caught:
        await write_all(target, os.urandom(12 * MiB))
    assert caught.value.status == 502 and caught.value.code == "upstream_error"
    await target.abort()
    assert not store.uploads and not store.objects
    assert mismatches and set(mismatches) == {"upload_part"}


@pytest.mark.parametrize(
    "operation, size", [("put_object", 1000), ("complete_multipart_upload", 12 * MiB)], ids=["put", "multipart"]
)
async def test_an_object_stored_with_another_checksum_is_removed_and_a_502(operation: str, size: int) -> None:
    store, mismatches = store_for(), list[str]()
    store.wrong_checksum.add(operation)
    with pytest.raises(UpstreamError, match=r"S3 stored the object with the checksum .*nothing was stored") as caught:
        await write_all(writer(store, mismatches), os.urandom(size))
    assert caught.value.status == 502
    assert store.calls[-1] == "delete"
    assert not store.objects and not store.uploads
    assert mismatches == [operation]


async def test_an_object_that_cannot_be_removed_is_said_to_be_maybe_at_the_key() -> None:
    store = store_for()
    store.wrong_checksum.add("put_object")
    store.fail("delete", UpstreamError("S3 could not be reached while deleting the object."))
    with pytest.raises(UpstreamError, match="a damaged object may be at the key"):
        await write_all(writer(store), os.urandom(1000))


async def test_a_put_s3_made_without_answering_is_confirmed_without_content_md5() -> None:
    store, body = store_for(), os.urandom(1000)
    store.fail("put_object", TimeoutError(), after=True)
    result = await write_all(writer(store), body)
    assert result.etag == store.objects[BUCKET, KEY].etag
    assert result.checksum == {"crc32c": b64(digest("crc32c", body))}


def test_crc64nvme_of_parts_combines_into_the_crc64nvme_of_the_whole() -> None:
    crc = HASHES.get("crc64nvme")
    if crc is None:
        pytest.skip("awscrt is not installed")
    for first, second in [(b"", b""), (b"a", b""), (b"", b"bc"), (os.urandom(1000), os.urandom(3001))]:
        combined = combine_crc64nvme(digest("crc64nvme", first), digest("crc64nvme", second), len(second))
        assert combined == digest("crc64nvme", first + second)


@needs_crc64nvme
async def test_crc64nvme_uploads_carry_the_full_object_checksum_the_store_checks() -> None:
    store, body = store_for("crc64nvme"), os.urandom(12 * MiB)
    result = await write_all(writer(store), body)  # the store refuses a wrong full-object checksum
    assert store.objects[BUCKET, KEY].attributes["ChecksumType"] == "FULL_OBJECT"
    assert result.checksum == {"crc64nvme": b64(digest("crc64nvme", body))}


@needs_crc64nvme
async def test_the_full_object_checksum_of_many_parts_is_the_crc64nvme_of_the_whole() -> None:
    config = S3Config.model_construct(part_size=1024, parts_in_flight=16, checksum_algorithm="crc64nvme")
    store, body = MemoryStore(config, min_part_size=0), os.urandom(150 * 1024 + 7)
    result = await write_all(writer(store), body)  # more parts than the writer combines on the loop
    assert len(store.objects[BUCKET, KEY].part_sizes) == 151
    assert result.checksum == {"crc64nvme": b64(digest("crc64nvme", body))}
