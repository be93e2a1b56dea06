"""An object store held in memory, with the rules of S3 that the writer relies on, and faults on demand.

Only the unit tests use it: the server always talks to S3, and the tests
against real S3 servers prove the facade. What it checks as S3 does: each
part's Content-MD5 and additional checksum, part numbers from 1 to 10,000,
parts below the minimum size but the last, the parts a completion names,
``If-None-Match: *``. Its ETags are S3's: the MD5 of an object, and for a
multipart one the MD5 of the parts' MD5s with their count. Like AWS S3, it
answers a part, a PutObject and a completion with the checksum of what it
stored (a multipart object's: composite, or full-object for CRC64NVME), and
gives it on HEAD when asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import urllib.parse
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from aiouploader.checksums import b64, digest
from aiouploader.config import S3Config
from aiouploader.errors import NotFound, ObjectChanged
from aiouploader.s3 import MAX_PARTS, MIN_PART_SIZE, ObjectInfo, ObjectWriter
from aiouploader.s3.integrity import FULL_OBJECT, field, object_checksum
from aiouploader.s3.sending import Pieces
from aiouploader.s3.writer import md5_etag

ALGORITHMS = ("crc32c", "crc32", "sha256", "crc64nvme")


def refusal(code: str, status: int, operation: str = "Call") -> ClientError:
    """What botocore raises when S3 answers a call with an error."""
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@dataclass
class StoredObject:
    body: bytes
    etag: str
    attributes: dict[str, Any]
    part_sizes: list[int] = dataclasses.field(default_factory=list)
    """For a multipart object, the size of each part in order."""
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)
    """Its checksum, as S3 answers it: ``{"ChecksumCRC32C": ...}``."""
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass
class Part:
    body: bytes
    etag: str
    checksums: dict[str, str]


@dataclass
class MultipartUpload:
    bucket: str
    key: str
    attributes: dict[str, Any]
    parts: dict[int, Part] = dataclasses.field(default_factory=dict)


class MemoryStore:
    """An :class:`~aiouploader.s3.ObjectStore` in memory."""

    def __init__(self, config: S3Config | None = None, *, min_part_size: int = MIN_PART_SIZE) -> None:
        self.config = config or S3Config(part_size=MIN_PART_SIZE, parts_in_flight=2)
        self.min_part_size = min_part_size
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.uploads: dict[str, MultipartUpload] = {}
        self.tag_support: dict[str, str | None] = {}
        self.calls: list[str] = []
        """The names of the operations called, in order."""
        self.arrived: list[int] = []
        """Part numbers in the order the store took them."""
        self.delay: dict[str, float] = {}
        """Seconds the store takes to answer, by operation."""
        self.part_delay: dict[int, float] = {}
        """Seconds the store takes before it takes a part, by part number."""
        self._faults: dict[str, deque[tuple[BaseException, bool, Callable[[], object]]]] = {}
        self.wrong_checksum: set[str] = set()
        """Operations whose answer gives another checksum than that of the bytes, as if they changed on the way."""

    def fail(
        self, operation: str, error: BaseException, *, after: bool = False, meanwhile: Callable[[], object] = list
    ) -> None:
        """Make the next call of ``operation`` raise ``error``: at once, or ``after`` doing it (its answer lost).

        ``meanwhile`` runs as the answer is lost: what others did before the writer looks.
        """
        self._faults.setdefault(operation, deque()).append((error, after, meanwhile))

    async def _call(self, operation: str) -> Callable[[], None]:
        """Count the call and take its time; raise its fault now, or return what raises it once the call is done."""
        self.calls.append(operation)
        await asyncio.sleep(self.delay.get(operation, 0))
        faults = self._faults.get(operation)
        if not faults:
            return lambda: None
        error, after, meanwhile = faults.popleft()
        if not after:
            raise error

        def lost() -> None:
            meanwhile()
            raise error

        return lost

    def _check(self, body: bytes | bytearray, args: Mapping[str, Any], operation: str) -> None:
        if "ContentMD5" in args and args["ContentMD5"] != b64(digest("md5", body)):
            raise refusal("BadDigest", 400, operation)
        for name, value in args.items():
            checksum = name.startswith("Checksum") and name != "ChecksumAlgorithm"
            if checksum and value != b64(digest(name.removeprefix("Checksum").lower(), body)):
                raise refusal("BadDigest", 400, operation)

    def _answer(self, operation: str, checksums: Mapping[str, Any]) -> dict[str, str]:
        """The checksums of an answer: those of the stored bytes (the refused ones were checked)."""
        answer = {name: value for name, value in checksums.items() if name in map(field, ALGORITHMS)}
        if operation in self.wrong_checksum:
            answer = {name: b64(digest(name.removeprefix("Checksum").lower(), b"other")) for name in answer}
        return answer

    def _refuse_if_present(self, bucket: str, key: str, if_none_match: bool, operation: str) -> None:
        if if_none_match and (bucket, key) in self.objects:
            raise refusal("PreconditionFailed", 412, operation)

    def _upload(self, upload_id: str, operation: str) -> MultipartUpload:
        if upload_id not in self.uploads:
            raise refusal("NoSuchUpload", 404, operation)
        return self.uploads[upload_id]

    # Objects

    async def head_bucket(self, bucket: str) -> None:
        await self._call("head_bucket")

    async def head(
        self, bucket: str, key: str, *, version_id: str | None = None, checksums: bool = False
    ) -> ObjectInfo:
        await self._call("head")
        if (stored := self.objects.get((bucket, key))) is None:
            raise NotFound("No object at this key.")
        attributes = stored.attributes
        kept = {name.removeprefix("Checksum").lower(): value for name, value in stored.checksums.items()}
        return ObjectInfo(
            len(stored.body),
            stored.etag,
            attributes["ContentType"],
            attributes.get("Metadata", {}),
            None,
            checksums=kept if checksums else {},
            tag_count=len(stored.tags),
        )

    async def get_tags(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        await self._call("get_tags")
        if (stored := self.objects.get((bucket, key))) is None:
            raise NotFound("No object at this key.")
        return dict(stored.tags)

    async def read(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        await self._call("read")
        stored = self.objects.get((bucket, key))
        if stored is None or stored.etag != etag:
            raise ObjectChanged("The object was replaced or deleted while it was being read; try again.")
        yield stored.body[start:end]

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        await self._call("delete")
        self.objects.pop((bucket, key), None)

    async def presign_put(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: int,
        content_length: int | None = None,
        content_type: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        await self._call("presign_put")
        terms = {"expires_in": expires_in, "content_length": content_length, "content_type": content_type}
        terms |= {"if_none_match": "*"} if if_none_match else {}
        return f"memory://{bucket}/{key}?{urlencode({name: v for name, v in terms.items() if v is not None})}"

    # Writes

    def writer(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
        if_none_match: bool = False,
    ) -> ObjectWriter:
        return ObjectWriter(
            self,
            self.config,
            bucket,
            key,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            content_length=content_length,
            if_none_match=if_none_match,
        )

    async def put_object(self, bucket: str, key: str, pieces: Pieces, attributes: Mapping[str, Any]) -> dict[str, Any]:
        lost = await self._call("put_object")
        body = b"".join(pieces)
        self._check(body, attributes, "PutObject")
        self._refuse_if_present(bucket, key, attributes.get("IfNoneMatch") == "*", "PutObject")
        etag = md5_etag(hashlib.md5(body).digest())
        kept = {name: value for name, value in attributes.items() if name not in ("IfNoneMatch", "Tagging")}
        answer = self._answer("put_object", attributes)
        tags = dict(urllib.parse.parse_qsl(attributes.get("Tagging", ""), keep_blank_values=True))
        self.objects[bucket, key] = StoredObject(bytes(body), etag, kept, checksums=answer, tags=tags)
        lost()
        return {"ETag": etag} | answer

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str], version_id: str | None = None) -> None:
        lost = await self._call("put_tags")
        if (stored := self.objects.get((bucket, key))) is None:
            raise refusal("NoSuchKey", 404, "PutObjectTagging")
        if len(tags) > 10:
            raise refusal("BadRequest", 400, "PutObjectTagging")
        stored.tags = dict(tags)
        lost()

    async def create_multipart_upload(self, bucket: str, key: str, attributes: Mapping[str, Any]) -> str:
        lost = await self._call("create_multipart_upload")
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = MultipartUpload(bucket, key, dict(attributes))
        lost()
        return upload_id

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, pieces: Pieces, checksums: Mapping[str, str]
    ) -> dict[str, Any]:
        lost = await self._call("upload_part")
        body = b"".join(pieces)
        await asyncio.sleep(self.part_delay.get(number, 0))
        upload = self._upload(upload_id, "UploadPart")
        if not 1 <= number <= MAX_PARTS:
            raise refusal("InvalidArgument", 400, "UploadPart")
        self._check(body, checksums, "UploadPart")
        etag = md5_etag(hashlib.md5(body).digest())
        answer = self._answer("upload_part", checksums)
        upload.parts[number] = Part(bytes(body), etag, answer)
        self.arrived.append(number)
        lost()
        return {"ETag": etag} | answer

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[Mapping[str, Any]],
        *,
        if_none_match: bool,
        checksums: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        lost = await self._call("complete_multipart_upload")
        upload = self._upload(upload_id, "CompleteMultipartUpload")
        numbers = [part["PartNumber"] for part in parts]
        if not numbers or numbers != sorted(set(numbers)):
            raise refusal("InvalidPartOrder", 400, "CompleteMultipartUpload")
        chosen = []
        for part in parts:
            stored = upload.parts.get(part["PartNumber"])
            if stored is None or stored.etag != part["ETag"]:
                raise refusal("InvalidPart", 400, "CompleteMultipartUpload")
            chosen.append(stored)
        if any(len(part.body) < self.min_part_size for part in chosen[:-1]):
            raise refusal("EntityTooSmall", 400, "CompleteMultipartUpload")
        self._refuse_if_present(bucket, key, if_none_match, "CompleteMultipartUpload")
        md5s = b"".join(bytes.fromhex(part.etag.strip('"')) for part in chosen)
        etag = md5_etag(md5s, len(chosen))
        body = b"".join(part.body for part in chosen)
        sizes = [len(part.body) for part in chosen]
        answer = {}
        if algorithm := upload.attributes.get("ChecksumAlgorithm", "").lower():
            full = upload.attributes.get("ChecksumType") == "FULL_OBJECT"
            if full != (algorithm in FULL_OBJECT):
                raise refusal("InvalidRequest", 400, "CompleteMultipartUpload")
            right = object_checksum(
                algorithm, [{field(algorithm): b64(digest(algorithm, p.body))} for p in chosen], sizes
            )
            if full and (checksums or {}).get(field(algorithm)) != right:
                raise refusal("BadDigest", 400, "CompleteMultipartUpload")
            answer = self._answer("complete_multipart_upload", {field(algorithm): right})
        self.objects[bucket, key] = StoredObject(body, etag, upload.attributes, sizes, answer)
        del self.uploads[upload_id]
        lost()
        return {"ETag": etag} | answer

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        lost = await self._call("abort_multipart_upload")
        self._upload(upload_id, "AbortMultipartUpload")
        del self.uploads[upload_id]
        lost()

    async def abort(self, bucket: str, key: str, upload_id: str) -> bool:
        await self._call("abort")
        self.uploads.pop(upload_id, None)
        return True
